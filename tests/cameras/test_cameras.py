"""Camera readers and writers: round trips, hand-computed conventions, and errors on bad input."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

from gsedit.cameras.camera import Cameras
from gsedit.cameras.formats import (
    load_cameras,
    orbit_cameras,
    write_colmap_model,
    write_inria_cameras,
    write_transforms_json,
)
from gsedit.errors import GseditError, InputFileError

W, H = 64, 48


def _rotation(gen: torch.Generator) -> torch.Tensor:
    """A random proper rotation [3, 3] (QR of a Gaussian matrix, sign-fixed)."""
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def physical_cameras(off_centre: bool = True, shared_K: bool = False) -> Cameras:
    """Five cameras with non-trivial rotations, fx != fy, and (optionally) off-centre principal points."""
    gen = torch.Generator().manual_seed(3)
    viewmats, Ks = [], []
    for i in range(5):
        R = _rotation(gen)
        centre = torch.randn(3, generator=gen, dtype=torch.float64) * 3
        w2c = torch.eye(4, dtype=torch.float64)
        w2c[:3, :3] = R
        w2c[:3, 3] = -R @ centre
        viewmats.append(w2c)
        j = 0 if shared_K else i
        cx, cy = (W / 2 + 3.25 - j, H / 2 - 2.5 + 0.5 * j) if off_centre else (W / 2, H / 2)
        Ks.append(
            torch.tensor(
                [[70.0 + 4 * j, 0, cx], [0, 55.5 + 3 * j, cy], [0, 0, 1]], dtype=torch.float64
            )
        )
    names = [f"img_{i:02d}.png" for i in range(5)]
    return Cameras(torch.stack(viewmats).float(), torch.stack(Ks).float(), W, H, names)


def assert_same(a: Cameras, b: Cameras) -> None:
    assert (a.width, a.height, a.names) == (b.width, b.height, b.names)
    torch.testing.assert_close(a.viewmats, b.viewmats, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.Ks, b.Ks, atol=1e-5, rtol=0)


def project(cams: Cameras, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixels [C, P, 2], depths [C, P]) of world points [P, 3]."""
    homog = torch.cat([points, torch.ones(len(points), 1)], dim=1).to(cams.viewmats)  # [P, 4]
    cam = torch.einsum("cij,pj->cpi", cams.viewmats, homog)[..., :3]  # [C, P, 3]
    pix = torch.einsum("cij,cpj->cpi", cams.Ks, cam)  # [C, P, 3]
    return pix[..., :2] / pix[..., 2:], cam[..., 2]


# ---- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("shared_K", [False, True])
def test_transforms_json_round_trip(tmp_path, shared_K):
    cams = physical_cameras(shared_K=shared_K)
    write_transforms_json(cams, tmp_path / "transforms.json")
    meta = json.loads((tmp_path / "transforms.json").read_text())
    assert ("fl_x" in meta) == shared_K and ("fl_x" in meta["frames"][0]) != shared_K
    assert_same(load_cameras(str(tmp_path / "transforms.json")), cams)
    assert_same(load_cameras(str(tmp_path)), cams)  # a dataset folder holding transforms.json


@pytest.mark.parametrize("binary", [False, True])
def test_colmap_round_trip(tmp_path, binary):
    cams = physical_cameras()
    write_colmap_model(cams, tmp_path / "sparse" / "0", binary=binary)
    ext = ".bin" if binary else ".txt"
    assert (tmp_path / "sparse" / "0" / f"images{ext}").is_file()
    assert_same(load_cameras(str(tmp_path / "sparse" / "0")), cams)
    assert_same(load_cameras(str(tmp_path)), cams)  # a dataset root holding sparse/0


def test_inria_round_trip(tmp_path):
    cams = physical_cameras(off_centre=False)  # the format has no principal point
    write_inria_cameras(cams, tmp_path / "cameras.json")
    assert_same(load_cameras(str(tmp_path / "cameras.json")), cams)


def test_inria_writer_warns_about_lost_principal_point(tmp_path):
    with pytest.warns(UserWarning, match="principal point"):
        write_inria_cameras(physical_cameras(off_centre=True), tmp_path / "cameras.json")


