"""Rendering a scene's channels to PNG files, with a contact sheet per channel."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.errors import GseditError

# distinct colours for label ids (tab10-like)
PALETTE = torch.tensor(
    [
        [0.12, 0.47, 0.71], [1.0, 0.5, 0.05], [0.17, 0.63, 0.17], [0.84, 0.15, 0.16], [0.58, 0.4, 0.74],
        [0.55, 0.34, 0.29], [0.89, 0.47, 0.76], [0.5, 0.5, 0.5], [0.74, 0.74, 0.13], [0.09, 0.75, 0.81],
    ]
)


def to_uint8(images: Tensor) -> np.ndarray:
    """[..., 3] or [...] floats in [0, 1] -> uint8 array."""
    return (images.detach().clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def contact_sheet(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    """[C, H, W(, 3)] uint8 -> one grid image."""
    count = images.shape[0]
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    h, w = images.shape[1:3]
    sheet = np.zeros((rows * h, columns * w, *images.shape[3:]), dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = image
    return sheet


def label_colours(scene, cameras: Cameras) -> Tensor:
    """[C, H, W, 3] each pixel coloured by its dominant label, faded by coverage."""
    names = scene.label_names() or {}
    if not names:
        raise GseditError("the scene has no labels sidecar (SCENE.labels.json) to render the 'label' channel")
    channels = [f"label={k}" for k in sorted(names)]
    out = scene.render(cameras, channels=channels)
    stack = torch.stack([out.channels[c] for c in channels], dim=-1)  # [C, H, W, L]
    coverage, index = stack.max(dim=-1)
    ids = torch.tensor(sorted(names), device=index.device)[index]
    return PALETTE.to(index.device)[ids % len(PALETTE)] * coverage[..., None].clamp(0, 1)


def render_channel(scene, cameras: Cameras, channel: str) -> Tensor:
    """[C, H, W, 3] or [C, H, W] display image of one channel."""
    if channel == "rgb":
        return scene.render(cameras).rgb
    if channel == "alpha":
        return scene.render(cameras).alpha
    if channel == "label":
        return label_colours(scene, cameras)
    if channel not in scene.channel_names():
        raise GseditError(
            f"the scene has no '{channel}' channel; it has rgb, alpha"
            + "".join(f", {c}" for c in scene.channel_names())
        )
    return scene.render(cameras, channels=[channel]).channels[channel]


def render_channel_images(scene, cameras: Cameras, channels: list[str], out: Path) -> int:
    """Writes out/CHANNEL/NAME.png for every camera and out/CHANNEL_sheet.png; returns the count."""
    import imageio.v3 as iio

    written = 0
    for channel in channels:
        images = to_uint8(render_channel(scene, cameras, channel))
        folder = Path(out) / channel
        folder.mkdir(parents=True, exist_ok=True)
        for name, image in zip(cameras.names, images):
            iio.imwrite(folder / f"{Path(name).stem}.png", image)
            written += 1
        iio.imwrite(Path(out) / f"{channel}_sheet.png", contact_sheet(images))
    return written
