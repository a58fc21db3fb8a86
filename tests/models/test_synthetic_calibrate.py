"""The stand-in editor learns objects' colours from label coverage, hard (3DGS) or soft (NeRF)."""

from __future__ import annotations

import torch

from gsedit.models.synthetic import SyntheticEditor


def two_colour_views() -> tuple[torch.Tensor, torch.Tensor]:
    """([1, 4, 4, 3] left half red, right half blue; [1, 4, 4] coverage of the left half)."""
    images = torch.zeros(1, 4, 4, 3)
    images[..., :2, 0] = 1.0
    images[..., 2:, 2] = 1.0
    left = torch.zeros(1, 4, 4)
    left[..., :2] = 1.0
    return images, left


def test_hard_and_soft_coverage_learn_the_same_colour():
    images, left = two_colour_views()
    for coverage in (left, 0.6 * left + 0.05):  # a radiance field's label head never reaches 1
        editor = SyntheticEditor()
        editor.calibrate(images, {"Cube": coverage})
        assert torch.equal(editor.object_colours["cube"][0], torch.tensor([1.0, 0.0, 0.0]))


def test_faint_coverage_is_not_an_object():
    images, left = two_colour_views()
    editor = SyntheticEditor()
    editor.calibrate(images, {"cube": 0.2 * left})
    assert "cube" not in editor.object_colours
