"""Tiny randomly initialised SAM and BLIP models for ADSS tests, saved like the real ones.

SAM: the real segment-anything modules at toy sizes (64-pixel input), saved as a .pth state
dict; `patch_sam_registry` points a registry entry at the tiny builder so `load_sam` and
`SamAutomaticMaskGenerator` run their real code. BLIP: caption and ITM models from small
`BlipConfig`s (32-pixel input, 8-pixel patches: a 4×4 grid, 3 text layers) with a word-level
BERT tokenizer, saved with `save_pretrained` and loaded by the real loader.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from gsedit.models.adss_config import ADSSConfig, SamMaskConfig

#: The tiny BERT vocabulary; the tokenizer adds [DEC] after it (id 24) and the model's
#: vocabulary has one more row for BLIP's [ENC] (id 25), as in BLIP's real layout.
TINY_WORDS = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "the", "man", "woman", "hat", "red",
    "cube", "with", "hair", "shirt", "on", "table", "blue", "ball", "face", "his", "sitting",
    "##s", "of",
]  # fmt: skip
TINY_IMAGE_SIZE = 32
TINY_PATCH_SIZE = 8
TINY_TEXT_LAYERS = 3
#: A middle layer, as LAVIS's 7 of 12: the last layer's query tokens never reach the ITM head.
TINY_GRADCAM_LAYER = 1
TINY_SAM_SIZE = 64
#: BLIP's 0.02 init makes tiny attention almost uniform and every token alike; a wider one
#: gives peaked attention, so tests can tell tokens, patches and layers apart.
INIT_STD = 0.3


def build_tiny_sam(checkpoint: str | None = None, seed: int = 0):
    """SAM with a 1-block 16-wide ViT on 64-pixel inputs; loads `checkpoint` if given.

    Its signature matches segment-anything's registry builders.
    """
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    torch.manual_seed(seed)
    width, grid = 16, TINY_SAM_SIZE // 16
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=TINY_SAM_SIZE,
            patch_size=16,
            embed_dim=width,
            depth=1,
            num_heads=2,
            mlp_ratio=2,
            out_chans=width,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            global_attn_indexes=(0,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=width,
            image_embedding_size=(grid, grid),
            input_image_size=(TINY_SAM_SIZE, TINY_SAM_SIZE),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=width, mlp_dim=32, num_heads=2),
            transformer_dim=width,
            iou_head_depth=2,
            iou_head_hidden_dim=16,
        ),
    ).eval()
    if checkpoint is not None:
        sam.load_state_dict(torch.load(checkpoint))
    return sam


def save_tiny_sam(folder: Path, seed: int = 0) -> Path:
    """Writes a tiny SAM state dict to `folder`/sam_tiny.pth and returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sam_tiny.pth"
    torch.save(build_tiny_sam(seed=seed).state_dict(), path)
    return path


def patch_sam_registry(monkeypatch, model_type: str = "vit_b") -> None:
    """Makes segment-anything's registry build the tiny SAM for `model_type`."""
    import segment_anything

    monkeypatch.setitem(segment_anything.sam_model_registry, model_type, build_tiny_sam)


def tiny_blip_processor():
    """A BlipProcessor: 32-pixel images and a word-level BERT tokenizer over TINY_WORDS."""
    from transformers import BertTokenizer, BlipImageProcessor, BlipProcessor

    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(TINY_WORDS)}, bos_token="[DEC]")
    image_processor = BlipImageProcessor(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE})
    return BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


def tiny_blip_config(tokenizer):
    """A BlipConfig for caption and ITM models matching `tokenizer` (plus BLIP's [ENC])."""
    from transformers import BlipConfig

    return BlipConfig(
        text_config={
            "vocab_size": len(tokenizer) + 1,  # + [ENC]
            "hidden_size": 32,
            "num_hidden_layers": TINY_TEXT_LAYERS,
            "num_attention_heads": 4,
            "intermediate_size": 37,
            "max_position_embeddings": 64,
            "bos_token_id": tokenizer.bos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "sep_token_id": tokenizer.sep_token_id,
            "eos_token_id": tokenizer.sep_token_id,
            "initializer_range": INIT_STD,
        },
        vision_config={
            "hidden_size": 32,
            "image_size": TINY_IMAGE_SIZE,
            "patch_size": TINY_PATCH_SIZE,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 37,
            "initializer_range": INIT_STD,
        },
        initializer_range=INIT_STD,
        projection_dim=16,
        image_text_hidden_size=16,
    )


def save_tiny_blip(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Saves tiny BLIP caption and ITM models with processors; returns their two folders."""
    from transformers import BlipForConditionalGeneration, BlipForImageTextRetrieval

    processor = tiny_blip_processor()
    config = tiny_blip_config(processor.tokenizer)
    folders = []
    for name, model_class in [
        ("blip_caption", BlipForConditionalGeneration),
        ("blip_itm", BlipForImageTextRetrieval),
    ]:
        torch.manual_seed(seed)
        model = model_class(config).eval()
        model.save_pretrained(folder / name)
        processor.save_pretrained(folder / name)
        folders.append(folder / name)
    return folders[0], folders[1]


def tiny_adss_config(folder: Path, monkeypatch, **overrides) -> ADSSConfig:
    """An ADSSConfig over tiny SAM and BLIP models saved under `folder` (registry patched)."""
    patch_sam_registry(monkeypatch, "vit_b")
    caption_dir, itm_dir = save_tiny_blip(folder)
    settings = {
        "sam_checkpoint": save_tiny_sam(folder),
        "sam_model_type": "vit_b",
        # Random SAM weights predict poor, overlapping masks: keep them all (no quality
        # filter, no duplicate suppression) so that selection has dozens to choose from.
        "sam_masks": SamMaskConfig(
            points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0
        ),
        "blip_caption_model": str(caption_dir),
        "blip_itm_model": str(itm_dir),
        "caption_max_new_tokens": 6,
        "caption_num_beams": 2,
        "gradcam_layer": TINY_GRADCAM_LAYER,
    }
    settings.update(overrides)
    return ADSSConfig(**settings)
