"""Parameter counts of the editor's and the segmenter's networks, from their configs alone.

The counts come from building each network on PyTorch's meta device (no memory, no weights) from
its config: the model folder's own `config.json` files when they are on disk (a local folder or the
Hugging Face cache), else the architecture of the default hub model written out below, so the
memory estimate needs no download. Nothing here loads weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

#: timbrooks/instruct-pix2pix's unet/, vae/ and text_encoder/ config.json (architecture keys only;
#: everything else is the libraries' default): Stable Diffusion 1.5 with 8 UNet input channels.
IP2P_ARCHITECTURE = {
    "unet": {
        "in_channels": 8,
        "out_channels": 4,
        "block_out_channels": [320, 640, 1280, 1280],
        "layers_per_block": 2,
        "cross_attention_dim": 768,
        "attention_head_dim": 8,
        "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
        "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
        "norm_num_groups": 32,
        "sample_size": 64,
    },
    "vae": {
        "block_out_channels": [128, 256, 512, 512],
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "layers_per_block": 2,
        "latent_channels": 4,
        "norm_num_groups": 32,
        "sample_size": 512,
    },
    "text_encoder": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "max_position_embeddings": 77,
        "projection_dim": 768,
        "vocab_size": 49408,
    },
}
DEFAULT_IP2P = "timbrooks/instruct-pix2pix"
#: BLIP-large (Salesforce/blip-image-captioning-large and blip-itm-large-coco): ViT-L vision tower
BLIP_LARGE_VISION = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                     "num_attention_heads": 16, "image_size": 384}


@dataclass
class EditorArchitecture:
    """What the memory estimate needs to know about an InstructPix2Pix model."""

    unet_params: int
    vae_params: int
    text_params: int
    unet_channels: list[int]  # block_out_channels
    unet_layers: int  # layers_per_block
    unet_heads: int  # attention heads at the first level (attention_head_dim in diffusers' SD configs)
    vae_channels: list[int]
    vae_tile: int  # pixels per VAE tile (its sample_size)
    text_tokens: int
    text_width: int
    source: str  # where the configs came from


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _configs(model: str) -> tuple[dict, dict, dict, str]:
    """(unet, vae, text_encoder) config dicts of `model`, and where they came from."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig

    folder = Path(model).expanduser()
    source = str(folder) if folder.is_dir() else model
    try:
        unet = UNet2DConditionModel.load_config(source, subfolder="unet", local_files_only=True)
        vae = AutoencoderKL.load_config(source, subfolder="vae", local_files_only=True)
        text = CLIPTextConfig.from_pretrained(source, subfolder="text_encoder", local_files_only=True).to_dict()
        return unet, vae, text, f"{source} (config.json)"
    except (OSError, ValueError):
        if model != DEFAULT_IP2P:
            raise
        a = IP2P_ARCHITECTURE
        return a["unet"], a["vae"], a["text_encoder"], f"{DEFAULT_IP2P} (gsedit's copy of its configs)"


def editor_architecture(model: str = DEFAULT_IP2P) -> EditorArchitecture:
    """The architecture of an InstructPix2Pix model (folder or hub id), counted on the meta device.

    Raises:
        OSError: a model other than the default whose configs are neither in a folder nor cached.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet_cfg, vae_cfg, text_cfg, source = _configs(model)
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_cfg)
        vae = AutoencoderKL.from_config(vae_cfg)
        text = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in text_cfg.items() if k != "transformers_version"}))
    heads = unet.config.attention_head_dim
    return EditorArchitecture(
        unet_params=_count(unet),
        vae_params=_count(vae),
        text_params=_count(text),
        unet_channels=list(unet.config.block_out_channels),
        unet_layers=int(unet.config.layers_per_block),
        unet_heads=int(heads[0] if isinstance(heads, (list, tuple)) else heads),
        vae_channels=list(vae.config.block_out_channels),
        vae_tile=int(vae.config.sample_size if isinstance(vae.config.sample_size, int) else vae.config.sample_size[0]),
        text_tokens=int(text.config.max_position_embeddings),
        text_width=int(text.config.hidden_size),
        source=source,
    )


def sam_params(model_type: str) -> int:
    """Parameters of segment-anything's `model_type` (vit_h, vit_l, vit_b), built on the meta device."""
    import segment_anything

    with torch.device("meta"):
        return _count(segment_anything.sam_model_registry[model_type](checkpoint=None))


def blip_large_params() -> int:
    """Parameters of BLIP-large's captioner plus its image-text-matching model (ADSS loads both)."""
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipForImageTextRetrieval

    config = BlipConfig(vision_config=BLIP_LARGE_VISION)
    with torch.device("meta"):
        return _count(BlipForConditionalGeneration(config)) + _count(BlipForImageTextRetrieval(config))
