"""Trainers' coordinate frames: gsplat's normalize_world_space against gsplat's own numbers, nerfstudio's
dataparser transform, trainers' YAML read without running anything, the frame check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gsedit.cameras.camera import Cameras
from gsedit.cameras.checks import as_numpy, rigid_inverse
from gsedit.cameras.orbit import orbit_cameras
from gsedit.cameras.trainer_folders import (
    apply_similarity,
    gsplat_normalization,
    principal_axes,
    read_trainer_yaml,
    saved_to_original,
    similarity_from_cameras,
    to_nerfstudio_frame,
)
from gsedit.cameras.visibility import check_frames, visibility
from gsedit.errors import GseditError

FIXTURE = Path(__file__).parent / "data" / "gsplat_normalize.json"


@pytest.fixture(scope="module")
def gsplat_cases() -> list[dict]:
    """Inputs and outputs of gsplat's own normalize.py functions (see the file's "source")."""
    return json.loads(FIXTURE.read_text())["cases"]


def test_gsplat_normalization_matches_gsplat(gsplat_cases):
    flips = []
    for case in gsplat_cases:
        camtoworlds, points = np.array(case["camtoworlds"]), np.array(case["points"], dtype=np.float32)
        first = similarity_from_cameras(camtoworlds)
        np.testing.assert_allclose(first, case["similarity_from_cameras"], atol=1e-12)
        moved = points @ first[:3, :3].T + first[:3, 3]
        np.testing.assert_allclose(principal_axes(moved), case["align_principal_axes"], atol=1e-10)
        transform = gsplat_normalization(camtoworlds, points)
        np.testing.assert_allclose(transform, case["transform"], atol=1e-10)
        np.testing.assert_allclose(apply_similarity(transform, camtoworlds), case["camtoworlds_normalized"], atol=1e-10)
        flips.append(not np.allclose(transform, np.array(case["align_principal_axes"]) @ first))
    assert flips == [True, False]  # one case needs the upside-down half turn, one does not


def test_dataparser_transform_is_applied_as_nerfstudio_does(tmp_path):
    """poses -> transform @ (applied^-1 @ saved pose) with positions times scale; rotations untouched by it."""
    cams = orbit_cameras(3, (torch.tensor([-1.0, -1, -1]), torch.tensor([1.0, 1, 1])), 32, 32)
    transform = np.eye(4)
    transform[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    transform[:3, 3] = [0.5, -0.2, 0.1]
    (tmp_path / "dp.json").write_text(json.dumps({"transform": transform[:3].tolist(), "scale": 0.25}))
    applied = np.array([[0.0, 1, 0, 0], [1, 0, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]])
    source = tmp_path / "transforms.json"
    source.write_text(json.dumps({"applied_transform": applied[:3].tolist(), "frames": []}))
    mapped = to_nerfstudio_frame(cams, tmp_path / "dp.json", source)
    c2w, _ = as_numpy(cams)
    expected = transform @ np.linalg.inv(applied) @ c2w
    expected[:, :3, 3] *= 0.25
    got, _ = as_numpy(mapped)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert torch.equal(mapped.Ks, cams.Ks)


def test_a_legacy_nerfstudio_dataset_gets_the_colmap_axis_swap(tmp_path):
    """No applied_transform but colmap/sparse/0: nerfstudio's dataparser assumes ns-process-data's swap."""
    (tmp_path / "colmap" / "sparse" / "0").mkdir(parents=True)
    (tmp_path / "transforms.json").write_text(json.dumps({"frames": []}))
    applied, _ = saved_to_original(tmp_path / "transforms.json")
    np.testing.assert_array_equal(applied[:3], [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, -1, 0]])
    (tmp_path / "cameras.json").write_text("[]")
    assert np.array_equal(saved_to_original(tmp_path / "cameras.json")[0], np.eye(4))  # INRIA: COLMAP's frame


def test_trainer_yaml_is_read_without_running_anything(tmp_path):
    marker = tmp_path / "ran"
    config = tmp_path / "config.yml"
    config.write_text(
        "!!python/object:nerfstudio.engine.trainer.TrainerConfig\n"
        f"evil: !!python/object/apply:os.system ['touch {marker}']\n"
        "data: !!python/object/apply:pathlib.PosixPath\n- data\n- poster\n"
        "steps: !!python/tuple [1, 2]\n"
        "_target: !!python/name:nerfstudio.engine.trainer.Trainer ''\n"
    )
    data = read_trainer_yaml(config)
    assert not marker.exists()
    assert data["data"] == Path("data/poster") and data["steps"] == [1, 2] and data["evil"] == [f"touch {marker}"]


def test_the_frame_check_tells_views_that_see_the_scene_from_views_that_miss_it():
    means = torch.randn(2000, 3) * 0.5
    radii = torch.full((2000,), 0.05)
    cams = orbit_cameras(6, (means.min(0).values, means.max(0).values), 48, 48)
    assert visibility(means, radii, cams).sees
    check_frames(means, radii, cams, "scene.ply", "cameras.json")  # no error
    away = Cameras(cams.viewmats.clone(), cams.Ks, 48, 48)
    away.viewmats[:, :3, 3] += torch.tensor([0.0, 0.0, -100.0])  # every camera now has the scene behind it
    with pytest.raises(GseditError, match="no Gaussian of the scene lies inside any of the 6 views"):
        check_frames(means, radii, away, "scene.ply", "cameras.json")
    speck = means * 0.02  # a dataparser scale left out: the scene shrinks to a few pixels
    with pytest.raises(GseditError, match="none of the 6 views see it"):
        check_frames(speck, radii * 0.02, cams, "scene.ply", "cameras.json")


def test_opengl_poses_read_as_opencv_are_caught():
    means = torch.randn(2000, 3) * 0.5
    cams = orbit_cameras(6, (means.min(0).values, means.max(0).values), 48, 48)
    c2w, _ = as_numpy(cams)
    c2w[:, :3, 1:3] *= -1  # OpenGL camera axes taken for OpenCV ones: each camera looks away
    flipped = Cameras(torch.from_numpy(rigid_inverse(c2w)).float(), cams.Ks, 48, 48)
    with pytest.raises(GseditError, match="OpenGL"):
        check_frames(means, torch.full((2000,), 0.05), flipped, "scene.ply", "cameras.json")


def test_dataset_cameras_land_where_nerfstudio_dataparser_puts_them(tmp_path):
    """nerfstudio_dataparser.json: nerfstudio 1.1.5's own dataparser run on a transforms.json with an
    applied_transform (ns-process-data's); its poses and the dataparser_transforms.json it saves."""
    from gsedit.cameras.nerfstudio import GL_TO_CV, read_transforms_json

    fixture = json.loads((FIXTURE.parent / "nerfstudio_dataparser.json").read_text())
    (tmp_path / "transforms.json").write_text(json.dumps(fixture["transforms"]))
    (tmp_path / "dataparser_transforms.json").write_text(json.dumps(fixture["dataparser_transforms"]))
    cams = read_transforms_json(tmp_path / "transforms.json")
    mapped = to_nerfstudio_frame(cams, tmp_path / "dataparser_transforms.json", tmp_path / "transforms.json")
    assert [Path(n).name for n in mapped.names] == fixture["image_filenames"]
    opengl = as_numpy(mapped)[0] @ GL_TO_CV
    np.testing.assert_allclose(opengl[:, :3], fixture["camera_to_worlds"], atol=1e-6)  # nerfstudio's are float32


def test_colmap_cameras_land_where_gsplat_parser_puts_them():
    """gsplat_parser/expected.json: gsplat's own examples/datasets/colmap.py Parser (factor 2,
    normalize_world_space) on the COLMAP model beside it, points3D included."""
    from gsedit.cameras.trainer_folders import colmap_in_gsplat_frame

    folder = FIXTURE.parent / "gsplat_parser"
    expected = json.loads((folder / "expected.json").read_text())
    cams = colmap_in_gsplat_frame(folder, expected["factor"], normalize=True)
    assert cams.names == expected["image_names"] and [cams.width, cams.height] == expected["size"]
    np.testing.assert_allclose(as_numpy(cams)[0], expected["camtoworlds"], atol=1e-6)  # gsedit holds float32 poses
    np.testing.assert_allclose(cams.Ks[0].double().numpy(), expected["K"], atol=1e-5)
