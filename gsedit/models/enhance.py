"""Super-resolution enhancers of Edit3D's refine stage: Real-ESRGAN everywhere, GFPGAN on faces.

Edit3D (Sec. 3.3 and 4.4, Fig. 7) renders every view after the last turn, super-resolves it
(Real-ESRGAN for the scene, GFPGAN for faces) and fine-tunes the scene on the results. Here
`enhance` runs Real-ESRGAN on the whole view with tiled inference, restores the face region
with GFPGAN, blends it in on the feathered face mask and resizes the result to `scale` times
the training resolution (1 by default; Edit3D fine-tunes on the high-resolution images, which
`scale` equal to the model's factor keeps).

Weights load through spandrel, which recognises the architecture from the state dict (the
`basicsr` package that `realesrgan` and `gfpgan` import fails on current torchvision). Use the
official files, e.g. `RealESRGAN_x4plus.pth` and `GFPGANv1.4.pth`.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from gsedit.errors import InputFileError, ModelMissingError
from gsedit.models.enhance_config import EnhanceConfig
from gsedit.render.filters import gaussian_blur

_SR_PURPOSES = ("SR", "Restoration")
_FACE_ARCH = "GFPGAN"  # restore_face calls GFPGAN's own forward signature


def load_sr_model(
    path: str | Path | None,
    option: str = "--sr.realesrgan-weights",
    device: str | torch.device = "cpu",
):
    """Loads a super-resolution or face-restoration weights file with spandrel.

    Args:
        path: the weights file (.pth, .pt, .ckpt or .safetensors).
        option: the setting that names the file, quoted in error messages.
        device: where the model runs.

    Returns:
        a spandrel `ImageModelDescriptor` (model, architecture, scale, purpose).

    Raises:
        ModelMissingError: no file at `path`.
        InputFileError: the file is not a model spandrel recognises.
    """
    import spandrel

    if path is None or not Path(path).is_file():
        raise ModelMissingError(
            "super-resolution",
            str(path),
            option,
            detail="weights files are not on the Hugging Face hub: download the .pth release",
            hub=False,
        )
    try:
        model = spandrel.ModelLoader(device=device).load_from_file(path)
    except (spandrel.UnsupportedModelError, ValueError, RuntimeError, KeyError) as e:
        raise InputFileError(path, f"not a super-resolution model spandrel can load ({e})") from e
    if not isinstance(model, spandrel.ImageModelDescriptor):
        raise InputFileError(
            path, f"a {model.architecture.id} model is not an image-to-image model"
        )
    return model.eval()


def load_enhancers(cfg: EnhanceConfig, device: str | torch.device = "cpu"):
    """(Real-ESRGAN, GFPGAN or None) descriptors of `cfg`, each checked to be the right kind of model."""
    sr = load_sr_model(cfg.realesrgan_weights, "--sr.realesrgan-weights", device)
    if sr.purpose not in _SR_PURPOSES:
        raise InputFileError(
            cfg.realesrgan_weights,
            f"a {sr.architecture.id} ({sr.purpose}) model, not super-resolution",
        )
    if cfg.gfpgan_weights is None:
        return sr, None
    face = load_sr_model(cfg.gfpgan_weights, "--sr.gfpgan-weights", device)
    if face.architecture.id != _FACE_ARCH:
        raise InputFileError(
            cfg.gfpgan_weights, f"a {face.architecture.id} ({face.purpose}) model, not GFPGAN"
        )
    return sr, face


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@torch.no_grad()
def upscale(model, image: Tensor, tile: int = 256, overlap: int = 24) -> Tensor:
    """[s*H, s*W, 3] super-resolved `image` [H, W, 3] in [0, 1], with s the model's scale.

    Tiled inference: each `tile` x `tile` block runs with `overlap` pixels of real context on
    every side (clipped at the image border) and only its core is kept, so for a fully
    convolutional model whose receptive radius is at most `overlap` the result equals running
    the whole image at once. Tiles and margins are rounded up to the model's size multiple
    (pixel-unshuffle models) so no tile needs inner padding.
    """
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image: expected [H, W, 3], got shape {tuple(image.shape)}")
    param = next(model.model.parameters())
    x = image.permute(2, 0, 1)[None].to(param.device, param.dtype)  # [1, 3, H, W]
    h, w = x.shape[-2:]
    if tile <= 0 or (h <= tile and w <= tile):
        return model(x)[0].permute(1, 2, 0)
    multiple = model.size_requirements.multiple_of
    tile, overlap = _round_up(tile, multiple), _round_up(overlap, multiple)
    s = model.scale
    out = x.new_empty(1, 3, h * s, w * s)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            cy0, cx0 = max(y0 - overlap, 0), max(x0 - overlap, 0)
            cy1, cx1 = min(y1 + overlap, h), min(x1 + overlap, w)
            result = model(x[..., cy0:cy1, cx0:cx1])
            oy, ox = (y0 - cy0) * s, (x0 - cx0) * s
            out[..., y0 * s : y1 * s, x0 * s : x1 * s] = result[
                ..., oy : oy + (y1 - y0) * s, ox : ox + (x1 - x0) * s
            ]
    return out[0].permute(1, 2, 0)


def _face_box(mask: Tensor, margin: float) -> tuple[int, int, int] | None:
    """(top, left, side) of a square around the pixels of `mask` [H, W] >= 0.5, grown by `margin`
    and shifted inside the image; None when the mask is empty."""
    ys, xs = torch.nonzero(mask >= 0.5, as_tuple=True)
    if ys.numel() == 0:
        return None
    h, w = mask.shape
    top, bottom = ys.min().item(), ys.max().item() + 1
    left, right = xs.min().item(), xs.max().item() + 1
    side = min(math.ceil(max(bottom - top, right - left) * (1 + 2 * margin)), h, w)
    cy, cx = (top + bottom) / 2, (left + right) / 2
    y0 = int(min(max(round(cy - side / 2), 0), h - side))
    x0 = int(min(max(round(cx - side / 2), 0), w - side))
    return y0, x0, side


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """[N, C, *size] bicubic, antialiased resize of `x` [N, C, h, w], clamped to [0, 1]."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    out = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
    return out.clamp(0, 1)


