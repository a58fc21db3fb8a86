"""Trainers' output folders and their coordinate frames: INRIA 3DGS, nerfstudio splatfacto, gsplat.

A folder is recognised by what its trainer writes into it:

- INRIA (graphdeco-inria/gaussian-splatting `train.py`): `point_cloud/iteration_N/point_cloud.ply`,
  `cameras.json`, `cfg_args`. The scene and `cameras.json` share COLMAP's world frame.
- nerfstudio splatfacto (`ns-train`): `config.yml`, `dataparser_transforms.json`,
  `nerfstudio_models/step-NNNNNNNNN.ckpt`. The trainer works in the dataparser's frame:
  `dataparser_transforms.json` holds `{"transform": 3x4, "scale": s}` that maps the *original*
  data coordinates (COLMAP's) there: a pose becomes `transform @ pose`, then its position is
  multiplied by `s`. A dataset's `transforms.json` is in its "saved" frame, which its
  `applied_transform` (and `applied_scale`) relate to the original one (nerfstudio's dataparser
  assumes ns-process-data's COLMAP axis swap when the key is missing and `colmap/sparse/0` exists).
- gsplat (`examples/simple_trainer.py`): `cfg.yml`, `ckpts/ckpt_STEP_rank0.pt`, optionally
  `ply/point_cloud_STEP.ply`. With `normalize_world_space` (the default) it trains in a frame of
  its own making, see `gsplat_normalization`; its cameras are the COLMAP model of `data_dir`,
  downscaled by `data_factor` the way its parser does (`K[:2] /= factor`, `size // factor`).

Both YAML files carry Python tags (`!!python/object:...`, pathlib paths); they are read with a
safe loader that turns every tag into plain data, so nothing in them is ever executed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from gsedit.cameras import checks
from gsedit.cameras.camera import Cameras
from gsedit.errors import InputFileError

INRIA_ITERATION = re.compile(r"iteration_(\d+)")
NERFSTUDIO_STEP = re.compile(r"step-(\d+)\.ckpt")
GSPLAT_CKPT = re.compile(r"ckpt_(\d+)_rank0\.pt")
GSPLAT_PLY = re.compile(r"point_cloud_(\d+)\.ply")
#: ns-process-data's COLMAP-to-saved axis swap, which nerfstudio assumes for older datasets
LEGACY_COLMAP_APPLIED = [[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0]]
TRAINER_NAMES = {
    "inria": "INRIA 3DGS model folder",
    "nerfstudio": "nerfstudio splatfacto run folder",
    "gsplat": "gsplat results folder",
}


# -- which trainer wrote a folder -------------------------------------------------------------
def trainer_kind(path: str | Path) -> str | None:
    """'inria', 'nerfstudio' or 'gsplat' for a trainer's output folder; None for anything else."""
    folder = Path(path)
    if not folder.is_dir():
        return None
    if any(numbered_files(folder / "point_cloud", INRIA_ITERATION, "point_cloud.ply")):
        return "inria"
    if (folder / "config.yml").is_file() and (folder / "nerfstudio_models").is_dir():
        return "nerfstudio"
    if (folder / "cfg.yml").is_file() and ((folder / "ckpts").is_dir() or (folder / "ply").is_dir()):
        return "gsplat"
    return None


def trainer_step_file(path: str | Path) -> tuple[Path, int] | None:
    """(trainer folder, step) for one step's file named inside its folder, existing or not:
    RUN/nerfstudio_models/step-N.ckpt, RESULTS/ckpts/ckpt_N_rank0.pt, RESULTS/ply/point_cloud_N.ply,
    MODEL/point_cloud/iteration_N/point_cloud.ply; None for anything else."""
    path = Path(path)
    if path.name == "point_cloud.ply" and path.parent.parent.name == "point_cloud":
        match = INRIA_ITERATION.fullmatch(path.parent.name)
        if match and trainer_kind(path.parents[2]) == "inria":
            return path.parents[2], int(match.group(1))
    for pattern, parent, kind in ((NERFSTUDIO_STEP, "nerfstudio_models", "nerfstudio"), (GSPLAT_CKPT, "ckpts", "gsplat"),
                                  (GSPLAT_PLY, "ply", "gsplat")):
        match = pattern.fullmatch(path.name)
        if match and path.parent.name == parent and trainer_kind(path.parent.parent) == kind:
            return path.parent.parent, int(match.group(1))
    return None


