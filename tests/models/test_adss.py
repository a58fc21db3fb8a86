"""ADSS: mask logic against hand-made masks, Grad-CAM against an independent autograd path,
and the full segment path over tiny random SAM and BLIP models loaded by the real loaders."""

from __future__ import annotations

from dataclasses import replace

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from tiny_adss import (
    TINY_GRADCAM_LAYER,
    TINY_IMAGE_SIZE,
    TINY_PATCH_SIZE,
    TINY_TEXT_LAYERS,
    TINY_WORDS,
    build_tiny_sam,
    tiny_adss_config,
    tiny_blip_config,
    tiny_blip_processor,
)

from gsedit.errors import GseditError, InputFileError, ModelMissingError
from gsedit.models.adss import ADSS
from gsedit.models.blip_gradcam import (
    caption_prefixed_query,
    itm_gradcam,
    itm_start_token_id,
    upsample_normalised,
)
from gsedit.models.sam_masks import (
    SamCheckpointMissingError,
    load_sam,
    mask_iou,
    sam_masks,
    select_mask,
    threshold_map,
)
from gsedit.models.segment_files import segment_paths

GRID = TINY_IMAGE_SIZE // TINY_PATCH_SIZE


def box(h: int, w: int, top: int, left: int, bottom: int, right: int) -> torch.Tensor:
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    return mask


