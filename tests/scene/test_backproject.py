"""Lifting per-view maps to per-Gaussian values: back-projection against brute force, and the fit."""

from __future__ import annotations

import math

import pytest
import torch

from gsedit.cameras import Cameras
from gsedit.cameras.formats import orbit_cameras
from gsedit.data.synthetic import SyntheticSceneConfig, make_synthetic_scene
from gsedit.metrics.masks import iou
from gsedit.render.rasterize import rasterize
from gsedit.scene.backproject import backproject
from gsedit.scene.gaussian_scene import CORE_PARAMS, GaussianScene
from gsedit.scene.gaussians import Gaussians
from gsedit.scene.relevance_fit import channel_loss, fit_channel

WIDTH, HEIGHT = 10, 8  # not square, so a swapped axis shows
SEEN = [0, 1, 2, 3]  # Gaussians in front of both cameras
UNSEEN = [4, 5]  # one behind the cameras, one far off to the side


def tiny_scene() -> GaussianScene:
    """Four overlapping Gaussians at different depths in view, and two that no pixel sees."""
    means = torch.tensor(
        [
            [0.0, 0.0, 3.0],
            [0.3, 0.1, 3.5],
            [-0.2, -0.2, 4.0],
            [0.1, 0.3, 2.5],
            [0.0, 0.0, -3.0],
            [50.0, 0.0, 3.0],
        ]
    )
    scales = torch.log(
        torch.tensor(
            [[0.4, 0.3, 0.3], [0.5, 0.5, 0.2], [0.6, 0.4, 0.5], [0.2, 0.25, 0.2]] + [[0.4] * 3] * 2
        )
    )
    gaussians = Gaussians(
        means=means,
        scales=scales,
        quats=torch.tensor(
            [[1.0, 0, 0, 0], [0.9, 0.1, 0.3, 0], [0.8, 0, 0.2, 0.5], [1.0, 0.2, 0, 0]]
            + [[1.0, 0, 0, 0]] * 2
        ),
        opacities=torch.logit(torch.tensor([0.7, 0.6, 0.9, 0.5, 0.9, 0.9])),
        sh0=torch.zeros(6, 1, 3),
        shN=torch.zeros(6, 0, 3),
    )
    return GaussianScene(gaussians)


def tiny_cameras() -> Cameras:
    """Two cameras at the origin looking down +z, the second shifted and turned a little."""
    f = 0.5 * WIDTH / math.tan(math.radians(30))
    K = torch.tensor([[f, 0.0, WIDTH / 2], [0.0, f, HEIGHT / 2], [0.0, 0.0, 1.0]])
    second = torch.eye(4)
    angle = math.radians(5)
    second[:3, :3] = torch.tensor(
        [[math.cos(angle), 0, -math.sin(angle)], [0, 1, 0], [math.sin(angle), 0, math.cos(angle)]]
    )
    second[:3, 3] = torch.tensor([0.2, -0.1, 0.0])
    return Cameras(torch.stack([torch.eye(4), second]), K.expand(2, 3, 3).clone(), WIDTH, HEIGHT)


def blending_weights(scene: GaussianScene, cameras: Cameras) -> torch.Tensor:
    """[C, H, W, N] every Gaussian's blending weight at every pixel: a render of one-hot channels."""
    p = scene.params
    n = len(scene)
    with torch.no_grad():
        out = rasterize(
            means=p["means"],
            quats=p["quats"],
            scales=torch.exp(p["scales"]),
            opacities=torch.sigmoid(p["opacities"]),
            colors=torch.eye(n),
            viewmats=cameras.viewmats,
            Ks=cameras.Ks,
            width=cameras.width,
            height=cameras.height,
            sh_degree=None,
        )
    return out.colors


def test_backprojection_equals_the_brute_force_weighted_mean():
    scene, cams = tiny_scene(), tiny_cameras()
    maps = torch.rand(2, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(0))
    weights = blending_weights(scene, cams)  # [C, H, W, N]
    total = weights.sum(dim=(0, 1, 2))  # [N]
    assert (total[SEEN] > 0.05).all(), "the scene must put every 'seen' Gaussian in view"
    expected = (weights * maps[..., None]).sum(dim=(0, 1, 2))[SEEN] / total[SEEN]
    values = backproject(scene.geometry(), cams, maps)
    assert torch.allclose(values[SEEN], expected, atol=1e-5, rtol=0)
    # the weights matter: a plain mean over each Gaussian's footprint is far from the result
    footprint = (weights > 0).float()
    plain = (footprint * maps[..., None]).sum(dim=(0, 1, 2))[SEEN] / footprint.sum(dim=(0, 1, 2))[
        SEEN
    ]
    assert (plain - values[SEEN]).abs().max() > 0.03


def test_gaussians_no_pixel_sees_get_zero():
    scene, cams = tiny_scene(), tiny_cameras()
    weights = blending_weights(scene, cams)
    assert torch.equal(weights[..., UNSEEN], torch.zeros_like(weights[..., UNSEEN]))
    values = backproject(scene.geometry(), cams, torch.ones(2, HEIGHT, WIDTH))
    assert torch.equal(values[UNSEEN], torch.zeros(len(UNSEEN)))


def test_a_constant_map_gives_that_constant_to_every_seen_gaussian():
    scene, cams = tiny_scene(), tiny_cameras()
    values = backproject(scene.geometry(), cams, torch.full((2, HEIGHT, WIDTH), 0.37))
    assert torch.allclose(values[SEEN], torch.full((len(SEEN),), 0.37), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def sphere_setup():
    """A small labelled synthetic scene, 4 orbit views at 32 px, and the sphere's coverage maps."""
    gaussians, names = make_synthetic_scene(SyntheticSceneConfig(points_per_object=150))
    scene = GaussianScene(gaussians, names)
    cams = orbit_cameras(4, gaussians.bounds(), 32, 32)
    maps = (
        scene.render(cams, channels=["label=2"]).channels["label=2"] > 0.5
    ).float()  # [4, 32, 32]
    return scene, cams, maps


def test_fit_and_backprojection_both_render_the_map_back(sphere_setup):
    scene, cams, maps = sphere_setup
    before = {name: scene.params[name].detach().clone() for name in CORE_PARAMS}
    start = channel_loss(scene, cams, torch.zeros(len(scene)), maps)
    fitted = fit_channel(scene, "fitted", cams, maps, steps=20, lr=0.1)
    assert channel_loss(scene, cams, fitted, maps) < 0.25 * start
    assert fitted.shape == (len(scene),) and fitted.min() >= 0 and fitted.max() <= 1
    assert torch.equal(scene.params["extra_fitted"], fitted)  # stored as the named channel
    assert all(
        torch.equal(scene.params[name], before[name]) for name in CORE_PARAMS
    )  # geometry frozen

    scene.lift_channel("lifted", cams, maps)
    rendered = scene.render(cams, channels=["fitted", "lifted"]).channels
    assert iou(rendered["fitted"], maps).min() > 0.85  # every view; both thresholded at 0.5
    assert iou(rendered["lifted"], maps).min() > 0.85


def test_fit_rejects_maps_that_do_not_match_the_cameras(sphere_setup):
    scene, cams, maps = sphere_setup
    with pytest.raises(
        ValueError, match=r"maps must be \[C, H, W\] = \[4, 32, 32\].*got \[3, 32, 32\]"
    ):
        fit_channel(scene, "x", cams, maps[:3], steps=1, lr=0.1)
    with pytest.raises(ValueError, match="steps >= 1"):
        fit_channel(scene, "x", cams, maps, steps=0, lr=0.1)
