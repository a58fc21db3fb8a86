"""IoU / mIoU of hand-made masks."""

from __future__ import annotations

import pytest
import torch

from gsedit.metrics.masks import iou, miou


def _box(
    h: int, w: int, top: int, left: int, bottom: int, right: int, value: float = 1.0
) -> torch.Tensor:
    mask = torch.zeros(h, w)
    mask[top:bottom, left:right] = value
    return mask


def test_iou_of_overlapping_boxes():
    pred = _box(10, 10, 0, 0, 4, 5)  # 20 pixels
    gt = _box(10, 10, 2, 0, 6, 5)  # 20 pixels, 10 shared
    assert iou(pred, gt).item() == pytest.approx(10 / 30)


def test_binarisation_at_one_half():
    gt = _box(8, 8, 0, 0, 4, 4)
    soft = _box(8, 8, 0, 0, 4, 4, value=0.5) + _box(8, 8, 4, 4, 8, 8, value=0.49)
    assert iou(soft, gt).item() == pytest.approx(1.0)  # 0.5 counts, 0.49 does not


def test_empty_masks():
    empty = torch.zeros(6, 6)
    full = torch.ones(6, 6)
    assert iou(empty, empty).item() == 1.0
    assert iou(empty, full).item() == 0.0


def test_batched_iou_and_miou_of_differently_sized_pairs():
    a = _box(10, 10, 0, 0, 4, 5)
    b = _box(10, 10, 2, 0, 6, 5)
    batch = iou(torch.stack([a, a]), torch.stack([b, a]))
    torch.testing.assert_close(batch, torch.tensor([1 / 3, 1.0]))
    small_pred, small_gt = _box(4, 6, 0, 0, 2, 6), _box(4, 6, 0, 0, 4, 6)  # IoU 12/24
    assert miou([a, small_pred], [b, small_gt]).item() == pytest.approx((1 / 3 + 0.5) / 2)


def test_bad_inputs():
    with pytest.raises(ValueError, match="one shape"):
        iou(torch.zeros(4, 4), torch.zeros(4, 5))
    with pytest.raises(ValueError, match="2 predicted masks but 1"):
        miou([torch.zeros(2, 2)] * 2, [torch.zeros(2, 2)])