def test_colmap_poses_match_pycolmap_projection(tmp_path):
    """Our viewmat and K project a point where COLMAP itself does: no pixel-centre shift."""
    import pycolmap

    cams = physical_cameras()
    write_colmap_model(cams, tmp_path / "model")
    rec = pycolmap.Reconstruction(str(tmp_path / "model"))
    point = np.array([0.3, -0.2, 0.5])
    pix, _ = project(cams, torch.from_numpy(point[None]).float())
    for i, im in enumerate(sorted(rec.images.values(), key=lambda im: im.name)):
        pose = im.cam_from_world() if callable(im.cam_from_world) else im.cam_from_world
        p_cam = pose.matrix() @ np.append(point, 1.0)
        expected = rec.cameras[im.camera_id].img_from_cam(p_cam[None, :] / p_cam[2])[0]
        np.testing.assert_allclose(pix[i, 0].numpy(), expected[:2], atol=1e-3)


def test_colmap_writer_refuses_to_replace_a_foreign_folder(tmp_path):
    (tmp_path / "photo.png").write_bytes(b"x")
    with pytest.raises(GseditError, match="photo.png"):
        write_colmap_model(physical_cameras(), tmp_path)
    assert (tmp_path / "photo.png").read_bytes() == b"x"


# ---- hand-computed conventions ----------------------------------------------------------------


def test_opengl_transform_converts_to_opencv(tmp_path):
    """An OpenGL camera at +z with identity rotation looks down -z, i.e. at the origin."""
    path = tmp_path / "transforms.json"
    frame = {
        "file_path": "a.png",
        "transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 3], [0, 0, 0, 1]],
    }
    # camera_angle_x = 2 atan(0.5) over 100 px gives fl = 50 / 0.5 = 100; no fl_y: square pixels
    path.write_text(
        json.dumps({"camera_angle_x": 2 * math.atan(0.5), "w": 100, "h": 80, "frames": [frame]})
    )
    cams = load_cameras(str(path))
    # OpenCV: x right, y down (= world -y), z forward (= world -z); the origin is 3 ahead
    expected = torch.tensor([[1.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 3], [0, 0, 0, 1]])
    torch.testing.assert_close(cams.viewmats[0], expected)
    torch.testing.assert_close(cams.Ks[0], torch.tensor([[100.0, 0, 50], [0, 100, 40], [0, 0, 1]]))
    pix, depth = project(cams, torch.tensor([[0.0, 0, 0], [0, 1, 0]]))
    torch.testing.assert_close(pix[0, 0], torch.tensor([50.0, 40.0]))  # origin: image centre
    assert pix[0, 1, 1] < 40 and depth[0, 0] == 3  # world up is image up


def test_transforms_json_blender_style_reads_size_from_image(tmp_path):
    from PIL import Image

    (tmp_path / "train").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "train" / "r_0.png")
    frame = {"file_path": "./train/r_0", "transform_matrix": np.eye(4).tolist()}
    path = tmp_path / "transforms_train.json"
    path.write_text(json.dumps({"camera_angle_x": math.pi / 2, "frames": [frame]}))
    cams = load_cameras(str(path))
    assert (cams.width, cams.height) == (40, 30)
    torch.testing.assert_close(cams.Ks[0], torch.tensor([[20.0, 0, 20], [0, 20, 15], [0, 0, 1]]))


def test_inria_reader_on_hand_written_json(tmp_path):
    """A camera at (2, 0, 0) looking at the origin, z up, written as the INRIA code does.

    Camera axes in world: right (0, 1, 0), down (0, 0, -1), forward (-1, 0, 0); they are the
    columns of the camera-to-world rotation, whose rows the file stores. World-to-camera is its
    transpose and t = -R_w2c @ centre = (0, 0, 2).
    """
    entry = {
        "id": 0, "img_name": "front", "width": 80, "height": 60, "position": [2, 0, 0],
        "rotation": [[0, 0, -1], [1, 0, 0], [0, -1, 0]], "fy": 120.0, "fx": 100.0,
    }  # fmt: skip
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps([entry]))
    cams = load_cameras(str(path))
    expected = torch.tensor([[0.0, 1, 0, 0], [0, 0, -1, 0], [-1, 0, 0, 2], [0, 0, 0, 1]])
    torch.testing.assert_close(cams.viewmats[0], expected)
    torch.testing.assert_close(cams.Ks[0], torch.tensor([[100.0, 0, 40], [0, 120, 30], [0, 0, 1]]))
    assert cams.names == ["front"]
    pix, _ = project(cams, torch.tensor([[0.0, 0, 0], [0, 0, 1]]))
    torch.testing.assert_close(pix[0, 0], torch.tensor([40.0, 30.0]))
    torch.testing.assert_close(pix[0, 1], torch.tensor([40.0, 30.0 - 120 * 0.5]))  # above: image up


