"""What `gsedit eval` measures and with which models; imports no torch (command options name it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from gsedit.metrics import LpipsNet


@dataclass
class EvalConfig:
    """What `gsedit eval` measures and with which models."""

    clip_model: str = "openai/clip-vit-large-patch14"
    """CLIP for the text and direction scores: a transformers hub id or local folder, or "open_clip:..."."""
    clip_batch: int = 16
    """Images per CLIP forward pass."""
    lpips_net: LpipsNet = "alex"
    """LPIPS backbone."""
    lpips_weights: Path | None = None
    """The backbone's torchvision weights file; None looks in the torch hub cache."""
    base_caption: str = "a photo of a scene"
    """Caption of the input scene; the caption after turn k appends the instructions of turns 1..k."""
    captions: Path | None = None
    """JSON file with the caption of the scene after every turn: a list, or {"0": input, "1": ...}."""
    miou: bool = True
    """Render ground-truth label masks of labelled scenes for mIoU (the only rendering eval does)."""
