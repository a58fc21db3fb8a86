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


# -- when a refit stops ---------------------------------------------------------------------------
class _FixedErrorScene:
    """Renders `targets` off by a scripted error per check: PSNR 10 log10(1 / err^2) dB."""

    def __init__(self, targets: torch.Tensor, psnrs: list[float]):
        self.targets, self.psnrs = targets, iter(psnrs)

    def render_between_steps(self, cameras):
        from gsedit.scene.base import RenderOutput

        error = 10 ** (-next(self.psnrs) / 20)  # a uniform error of this size gives that PSNR
        return RenderOutput(rgb=self.targets + error, alpha=self.targets[..., 0], channels={})


def run_stop(stop, scene, steps: int) -> int:
    """Steps until `stop` (a RefitStop) ends a run of at most `steps` steps of `scene`."""
    for step in range(1, steps + 1):
        if stop(scene, step):
            return step
    return steps


def test_plateau_stops_at_the_second_flat_check_and_says_so(labelled):
    from gsedit.scene.convert import RefitStop

    _, cameras, _ = labelled
    targets = torch.full((len(cameras), SIZE, SIZE, 3), 0.25)
    stop = RefitStop.for_refit(ConvertConfig(iters=1000), cameras, None).against(cameras, targets)
    assert stop.check_every == 50 and stop.cap == 1000  # 2 epochs of 6 views is less than 50; no session: iters
    psnrs = [15.0, 20.0, 24.0, 24.05, 24.3, 24.35, 24.38, 30.0]  # the 5th check still gains 0.25 dB
    assert run_stop(stop, _FixedErrorScene(targets, psnrs), stop.cap) == 7 * 50
    assert stop.reason == "plateau" and stop.steps == 350
    assert [round(p, 2) for _, p in stop.checks] == psnrs[:7]
    assert stop.record() == {"steps": 350, "step_cap": 1000, "check_every": 50, "stopped": "plateau",
                             "psnr_checks": [[50 * (i + 1), pytest.approx(p, abs=1e-3)] for i, p in enumerate(psnrs[:7])]}


def test_a_refit_that_keeps_improving_runs_to_the_cap_scaled_to_the_session(labelled):
    from gsedit.scene.convert import RefitStop

    _, cameras, _ = labelled
    targets = torch.full((len(cameras), SIZE, SIZE, 3), 0.25)
    config = ConvertConfig(iters=3000)
    # nerfacto at 1024 rays a step: an epoch is ceil(6 * 20 * 20 / 1024) = 3 steps
    assert RefitStop.for_refit(config, cameras, 1024, session_iters=30).cap == 300  # 10 x --iters
    assert RefitStop.for_refit(config, cameras, 1024, session_iters=2).cap == 36  # 12 epochs
    assert RefitStop.for_refit(config, cameras, 1024, session_iters=10_000).cap == 3000  # --refit.iters
    assert RefitStop.for_refit(config, cameras, 1024).check_every == 50  # 2 epochs, at least 50 steps
    assert RefitStop.for_refit(config, orbit_cameras(8, (torch.zeros(3), torch.ones(3)), 80, 60), 1024).check_every == 76
    stop = RefitStop.for_refit(config, cameras, None, session_iters=5).against(cameras, targets)
    assert (stop.cap, stop.check_every) == (72, 50)  # 12 epochs of 6 views
    improving = [10.0 + i for i in range(10)]
    assert run_stop(stop, _FixedErrorScene(targets, improving), stop.cap) == 72
    assert stop.reason == "cap" and len(stop.checks) == 1  # at step 50; the cap comes before a second


def test_a_converged_refit_stops_early_on_its_plateau(labelled):
    """A real 3DGS refit given 1000 steps stops once its PSNR to the input's renders is flat (checked
    every 50 steps from step 500 on, when densification and opacity resets are over; flat here is
    under 1 dB a check: at 20 px its decaying learning rates keep it creeping up past 44 dB, by
    0.06-0.7 dB a check, until the last step)."""
    from gsedit.scene.convert import RefitStop, pooled_psnr

    scene, cameras, _ = labelled
    config = ConvertConfig(iters=1000, points=1500, plateau_db=1.0)
    stop = RefitStop.for_refit(config, cameras, None)
    refitted = refit_scene(scene, cameras, "3dgs", config, stop=stop)
    assert stop.reason == "plateau" and 500 <= stop.steps < 1000 and stop.steps % stop.check_every == 0
    best_before = max(p for _, p in stop.checks[:-2])
    assert all(p < best_before + config.plateau_db for _, p in stop.checks[-2:])
    assert stop.checks[-1][1] == pytest.approx(pooled_psnr(refitted.render(cameras).rgb, scene.render(cameras).rgb),
                                               abs=1e-4)
    assert stop.checks[-1][1] > 20
