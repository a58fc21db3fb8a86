"""Previewing a turn on one view: the edit the turn's loop would make of it, nothing written.

The same pieces as a turn (gsedit.edit.loop): the view's pre-render, its mask from the session's
segmenter (`turn_masks`), the condition image the method asks for, one editor call and the fusion
through the feathered mask. The scene is not changed: masks that lift a channel into the scene
(relevance, lifted masks) work on a copy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.edit.config import EditConfig
from gsedit.edit.fusion import feather, fuse
from gsedit.edit.masks import SelectedRegions, turn_masks
from gsedit.edit.session import Turn
from gsedit.models.base import ImageEditor, ImageSegmenter
from gsedit.scene.base import Scene


@dataclass
class Preview:
    """One view before and after the edit, and where the edit may act."""

    before: Tensor  # [H, W, 3] the view's render now (the turn's pre-render)
    edited: Tensor  # [H, W, 3] the editor's result, fused as the turn would fuse it
    mask: Tensor  # [H, W] in [0, 1] the turn's mask for the view (before feathering)
    seconds: float  # wall time of the preview

    def side_by_side(self) -> Tensor:
        """[H, 3W, 3] before | edited | mask (grey), the picture the studio shows."""
        grey = self.mask[..., None].expand_as(self.before)
        return torch.cat([self.before, self.edited, grey], dim=1)


def preview_view(
    scene: Scene,
    camera: Cameras,
    turn: Turn,
    config: EditConfig,
    editor: ImageEditor,
    segmenter: ImageSegmenter | None = None,
    original: Scene | None = None,
    selected: SelectedRegions | None = None,
) -> Preview:
    """The edit of one view (`camera`, one camera) as the next turn would make it.

    Args:
        original: the session's input scene, for methods conditioned on the original images (in2n);
            `scene` stands in for it when absent.
        selected: selections of Gaussians as the turn's target/keep regions (see turn_masks).
    """
    config.validate()
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(config.seed)
    work = scene.clone()  # relevance and lifted masks write a channel into the scene they see
    prerender = work.render(camera).rgb  # [1, H, W, 3]
    masks = turn_masks(work, camera, prerender, turn, config, editor, segmenter, generator, selected)  # [1, H, W]
    condition = prerender
    if config.condition == "original" and original is not None:
        condition = original.render(camera).rgb.to(prerender)
    t = torch.full((1,), (config.t_min + config.t_max) / 2)
    regions = (masks > 0.5).float() if config.relevance_guided else None
    edited = editor.edit(prerender, condition, turn.instruction, t, generator, regions).images.to(prerender)
    if config.fusion:
        sigma = config.feather * min(camera.width, camera.height)
        edited = fuse(edited, prerender, feather(masks, sigma))
    return Preview(prerender[0], edited[0].clamp(0, 1), masks[0].clamp(0, 1), time.perf_counter() - start)
