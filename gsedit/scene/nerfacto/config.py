"""nerfacto's model and optimisation settings and presets; imports neither torch nor nerfstudio."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class NerfactoConfig:
    """The nerfacto model and training recipe; defaults are `ns-train nerfacto` (nerfstudio 1.1)."""

    hidden_dim: int = 64
    """Width of the density MLP of the main field."""
    hidden_dim_color: int = 64
    """Width of the colour MLP of the main field."""
    num_levels: int = 16
    """Hash grid levels of the main field."""
    base_res: int = 16
    """Coarsest hash grid resolution of the main field."""
    max_res: int = 2048
    """Finest hash grid resolution of the main field."""
    log2_hashmap_size: int = 19
    """log2 of the entries per hash grid level of the main field."""
    features_per_level: int = 2
    """Features per hash grid level."""
    proposal_samples: tuple[int, ...] = (256, 96)
    """Samples per ray of each proposal level (one proposal network per entry)."""
    proposal_max_res: tuple[int, ...] = (128, 256)
    """Finest hash grid resolution of each proposal network (one entry per proposal level)."""
    proposal_hidden_dim: int = 16
    """Width of the proposal networks' MLPs."""
    proposal_levels: int = 5
    """Hash grid levels of each proposal network."""
    proposal_log2_hashmap_size: int = 17
    """log2 of the entries per hash grid level of the proposal networks."""
    nerf_samples: int = 48
    """Samples per ray of the main field."""
    proposal_update_every: int = 5
    """After the warm-up, the proposal networks get gradients every this many steps."""
    proposal_warmup: int = 5000
    """Steps over which the proposal update period grows from 1 to `proposal_update_every`."""
    anneal_steps: int = 1000
    """Steps over which the proposal weights' annealing exponent grows to 1 (mip-NeRF 360, 18)."""
    anneal_slope: float = 10.0
    """Slope of that annealing."""
    average_init_density: float = 0.01
    """Density scale at initialisation."""
    near: float = 0.05
    """Near plane while training, in model units (the farthest training camera is at distance 1)."""
    far: float = 1000.0
    """Far plane, in model units."""
    background: Literal["last_sample", "black", "white"] = "last_sample"
    """What shows where rays accumulate less than full opacity."""
    implementation: Literal["torch", "tcnn"] = "torch"
    """Hash grid code: pure PyTorch (any device) or tiny-cuda-nn (CUDA, if installed). A checkpoint
    can only be loaded with the implementation it was trained with."""
    head_levels: int = 8
    """Hash grid levels of a channel head (the relevance field)."""
    head_max_res: int = 256
    """Finest hash grid resolution of a channel head."""
    head_log2_hashmap_size: int = 16
    """log2 of the entries per hash grid level of a channel head."""
    head_hidden_dim: int = 32
    """Width of a channel head's MLP."""
    lift_steps: int = 300
    """Adam steps that fit a channel head to per-view maps in `lift_channel`."""
    lift_lr: float = 1e-2
    """Learning rate of those steps."""
    rays_per_batch: int = 4096
    """Rays per training step, drawn at random from the step's views."""
    lr: float = 1e-2
    """Adam learning rate of the fields and of the proposal networks."""
    lr_final: float = 1e-4
    """Where the exponential decay of the learning rate heads to."""
    decay_horizon: float = 200_000 / 30_000
    """The decay reaches `lr_final` after this many times the run's steps (nerfacto decays over 200k
    steps in a 30k-step run)."""
    interlevel_loss_mult: float = 1.0
    """Weight of the proposal (interlevel) loss."""
    distortion_loss_mult: float = 0.002
    """Weight of the distortion loss."""
    render_chunk: int = 1 << 15
    """Rays rendered together when rendering without gradients."""

    def validate(self) -> None:
        levels = len(self.proposal_samples)
        if levels < 1 or levels != len(self.proposal_max_res):
            raise ValueError(
                f"proposal_samples {self.proposal_samples} and proposal_max_res "
                f"{self.proposal_max_res} need one entry per proposal level (at least one)"
            )
        if self.rays_per_batch < 1 or self.render_chunk < 1 or self.nerf_samples < 2:
            raise ValueError("rays_per_batch and render_chunk must be >= 1 and nerf_samples >= 2")


#: a small model for CPU (tests, CI, quick looks): 0.1-0.15 s per step of 1024 rays on one core
#: (the full model: ~4 s), with higher learning rates so that a few dozen steps show progress
TINY = NerfactoConfig(
    hidden_dim=16,
    hidden_dim_color=16,
    num_levels=4,
    max_res=64,
    log2_hashmap_size=12,
    proposal_samples=(32,),
    proposal_max_res=(32,),
    proposal_hidden_dim=8,
    proposal_levels=3,
    proposal_log2_hashmap_size=10,
    nerf_samples=16,
    proposal_warmup=100,
    anneal_steps=50,
    head_levels=3,
    head_max_res=32,
    head_log2_hashmap_size=10,
    head_hidden_dim=8,
    lift_steps=60,
    lift_lr=3e-2,
    rays_per_batch=1024,
    lr=3e-2,
    render_chunk=8192,
)
NERFACTO_PRESETS = {"nerfacto": NerfactoConfig(), "tiny": TINY}