def test_colmap_hand_written_text_model(tmp_path):
    """SIMPLE_RADIAL (distortion dropped, warned) and OPENCV cameras; images sorted by name."""
    (tmp_path / "cameras.txt").write_text(
        "# comment\n1 SIMPLE_RADIAL 64 48 50 31.5 23.5 0.02\n2 OPENCV 64 48 60 61 30 20 0 0 0 0\n"
    )
    # image b: identity rotation, t = (1, 2, 3); image a: 90 degrees about z, q = (cos 45, 0, 0, sin 45)
    s = math.sqrt(0.5)
    (tmp_path / "images.txt").write_text(
        f"7 1 0 0 0 1 2 3 1 b.png\n\n3 {s} 0 0 {s} 0 0 5 2 a.png\n1.5 2.5 -1\n"
    )
    (tmp_path / "points3D.txt").write_text("")
    with pytest.warns(UserWarning, match="distortion"):
        cams = load_cameras(str(tmp_path))
    assert cams.names == ["a.png", "b.png"]
    rot_z = torch.tensor([[0.0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 5], [0, 0, 0, 1]])
    translated = torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]])
    torch.testing.assert_close(cams.viewmats, torch.stack([rot_z, translated]), atol=1e-6, rtol=0)
    Ka = torch.tensor([[60.0, 0, 30], [0, 61, 20], [0, 0, 1]])
    Kb = torch.tensor([[50.0, 0, 31.5], [0, 50, 23.5], [0, 0, 1]])
    torch.testing.assert_close(cams.Ks, torch.stack([Ka, Kb]))


