"""Segmentation agreement: IoU of a predicted mask with a ground-truth mask, and their mean (mIoU).

Edit3D (Sec. 4.4, Table 3) scores ADSS by the IoU of each predicted region with its annotation,
averaged over images per query and over queries for the mIoU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

#: masks are binarised as `value >= THRESHOLD`
THRESHOLD = 0.5


def iou(pred: Tensor, gt: Tensor) -> Tensor:
    """IoU of binarised `pred` and `gt` masks ([H, W] -> scalar, or [B, H, W] -> [B]), values in [0, 1].

    Two empty masks agree perfectly: their IoU is 1 (a query for something absent that finds
    nothing is right); one empty mask against a non-empty one gives 0.
    """
    if pred.shape != gt.shape:
        raise ValueError(
            f"iou: pred and gt must have one shape, got {tuple(pred.shape)} and {tuple(gt.shape)}"
        )
    if pred.ndim not in (2, 3):
        raise ValueError(f"iou: expected masks [H, W] or [B, H, W], got shape {tuple(pred.shape)}")
    p = pred >= THRESHOLD
    g = gt >= THRESHOLD
    inter = (p & g).sum(dim=(-2, -1)).double()
    union = (p | g).sum(dim=(-2, -1)).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union)).float()


def miou(preds: Sequence[Tensor] | Tensor, gts: Sequence[Tensor] | Tensor) -> Tensor:
    """Scalar mean IoU over pairs of masks (each [H, W], sizes may differ between pairs).

    Args:
        preds: predicted masks, a list of [H, W] tensors or one [B, H, W] tensor.
        gts: ground-truth masks in the same order.
    """
    if len(preds) != len(gts):
        raise ValueError(f"miou: {len(preds)} predicted masks but {len(gts)} ground-truth masks")
    if len(preds) == 0:
        raise ValueError("miou: no masks given")
    return torch.stack([iou(p, g) for p, g in zip(preds, gts)]).mean()
