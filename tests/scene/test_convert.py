"""Labels lifted onto a scene, and scenes refitted in the other backend (gsedit compare's start)."""

from __future__ import annotations

import pytest
import torch

from gsedit.cameras.orbit import orbit_cameras
from gsedit.data.synthetic import SyntheticSceneConfig, make_synthetic_scene
from gsedit.metrics.masks import miou
from gsedit.scene.convert import refit_scene
from gsedit.scene.convert_config import ConvertConfig
from gsedit.scene.gaussian_scene import GaussianScene

SIZE = 20


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def labelled():
    """(a labelled GaussianScene, 6 orbit cameras, its label maps [L, C, H, W])."""
    gaussians, names = make_synthetic_scene(SyntheticSceneConfig(points_per_object=300))
    scene = GaussianScene(gaussians, names)
    cameras = orbit_cameras(6, gaussians.bounds(), SIZE, SIZE)
    return scene, cameras, label_maps(scene, cameras)


def label_maps(scene, cameras) -> torch.Tensor:
    """[L, C, H, W] coverage of every label (ids sorted)."""
    channels = [f"label={k}" for k in sorted(scene.label_names())]
    out = scene.render(cameras, channels)
    return torch.stack([out.channels[c] for c in channels])


def mean_label_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over labels of the IoU of the binarised maps [L, C, H, W]."""
    return sum(float(miou(x > 0.5, y > 0.5)) for x, y in zip(a, b)) / len(a)


def test_lifting_labels_gives_back_the_gaussians_labels(labelled):
    scene, cameras, maps = labelled
    truth = scene.params["extra_label"].detach().clone()
    blank = scene.clone()
    blank.set_channel("label", torch.full_like(truth, 7.0))
    blank.labels = {}
    blank.lift_labels(scene.label_names(), cameras, maps)
    seen = blank.params["extra_label"] >= 0
    assert blank.label_names() == scene.label_names()
    assert seen.float().mean() > 0.9  # Gaussians no view sees get -1
    # hidden Gaussians take the label of what covers them; what renders is what must agree
    assert (blank.params["extra_label"][seen] == truth[seen]).float().mean() > 0.8
    assert mean_label_iou(label_maps(blank, cameras), maps) > 0.95


def test_gaussians_of_an_unlabelled_region_stay_unlabelled(labelled):
    """Only part of the scene labelled (no floor label): soft edges must not pull the rest in."""
    scene, cameras, maps = labelled
    names = dict(scene.label_names())
    floor = next(k for k, v in names.items() if v == "floor")
    del names[floor]
    partial = scene.clone()
    truth = partial.params["extra_label"].detach().clone()
    partial.lift_labels(names, cameras, maps[[i for i, k in enumerate(sorted(scene.label_names())) if k != floor]])
    lifted = partial.params["extra_label"]
    # ~0.85 (floor under the objects takes what covers it); 0.03 when any coverage > 0 counted
    assert (lifted[truth == floor] == -1).float().mean() > 0.75
    objects = truth != floor
    assert (lifted[objects] == truth[objects]).float().mean() > 0.8


@pytest.fixture(scope="module")
def nerf(labelled):
    """The labelled scene refitted as a tiny nerfacto."""
    pytest.importorskip("nerfstudio", reason="the nerfacto backend needs nerfstudio (see README)")
    scene, cameras, _ = labelled
    torch.manual_seed(0)
    return refit_scene(scene, cameras, "nerfacto", ConvertConfig(iters=150, nerfacto_preset="tiny"))


def psnr_db(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


def test_refit_in_nerfacto_keeps_the_look_and_the_labels(labelled, nerf, tmp_path):
    from gsedit.scene.nerfacto.scene import NerfactoScene

    scene, cameras, maps = labelled
    assert isinstance(nerf, NerfactoScene) and nerf.label_names() == scene.label_names()
    assert psnr_db(nerf.render(cameras).rgb, scene.render(cameras).rgb) > 22
    assert mean_label_iou(label_maps(nerf, cameras), maps) > 0.6
    again = NerfactoScene.load(nerf.save_as(tmp_path / "scene.ckpt"))
    assert again.label_names() == scene.label_names()
    assert torch.equal(label_maps(again, cameras), label_maps(nerf, cameras))


def test_refit_in_3dgs_from_nerfacto_keeps_the_labels(labelled, nerf):
    scene, cameras, maps = labelled
    torch.manual_seed(0)  # the refit's initial points: the same whichever tests ran before
    gaussians = refit_scene(nerf, cameras, "3dgs", ConvertConfig(iters=300, points=3000))
    assert isinstance(gaussians, GaussianScene) and gaussians.label_names() == scene.label_names()
    assert psnr_db(gaussians.render(cameras).rgb, nerf.render(cameras).rgb) > 20
    # through two refits at 20 px the objects the NeRF holds still come out where the original has
    # them (the tiny NeRF barely holds the thin cylinder: its label head peaks near 0.3)
    nerf_maps, gauss_maps = label_maps(nerf, cameras), label_maps(gaussians, cameras)
    held = [i for i in range(len(maps)) if float(miou(nerf_maps[i] > 0.5, maps[i] > 0.5)) > 0.5]
    assert len(held) >= 3
    assert all(float(miou(gauss_maps[i] > 0.5, maps[i] > 0.5)) > 0.75 for i in held)