# ---- orbit ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(64, 64), (96, 48)])
def test_orbit_sees_the_whole_box_centred(size):
    lo, hi = torch.tensor([-1.0, 0.5, 0.0]), torch.tensor([2.0, 1.5, 0.8])
    cams = load_cameras(f"orbit:8@{size[0]}x{size[1]}", bounds=(lo, hi))
    assert len(cams) == 8 and (cams.width, cams.height) == size
    corners = torch.tensor(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    pix, depth = project(cams, torch.cat([((lo + hi) / 2)[None], corners]))
    torch.testing.assert_close(pix[:, 0], torch.tensor([size[0] / 2, size[1] / 2]).expand(8, 2))
    assert (depth > 0).all()
    assert (pix[:, 1:, 0] > 0).all() and (pix[:, 1:, 0] < size[0]).all()
    assert (pix[:, 1:, 1] > 0).all() and (pix[:, 1:, 1] < size[1]).all()
    # about 25 degrees above the centre (up is -y, the .ply's convention), all at one distance,
    # evenly spread around the y axis
    offsets = cams.centers - (lo + hi) / 2
    elevation = torch.rad2deg(torch.asin(-offsets[:, 1] / offsets.norm(dim=1)))
    torch.testing.assert_close(elevation, torch.full((8,), 25.0), atol=1e-3, rtol=0)
    azimuth = torch.atan2(offsets[:, 0], -offsets[:, 2])
    steps = torch.remainder(azimuth.roll(-1) - azimuth, 2 * math.pi)
    torch.testing.assert_close(steps, torch.full((8,), math.pi / 4), atol=1e-4, rtol=0)


def test_orbit_rotations_are_proper_and_image_up_is_world_up():
    cams = orbit_cameras(5, (torch.zeros(3), torch.ones(3)), 32, 32)
    R = cams.viewmats[:, :3, :3]
    torch.testing.assert_close(
        R @ R.transpose(1, 2), torch.eye(3).expand(5, 3, 3), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(torch.det(R), torch.ones(5))
    # the camera's y axis (down in the image) points along world +y (down: up is -y)
    assert (R[:, 1, 1] > 0).all()
    assert load_cameras("orbit:3", bounds=(torch.zeros(3), torch.ones(3))).width == 256


# ---- errors -----------------------------------------------------------------------------------


def _inria_entry(**changes):
    entry = {
        "id": 0, "img_name": "x", "width": 32, "height": 32, "position": [0, 0, 2],
        "rotation": np.eye(3).tolist(), "fx": 30.0, "fy": 30.0,
    }  # fmt: skip
    entry.update(changes)
    return entry


def _without(entry: dict, key: str) -> dict:
    return {k: v for k, v in entry.items() if k != key}


BAD_JSON = {
    "not_json": ("{ this is not json", "not a JSON file"),
    "unknown_layout": ({"cameras": []}, "unknown layout"),
    "empty_list": ([], "no cameras"),
    "empty_frames": ({"frames": [], "fl_x": 10, "w": 8, "h": 8}, "no cameras"),
    "missing_key": ([_inria_entry(), _without(_inria_entry(), "fx")], "entry 1 has no 'fx'"),
    "missing_matrix": ({"fl_x": 9, "w": 8, "h": 8, "frames": [{"file_path": "a"}]}, "frame 0 has no 'transform_matrix'"),
    "no_focal": ({"w": 8, "h": 8, "frames": [{"file_path": "a", "transform_matrix": np.eye(4).tolist()}]}, "'fl_x' or 'camera_angle_x'"),
    "nan_position": ([_inria_entry(position=[0, float("nan"), 2])], "non-finite"),
    "inf_focal": ([_inria_entry(fx=float("inf"))], "'fx' is not finite"),
    "string_focal": ([_inria_entry(fy="30")], "'fy' should be a number"),
    "scaled_rotation": ([_inria_entry(rotation=(1.01 * np.eye(3)).tolist())], "not a rotation"),
    "reflection": ([_inria_entry(rotation=np.diag([1.0, 1, -1]).tolist())], "not a rotation"),
    "zero_focal": ([_inria_entry(fx=0.0)], "'fx' must be positive"),
    "negative_size": ([_inria_entry(width=-32)], "'width' must be positive"),
    "mixed_sizes": ([_inria_entry(), _inria_entry(width=64)], "different image sizes"),
    "fisheye": ({"camera_model": "OPENCV_FISHEYE", "fl_x": 9, "w": 8, "h": 8,
                 "frames": [{"file_path": "a", "transform_matrix": np.eye(4).tolist()}]}, "not a pinhole"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_JSON))
def test_bad_json_raises_input_file_error(tmp_path, case):
    content, problem = BAD_JSON[case]
    path = tmp_path / f"{case}.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(InputFileError, match=problem) as info:
        load_cameras(str(path))
    assert info.value.path == path and str(path) in str(info.value)


def test_missing_paths_raise_input_file_error(tmp_path):
    for missing in (tmp_path / "nope.json", tmp_path / "no_folder" / "sparse"):
        with pytest.raises(InputFileError, match="not found") as info:
            load_cameras(str(missing))
        assert info.value.path == missing


def test_folder_without_a_model_raises(tmp_path):
    (tmp_path / "cameras.txt").write_text("1 PINHOLE 8 8 5 5 4 4\n")  # images.txt is missing
    with pytest.raises(InputFileError, match="no cameras found") as info:
        load_cameras(str(tmp_path))
    assert info.value.path == tmp_path


@pytest.mark.parametrize(
    "cameras_txt, problem",
    [
        ("1 PINHOLE abc\n", "COLMAP could not read"),
        ("1 OPENCV_FISHEYE 8 8 5 5 4 4 0 0 0 0\n", "camera model OPENCV_FISHEYE"),
    ],
)
def test_bad_colmap_models_raise(tmp_path, cameras_txt, problem):
    (tmp_path / "cameras.txt").write_text(cameras_txt)
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.png\n\n")
    with pytest.raises(InputFileError, match=problem) as info:
        load_cameras(str(tmp_path))
    assert tmp_path in (info.value.path, info.value.path.parent)  # the model folder or its file


def test_colmap_mixed_sizes_raise(tmp_path):
    (tmp_path / "cameras.txt").write_text("1 PINHOLE 8 8 5 5 4 4\n2 PINHOLE 16 8 5 5 8 4\n")
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.png\n\n2 1 0 0 0 0 0 0 2 b.png\n\n")
    with pytest.raises(InputFileError, match="8x8, 16x8"):
        load_cameras(str(tmp_path))


@pytest.mark.parametrize(
    "spec", ["orbit:", "orbit:abc", "orbit:0", "orbit:4@64x", "orbit:4@0x8", "orbit:4x"]
)
def test_malformed_orbit_spec_raises(spec):
    with pytest.raises(InputFileError, match="malformed orbit spec") as info:
        load_cameras(spec, bounds=(torch.zeros(3), torch.ones(3)))
    assert str(info.value.path) == spec


def test_orbit_without_bounds_raises():
    with pytest.raises(InputFileError, match="bounds"):
        load_cameras("orbit:4")


def test_readers_do_not_warn_on_clean_files(tmp_path):
    write_colmap_model(physical_cameras(), tmp_path / "m")
    write_transforms_json(physical_cameras(), tmp_path / "transforms.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_cameras(str(tmp_path / "m"))
        load_cameras(str(tmp_path / "transforms.json"))