def numbered_files(folder: Path, pattern: re.Pattern, inner: str | None = None) -> dict[int, Path]:
    """{number: path} of the entries of `folder` whose name matches `pattern` (group 1: the number);
    with `inner`, of the file `inner` inside each matching subfolder."""
    if not folder.is_dir():
        return {}
    found = {}
    for entry in folder.iterdir():
        match = pattern.fullmatch(entry.name)
        target = entry / inner if inner else entry
        if match and target.is_file():
            found[int(match.group(1))] = target
    return found


def pick_numbered(folder: Path, found: dict[int, Path], iteration: int | None, what: str,
                  unit: str = "step") -> tuple[int, Path]:
    """(number, path): the highest, or `iteration` when given; `what` names the files, `unit` the number."""
    if not found:
        raise InputFileError(folder, f"holds no {what}.")
    if iteration is None:
        iteration = max(found)
    if iteration not in found:
        listed = ", ".join(str(i) for i in sorted(found))
        raise InputFileError(folder, f"has no {unit} {iteration} (it has: {listed}); pick one with --iteration N.")
    return iteration, found[iteration]


# -- trainers' YAML, read without running anything --------------------------------------------
class _PlainLoader(yaml.SafeLoader):
    """A SafeLoader for which every Python tag is plain data: objects become dicts, tuples lists,
    `pathlib` paths Paths; `!!python/name:...` stays the name it spells."""


def _plain(loader, suffix: str, node):
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    if suffix.endswith("Path") and isinstance(value, list):  # object/apply:pathlib.PosixPath [parts]
        return Path(*map(str, value)) if value else Path()
    return value


_PlainLoader.add_multi_constructor("tag:yaml.org,2002:python/", _plain)
_PlainLoader.add_multi_constructor("!", _plain)


def read_trainer_yaml(path: Path) -> dict:
    """A trainer's YAML config (nerfstudio's config.yml, gsplat's cfg.yml) as plain data."""
    try:
        data = yaml.load(path.read_text(), Loader=_PlainLoader)  # the loader is safe: every tag becomes data
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise InputFileError(path, f"is not a readable YAML config ({e}).") from e
    if not isinstance(data, dict):
        raise InputFileError(path, f"should hold a YAML mapping, found {type(data).__name__}.")
    return data


def lookup(data: dict, *keys: str) -> Any:
    """data[k1][k2]...; None where a level is missing."""
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def resolve_trainer_path(value: Any, folder: Path) -> Path | None:
    """A path a trainer recorded (relative to where it ran): as given, else against the current
    folder, else against each folder above `folder`; None when it exists nowhere."""
    if value is None or value == "":
        return None
    path = Path(str(value))
    if path.is_absolute():
        return path if path.exists() else None
    for base in (Path.cwd(), *folder.resolve().parents):
        if (base / path).exists():
            return base / path
    return None


# -- nerfstudio ----------------------------------------------------------------------------------
def read_dataparser_transforms(path: str | Path) -> tuple[np.ndarray, float]:
    """(transform [4, 4], scale) of a nerfstudio `dataparser_transforms.json`."""
    path = Path(path)
    data = checks.read_json(path)
    transform = checks.array(path, "the file", "transform", checks.require(path, "the file", data, "transform"),
                             [(3, 4), (4, 4)])
    checks.check_rotation(path, "the file", "transform", transform[:3, :3])
    scale = checks.positive(path, "the file", "scale", checks.require(path, "the file", data, "scale"))
    return _homogeneous(transform), scale


def camera_source_file(spec: Path) -> Path | None:
    """The JSON file a --cameras path reads (itself, or a folder's transforms.json); None for COLMAP."""
    if spec.is_dir():
        spec = spec / "transforms.json"
    return spec if spec.is_file() and spec.suffix.lower() == ".json" else None


def saved_to_original(source: Path | None) -> tuple[np.ndarray, float]:
    """(applied transform [4, 4], applied scale) relating a camera file's frame to the original
    data frame (`saved = applied_scale * applied @ original`); identity for COLMAP and INRIA files."""
    if source is None or source.suffix.lower() != ".json":
        return np.eye(4), 1.0
    data = checks.read_json(source)
    if not isinstance(data, dict) or "frames" not in data:
        return np.eye(4), 1.0  # an INRIA cameras.json: COLMAP's frame
    scale = checks.positive(source, "the file", "applied_scale", data.get("applied_scale", 1.0))
    applied = data.get("applied_transform")
    if applied is None and (source.parent / "colmap" / "sparse" / "0").exists():
        applied = LEGACY_COLMAP_APPLIED
    if applied is None:
        return np.eye(4), scale
    return _homogeneous(checks.array(source, "the file", "applied_transform", applied, [(3, 4), (4, 4)])), scale


