"""LPIPS backbone weights that load as tensors but are no state dict: named, not a traceback."""

from __future__ import annotations

import pytest
import torch

from gsedit.errors import GseditError
from gsedit.metrics.image import load_lpips


@pytest.mark.parametrize("payload", [[torch.ones(3)], torch.ones(3)])
def test_lpips_weights_that_are_no_state_dict_are_named(tmp_path, payload):
    path = tmp_path / "squeezenet.pth"
    torch.save(payload, path)
    load_lpips.cache_clear()
    with pytest.raises(GseditError, match=r"squeezenet.pth: not the torchvision squeezenet1_1 weights"):
        load_lpips("squeeze", backbone_weights=path)
    load_lpips.cache_clear()
