"""One displayed frame: the scene's render from the browser's camera, with an optional overlay."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.render.images import to_uint8
from gsedit.scene.base import Scene

Overlay = Literal["none", "relevance", "mask"]
OVERLAYS: tuple[Overlay, ...] = ("none", "relevance", "mask")
RELEVANCE = "relevance"
MASK_TINT = (0.0, 0.9, 1.0)  # cyan: far from the reds and yellows that edits tend to produce


def heat(values: Tensor) -> Tensor:
    """[...] values in [0, 1] -> [..., 3] black-red-yellow-white colours (a "hot" colour map)."""
    v = values.clamp(0, 1)[..., None]
    return torch.cat(
        [(3 * v).clamp(0, 1), (3 * v - 1).clamp(0, 1), (3 * v - 2).clamp(0, 1)], dim=-1
    )


def blend(rgb: Tensor, colour: Tensor, weight: Tensor) -> Tensor:
    """[H, W, 3] rgb mixed towards `colour` ([H, W, 3] or [3]) by `weight` [H, W] in [0, 1]."""
    w = weight.clamp(0, 1)[..., None]
    return rgb * (1 - w) + colour * w


def render_frame(
    scene: Scene, camera: Cameras, overlay: Overlay = "none", mask: Tensor | None = None
) -> np.ndarray:
    """[H, W, 3] uint8 of one camera.

    Args:
        overlay: "relevance" tints the rendered relevance channel (where the scene has one);
            "mask" tints `mask` [H, W] (a turn mask already warped to this camera).
    """
    wants_relevance = overlay == "relevance" and RELEVANCE in scene.channel_names()
    out = scene.render(camera, channels=[RELEVANCE] if wants_relevance else [])
    rgb = out.rgb[0]  # [H, W, 3]
    if wants_relevance:
        relevance = out.channels[RELEVANCE][0]  # [H, W], alpha-weighted like the colours
        rgb = blend(rgb, heat(relevance), 0.75 * relevance)
    elif overlay == "mask" and mask is not None:
        tint = torch.tensor(MASK_TINT, device=rgb.device)
        rgb = blend(rgb, tint, 0.6 * mask.to(rgb.device))
    return to_uint8(rgb)


def thumbnail(image: Tensor, max_side: int) -> Tensor:
    """[H, W, 3] -> at most `max_side` pixels on its longer side (area averaging)."""
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    chw = image.permute(2, 0, 1)[None]
    return torch.nn.functional.interpolate(chw, size=size, mode="area")[0].permute(1, 2, 0)
