"""The 3DGS optimisation recipe's settings (`gsedit fit`, edit turns); imports no torch (command
options name them)."""

from __future__ import annotations

from dataclasses import dataclass


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