def restore_face(face_model, crop: Tensor) -> Tensor:
    """[N, 3, S, S] GFPGAN restoration of face crops [N, 3, S, S] in [0, 1] (S = 512).

    GFPGAN works in [-1, 1] (GFPGANer normalises with mean and std 0.5). spandrel's descriptor
    neither rescales nor leaves the output unclamped, so the network is called directly; its
    fixed noise buffers (randomize_noise=False) make the result deterministic.
    """
    restored, _ = face_model.model(crop * 2 - 1, return_rgb=False, randomize_noise=False)
    return ((restored + 1) / 2).clamp(0, 1)


def _feather(mask: Tensor, sigma: float) -> Tensor:
    """[H, W] binarised `mask` blurred by a Gaussian of std `sigma` pixels (support 3 sigma)."""
    hard = (mask >= 0.5).to(torch.float32)[None]
    if sigma <= 0:
        return hard[0]
    return gaussian_blur(hard, sigma)[0]


@torch.no_grad()
def enhance(
    image: Tensor,
    face_mask: Tensor | None,
    sr_model,
    face_model=None,
    feather_sigma: float = 3.0,
    tile: int = 256,
    overlap: int = 24,
    face_margin: float = 0.25,
    scale: float = 1.0,
) -> Tensor:
    """[round(scale*H), round(scale*W), 3] enhanced `image` [H, W, 3] in [0, 1].

    Real-ESRGAN super-resolves the whole view. When a face model and a non-empty `face_mask`
    [H, W] are given, a square crop around the face (from the input view, resized to GFPGAN's
    512 px) is restored, resized onto the super-resolved canvas and blended in with the face
    mask feathered by `feather_sigma` input pixels; nothing changes outside the crop and the
    feathered mask. The result is resized to `scale` times the input size.
    """
    h, w = image.shape[:2]
    sr = upscale(sr_model, image, tile, overlap).permute(2, 0, 1)[None]  # [1, 3, sH, sW]
    s = sr_model.scale
    box = None if face_model is None or face_mask is None else _face_box(face_mask, face_margin)
    if box is not None:
        y0, x0, side = box
        size = face_model.size_requirements.minimum
        crop = image.permute(2, 0, 1)[None, :, y0 : y0 + side, x0 : x0 + side].to(sr)
        face = _resize(restore_face(face_model, _resize(crop, (size, size))), (side * s, side * s))
        weight = _feather(face_mask, feather_sigma).to(sr)[None, None]
        weight = F.interpolate(weight, size=sr.shape[-2:], mode="bilinear", align_corners=False)
        inside = torch.zeros_like(weight)
        inside[..., y0 * s : (y0 + side) * s, x0 * s : (x0 + side) * s] = 1
        canvas = sr.clone()
        canvas[..., y0 * s : (y0 + side) * s, x0 * s : (x0 + side) * s] = face
        weight = weight * inside
        sr = sr * (1 - weight) + canvas * weight
    return _resize(sr, (round(scale * h), round(scale * w)))[0].permute(1, 2, 0)


class ImageEnhancer:
    """Edit3D's refine-stage enhancer: Real-ESRGAN on whole views, GFPGAN on face masks."""

    def __init__(self, sr_model, face_model=None, cfg: EnhanceConfig | None = None):
        self.sr_model = sr_model
        self.face_model = face_model
        self.cfg = cfg or EnhanceConfig()

    @classmethod
    def from_config(cls, cfg: EnhanceConfig, device: str | torch.device = "cpu") -> ImageEnhancer:
        """Loads the weights `cfg` names (ModelMissingError when a file is absent)."""
        sr, face = load_enhancers(cfg, device)
        return cls(sr, face, cfg)

    def enhance(self, images: Tensor, face_masks: Tensor | None = None) -> Tensor:
        """[B, H', W', 3] enhanced `images` [B, H, W, 3]; `face_masks` [B, H, W] or None (no faces)."""
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images: expected [B, H, W, 3], got shape {tuple(images.shape)}")
        if face_masks is not None and face_masks.shape != images.shape[:3]:
            raise ValueError(
                f"face_masks: expected shape {tuple(images.shape[:3])}, got {tuple(face_masks.shape)}"
            )
        c = self.cfg
        return torch.stack(
            [
                enhance(
                    img,
                    None if face_masks is None else face_masks[i],
                    self.sr_model,
                    self.face_model,
                    c.face_feather_sigma,
                    c.tile,
                    c.tile_overlap,
                    c.face_margin,
                    c.scale,
                ).to(images)
                for i, img in enumerate(images)
            ]
        )
