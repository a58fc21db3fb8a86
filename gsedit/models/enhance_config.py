"""Settings of the super-resolution enhancers (Real-ESRGAN, GFPGAN); imports no torch (command
options name them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class EnhanceConfig:
    """Super-resolution refine stage (Edit3D Sec. 3.3)."""

    realesrgan_weights: Path | None = None
    """Real-ESRGAN (or any ESRGAN-family) weights file, e.g. RealESRGAN_x4plus.pth."""
    gfpgan_weights: Path | None = None
    """GFPGAN weights file, e.g. GFPGANv1.4.pth; None skips face restoration."""
    tile: int = 256
    """tile side in input pixels for Real-ESRGAN; 0 runs the whole image at once."""
    tile_overlap: int = 24
    """context margin in input pixels around each tile; results equal untiled inference once it
    covers the network's receptive radius."""
    scale: float = 1.0
    """output size relative to the input; 1 returns views at the training resolution."""
    face_feather_sigma: float = 3.0
    """std of the Gaussian that feathers the face mask's edge, in input pixels."""
    face_margin: float = 0.25
    """context around the face box given to GFPGAN, as a fraction of the box side."""
