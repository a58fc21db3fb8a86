"""Fitting a Gaussian scene to images with the 3DGS recipe.

Adam with per-parameter learning rates (gsplat's `simple_trainer` values), L1 + D-SSIM loss,
densification (clone / split / prune) with gsplat's `DefaultStrategy`, which is plain PyTorch and
so runs on CPU with gsedit's reference rasterizer as well as on CUDA with gsplat, and opacity resets.
Every edit turn calls this trainer; `gsedit fit` uses it to build a scene from images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.scene.base import SceneTrainer

if TYPE_CHECKING:
    from gsedit.scene.gaussian_scene import GaussianScene

REFERENCE_STEPS = 30_000  # the 3DGS schedule below is written for this many steps


@dataclass
class FitConfig:
    """The 3DGS optimisation recipe; schedules are scaled to the number of steps of a run."""

    means_lr: float = 1.6e-4
    """Learning rate of the means, times the scene scale; decays exponentially to 1% over the run."""
    scales_lr: float = 5e-3
    quats_lr: float = 1e-3
    opacities_lr: float = 5e-2
    sh0_lr: float = 2.5e-3
    shN_lr: float = 2.5e-3 / 20
    lr_scale: float = 1.0
    """Multiplies every learning rate (edit turns may use a gentler one)."""
    ssim_lambda: float = 0.2
    """Weight of D-SSIM in the loss (1 - lambda for L1)."""
    densify: bool = True
    """Clone, split and prune Gaussians during the run."""
    refine_start: int = 500
    refine_stop: int = 15_000
    refine_every: int = 100
    opacity_reset_every: int = 3000
    """Opacity reset period in the 30k-step schedule; 0 disables it (edit turns do)."""
    grow_grad2d: float = 2e-4
    prune_opa: float = 0.005


def schedule_scale(steps: int) -> float:
    return min(1.0, steps / REFERENCE_STEPS)


class GaussianTrainer(SceneTrainer):
    """Optimises a GaussianScene in place; `scene.params` is what DefaultStrategy grows and prunes."""

    def __init__(self, scene: "GaussianScene", steps: int, config: FitConfig):
        from gsplat.strategy import DefaultStrategy

        self.scene = scene
        self.steps = steps
        self.config = config
        self.step_index = 0
        s = schedule_scale(steps)
        self.strategy = DefaultStrategy(
            prune_opa=config.prune_opa,
            grow_grad2d=config.grow_grad2d,
            refine_start_iter=max(1, round(config.refine_start * s)),
            refine_stop_iter=round(config.refine_stop * s) if config.densify else 0,
            refine_every=max(5, round(config.refine_every * s)),
            reset_every=10**9,  # resets are done here: gsplat 1.5.3's own reset test never fires
        )
        self.reset_every = round(config.opacity_reset_every * s) if config.opacity_reset_every else 0
        self.scene_scale = scene.scene_scale()
        self.strategy_state = self.strategy.initialize_state(scene_scale=self.scene_scale)
        self.optimizers = self._make_optimizers()
        self.strategy.check_sanity(scene.params, self.optimizers)
        self.means_decay = 0.01 ** (1.0 / max(1, steps))

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        lrs = {
            "means": c.means_lr * self.scene_scale,
            "scales": c.scales_lr,
            "quats": c.quats_lr,
            "opacities": c.opacities_lr,
            "sh0": c.sh0_lr,
            "shN": c.shN_lr,
        }
        return {
            name: torch.optim.Adam(
                [{"params": self.scene.params[name], "lr": lr * c.lr_scale, "name": name}],
                eps=1e-15,
            )
            for name, lr in lrs.items()
            if self.scene.params[name].requires_grad
        }

    def step(self, cameras: Cameras, targets: Tensor) -> float:
        """One Adam step on views `cameras` against `targets` [C, H, W, 3]."""
        from gsedit.metrics.image import ssim

        out = self.scene.rasterize(cameras)
        rgb = out.colors[..., :3]
        l1 = (rgb - targets).abs().mean()
        loss = (1 - self.config.ssim_lambda) * l1 + self.config.ssim_lambda * (1 - ssim(rgb, targets))
        self.strategy.step_pre_backward(
            self.scene.params, self.optimizers, self.strategy_state, self.step_index, out.info
        )
        loss.backward()
        for opt in self.optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        self.strategy.step_post_backward(
            self.scene.params, self.optimizers, self.strategy_state, self.step_index, out.info
        )
        self._after_step()
        return float(loss.detach())

    def _after_step(self) -> None:
        from gsplat.strategy.ops import reset_opa

        self.step_index += 1
        opt = self.optimizers.get("means")
        if opt is not None:
            opt.param_groups[0]["lr"] *= self.means_decay
        i = self.step_index
        if self.reset_every and i % self.reset_every == 0 and i < self.strategy.refine_stop_iter:
            reset_opa(self.scene.params, self.optimizers, self.strategy_state, self.config.prune_opa * 2)

    def finish(self) -> None:
        self.scene.params_changed()
        self.optimizers.clear()

