"""The one optimisation loop of gsedit: every step fits one view drawn at random.

Edit turns (`edit/loop.py`, which rewrites targets between steps: Instruct-NeRF2NeRF's Iterative
Dataset Update), the refine stage's fine-tune (`edit/refine.py`) and fitting a scene to images
(`scene/fit.py`) all run it, so for one seed they draw the same views in the same order. What a
step does (render, loss, backward, densification, non-finite checks) is the backend's
`SceneOptimizer`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.scene.base import SceneOptimizer


def optimize_on_random_views(
    optimizer: SceneOptimizer,
    cameras: Cameras,
    targets: Tensor,
    steps: int,
    generator: torch.Generator,
    before_step: Callable[[int], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    stop: Callable[[int], bool] | None = None,
) -> float:
    """Runs `steps` steps of `optimizer`, each on one view of `cameras` drawn from `generator`,
    then finishes it; returns the last loss (NaN when `steps` is 0).

    Args:
        targets: [C, H, W, 3] the image of every view, read at every step (so `before_step` may
            rewrite them in place).
        generator: draws the views; a caller that draws from it too (the edit loop) shares it.
        before_step: called with the step's index (from 0) before its view is drawn.
        on_step: called with (steps done, loss) after every step.
        stop: called with the steps done after every step (after on_step); True ends the run
            there (a refit that stopped improving: scene/convert.py).
    """
    loss = float("nan")
    for step in range(steps):
        if before_step is not None:
            before_step(step)
        view = int(torch.randint(len(cameras), (1,), generator=generator))
        loss = optimizer.step(cameras[view], targets[view : view + 1])
        if on_step is not None:
            on_step(step + 1, loss)
        if stop is not None and stop(step + 1):
            break
    optimizer.finish()
    return loss