def random_images(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, height, width, 3, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- mask logic


def test_threshold_is_inclusive_at_exactly_0_6():
    attention = torch.tensor([[0.6, 0.59999], [0.60001, 1.0]], dtype=torch.float32)
    assert threshold_map(attention, 0.6).tolist() == [[True, False], [True, True]]


def test_mask_iou_hand_computed_and_broadcast():
    a = box(4, 4, 0, 0, 2, 3)  # 6 pixels
    b = box(4, 4, 0, 1, 3, 3)  # 6 pixels, 4 shared -> union 8
    assert mask_iou(a, b).item() == pytest.approx(0.5)
    empty = torch.zeros(4, 4, dtype=torch.bool)
    ious = mask_iou(torch.stack([a, b, empty]), a)
    assert ious.tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert mask_iou(empty, empty).item() == 0.0


def test_best_iou_picks_the_hand_checked_mask_and_first_on_ties():
    cam = box(6, 6, 1, 1, 4, 4)  # 9 pixels
    small = box(6, 6, 1, 1, 2, 2)  # IoU 1/9
    close = box(6, 6, 1, 1, 4, 5)  # IoU 9/12
    whole = torch.ones(6, 6, dtype=torch.bool)  # IoU 9/36
    chosen = select_mask(torch.stack([small, whole, close]), cam, "best_iou")
    assert torch.equal(chosen, close)
    twin = box(6, 6, 1, 0, 4, 4)  # IoU 9/12 as well, listed after `close`
    assert torch.equal(select_mask(torch.stack([close, twin]), cam), close)


def test_union_joins_masks_mostly_inside_the_map():
    cam = box(8, 8, 0, 0, 4, 8)  # top half
    inside = box(8, 8, 0, 0, 2, 2)  # fully inside
    mostly = box(8, 8, 2, 4, 6, 6)  # 4 of 8 pixels inside: exactly min_inside 0.5
    outside = box(8, 8, 3, 0, 8, 2)  # 2 of 10 inside
    chosen = select_mask(torch.stack([inside, mostly, outside]), cam, "union", min_inside=0.5)
    assert torch.equal(chosen, inside | mostly)
    # Nothing inside enough: fall back to the best-IoU mask.
    assert torch.equal(select_mask(outside[None], cam, "union", min_inside=0.5), outside)


def test_selection_edge_cases():
    cam = box(5, 5, 1, 1, 3, 3)
    masks = torch.stack([box(5, 5, 0, 0, 5, 5)])
    # No attention anywhere: nothing is segmented, whatever SAM found.
    empty = torch.zeros(5, 5, dtype=torch.bool)
    assert not select_mask(masks, empty).any()
    # No SAM masks: the thresholded map itself.
    assert torch.equal(select_mask(torch.zeros(0, 5, 5, dtype=torch.bool), cam), cam)
    with pytest.raises(ValueError, match="same height and width"):
        select_mask(masks, box(4, 5, 0, 0, 1, 1))


# ---------------------------------------------------------------- text side


def test_caption_prefix_token_slice_points_at_the_query_tokens():
    tokenizer = tiny_blip_processor().tokenizer
    text, tokens = caption_prefixed_query(" a man with a hat ", "red hats", tokenizer)
    assert text == "a man with a hat red hats"
    assert tokens == slice(6, 9)  # [CLS] a man with a hat | red hat ##s | [SEP]
    ids = tokenizer(text)["input_ids"]
    assert ids[tokens] == tokenizer.convert_tokens_to_ids(["red", "hat", "##s"])
    assert ids[tokens.stop] == tokenizer.sep_token_id

    text, tokens = caption_prefixed_query("", "the cube", tokenizer)
    assert (text, tokens) == ("the cube", slice(1, 3))
    with pytest.raises(GseditError, match="--query"):
        caption_prefixed_query("a man", "   ", tokenizer)


def test_itm_start_token_is_blip_enc_after_dec():
    processor = tiny_blip_processor()
    tokenizer = processor.tokenizer
    text_config = tiny_blip_config(tokenizer).text_config
    dec = tokenizer.convert_tokens_to_ids("[DEC]")
    assert text_config.bos_token_id == dec == len(TINY_WORDS)
    assert itm_start_token_id(tokenizer, text_config, "enc") == dec + 1
    assert itm_start_token_id(tokenizer, text_config, "cls") is None
    text_config.bos_token_id = None
    with pytest.raises(GseditError, match="no bos"):
        itm_start_token_id(tokenizer, text_config, "enc")
    # A tokenizer that names [ENC] is trusted as it is, without the bos token.
    tokenizer.add_tokens(["[ENC]"], special_tokens=True)
    assert itm_start_token_id(tokenizer, text_config, "enc") == len(TINY_WORDS) + 1
    text_config.vocab_size = dec + 1  # no row for [ENC]
    with pytest.raises(GseditError, match="outside the BLIP ITM text vocabulary"):
        itm_start_token_id(tokenizer, text_config, "enc")


@pytest.fixture(scope="module")
def tiny_itm():
    from transformers import BlipForImageTextRetrieval

    processor = tiny_blip_processor()
    torch.manual_seed(0)
    model = BlipForImageTextRetrieval(tiny_blip_config(processor.tokenizer)).eval()
    return model, processor


def reference_gradcam(model, processor, image, text, tokens, layer, start_id):
    """Grad-CAM through transformers' own recorded cross-attentions, without hooks."""
    inputs = processor(images=[image], text=[text], return_tensors="pt")
    ids = inputs["input_ids"].clone()
    ids[:, 0] = start_id
    image_embeds = model.vision_model(pixel_values=inputs["pixel_values"]).last_hidden_state
    out = model.text_encoder(
        input_ids=ids,
        attention_mask=inputs["attention_mask"],
        encoder_hidden_states=image_embeds,
        encoder_attention_mask=torch.ones(image_embeds.shape[:2], dtype=torch.long),
        output_attentions=True,
    )
    match = model.itm_head(out.last_hidden_state[:, 0])[:, 1].sum()
    attention = out.cross_attentions[layer]  # [1, heads, T, 1 + P]
    (grad,) = torch.autograd.grad(match, attention)
    per_head_token = attention[0, :, :, 1:] * torch.relu(grad[0, :, :, 1:])
    cam = per_head_token.mean(0)[tokens].mean(0)
    return cam.reshape(GRID, GRID).detach()


def test_gradcam_matches_independent_autograd_path(tiny_itm):
    model, processor = tiny_itm
    image = (np.random.default_rng(0).random((20, 28, 3)) * 255).astype(np.uint8)
    text, tokens = caption_prefixed_query("a man with a hat", "red hair", processor.tokenizer)
    start = itm_start_token_id(processor.tokenizer, model.config.text_config, "enc")
    layer = TINY_GRADCAM_LAYER
    cam = itm_gradcam(model, processor, image, text, tokens, layer, start)
    assert cam.shape == (GRID, GRID)  # the patch grid, before upsampling
    assert (cam >= 0).all() and cam.max() > 0
    expected = reference_gradcam(model, processor, image, text, tokens, layer, start)
    torch.testing.assert_close(cam, expected, rtol=1e-4, atol=1e-12)

    # Another query (same caption) explains other tokens: another map.
    text2, tokens2 = caption_prefixed_query("a man with a hat", "blue shirt", processor.tokenizer)
    cam2 = itm_gradcam(model, processor, image, text2, tokens2, layer, start)
    assert not torch.allclose(cam / cam.max(), cam2 / cam2.max(), atol=1e-3)
    # Weights stay untouched: no gradient is accumulated into the model.
    assert all(p.grad is None for p in model.parameters())


def test_upsampled_map_is_normalised_and_keeps_the_peak_place():
    cam = torch.tensor([[0.0, 1.0], [2.0, 6.0]])
    up = upsample_normalised(cam, 8, 10)
    assert up.shape == (8, 10)
    assert up.min().item() == 0.0 and up.max().item() == pytest.approx(1.0)
    row, col = divmod(int(up.argmax()), 10)
    assert row >= 4 and col >= 5  # bottom-right quadrant, like the 6 in the grid
    assert up[0, 0].item() == 0.0  # the top-left corner pixel is the grid's minimum cell
    assert not upsample_normalised(torch.full((2, 2), 3.0), 4, 4).any()


# ---------------------------------------------------------------- loading


def test_missing_sam_checkpoint_names_option_and_download(tmp_path):
    with pytest.raises(SamCheckpointMissingError) as info:
        load_sam(None, "vit_h", torch.device("cpu"))
    assert isinstance(info.value, ModelMissingError)
    assert "--sam-checkpoint" in str(info.value) and "sam_vit_h_4b8939.pth" in str(info.value)
    missing = tmp_path / "sam_vit_l.pth"
    with pytest.raises(SamCheckpointMissingError, match="sam_vit_l_0b3195.pth") as info:
        load_sam(missing, "vit_l", torch.device("cpu"))
    assert str(missing) in str(info.value)


def test_broken_or_foreign_sam_checkpoint_is_an_input_error(tmp_path, monkeypatch):
    from tiny_adss import patch_sam_registry

    patch_sam_registry(monkeypatch, "vit_b")
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"this is not a checkpoint" * 8)
    with pytest.raises(InputFileError, match=r"broken.pth: not a PyTorch checkpoint .*a SAM vit_b checkpoint is"):
        load_sam(broken, "vit_b", torch.device("cpu"))
    foreign = tmp_path / "foreign.pth"
    torch.save({"image_encoder.pos_embed": torch.zeros(3)}, foreign)
    with pytest.raises(InputFileError, match=str(foreign)):
        load_sam(foreign, "vit_b", torch.device("cpu"))
    with pytest.raises(GseditError, match="--sam-model-type"):
        load_sam(broken, "vit_x", torch.device("cpu"))


