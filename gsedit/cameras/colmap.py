"""COLMAP sparse models (text or binary), read with pycolmap.

COLMAP poses are world-to-camera in OpenCV axes, and COLMAP puts the centre of the first pixel
at (0.5, 0.5), like gsplat (pixel (i, j) is sampled at (j + 0.5, i + 0.5)): principal points
are used unchanged. Only the pinhole part of a camera is used; distortion is dropped with a
warning. Images are sorted by name.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np

from gsedit.atomic import atomic_dir
from gsedit.cameras import checks
from gsedit.cameras.camera import Cameras
from gsedit.errors import GseditError, InputFileError

SUPPORTED_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
MODEL_FILES = {
    f"{n}{ext}"
    for n in ("cameras", "images", "points3D", "rigs", "frames")
    for ext in (".txt", ".bin")
}


def find_colmap_model(folder: Path) -> tuple[Path, str] | None:
    """(model folder, ".bin" or ".txt") in `folder`, `folder/sparse/0` or `folder/sparse`; None if none."""
    for candidate in (folder, folder / "sparse" / "0", folder / "sparse"):
        for ext in (".bin", ".txt"):
            if all((candidate / f"{n}{ext}").is_file() for n in ("cameras", "images")):
                return candidate, ext
    return None


def read_colmap_model(folder: str | Path) -> Cameras:
    """Reads the cameras of a COLMAP sparse model folder, or of a dataset root holding `sparse/0`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(folder, "COLMAP model folder not found")
    found = find_colmap_model(folder)
    if found is None:
        raise InputFileError(
            folder,
            "no COLMAP model here: expected cameras.txt and images.txt (or cameras.bin and "
            "images.bin) in this folder, in sparse/0 or in sparse",
        )
    model, ext = found
    reconstruction = _read_without_points(model, ext)
    images = sorted(
        (im for im in reconstruction.images.values() if getattr(im, "has_pose", True)),
        key=lambda im: im.name,
    )
    cameras_file, images_file = model / f"cameras{ext}", model / f"images{ext}"
    camtoworlds, Ks, sizes, distorted = [], [], [], set()
    for im in images:
        camera = reconstruction.cameras[im.camera_id]
        K, size = _intrinsics(cameras_file, f"image {im.name!r}", camera)
        if np.any(camera.params[camera.extra_params_idxs()] != 0):
            distorted.add(camera.model_name)
        camtoworlds.append(_camtoworld(images_file, f"image {im.name!r}", im))
        Ks.append(K)
        sizes.append(size)
    if distorted:
        checks.warn_distortion(
            cameras_file, f"{'/'.join(sorted(distorted))} cameras have distortion"
        )
    return checks.assemble(images_file, camtoworlds, Ks, sizes, [im.name for im in images])


def _read_without_points(model: Path, ext: str):
    """pycolmap.Reconstruction of the model with its points left out (they can be gigabytes)."""
    import pycolmap

    names = ["cameras", "images"]
    if all((model / f"{n}{ext}").is_file() for n in ("rigs", "frames")):
        names += ["rigs", "frames"]
    with tempfile.TemporaryDirectory() as tmp:
        for n in names:
            os.symlink((model / f"{n}{ext}").resolve(), Path(tmp) / f"{n}{ext}")
        # an empty points3D file: the binary one holds a zero uint64 count
        (Path(tmp) / f"points3D{ext}").write_bytes(b"\0" * 8 if ext == ".bin" else b"")
        try:
            return pycolmap.Reconstruction(tmp)
        except (ValueError, RuntimeError) as e:
            raise InputFileError(model, f"COLMAP could not read the model ({e})") from e


def _intrinsics(path: Path, where: str, camera) -> tuple[np.ndarray, tuple[int, int]]:
    """(K [3, 3], (width, height)) of a pycolmap camera."""
    if camera.model_name not in SUPPORTED_MODELS:
        raise InputFileError(
            path,
            f"{where} uses camera model {camera.model_name}; gsedit reads {', '.join(SUPPORTED_MODELS)} "
            "(undistort the images with `colmap image_undistorter` to get PINHOLE cameras)",
        )
    size = checks.image_size(path, where, camera.width, camera.height)
    fx = checks.positive(path, where, "focal length x", camera.focal_length_x)
    fy = checks.positive(path, where, "focal length y", camera.focal_length_y)
    cx = checks.number(path, where, "principal point x", camera.principal_point_x)
    cy = checks.number(path, where, "principal point y", camera.principal_point_y)
    return checks.intrinsics(fx, fy, cx, cy), size


def _camtoworld(path: Path, where: str, image) -> np.ndarray:
    """Camera-to-world [4, 4] of a pycolmap image (a method since pycolmap 3.12, a property before)."""
    pose = image.cam_from_world
    pose = pose() if callable(pose) else pose
    w2c = np.eye(4)
    w2c[:3, :] = checks.array(path, where, "pose", pose.matrix(), [(3, 4)])
    return checks.rigid_inverse(w2c)


def write_colmap_model(cams: Cameras, folder: str | Path, binary: bool = False) -> None:
    """Writes `cams` as a COLMAP sparse model (one PINHOLE camera per image, no points).

    The folder is replaced as a whole (atomically); it may hold only COLMAP model files before.
    """
    folder = Path(folder)
    if folder.exists():
        foreign = sorted(p.name for p in folder.iterdir() if p.name not in MODEL_FILES)
        if foreign:
            raise GseditError(
                f"{folder}: refusing to replace a folder that holds more than a COLMAP model "
                f"({', '.join(foreign[:5])}); write the model to an empty or new folder"
            )
    bad = [n for n in cams.names if re.search(r"\s", n)]
    if bad:
        raise GseditError(f"{folder}: COLMAP image names cannot contain whitespace: {bad[:3]}")
    with atomic_dir(folder) as tmp:
        if not binary:
            _write_text(cams, tmp)
            return
        import pycolmap

        with tempfile.TemporaryDirectory() as text_dir:
            _write_text(cams, Path(text_dir))
            pycolmap.Reconstruction(text_dir).write_binary(str(tmp))


def _write_text(cams: Cameras, folder: Path) -> None:
    """cameras.txt, images.txt and an empty points3D.txt; numbers in full float64 precision."""
    import pycolmap

    viewmats = cams.viewmats.detach().cpu().double().numpy()  # [C, 4, 4]
    Ks = cams.Ks.detach().cpu().double().numpy()  # [C, 3, 3]
    camera_lines, image_lines = [], []
    for i, (name, w2c, K) in enumerate(zip(cams.names, viewmats, Ks), start=1):
        params = _numbers([K[0, 0], K[1, 1], K[0, 2], K[1, 2]])
        camera_lines.append(f"{i} PINHOLE {cams.width} {cams.height} {params}")
        # pycolmap orders quaternions xyzw, COLMAP files wxyz
        qx, qy, qz, qw = pycolmap.Rotation3d(w2c[:3, :3]).quat
        pose = _numbers([qw, qx, qy, qz, *w2c[:3, 3]])
        image_lines += [f"{i} {pose} {i} {name}", ""]  # an empty line: no 2D points
    (folder / "cameras.txt").write_text(
        "# CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n" + "\n".join(camera_lines) + "\n"
    )
    (folder / "images.txt").write_text(
        "# IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n# POINTS2D[] as (X, Y, POINT3D_ID)\n"
        + "\n".join(image_lines)
        + "\n"
    )
    (folder / "points3D.txt").write_text("# POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[]\n")


def _numbers(values) -> str:
    """Space-separated shortest round-trip reprs (exact float64 in text)."""
    return " ".join(repr(float(v)) for v in values)
