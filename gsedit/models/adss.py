"""ADSS: attention-driven open-set segmentation (edit3d.txt, Sec. 3.2 and 4.1).

SAM proposes class-agnostic masks; BLIP captions the image; the caption is prepended to the
query and BLIP's image-text-matching Grad-CAM of the query tokens gives an attention map,
thresholded at 0.6; the SAM mask that matches it best is the query's segmentation. A "keep"
query gives the inverse mask, for additive edits ("give him a hat": keep the face).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from gsedit.errors import GseditError
from gsedit.models.adss_config import ADSSConfig
from gsedit.models.base import ImageSegmenter
from gsedit.models.blip_gradcam import (
    blip_captions,
    caption_prefixed_query,
    itm_gradcam,
    itm_start_token_id,
    load_blip,
    upsample_normalised,
)
from gsedit.models.sam_masks import (
    build_mask_generator,
    load_sam,
    sam_masks,
    select_mask,
    threshold_map,
)

if TYPE_CHECKING:
    from segment_anything.modeling import Sam
    from transformers import BlipForConditionalGeneration, BlipForImageTextRetrieval, BlipProcessor


class ADSS(ImageSegmenter):
    """Attention-driven open-set segmenter: SAM masks chosen by BLIP ITM Grad-CAM."""

    name = "adss"

    def __init__(
        self,
        config: ADSSConfig,
        sam: Sam,
        itm_model: BlipForImageTextRetrieval,
        itm_processor: BlipProcessor,
        caption_model: BlipForConditionalGeneration | None = None,
        caption_processor: BlipProcessor | None = None,
    ):
        """Wraps already-built models (see `from_pretrained` to load them)."""
        _check_config(config, itm_model.config.text_config.num_hidden_layers)
        if _needs_captioner(config) and (caption_model is None or caption_processor is None):
            raise ValueError(
                "caption_model and caption_processor are needed when use_caption is on "
                "and no fixed caption is set"
            )
        self.config = config
        self.mask_generator = build_mask_generator(sam, config.sam_masks)
        self.itm_model = itm_model.eval()
        self.itm_processor = itm_processor
        self.caption_model = caption_model.eval() if caption_model is not None else None
        self.caption_processor = caption_processor
        self.start_token_id = itm_start_token_id(
            itm_processor.tokenizer, itm_model.config.text_config, config.itm_start_token
        )

    @classmethod
    def from_pretrained(cls, config: ADSSConfig, device: str | torch.device = "cpu") -> ADSS:
        """Loads SAM from `config.sam_checkpoint` and BLIP from folders or hub ids.

        Raises ModelMissingError (SamCheckpointMissingError for SAM) naming the missing
        model and the option that provides it.
        """
        from transformers import BlipForConditionalGeneration, BlipForImageTextRetrieval

        device = torch.device(device)
        sam = load_sam(config.sam_checkpoint, config.sam_model_type, device)
        itm_model, itm_processor = load_blip(
            BlipForImageTextRetrieval,
            config.blip_itm_model,
            "BLIP image-text matching",
            "--blip-itm-model",
            device,
        )
        caption_model = caption_processor = None
        if _needs_captioner(config):
            caption_model, caption_processor = load_blip(
                BlipForConditionalGeneration,
                config.blip_caption_model,
                "BLIP captioning",
                "--blip-caption-model",
                device,
            )
        return cls(config, sam, itm_model, itm_processor, caption_model, caption_processor)

    def captions(self, images: Tensor) -> list[str]:
        """The caption prepended to the query for each of `images` [B, H, W, 3] ("" if off)."""
        return self._captions(_to_uint8(images))

    def attention_maps(self, images: Tensor, query: str) -> Tensor:
        """[B, H, W] Grad-CAM attention maps in [0, 1] of `query` in `images` [B, H, W, 3]."""
        return self._attention_maps(_to_uint8(images), query).to(images.device)

    def segment(self, images: Tensor, query: str, keep: bool = False) -> Tensor:
        """[B, H, W] masks in {0, 1} of the region `query` names in `images` [B, H, W, 3].

        With `keep`, the inverse mask: everything but that region, which an additive edit
        ("give him a hat", keep "his face") may change.
        """
        arrays = _to_uint8(images)
        maps = self._attention_maps(arrays, query)  # [B, H, W]
        masks = []
        for array, attention in zip(arrays, maps):
            cam_mask = threshold_map(attention, self.config.threshold)  # [H, W]
            proposals = sam_masks(self.mask_generator, array)  # [M, H, W]
            masks.append(
                select_mask(
                    proposals, cam_mask, self.config.selection, self.config.union_min_inside
                )
            )
        mask = torch.stack(masks).float()  # [B, H, W]
        return (1.0 - mask if keep else mask).to(images.device)

    def _captions(self, arrays: np.ndarray) -> list[str]:
        if not self.config.use_caption:
            return [""] * len(arrays)
        if self.config.caption is not None:
            return [self.config.caption] * len(arrays)
        return blip_captions(
            self.caption_model,
            self.caption_processor,
            list(arrays),
            self.config.caption_max_new_tokens,
            self.config.caption_num_beams,
        )

    def _attention_maps(self, arrays: np.ndarray, query: str) -> Tensor:
        maps = []
        for array, caption in zip(arrays, self._captions(arrays)):
            text, query_tokens = caption_prefixed_query(
                caption, query, self.itm_processor.tokenizer
            )
            cam = itm_gradcam(
                self.itm_model,
                self.itm_processor,
                array,
                text,
                query_tokens,
                self.config.gradcam_layer,
                self.start_token_id,
            )  # [g, g]
            maps.append(upsample_normalised(cam.cpu(), *array.shape[:2]))
        return torch.stack(maps)  # [B, H, W]


def _needs_captioner(config: ADSSConfig) -> bool:
    return config.use_caption and config.caption is None


def _check_config(config: ADSSConfig, itm_layers: int) -> None:
    if not 0.0 < config.threshold <= 1.0:
        raise GseditError(f"ADSS threshold: expected a value in (0, 1], got {config.threshold}")
    # Only the first token of the last layer feeds the ITM head, so the last layer's
    # cross-attention of the query tokens has no gradient: it cannot be explained.
    if not 0 <= config.gradcam_layer < itm_layers - 1:
        raise GseditError(
            f"ADSS gradcam_layer: expected a layer index in [0, {itm_layers - 2}] of the "
            f"{itm_layers}-layer BLIP ITM text encoder (not the last), got {config.gradcam_layer}"
        )
    if not 0.0 < config.union_min_inside <= 1.0:
        raise GseditError(
            f"ADSS union_min_inside: expected a fraction in (0, 1], got {config.union_min_inside}"
        )


def _to_uint8(images: Tensor) -> np.ndarray:
    """[B, H, W, 3] uint8 array of float `images` [B, H, W, 3] in [0, 1] (SAM and BLIP input)."""
    if images.ndim != 4 or images.shape[-1] != 3 or not images.is_floating_point():
        raise ValueError(
            f"images: expected a float tensor [B, H, W, 3] in [0, 1], got "
            f"{images.dtype} {tuple(images.shape)}"
        )
    return (images.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
