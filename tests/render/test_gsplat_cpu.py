"""gsedit's `backend="gsplat"` code on CPU, through gsplat's own PyTorch path (tests/render/gsplat_cpu.py):
the CI stand-in for the CUDA parity tests in test_gsplat_parity.py.

What it catches: any convention gsedit hands gsplat wrongly (viewmats transposed, SH layout,
activated vs raw parameters, backgrounds, packed vs unpacked meta) makes gsplat's own maths disagree
with gsedit's renderers or breaks densification on its meta. What it cannot catch: bugs inside
gsplat's CUDA kernels (the torch path is gsplat's reference for them).
"""

from __future__ import annotations

import math

import pytest
import torch

from gsedit.render import native
from gsedit.scene.fit import FitConfig
from gsedit.scene.gaussian_scene import GaussianScene, GaussianSceneConfig
from tests.render import gsplat_cpu
from tests.render.test_gsplat_parity import NAMES, make_inputs, mostly_close, render

WIDTH, HEIGHT = 40, 32
GRAD_TOL = 2e-3  # relative L2: float32 sums in another order (nerfacc-style log-space vs sequential T)


@pytest.fixture
def gsplat_on_cpu(monkeypatch):
    gsplat_cpu.install(monkeypatch)


def _cpu_backends() -> list[str]:
    return ["torch", "native"] if native.available() else ["torch"]


def test_isect_tiles_twin_matches_gsplats():
    """The vectorised intersection twin gives gsplat's `_isect_tiles` ids, order included."""
    from gsplat.cuda._torch_impl import _isect_tiles

    g = torch.Generator().manual_seed(0)
    means2d = torch.rand(2, 40, 2, generator=g) * torch.tensor([WIDTH, HEIGHT]) * 1.2 - 3
    radii = (torch.rand(2, 40, 2, generator=g) * 12).int() * (torch.rand(2, 40, 1, generator=g) > 0.2)
    depths = torch.rand(2, 40, generator=g) + 0.5
    depths[0, :5] = depths[0, 5]  # ties keep the Gaussians' order
    tw, th = math.ceil(WIDTH / 16), math.ceil(HEIGHT / 16)
    ours = gsplat_cpu.isect_tiles(means2d, radii, depths, 16, tw, th)
    theirs = _isect_tiles(means2d, radii, depths, 16, tw, th)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b.to(a.dtype))


@pytest.mark.parametrize("sh_degree", [None, 0, 1, 2, 3])
def test_gsplat_path_matches_gsedit_renderers(gsplat_on_cpu, sh_degree):
    """Renders (colour + 2 extra channels), alphas, depths, meta and every gradient of the gsplat
    path agree with gsedit's torch and native renderers on a random scene."""
    sh_bases = 0 if sh_degree is None else 16
    inputs = make_inputs(400, 2, WIDTH, HEIGHT, sh_bases, seed=3 + (sh_degree or 0), device="cpu")
    theirs, their_grads = render(inputs, "gsplat", sh_degree, WIDTH, HEIGHT)
    assert theirs.colors.shape == (2, HEIGHT, WIDTH, 5)
    assert theirs.alpha.max() > 0.9 and theirs.alpha.min() < 0.1
    for backend in _cpu_backends():
        ours, our_grads = render(inputs, backend, sh_degree, WIDTH, HEIGHT)
        mostly_close(theirs.colors, ours.colors, 1e-4, f"colors vs {backend}")
        mostly_close(theirs.alpha, ours.alpha, 1e-4, f"alpha vs {backend}")
        mostly_close(theirs.depth, ours.depth, 1e-4, f"depth vs {backend}")
        # gsplat's torch projection boxes at 3.33 sigma, the CUDA kernel and gsedit at the
        # opacity-aware extent (never more): the twin's radii cover ours, and equal meta elsewhere
        radii, their_radii = ours.info["radii"], theirs.info["radii"]
        assert their_radii.shape == radii.shape and their_radii.dtype == torch.int32
        shown = (radii > 0).all(-1)
        assert (their_radii[shown] >= radii[shown]).all()
        assert shown.sum() > 0.3 * shown.numel()
        for key in ("means2d", "depths", "conics"):
            mostly_close(theirs.info[key][shown].detach(), ours.info[key][shown].detach(), 1e-4, key)
        for key in (*NAMES, "means2d"):
            a, b = their_grads[key], our_grads[key]
            if key == "means2d":
                a, b = a[shown], b[shown]
            rel = (a - b).norm() / b.norm()
            assert rel < GRAD_TOL, f"gradient of {key} vs {backend} differs by {rel:.2e} (relative L2)"


@pytest.fixture(scope="module")
def capture():
    from tests.scene.trainer_folders import make_capture

    return make_capture(views=4)


def scene_on(capture, backend: str, fit: FitConfig | None = None, every: int = 1) -> GaussianScene:
    config = GaussianSceneConfig(backend=backend, background=(0.2, 0.4, 0.6), fit=fit or FitConfig())
    gaussians = capture.gaussians.select(torch.arange(0, len(capture.gaussians), every))
    return GaussianScene(gaussians, capture.labels, config)


