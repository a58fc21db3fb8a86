"""Settings of the refine stage (`gsedit refine`, `gsedit edit --sr.*`); imports no torch (command
options name them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from gsedit.errors import GseditError
from gsedit.models.enhance_config import EnhanceConfig


@dataclass
class RefineConfig:
    """The refine stage: super-resolve every view of the last turn, then fine-tune the scene on them."""

    iters: int = 1000
    """Fine-tune steps, one random view each (Edit3D: 10k nerfacto steps in under 5 minutes)."""
    lr_scale: float = 1.0
    """Multiplies the scene's learning rates during the fine-tune."""
    densify: bool = False
    """Let the scene add and remove points during the fine-tune (off: the geometry is done)."""
    face_masks: Path | None = None
    """Folder of face masks, one image per view named like the session's renders (0000.png) or like
    the camera's image; views without a file have no face. None: the face segmenter's, if any."""
    face_query: str = "face"
    """What the face segmenter (ADSS) is asked to find when no mask folder is given."""
    seed: int = 0
    """Seed of the fine-tune's view order."""
    enhance: Annotated[EnhanceConfig, tyro.conf.arg(name="")] = field(default_factory=EnhanceConfig)
    """The super-resolution models; `scale` > 1 fine-tunes at that multiple of the training resolution."""

    def validate(self) -> None:
        problems = []
        if self.iters < 1:
            problems.append(f"iters must be at least 1, got {self.iters}")
        if not self.lr_scale > 0:
            problems.append(f"lr_scale must be > 0, got {self.lr_scale}")
        if not self.enhance.scale > 0:
            problems.append(f"scale must be > 0, got {self.enhance.scale}")
        if problems:
            raise GseditError("Invalid refine settings: " + "; ".join(problems) + ".")
