"""InstructPix2Pix editor settings and their checks; imports no torch (command options name them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gsedit.errors import GseditError

#: weight precisions by name (the editor maps them to torch dtypes)
DTYPE_NAMES = ("float32", "float16", "bfloat16")


@dataclass
class IP2PConfig:
    """InstructPix2Pix editor settings."""

    model: str = "timbrooks/instruct-pix2pix"
    """Local folder in the diffusers layout (unet/ vae/ text_encoder/ tokenizer/ scheduler/)
    or a Hugging Face model id."""
    steps: int = 20
    """DDIM steps of a full-noise schedule; an edit at noise level t runs about the last t*steps."""
    image_guidance: float = 1.5
    """Image guidance scale s_I: higher keeps the result closer to the condition image."""
    text_guidance: float = 7.5
    """Text guidance scale s_T: higher follows the instruction more strongly."""
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    """Precision of the weights; auto = float16 on CUDA, float32 on CPU."""
    relevance_noise: float = 0.8
    """Noise level t_rel in (0, 1] at which relevance maps are computed (paper: 0.8)."""
    relevance_samples: int = 3
    """Noise samples averaged per relevance map (fewer = faster and noisier)."""
    iqr_factor: float = 1.5
    """Relevance is clipped at Q3 + iqr_factor * IQR (paper: 1.5; the authors' code: 2.0)."""
    relevance_threshold: float = 0.5
    """Threshold tau binarising edit regions: a pixel may change where region >= tau
    (paper: 0.4-0.6)."""
    attention: Literal["sdpa", "sliced", "xformers"] = "sdpa"
    """UNet attention: sdpa = PyTorch's fused kernels; sliced = least memory, slower;
    xformers = needs the xformers package."""
    max_batch: int = 4
    """Views per UNet call (a view is 3 rows with guidance); lower it when memory runs out."""
    vae_tiling: bool = False
    """Encode and decode large images in overlapping tiles of the VAE's sample size (less memory
    above it, seams blended; diffusers' `enable_tiling`)."""
    offload: Literal["none", "text_vae", "model"] = "none"
    """Keep networks in CPU memory between calls: text_vae = the text encoder and the VAE visit the
    device only for their calls; model = the UNet too (least memory, slowest)."""
    local_files_only: bool = False
    """Never download: only a local folder or the Hugging Face cache (also on with HF_HUB_OFFLINE=1)."""


def check_config(config: IP2PConfig) -> None:
    """Raises GseditError naming the first setting of `config` out of its range."""
    rules = (
        ("model", bool(config.model.strip()), "a local folder or a Hugging Face id"),
        ("steps", config.steps >= 1, ">= 1"),
        ("image_guidance", config.image_guidance >= 0, ">= 0"),
        ("text_guidance", config.text_guidance >= 0, ">= 0"),
        (
            "dtype",
            config.dtype == "auto" or config.dtype in DTYPE_NAMES,
            f"auto or one of {list(DTYPE_NAMES)}",
        ),
        ("relevance_noise", 0 < config.relevance_noise <= 1, "in (0, 1]"),
        ("relevance_samples", config.relevance_samples >= 1, ">= 1"),
        ("iqr_factor", config.iqr_factor >= 0, ">= 0"),
        ("relevance_threshold", 0 <= config.relevance_threshold <= 1, "in [0, 1]"),
        (
            "attention",
            config.attention in ("sdpa", "sliced", "xformers"),
            "sdpa, sliced or xformers",
        ),
        ("max_batch", config.max_batch >= 1, ">= 1"),
        ("offload", config.offload in ("none", "text_vae", "model"), "none, text_vae or model"),
    )
    for field, ok, expected in rules:
        if not ok:
            raise GseditError(
                f"IP2PConfig.{field} must be {expected}, got {getattr(config, field)!r}"
            )