def test_gsplat_path_on_the_garden_captures_cameras(gsplat_on_cpu, capture):
    """The capture's SH-1 labelled scene in its tilted, offset, scaled COLMAP world, through the
    scene's own rasterize (activations, SH layout, background, label channels): the same pixels."""
    cams = capture.cameras
    theirs = scene_on(capture, "gsplat").render(cams, channels=["label", "label=1"])
    for backend in _cpu_backends():
        ours = scene_on(capture, backend).render(cams, channels=["label", "label=1"])
        mostly_close(theirs.rgb, ours.rgb, 1e-4, f"rgb vs {backend}")
        mostly_close(theirs.alpha, ours.alpha, 1e-4, f"alpha vs {backend}")
        for name in ("label", "label=1"):
            mostly_close(theirs.channels[name], ours.channels[name], 1e-4, f"{name} vs {backend}")
    assert theirs.channels["label=1"].max() > 0.9  # the cube is in view


DENSIFY_STEPS = 150
REFINE_EVERY = 30
#: every 4th of the capture's Gaussians, seen at 20 px, so both runs take a few seconds
DENSIFY_START, DENSIFY_SIZE = 200, 20
#: each refinement's count may differ by this fraction of the gsedit run's: the twin counts a Gaussian
#: as seen (radii > 0) by its 3.33-sigma box, gsedit by the opacity-aware one, so the averaged 2D
#: gradients that decide cloning and splitting are divided by slightly different view counts, and
#: float32 differences in the gradients shift the few Gaussians nearest the threshold (measured on
#: this run: equal counts, 200 -> 369 -> 367 -> 512 -> 771, on torch, native and gsplat's meta)
COUNT_TOL = 0.05


def refinement_counts(capture, backend: str) -> list[int]:
    """Gaussian counts every REFINE_EVERY steps (each just before a refinement of DefaultStrategy)
    in a short fit to the capture's renders with the colours changed (so the fit has something to
    grow for)."""
    fit = FitConfig(refine_start=REFINE_EVERY * 30_000 // DENSIFY_STEPS // 2,
                    refine_stop=30_000, refine_every=REFINE_EVERY)
    scene = scene_on(capture, backend, fit, every=len(capture.gaussians) // DENSIFY_START)
    cameras = capture.cameras.resized(DENSIFY_SIZE, DENSIFY_SIZE)
    targets = scene_on(capture, "torch").render(cameras).rgb.flip(-1)
    torch.manual_seed(0)  # DefaultStrategy's splits sample from the global generator
    trainer = scene.optimizer(DENSIFY_STEPS)
    counts = []
    for step in range(DENSIFY_STEPS):
        view = step % len(cameras)
        trainer.step(cameras[view], targets[view : view + 1])
        if trainer.step_index % REFINE_EVERY == 0:
            counts.append(len(scene.params["means"]))
    trainer.finish()
    return counts


def test_densification_on_the_gsplat_paths_meta(gsplat_on_cpu, capture, one_torch_thread):
    """gsplat's DefaultStrategy grows and prunes on the meta of the gsplat path as on gsedit's."""
    theirs = refinement_counts(capture, "gsplat")
    ours = refinement_counts(capture, _cpu_backends()[-1])
    start = DENSIFY_START
    assert ours[-1] > 1.2 * start, f"the run hardly densified ({start} -> {ours})"
    for i, (a, b) in enumerate(zip(theirs, ours)):
        assert abs(a - b) <= COUNT_TOL * b, f"refinement {i}: {a} Gaussians on gsplat's meta vs {b}"


def test_an_edit_turn_on_the_gsplat_path_writes_a_valid_ply(gsplat_on_cpu, monkeypatch, tmp_path):
    """`gsedit edit` with the 3DGS scene forced onto backend "gsplat" (every render, training step,
    densification and back-projection through gsplat's torch path) ends in a readable INRIA .ply."""
    from dataclasses import replace

    from gsedit.cli import main
    from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene
    from gsedit.scene.ply import read_ply

    calls = []
    monkeypatch.setattr(gsplat_cpu, "rasterization", _counting(gsplat_cpu.rasterization, calls))
    gsplat_cpu.install(monkeypatch)
    load = GaussianScene.__init__

    def on_gsplat(self, *args, **kwargs):
        load(self, *args, **kwargs)
        self.config = replace(self.config, backend="gsplat")

    monkeypatch.setattr(GaussianScene, "__init__", on_gsplat)
    scene = tmp_path / "scene.ply"
    cams = write_synthetic_scene(scene, SyntheticSceneConfig(points_per_object=60, seed=1), n_cameras=3, size=24)
    out = tmp_path / "S"
    args = ["edit", str(scene), "--cameras", str(cams), "--turn", "make the sphere red", "--out", str(out),
            "--editor", "synthetic", "--segmenter", "labels", "--device", "cpu", "--iters", "6", "--quiet"]
    assert main(args) == 0
    assert calls, "the turn never reached gsplat"
    before, after = read_ply(scene), read_ply(out / "turn_01" / "scene.ply")
    assert len(after) > 0 and all(torch.isfinite(t).all() for t in (after.means, after.sh0, after.opacities))
    assert (after.sh0.mean((0, 1)) - before.sh0.mean((0, 1))).abs().max() > 1e-3  # it was trained


def _counting(fn, calls: list):
    def counted(*args, **kwargs):
        calls.append(kwargs.get("packed"))
        return fn(*args, **kwargs)

    return counted