@pytest.mark.parametrize(
    "field, option",
    [("blip_itm_model", "--blip-itm-model"), ("blip_caption_model", "--blip-caption-model")],
)
def test_missing_blip_names_model_and_option(tmp_path, monkeypatch, field, option):
    config = tiny_adss_config(tmp_path, monkeypatch)
    empty = tmp_path / "empty"
    empty.mkdir()
    for where in (str(empty), str(tmp_path / "nowhere")):
        setattr(config, field, where)
        with pytest.raises(ModelMissingError) as info:
            ADSS.from_pretrained(config)
        assert where in str(info.value) and option in str(info.value)


def test_fixed_caption_loads_no_captioner_and_bad_layer_is_rejected(tmp_path, monkeypatch):
    config = tiny_adss_config(
        tmp_path, monkeypatch, caption="a man sitting", blip_caption_model="/not/needed"
    )
    adss = ADSS.from_pretrained(config)
    assert adss.caption_model is None
    assert adss.captions(random_images(2, 12, 12)) == ["a man sitting"] * 2
    config.gradcam_layer = TINY_TEXT_LAYERS - 1  # the last layer cannot be explained
    with pytest.raises(GseditError, match="gradcam_layer"):
        ADSS.from_pretrained(config)


# ---------------------------------------------------------------- end to end