def to_nerfstudio_frame(cams: Cameras, dataparser_transforms: str | Path, source: Path | None) -> Cameras:
    """`cams` (read from the camera file `source`) in the frame of the nerfstudio run whose
    `dataparser_transforms.json` is given: what `ns-train` saw and `ns-export` wrote the splat in."""
    transform, scale = read_dataparser_transforms(dataparser_transforms)
    applied, applied_scale = saved_to_original(source)
    camtoworlds, _ = checks.as_numpy(cams)  # [C, 4, 4] OpenCV; a world transform acts on the left
    original = np.linalg.inv(applied) @ camtoworlds
    original[:, :3, 3] /= applied_scale
    mapped = transform @ original
    mapped[:, :3, 3] *= scale
    return _with_camtoworlds(cams, mapped)


def nerfstudio_cameras(run: Path) -> Cameras:
    """The cameras of the dataset a splatfacto run was trained on, in the run's frame."""
    config = read_trainer_yaml(run / "config.yml")
    recorded = (lookup(config, "pipeline", "datamanager", "dataparser", "data")
                or lookup(config, "pipeline", "datamanager", "data") or lookup(config, "data"))
    data = resolve_trainer_path(recorded, run)
    if data is None:
        raise InputFileError(
            run / "config.yml",
            f"names the dataset {recorded!r}, which is not found (relative paths are tried from the current "
            "folder and every folder above the run): give the dataset's cameras with --cameras "
            f"transforms.json --dataparser-transforms {run / 'dataparser_transforms.json'}.",
        )
    source = data if data.suffix.lower() == ".json" else data / "transforms.json"
    if not source.is_file():
        raise InputFileError(data, "holds no transforms.json: give the cameras with --cameras and "
                                   f"--dataparser-transforms {run / 'dataparser_transforms.json'}.")
    from gsedit.cameras.nerfstudio import read_transforms_json

    return to_nerfstudio_frame(read_transforms_json(source), run / "dataparser_transforms.json", source)


# -- gsplat ------------------------------------------------------------------------------------
def similarity_from_cameras(camtoworlds: np.ndarray) -> np.ndarray:
    """[4, 4] similarity that gsplat's `similarity_from_cameras` (centre "focus", median scaling)
    computes from OpenCV camera-to-world [C, 4, 4]: rotate the mean camera up (-y) onto -y, move
    the median of the optical axes' points nearest the origin to the origin, scale the median
    camera distance to 1."""
    R, t = camtoworlds[:, :3, :3], camtoworlds[:, :3, 3]  # [C, 3, 3], [C, 3]
    up = (R @ np.array([0.0, -1.0, 0.0])).mean(axis=0)
    up /= np.linalg.norm(up)
    align = _rotation_onto(up, np.array([0.0, -1.0, 0.0]))
    forwards = (align @ R)[:, :, 2]  # [C, 3] optical axes
    t = t @ align.T
    nearest = t - (forwards * t).sum(-1, keepdims=True) * forwards  # [C, 3]
    translate = -np.median(nearest, axis=0)
    scale = 1.0 / np.median(np.linalg.norm(t + translate, axis=-1))
    transform = np.eye(4)
    transform[:3, :3] = scale * align
    transform[:3, 3] = scale * translate
    return transform


