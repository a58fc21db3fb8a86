"""BLIP captions and the image-text-matching Grad-CAM of a text query (the "AD" of ADSS).

edit3d.txt, Sec. 3.2: BLIP captions the image, the caption is prepended to the query, and
the pair goes through BLIP's image-text-matching (ITM) module; a Grad-CAM of the query
tokens on the ITM cross-attention gives the query's attention map. The Grad-CAM follows
LAVIS (`compute_gradcam`, which edit3d cites): the gradient of the ITM "match" logit with
respect to one cross-attention layer's attention probabilities, clamped at zero, times those
probabilities, averaged over heads and over the query's tokens, on the image-patch grid.

transformers' BLIP text layers always compute their attention probabilities explicitly (no
fused kernel), so a forward hook on the chosen layer's cross-attention captures them and
`torch.autograd.grad` gives their gradient; no `attn_implementation` switch is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gsedit.errors import GseditError, ModelMissingError
from gsedit.hub import offline_detail, offline_reason
from gsedit.models.adss_config import ItmStartToken

if TYPE_CHECKING:
    from transformers import (
        BlipForConditionalGeneration,
        BlipForImageTextRetrieval,
        BlipProcessor,
        PreTrainedModel,
    )

def load_blip(
    model_class: type[PreTrainedModel], model_id: str, what: str, option: str, device: torch.device
) -> tuple[PreTrainedModel, BlipProcessor]:
    """Loads a BLIP model of `model_class` and its processor from a local folder or a hub id.

    A hub id reads the Hugging Face cache only under HF_HUB_OFFLINE or while the hub does not
    answer; any failure to find the files becomes a ModelMissingError naming `what` and the CLI
    `option`.
    """
    from transformers import BlipProcessor

    offline = None if Path(model_id).expanduser().is_dir() else offline_reason()
    try:
        processor = BlipProcessor.from_pretrained(model_id, local_files_only=offline is not None)
        model = model_class.from_pretrained(model_id, local_files_only=offline is not None)
    except (OSError, ValueError) as err:  # not found / offline / not a valid id or folder
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelMissingError(what, model_id, option, detail=offline_detail(offline, detail)) from err
    return model.to(device).eval(), processor


def blip_captions(
    model: BlipForConditionalGeneration,
    processor: BlipProcessor,
    images: list[np.ndarray],
    max_new_tokens: int = 30,
    num_beams: int = 3,
) -> list[str]:
    """One BLIP caption per image of `images` ([H, W, 3] uint8 each), by beam search."""
    device = next(model.parameters()).device
    pixel_values = processor(images=images, return_tensors="pt")["pixel_values"].to(device)
    tokens = model.generate(
        pixel_values=pixel_values, max_new_tokens=max_new_tokens, num_beams=num_beams
    )
    return [text.strip() for text in processor.batch_decode(tokens, skip_special_tokens=True)]


def caption_prefixed_query(caption: str, query: str, tokenizer) -> tuple[str, slice]:
    """The ITM text "caption query" and the slice of the query's tokens in its token ids.

    The token ids are [first token] + caption tokens + query tokens + [SEP], so the query's
    tokens start after the first token and the caption's tokens. BERT's word-piece
    tokenisation splits on whitespace first, so tokens of "caption query" are the caption's
    tokens followed by the query's. An empty caption gives the query alone (no caption).

    Args:
        caption: the image caption (BLIP's, or a hand-written one).
        query: the text query naming the region.
        tokenizer: the ITM processor's tokenizer (anything with `tokenize(str) -> list`).
    """
    caption, query = caption.strip(), query.strip()
    n_query = len(tokenizer.tokenize(query))
    if n_query == 0:
        raise GseditError(f"--query: expected text naming a region, got {query!r}")
    n_caption = len(tokenizer.tokenize(caption)) if caption else 0
    text = f"{caption} {query}" if caption else query
    start = 1 + n_caption
    return text, slice(start, start + n_query)


def itm_start_token_id(tokenizer, text_config, start_token: ItmStartToken) -> int | None:
    """The id put at position 0 of the ITM text, or None to keep the tokenizer's [CLS].

    BLIP (and LAVIS) replace [CLS] by an [ENC] token for image-grounded text encoding, which
    is what the ITM head was trained on; transformers' BlipForImageTextRetrieval keeps [CLS].
    BLIP's tokenizer adds [DEC] (the text model's bos token) and then [ENC] after BERT's
    vocabulary, so when the tokenizer does not name [ENC] its id is bos + 1.

    Args:
        tokenizer: the ITM processor's tokenizer.
        text_config: the ITM model's BlipTextConfig (bos_token_id, vocab_size).
        start_token: "enc" for [ENC], "cls" to keep [CLS].
    """
    if start_token == "cls":
        return None
    enc_id = tokenizer.convert_tokens_to_ids("[ENC]")
    if enc_id is None or enc_id == tokenizer.unk_token_id:
        if text_config.bos_token_id is None:
            raise GseditError(
                "itm_start_token='enc': the BLIP ITM model names no bos ([DEC]) token to "
                "place [ENC] after; use itm_start_token='cls' with this model."
            )
        enc_id = text_config.bos_token_id + 1
    if enc_id >= text_config.vocab_size:
        raise GseditError(
            f"itm_start_token='enc': the [ENC] token id {enc_id} is outside the BLIP ITM text "
            f"vocabulary ({text_config.vocab_size} tokens); use itm_start_token='cls' with "
            "this model."
        )
    return enc_id


def itm_gradcam(
    model: BlipForImageTextRetrieval,
    processor: BlipProcessor,
    image: np.ndarray,
    text: str,
    query_tokens: slice,
    layer: int,
    start_token_id: int | None = None,
) -> Tensor:
    """[g, g] Grad-CAM of `query_tokens` of `text` over BLIP's g×g image-patch grid.

    Args:
        model: BLIP ITM model (in eval mode).
        processor: its processor (resizes the image to the model's square input).
        image: [H, W, 3] uint8 image.
        text: the ITM text (caption + query, see `caption_prefixed_query`).
        query_tokens: slice of the query's tokens in the tokenised `text`.
        layer: index of the ITM text encoder layer whose cross-attention is explained.
        start_token_id: id replacing the first token ([ENC] for BLIP's ITM), or None.

    Returns:
        [g, g] non-negative map on the patch grid (not normalised).
    """
    device = next(model.parameters()).device
    inputs = processor(images=[image], text=[text], return_tensors="pt").to(device)
    input_ids = inputs["input_ids"].clone()  # [1, T]
    if start_token_id is not None:
        input_ids[:, 0] = start_token_id
    # Gradients reach the attention map through the image keys even if the weights are frozen.
    pixel_values = inputs["pixel_values"].requires_grad_(True)  # [1, 3, S, S]
    captured: list[Tensor] = []
    cross_attention = model.text_encoder.encoder.layer[layer].crossattention.self
    hook = cross_attention.register_forward_hook(lambda _m, _i, out: captured.append(out[1]))
    try:
        with torch.enable_grad():
            output = model(
                input_ids=input_ids,
                attention_mask=inputs["attention_mask"],
                pixel_values=pixel_values,
                use_itm_head=True,
            )
            attention = captured[0]  # [1, heads, T, 1 + P]: image [CLS] then P patches
            (grad,) = torch.autograd.grad(output.itm_score[:, 1].sum(), attention)
    finally:
        hook.remove()
    # The image [CLS] key has no place on the grid; LAVIS drops it too.
    cam = attention[0, :, :, 1:].detach() * grad[0, :, :, 1:].clamp(min=0)  # [heads, T, P]
    cam = cam.mean(0)[query_tokens].mean(0)  # [P]
    grid = model.config.vision_config.image_size // model.config.vision_config.patch_size
    return cam.reshape(grid, grid)


def upsample_normalised(cam: Tensor, height: int, width: int) -> Tensor:
    """[H, W] map in [0, 1]: `cam` [g, g] upsampled bilinearly, then min-max normalised.

    BLIP's processor stretches the image to a square, so the grid covers the whole image.
    A constant map (no attention anywhere) gives zeros.
    """
    up = F.interpolate(cam[None, None].float(), size=(height, width), mode="bilinear")[0, 0]
    up = up - up.min()
    peak = up.max()
    return up / peak if peak > 0 else up
