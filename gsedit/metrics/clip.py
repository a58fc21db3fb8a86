"""CLIP scores of edits: text-image, image-image, directional and cross-view consistency.

The scores the papers report, all cosines between L2-normalised CLIP embeddings E(.):

- text-image similarity  cos(E(after), E(caption_after))          WYS "Txt-Img Sim."
- image similarity       cos(E(after), E(before))                 WYS "Image Sim." (IP2P)
- frame similarity       cos(E(after_i), E(after_i+1))            WYS "Frame Sim."
- directional similarity cos(E(after) - E(before), E(caption_after) - E(caption_before))
      StyleGAN-NADA's direction score as IP2P / IN2N compute it; Edit3D Sec. 4.3, Table 1
      averages it over 100 views per turn, then over turns.
- direction consistency  cos(E(after_i) - E(before_i), E(after_j) - E(before_j)) for
      neighbouring views i, j; IN2N's "CLIP direction consistency", WYS "Edit Sim." (Sec. 5).

Watch Your Steps, Sec. 5 "Metrics", defines the scene scores over views rendered from the input
and the edited scene; callers average the per-view values returned here.

Models: any transformers CLIP (a hub id such as the default "openai/clip-vit-large-patch14", or a
local folder with config, weights and processor files), or an open_clip model named
"open_clip:ARCH/PRETRAINED" (PRETRAINED a tag such as "laion2b_s34b_b79k" or a checkpoint file)
or "open_clip:local-dir:FOLDER" (open_clip_config.json and weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from gsedit.errors import ModelMissingError
from gsedit.hub import offline_reason

OPEN_CLIP_PREFIX = "open_clip:"
_OPTION = "--clip-model"



@dataclass
class ClipScoreConfig:
    """CLIP model used by the edit metrics."""

    model: str = "openai/clip-vit-large-patch14"
    """transformers CLIP hub id or local folder, or "open_clip:ARCH/PRETRAINED" / "open_clip:local-dir:FOLDER"."""
    batch_size: int = 16
    """images embedded per forward pass."""


def _check_images(images: Tensor, name: str) -> None:
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"{name}: expected images [B, H, W, 3] in [0, 1], got shape {tuple(images.shape)}"
        )


class HFClipEncoder:
    """Embeds images and texts with a transformers `CLIPModel` and its `CLIPProcessor`."""

    def __init__(self, model, processor):
        self.model = model.eval()
        self.processor = processor

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @staticmethod
    def _features(out) -> Tensor:
        # transformers >= 5 returns an output object whose pooler_output holds the projection
        return out if isinstance(out, Tensor) else out.pooler_output

    def encode_images(self, images: Tensor) -> Tensor:
        """[B, D] embeddings of `images` [B, H, W, 3] in [0, 1]."""
        pixels = self.processor(
            images=list(images.permute(0, 3, 1, 2)), return_tensors="pt", do_rescale=False
        )
        pixels = pixels["pixel_values"].to(self.device, next(self.model.parameters()).dtype)
        return self._features(self.model.get_image_features(pixel_values=pixels))

    def encode_texts(self, texts: Sequence[str]) -> Tensor:
        """[T, D] embeddings of `texts`."""
        tokens = self.processor(
            text=list(texts), return_tensors="pt", padding=True, truncation=True
        )
        tokens = {k: v.to(self.device) for k, v in tokens.items()}
        return self._features(self.model.get_text_features(**tokens))


class OpenClipEncoder:
    """Embeds images and texts with an open_clip model, its eval transform and tokenizer."""

    def __init__(self, model, preprocess, tokenizer):
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode_images(self, images: Tensor) -> Tensor:
        """[B, D] embeddings of `images` [B, H, W, 3] in [0, 1]."""
        from torchvision.transforms.functional import to_pil_image

        # open_clip's eval transform starts from PIL images (it ends with ToTensor + Normalize)
        batch = torch.stack(
            [
                self.preprocess(to_pil_image(img.permute(2, 0, 1).clamp(0, 1).cpu()))
                for img in images
            ]
        )
        return self.model.encode_image(batch.to(self.device))

    def encode_texts(self, texts: Sequence[str]) -> Tensor:
        """[T, D] embeddings of `texts`."""
        return self.model.encode_text(self.tokenizer(list(texts)).to(self.device))


def _in_hub_cache(model_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except ValueError:  # not a valid hub id: transformers names it below
        return True


def _load_transformers(model_id: str, device: str | torch.device) -> HFClipEncoder:
    local = Path(model_id).expanduser()
    source = str(local) if local.is_dir() else model_id
    offline = None if local.is_dir() else offline_reason()
    if offline and not _in_hub_cache(model_id):
        # said before transformers' CLIP classes load: they import torchvision and torch._dynamo (seconds)
        raise ModelMissingError("CLIP", model_id, _OPTION, detail=offline)
    from transformers import CLIPModel, CLIPProcessor

    try:
        model = CLIPModel.from_pretrained(source, local_files_only=offline is not None)
        processor = CLIPProcessor.from_pretrained(source, local_files_only=offline is not None)
    except (OSError, ValueError) as e:  # missing files / offline miss; invalid ids are ValueErrors
        raise ModelMissingError("CLIP", model_id, _OPTION, detail=str(e).splitlines()[0]) from e
    return HFClipEncoder(model.to(device), processor)


def _load_open_clip(model_id: str, device: str | torch.device) -> OpenClipEncoder:
    import open_clip

    spec = model_id[len(OPEN_CLIP_PREFIX) :]
    if spec.startswith("local-dir:"):
        folder = Path(spec[len("local-dir:") :]).expanduser()
        # open_clip warns and keeps random weights when the folder has none: refuse that here
        if not any(path.suffix in (".safetensors", ".bin", ".pth") for path in folder.glob("*")):
            raise ModelMissingError(
                "CLIP", model_id, _OPTION, detail=f"no open_clip weights in {folder}"
            )
        name, pretrained = f"local-dir:{folder}", None
    else:
        name, _, pretrained = spec.partition("/")
        if not name or not pretrained:
            raise ValueError(
                f"{_OPTION}: expected 'open_clip:ARCH/PRETRAINED' or 'open_clip:local-dir:FOLDER', got {model_id!r}"
            )
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained, device=device
        )
        tokenizer = open_clip.get_tokenizer(name)
    except (
        OSError,
        RuntimeError,
        ValueError,
    ) as e:  # offline download misses, unknown tags or files
        raise ModelMissingError("CLIP", model_id, _OPTION, detail=str(e).splitlines()[0]) from e
    return OpenClipEncoder(model, preprocess, tokenizer)


class CLIPScorer:
    """CLIP similarity scores of images and captions; see the module docstring for the definitions."""

    def __init__(self, encoder: HFClipEncoder | OpenClipEncoder, batch_size: int = 16):
        self.encoder = encoder
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(
        cls, model_id: str, device: str | torch.device = "cpu", batch_size: int = 16
    ) -> CLIPScorer:
        """Loads a transformers CLIP (hub id or folder) or an "open_clip:..." model.

        Honours HF_HUB_OFFLINE: then only local folders and the Hugging Face cache are used.

        Raises:
            ModelMissingError: the model is neither local nor cached and cannot be downloaded.
        """
        load = _load_open_clip if model_id.startswith(OPEN_CLIP_PREFIX) else _load_transformers
        return cls(load(model_id, device), batch_size)

    @torch.no_grad()
    def image_embeddings(self, images: Tensor) -> Tensor:
        """[B, D] unit CLIP embeddings of `images` [B, H, W, 3] in [0, 1]."""
        _check_images(images, "images")
        chunks = [self.encoder.encode_images(chunk) for chunk in images.split(self.batch_size)]
        return F.normalize(torch.cat(chunks).float(), dim=-1)

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str]) -> Tensor:
        """[T, D] unit CLIP embeddings of `texts`."""
        if isinstance(texts, str) or not texts:
            raise ValueError(f"texts: expected a non-empty list of strings, got {texts!r}")
        return F.normalize(self.encoder.encode_texts(texts).float(), dim=-1)

    def text_image_similarity(self, images: Tensor, text: str) -> Tensor:
        """[B] cosine between each image [B, H, W, 3] and the caption `text`."""
        return self.image_embeddings(images) @ self.text_embeddings([text])[0]

    def image_similarity(self, images_a: Tensor, images_b: Tensor) -> Tensor:
        """[B] cosine between the embeddings of paired images ([B, H, W, 3] each)."""
        return (self.image_embeddings(images_a) * self.image_embeddings(images_b)).sum(-1)

    def frame_similarity(self, images: Tensor) -> Tensor:
        """[B-1] cosine between the embeddings of consecutive frames of `images` [B, H, W, 3]."""
        emb = self.image_embeddings(images)
        return (emb[:-1] * emb[1:]).sum(-1)

    def directional_similarity(
        self, images_before: Tensor, images_after: Tensor, text_before: str, text_after: str
    ) -> Tensor:
        """[B] cosine between each image's embedding change and the caption's embedding change."""
        image_delta = self.image_embeddings(images_after) - self.image_embeddings(
            images_before
        )  # [B, D]
        text_emb = self.text_embeddings([text_before, text_after])
        text_delta = text_emb[1] - text_emb[0]  # [D]
        return F.cosine_similarity(image_delta, text_delta[None], dim=-1)

    def direction_consistency(
        self, before_i: Tensor, after_i: Tensor, before_j: Tensor, after_j: Tensor
    ) -> Tensor:
        """[B] cosine between the embedding changes of view i and of its neighbouring view j.

        Args:
            before_i, after_i: [B, H, W, 3] view i rendered from the input and the edited scene.
            before_j, after_j: [B, H, W, 3] the neighbouring view j, likewise.
        """
        delta_i = self.image_embeddings(after_i) - self.image_embeddings(before_i)
        delta_j = self.image_embeddings(after_j) - self.image_embeddings(before_j)
        return F.cosine_similarity(delta_i, delta_j, dim=-1)
