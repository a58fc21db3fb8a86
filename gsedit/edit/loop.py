"""One edit turn: the loop of DESIGN.md ("The one loop"), on any Scene.

Instruct-NeRF2NeRF's Iterative Dataset Update (every `edit_every` steps one batch of views is
re-rendered, noised to a random level, edited and written back as training targets) combined with
Edit3D's multi-turn mechanisms (pre-renders as conditions and initial targets, Sec. 3.1; fusion through
feathered masks, Sec. 3.2) and Watch Your Steps' relevance masks and relevance-guided denoising.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.edit.config import EditConfig
from gsedit.edit.events import Progress
from gsedit.edit.fusion import feather, fuse
from gsedit.edit.masks import SelectedRegions, turn_masks
from gsedit.edit.session import Turn
from gsedit.models.base import ImageEditor, ImageSegmenter
from gsedit.scene.base import Scene
from gsedit.scene.random_views import optimize_on_random_views


@dataclass
class TurnResult:
    prerenders: Tensor  # [C, H, W, 3] the scene at the start of the turn
    masks: Tensor  # [C, H, W] feathered masks used for fusion
    renders: Tensor  # [C, H, W, 3] the scene after the turn
    edits: int  # editor calls made
    loss: float  # last training loss


def _edit_order(num_views: int, generator: torch.Generator) -> Callable[[int], list[int]]:
    """Views to edit next, cycling through random permutations so every view gets edited."""
    queue: list[int] = []

    def take(count: int) -> list[int]:
        picked: list[int] = []
        while len(picked) < min(count, num_views):
            if not queue:
                queue.extend(torch.randperm(num_views, generator=generator).tolist())
            view = queue.pop(0)
            if view not in picked:
                picked.append(view)
        return picked

    return take


def run_turn(
    scene: Scene,
    cameras: Cameras,
    turn: Turn,
    config: EditConfig,
    editor: ImageEditor,
    originals: Tensor,
    segmenter: ImageSegmenter | None = None,
    on_step: Callable[[Progress], None] | None = None,
    selected: SelectedRegions | None = None,
) -> TurnResult:
    """Edits `scene` in place for one turn and returns what the session writes.

    Args:
        originals: [C, H, W, 3] the turn-0 renders (IN2N's condition images and targets).
        selected: the turn's selections of Gaussians as target/keep regions (see turn_masks).
    """
    config.validate()
    torch.manual_seed(config.seed)  # densification draws from the global generator
    generator = torch.Generator().manual_seed(config.seed)
    prerenders = scene.render(cameras).rgb  # [C, H, W, 3]
    device = prerenders.device
    masks = turn_masks(scene, cameras, prerenders, turn, config, editor, segmenter, generator, selected)
    sigma = config.feather * min(cameras.width, cameras.height)
    feathered = feather(masks, sigma)  # [C, H, W]
    binary = (masks > 0.5).float()
    conditions = prerenders if config.condition == "prerender" else originals.to(device)
    targets = (prerenders if config.initial_targets == "prerender" else originals.to(device)).clone()

    optimizer = scene.optimizer(
        config.iters, lr_scale=config.lr_scale, densify=config.densify, opacity_reset=False
    )
    next_views = _edit_order(len(cameras), generator)
    edits = 0

    def update_targets(step: int) -> None:  # the Iterative Dataset Update, before the step's view
        nonlocal edits
        if step % config.edit_every == 0:
            views = next_views(config.edit_batch)
            _edit_views(scene, cameras, views, turn, config, editor, conditions, prerenders,
                        feathered, binary, targets, generator)
            edits += 1

    def report(step: int, loss: float) -> None:
        if on_step is not None:
            on_step(Progress(step, config.iters, edits, loss))

    loss = optimize_on_random_views(optimizer, cameras, targets, config.iters, generator,
                                    update_targets, report)
    return TurnResult(prerenders, feathered, scene.render(cameras).rgb, edits, loss)


def _edit_views(scene, cameras, views, turn, config, editor, conditions, prerenders, feathered, binary,
                targets, generator) -> None:
    """Edits `views` from their current renders and writes the (fused) results into `targets`."""
    current = scene.render(cameras[views]).rgb
    t = config.t_min + (config.t_max - config.t_min) * torch.rand(len(views), generator=generator)
    regions = binary[views] if config.relevance_guided else None
    out = editor.edit(current, conditions[views], turn.instruction, t, generator, regions)
    edited = out.images.to(targets)
    if config.fusion:
        edited = fuse(edited, prerenders[views], feathered[views])
    targets[views] = edited

