"""Each memory setting of IP2PConfig (what the budget planner may choose) edits images as the
default settings do, on the tiny random model through the real loading path."""

from __future__ import annotations

import pytest
import torch
from tiny_ip2p import save_tiny_ip2p

from gsedit.models.ip2p.config import IP2PConfig
from gsedit.models.ip2p.editor import IP2PEditor

#: setting -> (config change, largest allowed |difference| per pixel, mean allowed): exact
#: reorderings agree to float32 rounding (measured 2e-6); tiling decodes overlapping tiles apart and
#: blends them: this random VAE's decoder mixes its whole latent grid, so pixels near tile borders move
#: by up to 0.33, the mean by 0.023 (a trained VAE is far more local); float16 rounds every weight and
#: activation (measured max 0.0038, mean 0.00036)
SETTINGS = {
    "attention_sliced": ({"attention": "sliced"}, 1e-4, 1e-5),
    "one_view_per_call": ({"max_batch": 1}, 1e-4, 1e-5),
    "offload_text_vae": ({"offload": "text_vae"}, 0.0, 0.0),
    "offload_model": ({"offload": "model"}, 0.0, 0.0),
    "vae_tiling": ({"vae_tiling": True}, 0.5, 0.03),
    "float16": ({"dtype": "float16"}, 0.02, 0.002),
}
SIZE = (72, 80)  # above the tiny VAE's 64 px tile, so tiling really tiles


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_ip2p(tmp_path_factory.mktemp("ip2p") / "tiny")


def edit(model_dir, **change) -> torch.Tensor:
    editor = IP2PEditor.from_pretrained(IP2PConfig(**{"model": str(model_dir), "steps": 4, "max_batch": 2, **change}), "cpu")
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, *SIZE, 3, generator=g)
    conditions = torch.rand(2, *SIZE, 3, generator=g)
    out = editor.edit(images, conditions, "make it red", torch.tensor([0.9, 0.6]), generator=torch.Generator().manual_seed(1))
    return out.images


@pytest.fixture(scope="module")
def reference(model_dir):
    return edit(model_dir)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_memory_setting_gives_the_default_images(model_dir, reference, name):
    change, max_tol, mean_tol = SETTINGS[name]
    images = edit(model_dir, **change)
    diff = (images - reference).abs()
    assert diff.max() <= max_tol and diff.mean() <= mean_tol, f"{name}: max {diff.max():.3g}, mean {diff.mean():.3g}"