def _rotation_onto(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[3, 3] rotation taking unit `a` onto unit `b` (Rodrigues); opposite vectors: a half turn
    about x with x negated, as gsplat does."""
    c = float(a @ b)
    if c <= -1:
        return np.diag([-1.0, 1.0, 1.0])
    k = np.cross(a, b)
    skew = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + skew + skew @ skew / (1 + c)


def principal_axes(points: np.ndarray) -> np.ndarray:
    """[4, 4] rigid transform of gsplat's `align_principal_axes`: the median point to the origin,
    the point covariance's eigenvectors (largest variance first, right-handed) as x, y, z."""
    centre = np.median(points, axis=0)
    values, vectors = np.linalg.eigh(np.cov(points - centre, rowvar=False))
    vectors = vectors[:, values.argsort()[::-1]]
    if np.linalg.det(vectors) < 0:
        vectors[:, 0] *= -1
    transform = np.eye(4)
    transform[:3, :3] = vectors.T
    transform[:3, 3] = -vectors.T @ centre
    return transform


def gsplat_normalization(camtoworlds: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[4, 4] the world transform of gsplat's `normalize_world_space` (colmap.py's Parser):
    the camera similarity, then the principal axes of the COLMAP points, then a half turn about x
    when the points' median height is above their mean (upside down: most points are low)."""
    first = similarity_from_cameras(camtoworlds)
    moved = _transform_points(first, points)
    second = principal_axes(moved)
    transform = second @ first
    moved = _transform_points(second, moved)
    if np.median(moved[:, 2]) > np.mean(moved[:, 2]):
        transform = np.diag([1.0, -1.0, -1.0, 1.0]) @ transform
    return transform


def _transform_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ transform[:3, :3].T + transform[:3, 3]


def apply_similarity(transform: np.ndarray, camtoworlds: np.ndarray) -> np.ndarray:
    """Camera-to-world [C, 4, 4] moved by the similarity `transform` [4, 4], rotations kept unit."""
    moved = transform @ camtoworlds
    moved[:, :3, :3] /= np.linalg.norm(moved[:, 0, :3], axis=1)[:, None, None]
    return moved


def gsplat_cameras(results: Path) -> Cameras:
    """The training cameras of a gsplat results folder, in the frame its scene is in."""
    config = read_trainer_yaml(results / "cfg.yml")
    data_dir = resolve_trainer_path(config.get("data_dir"), results)
    from gsedit.cameras.colmap import find_colmap_model

    if data_dir is None or find_colmap_model(data_dir) is None:
        raise InputFileError(
            results / "cfg.yml",
            f"names the dataset data_dir={config.get('data_dir')!r}, where no COLMAP model is found (relative "
            "paths are tried from the current folder and every folder above the results): the cameras "
            "are needed in gsplat's normalised frame, which is computed from that model.",
        )
    factor = int(config.get("data_factor") or 1)
    normalize = bool(config.get("normalize_world_space", True))
    return colmap_in_gsplat_frame(data_dir, factor, normalize)


def colmap_in_gsplat_frame(data_dir: Path, factor: int, normalize: bool) -> Cameras:
    """The cameras of `data_dir`'s COLMAP model as gsplat's Parser builds them: intrinsics and
    sizes divided by `factor`, world normalised when `normalize`."""
    from gsedit.cameras.colmap import find_colmap_model, read_colmap_model

    cams = read_colmap_model(data_dir)
    if factor > 1:
        Ks = cams.Ks.clone()
        Ks[:, :2, :] /= factor
        cams = Cameras(cams.viewmats, Ks, cams.width // factor, cams.height // factor, cams.names)
    if not normalize:
        return cams
    model, _ = find_colmap_model(data_dir)
    camtoworlds, _ = checks.as_numpy(cams)
    transform = gsplat_normalization(camtoworlds, colmap_points(model))
    return _with_camtoworlds(cams, apply_similarity(transform, camtoworlds))


def colmap_points(model: Path) -> np.ndarray:
    """[P, 3] the model's 3D points in point-id order, float32 as gsplat's parser holds them."""
    import pycolmap

    try:
        reconstruction = pycolmap.Reconstruction(str(model))
    except (ValueError, RuntimeError) as e:
        raise InputFileError(model, f"COLMAP could not read the model ({e})") from e
    points = reconstruction.points3D
    if len(points) < 3:
        raise InputFileError(model, "has fewer than 3 points3D: gsplat's normalisation needs the point cloud.")
    return np.array([points[i].xyz for i in sorted(points)], dtype=np.float32).reshape(-1, 3)


# -- shared --------------------------------------------------------------------------------------
def trainer_cameras(folder: Path) -> Cameras:
    """The cameras a trainer folder was trained with, in the frame of its scene."""
    kind = trainer_kind(folder)
    if kind == "nerfstudio":
        return nerfstudio_cameras(folder)
    if kind == "gsplat":
        return gsplat_cameras(folder)
    if kind == "inria":
        from gsedit.cameras.inria import read_inria_cameras

        return read_inria_cameras(folder / "cameras.json")
    raise InputFileError(folder, "is not an INRIA, nerfstudio or gsplat output folder.")


def _homogeneous(matrix: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[: matrix.shape[0], :] = matrix
    return out


def _with_camtoworlds(cams: Cameras, camtoworlds: np.ndarray) -> Cameras:
    viewmats = torch.from_numpy(checks.rigid_inverse(camtoworlds)).float()
    return Cameras(viewmats, cams.Ks.clone(), cams.width, cams.height, list(cams.names))
