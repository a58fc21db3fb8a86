"""Real-ESRGAN / GFPGAN enhancers: loading through spandrel, tiled inference, face blending."""

from __future__ import annotations

import pytest
import torch
from tiny_enhance import write_random_gfpgan, write_tiny_realesrgan

from gsedit.errors import InputFileError, ModelMissingError
from gsedit.models.enhance import (
    EnhanceConfig,
    ImageEnhancer,
    enhance,
    load_enhancers,
    load_sr_model,
    upscale,
)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("enhance")
    return {
        "x2": write_tiny_realesrgan(folder / "tiny_x2.pth"),
        "x2_unshuffle": write_tiny_realesrgan(
            folder / "tiny_x2plus.pth", num_up=2, unshuffle=2, seed=1
        ),
        "gfpgan": write_random_gfpgan(folder / "gfpgan.pth"),
    }


@pytest.fixture(scope="module")
def enhancer(weights):
    cfg = EnhanceConfig(
        realesrgan_weights=weights["x2"], gfpgan_weights=weights["gfpgan"], tile=24, tile_overlap=24
    )
    return ImageEnhancer.from_config(cfg)


def test_official_key_layout_loads_as_esrgan(weights):
    model = load_sr_model(weights["x2_unshuffle"])
    assert model.architecture.id == "ESRGAN"
    assert model.scale == 2
    assert model.purpose == "SR"
    assert upscale(model, torch.rand(9, 13, 3), tile=0).shape == (18, 26, 3)


@pytest.mark.parametrize("name", ["x2", "x2_unshuffle"])
def test_tiled_upscale_equals_untiled_with_enough_overlap(weights, name):
    model = load_sr_model(weights[name])
    image = torch.rand(40, 37, 3, generator=torch.Generator().manual_seed(3))
    full = upscale(model, image, tile=0)
    assert full.std() > 0.1  # the random net is not clamped flat, so equality below means something
    # one RRDB block + convolutions reach 19 input pixels: 24 pixels of context is enough
    torch.testing.assert_close(upscale(model, image, tile=15, overlap=24), full, atol=1e-5, rtol=0)
    # with too little context the tile borders show
    assert (upscale(model, image, tile=15, overlap=2) - full).abs().max() > 1e-2


def test_missing_weights_name_file_and_option(tmp_path):
    missing = tmp_path / "RealESRGAN_x4plus.pth"
    with pytest.raises(ModelMissingError, match="RealESRGAN_x4plus.pth") as err:
        load_sr_model(missing, option="--sr.realesrgan-weights")
    assert "--sr.realesrgan-weights" in str(err.value)
    with pytest.raises(ModelMissingError, match="--sr.realesrgan-weights"):
        load_enhancers(EnhanceConfig())


def test_foreign_and_wrong_kind_files_are_refused(tmp_path, weights):
    foreign = tmp_path / "foreign.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, foreign)
    with pytest.raises(InputFileError, match="foreign.pth"):
        load_sr_model(foreign)
    swapped = EnhanceConfig(realesrgan_weights=weights["x2"], gfpgan_weights=weights["x2"])
    with pytest.raises(InputFileError, match="not GFPGAN"):
        load_enhancers(swapped)


def test_enhance_without_faces_is_the_super_resolved_view(enhancer):
    image = torch.rand(20, 28, 3, generator=torch.Generator().manual_seed(5))
    sr = upscale(enhancer.sr_model, image, tile=0)
    # at the model's own scale no resize happens: the result is Real-ESRGAN's output
    torch.testing.assert_close(
        enhance(image, None, enhancer.sr_model, scale=2.0), sr, atol=1e-5, rtol=0
    )
    assert enhance(image, None, enhancer.sr_model).shape == image.shape


def test_gfpgan_changes_only_the_feathered_face_region(enhancer):
    gen = torch.Generator().manual_seed(7)
    images = torch.rand(2, 64, 64, 3, generator=gen)
    masks = torch.zeros(2, 64, 64)
    masks[0, 8:24, 8:24] = 1  # a face in the top-left corner of view 0, none in view 1
    out = enhancer.enhance(images, masks)
    assert out.shape == images.shape

    sr_only = [enhance(img, None, enhancer.sr_model, tile=24, overlap=24) for img in images]
    # the face box (4..28) plus 3 sigma of feathering and the resize kernel stay above 40
    far = torch.ones(64, 64, dtype=torch.bool)
    far[:40, :40] = False
    torch.testing.assert_close(out[0][far], sr_only[0][far], atol=0, rtol=0)
    assert (out[0][10:22, 10:22] - sr_only[0][10:22, 10:22]).abs().mean() > 1e-2
    torch.testing.assert_close(out[1], sr_only[1], atol=0, rtol=0)
