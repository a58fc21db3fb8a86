"""One scene in another backend: fit a 3DGS or nerfacto scene to another scene's renders.

`gsedit compare` starts both backends from the same scene this way. A labelled source stays
labelled: each label's coverage is rendered with the colours and lifted onto the new scene, so the
`labels` segmenter, the stand-in editor and the mIoU metric see the same objects in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.scene.base import Scene
from gsedit.scene.convert_config import Backend, ConvertConfig

MIN_CHECK_EVERY = 50  # steps: fewer, and a few epochs of a small scene gain too little to judge


def nerfacto_preset_name(config: ConvertConfig, device: torch.device) -> str:
    if config.nerfacto_preset != "auto":
        return config.nerfacto_preset
    return "nerfacto" if torch.device(device).type == "cuda" else "tiny"


@dataclass
class RefitStop:
    """When a refit stops (the rule is ConvertConfig's docstring), and how it went.

    Used as fit_scene's `stop` callback once `against` has given it the targets: it renders the
    scene being fitted every `check_every` steps and says when to stop.
    """

    views: int
    check_every: int
    """Steps between two PSNR checks."""
    cap: int
    """The most steps the refit runs (its schedules are laid out over them)."""
    plateau_db: float
    plateau_checks: int
    steps: int = 0
    """Steps run so far."""
    reason: str = "cap"
    """Why it stopped: "plateau" or "cap"."""
    checks: list[tuple[int, float]] = field(default_factory=list)
    """(step, PSNR in dB to the input's renders) at every check."""
    _targets: tuple[Cameras, Tensor] | None = field(default=None, repr=False)

    @classmethod
    def for_refit(cls, config: ConvertConfig, cameras: Cameras, rays_per_step: int | None,
                  session_iters: int | None = None) -> RefitStop:
        """The rule for fitting `cameras`' views with `rays_per_step` pixels a step (None: whole
        views, as 3DGS does), under a session of `session_iters` steps (None: none known)."""
        pixels = len(cameras) * cameras.width * cameras.height
        epoch = len(cameras) if rays_per_step is None else math.ceil(pixels / rays_per_step)
        cap = config.iters
        if session_iters is not None:
            cap = min(cap, max(config.cap_epochs * epoch, config.cap_per_session_step * session_iters))
        return cls(views=len(cameras), check_every=max(MIN_CHECK_EVERY, round(config.check_epochs * epoch)),
                   cap=cap, plateau_db=config.plateau_db, plateau_checks=config.plateau_checks)

    def against(self, cameras: Cameras, targets: Tensor) -> RefitStop:
        """Checks the fitted scene against `targets` [C, H, W, 3], the input's renders of `cameras`."""
        self._targets = (cameras, targets)
        return self

    def __call__(self, scene: Scene, steps: int) -> bool:
        self.steps = steps
        if steps % self.check_every or self._targets is None:
            return False
        cameras, targets = self._targets
        self.checks.append((steps, pooled_psnr(scene.render_between_steps(cameras).rgb, targets)))
        if self.plateau_checks == 0 or len(self.checks) <= self.plateau_checks:
            return False
        best_before = max(p for _, p in self.checks[:-self.plateau_checks])
        if all(p < best_before + self.plateau_db for _, p in self.checks[-self.plateau_checks:]):
            self.reason = "plateau"
            return True
        return False

    def record(self) -> dict:
        """compare.json's account of the stop."""
        return {"steps": self.steps, "step_cap": self.cap, "check_every": self.check_every, "stopped": self.reason,
                "psnr_checks": [[step, round(p, 3)] for step, p in self.checks]}


def refit_scene(source: Scene, cameras: Cameras, backend: Backend, config: ConvertConfig, on_step=None,
                stop: RefitStop | None = None) -> Scene:
    """A `backend` scene fitted to `source`'s renders of `cameras`, on `source`'s device, until its
    PSNR to them stops improving (ConvertConfig's rule).

    Args:
        on_step: called with (step, loss) after every optimisation step.
        stop: the stopping rule, which records how the refit went (default: ConvertConfig's, with
            no session's --iters).
    """
    names = source.label_names()
    channels = [f"label={k}" for k in sorted(names)]
    views = source.render(cameras, channels)
    if backend == "nerfacto":
        from gsedit.scene.nerfacto.config import NERFACTO_PRESETS
        from gsedit.scene.nerfacto.scene import fit_nerfacto

        preset = NERFACTO_PRESETS[nerfacto_preset_name(config, source.device)]
        stop = (stop or RefitStop.for_refit(config, cameras, preset.rays_per_batch)).against(cameras, views.rgb)
        target = fit_nerfacto(views.rgb, cameras, stop.cap, preset, bounds=source.bounds(),
                              seed=config.seed, on_step=on_step, stop=stop)
    else:
        from gsedit.scene.fit import fit_scene, random_init
        from gsedit.scene.gaussian_scene import GaussianScene

        stop = (stop or RefitStop.for_refit(config, cameras, None)).against(cameras, views.rgb)
        target = GaussianScene(random_init(cameras, config.points, seed=config.seed)).to(source.device)
        fit_scene(target, cameras, views.rgb, stop.cap, on_step, stop)
    if names:
        target.lift_labels(names, cameras, torch.stack([views.channels[c] for c in channels]))
    return target


def pooled_psnr(a, b) -> float:
    """PSNR of all views [C, H, W, 3] together (one squared error pooled over every pixel)."""
    from gsedit.metrics.image import psnr

    return float(psnr(a.reshape(1, -1, *a.shape[2:]), b.reshape(1, -1, *b.shape[2:]))[0])
