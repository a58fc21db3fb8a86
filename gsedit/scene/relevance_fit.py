"""Lifting per-view maps to one value per Gaussian by gradient descent (Watch Your Steps' way).

Watch Your Steps (Sec. 4.3) trains its 3D relevance field like a colour channel: render it,
compare with the per-view relevance maps, step, with the geometry's gradients detached. Here the
field is one scalar per Gaussian, so the fit optimises only those scalars (geometry stays frozen)
with Adam on the mean squared error between the rendered channel and the maps, clamping the values
to [0, 1] after every step. `gsedit.scene.backproject` computes a closed-form alternative in one
backward pass; the benchmark `tools/bench_relevance.py` compares the two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.scene.backproject import render_features
from gsedit.scene.optim import Adam

if TYPE_CHECKING:
    from gsedit.scene.gaussian_scene import GaussianScene


def render_values(scene: GaussianScene, cameras: Cameras, values: Tensor) -> Tensor:
    """[C, H, W] `values` [N] composited over the scene's frozen geometry (0 behind everything)."""
    return render_features(scene.geometry(), cameras, values[:, None])[..., 0]


def _check_maps(
    scene: GaussianScene, cameras: Cameras, maps: Tensor, steps: int, lr: float
) -> None:
    expected = (len(cameras), cameras.height, cameras.width)
    if tuple(maps.shape) != expected:
        raise ValueError(
            f"maps must be [C, H, W] = {list(expected)} to match the cameras, got {list(maps.shape)}"
        )
    if steps < 1 or lr <= 0:
        raise ValueError(f"fit_channel needs steps >= 1 and lr > 0, got steps={steps}, lr={lr}")
    if len(scene) == 0:
        raise ValueError("fit_channel needs a scene with at least one Gaussian")


def fit_channel(
    scene: GaussianScene,
    name: str,
    cameras: Cameras,
    maps: Tensor,
    steps: int = 200,
    lr: float = 0.05,
    views_per_step: int = 1,
    seed: int = 0,
    init: float = 0.0,
) -> Tensor:
    """Fits channel `name` of `scene` to per-view `maps` [C, H, W] in [0, 1]; sets and returns it [N].

    Each step renders `views_per_step` views, cycling through random permutations of the views, so
    one step costs about one training step of the scene. Gaussians that no pixel sees keep `init`.

    Args:
        steps: Adam steps. lr: Adam's learning rate, in channel units per step.
        seed: seed of the view order; the same seed gives the same values.
    """
    _check_maps(scene, cameras, maps, steps, lr)
    cameras = cameras.to(scene.device)
    maps = maps.to(scene.device, torch.float32)
    values = torch.full((len(scene),), float(init), device=scene.device, requires_grad=True)
    optimizer = Adam([values], lr=lr)
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    batch = max(1, min(views_per_step, len(cameras)))
    for _ in range(steps):
        if len(order) < batch:
            order.extend(torch.randperm(len(cameras), generator=generator).tolist())
        views, order = order[:batch], order[batch:]
        rendered = render_values(scene, cameras[views], values)  # [b, H, W]
        loss = (rendered - maps[views]).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            values.clamp_(0.0, 1.0)
    fitted = values.detach()
    scene.set_channel(name, fitted)
    return fitted


@torch.no_grad()
def channel_loss(scene: GaussianScene, cameras: Cameras, values: Tensor, maps: Tensor) -> float:
    """Mean squared error between `values` [N] rendered into every view and `maps` [C, H, W]."""
    cameras = cameras.to(scene.device)
    step = max(1, scene.config.render_batch)
    total = 0.0
    for start in range(0, len(cameras), step):
        rendered = render_values(scene, cameras[start : start + step], values.to(scene.device))
        total += float((rendered - maps[start : start + step].to(rendered)).square().sum())
    return total / maps.numel()
