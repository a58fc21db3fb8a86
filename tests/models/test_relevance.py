"""Relevance-map functions (Watch Your Steps section 4.1) against numpy and hand computations."""

import numpy as np
import pytest
import torch

from gsedit.models.ip2p.relevance import (
    binarize,
    iqr_clip,
    normalize01,
    relevance_from_eps,
    relevance_map,
)


def _maps_with_outliers(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    maps = torch.rand(3, 9, 11, generator=gen)
    maps[0, 2, 3] = 40.0  # far above the upper fence
    maps[1, 5, 5:8] = 12.0
    maps[2] = maps[2] ** 3  # skewed, fewer clear outliers
    return maps


@pytest.mark.parametrize("factor", [1.5, 2.0])
def test_iqr_clip_matches_numpy_percentiles(factor):
    maps = _maps_with_outliers()
    clipped = iqr_clip(maps, factor)
    for b in range(maps.shape[0]):
        x = maps[b].numpy().astype(np.float64)
        q1, q3 = np.percentile(x, [25, 75])
        expected = np.minimum(x, q3 + factor * (q3 - q1))
        np.testing.assert_allclose(clipped[b].numpy(), expected, rtol=1e-6, atol=1e-6)
    # the planted outliers really were clipped, the bulk untouched
    assert clipped[0, 2, 3] < 2.0 and clipped[1, 5, 6] < 2.0
    assert torch.equal(clipped[0, :2], maps[0, :2])


def test_normalize01_per_map_and_constant_map():
    maps = torch.stack([torch.arange(12.0).view(3, 4) * 2 + 5, torch.full((3, 4), 7.0)])
    out = normalize01(maps)
    np.testing.assert_allclose(out[0].numpy(), (np.arange(12.0) / 11).reshape(3, 4), rtol=1e-6)
    assert torch.equal(out[1], torch.zeros(3, 4))


def test_relevance_from_eps_is_channel_l2_norm():
    eps_text = torch.zeros(1, 4, 2, 2)
    eps_uncond = torch.zeros(1, 4, 2, 2)
    eps_text[0, 0, 0, 0], eps_text[0, 1, 0, 0] = 3.0, -4.0  # norm 5
    eps_uncond[0, 2, 1, 1] = 2.0  # |0 - 2| = 2
    eps_text[0, :, 0, 1] = 1.0  # norm sqrt(4) = 2
    raw = relevance_from_eps(eps_text, eps_uncond)
    assert raw.shape == (1, 2, 2)
    np.testing.assert_allclose(raw[0].numpy(), [[5.0, 2.0], [0.0, 2.0]], rtol=1e-6)


def test_binarize_is_inclusive_at_the_threshold():
    maps = torch.tensor([[0.2, 0.5, 0.50001, 0.49999, 1.0]])
    assert binarize(maps, 0.5).tolist() == [[0.0, 1.0, 1.0, 0.0, 1.0]]


def test_relevance_map_clips_normalises_and_upsamples():
    raw = _maps_with_outliers(seed=3)
    same = relevance_map(raw, 1.5, raw.shape[-2:])
    # at the input size bilinear resampling is the identity: only clip + normalise remain
    torch.testing.assert_close(same, normalize01(iqr_clip(raw, 1.5)))
    up = relevance_map(raw, 1.5, (37, 50))
    assert up.shape == (3, 37, 50)
    assert float(up.min()) >= 0.0 and float(up.max()) <= 1.0
    mask = binarize(up, 0.5)
    assert mask.shape == (3, 37, 50) and set(mask.unique().tolist()) <= {0.0, 1.0}