def test_segment_end_to_end_composes_the_pieces(tmp_path, monkeypatch):
    adss = ADSS.from_pretrained(tiny_adss_config(tmp_path, monkeypatch))
    images = random_images(2, 40, 48)
    captions = adss.captions(images)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)

    masks = adss.segment(images, "red hat")
    assert masks.shape == (2, 40, 48) and masks.dtype == torch.float32
    assert set(masks.unique().tolist()) <= {0.0, 1.0}

    maps = adss.attention_maps(images, "red hat")
    assert maps.shape == (2, 40, 48)
    assert maps.min() == 0.0 and maps.amax(dim=(1, 2)).tolist() == pytest.approx([1.0, 1.0])
    arrays = (images * 255).round().to(torch.uint8).numpy()
    union = ADSS(
        # Random SAM masks cover most of the image: a low bar lets some qualify.
        replace(adss.config, selection="union", union_min_inside=0.15),
        adss.mask_generator.predictor.model,
        adss.itm_model,
        adss.itm_processor,
        adss.caption_model,
        adss.caption_processor,
    )
    union_masks = union.segment(images, "red hat")
    assert not torch.equal(union_masks, masks)  # the two rules differ on these images
    for i in range(2):
        proposals = sam_masks(adss.mask_generator, arrays[i])
        assert proposals.shape[1:] == (40, 48) and proposals.shape[0] > 1
        cam_mask = maps[i] >= 0.6
        assert torch.equal(masks[i].bool(), select_mask(proposals, cam_mask, "best_iou"))
        assert torch.equal(union_masks[i].bool(), select_mask(proposals, cam_mask, "union", 0.15))

    kept = adss.segment(images, "red hat", keep=True)
    torch.testing.assert_close(kept, 1.0 - masks)


def test_attention_uses_the_prepended_caption(tmp_path, monkeypatch):
    config = tiny_adss_config(tmp_path, monkeypatch, caption="a man sitting")
    adss = ADSS.from_pretrained(config)
    images = random_images(1, 16, 20, seed=3)
    maps = adss.attention_maps(images, "red hat")
    array = (images[0] * 255).round().to(torch.uint8).numpy()
    # "[ENC] a man sitting red hat [SEP]": the query is tokens 4 and 5.
    cam = itm_gradcam(
        adss.itm_model,
        adss.itm_processor,
        array,
        "a man sitting red hat",
        slice(4, 6),
        TINY_GRADCAM_LAYER,
        adss.start_token_id,
    )
    torch.testing.assert_close(maps[0], upsample_normalised(cam, 16, 20))
    config.use_caption = False
    without = ADSS(config, build_tiny_sam(), adss.itm_model, adss.itm_processor)
    assert without.captions(images) == [""]
    assert not torch.allclose(without.attention_maps(images, "red hat"), maps, atol=1e-3)


def test_segment_paths_writes_masks_and_overlays(tmp_path, monkeypatch):
    adss = ADSS.from_pretrained(tiny_adss_config(tmp_path / "models", monkeypatch))
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(1)
    rgb = (rng.random((24, 30, 3)) * 255).astype(np.uint8)
    iio.imwrite(folder / "a.png", rgb)
    iio.imwrite(folder / "b.png", np.dstack([rgb, np.full((24, 30), 255, np.uint8)]))
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"

    written = segment_paths([folder], "red hat", False, out, adss)
    assert written == [out / "a_mask.png", out / "b_mask.png"]
    mask = iio.imread(out / "a_mask.png")
    expected = adss.segment(torch.from_numpy(rgb / 255.0).float()[None], "red hat")[0]
    assert mask.shape == (24, 30) and set(np.unique(mask)) <= {0, 255}
    np.testing.assert_array_equal(mask, expected.numpy().astype(np.uint8) * 255)
    overlay = iio.imread(out / "a_overlay.png").astype(float)
    inside = mask > 0
    red = (rgb.astype(float) + np.array([255.0, 0, 0])) / 2
    np.testing.assert_allclose(overlay[inside], red[inside], atol=1)
    np.testing.assert_allclose(overlay[~inside], rgb[~inside], atol=1)

    segment_paths([folder / "a.png"], "red hat", True, out, adss)
    np.testing.assert_array_equal(iio.imread(out / "a_mask.png"), 255 - mask)

    with pytest.raises(InputFileError, match="no such file"):
        segment_paths([tmp_path / "missing.png"], "red hat", False, out, adss)
    with pytest.raises(InputFileError, match="not a readable image"):
        segment_paths([folder / "notes.txt"], "red hat", False, out, adss)
