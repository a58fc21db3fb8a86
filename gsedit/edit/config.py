"""Settings of one edit turn; the method presets in configs/ are values of this dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from gsedit.errors import GseditError

PRESET_DIRS = (Path(__file__).resolve().parents[1] / "presets", Path(__file__).resolve().parents[2] / "configs")
DEFAULT_METHOD = "gsedit"
"""The method preset used when none is named."""
Segmenter = Literal["labels", "none", "adss", "relevance"]


@dataclass
class EditConfig:
    """How a turn edits the scene (Instruct-NeRF2NeRF's Iterative Dataset Update + Edit3D + WYS)."""

    iters: int = 1500
    """Optimisation steps per turn."""
    edit_every: int = 10
    """Edit one batch of views every this many steps (IN2N's Iterative Dataset Update)."""
    edit_batch: int = 1
    """Views edited together in one editor call."""
    t_min: float = 0.02
    """Lowest noise level an edit starts from."""
    t_max: float = 0.98
    """Highest noise level an edit starts from."""
    condition: Literal["prerender", "original"] = "prerender"
    """Condition image of the editor: this turn's pre-render (Edit3D) or the turn-0 render (IN2N)."""
    initial_targets: Literal["prerender", "original"] = "prerender"
    """Training targets before any edit: this turn's pre-renders (Edit3D) or the turn-0 renders (IN2N)."""
    fusion: bool = True
    """Fuse each edited view with its pre-render through the feathered mask (Edit3D Eq. 3)."""
    segmenter: Segmenter = "labels"
    """Where the masks come from: scene labels, ADSS, the 3D relevance field, or none (whole view)."""
    lift_masks: bool = False
    """Lift the segmenter's per-view masks to the scene (one value per point) and use its rendered,
    thresholded view, so the masks agree across views (the relevance segmenter always does)."""
    feather: float = 0.01
    """Mask feathering: Gaussian sigma as a fraction of the image's shorter side."""
    relevance_guided: bool = False
    """Watch Your Steps relevance-guided denoising: the editor leaves pixels outside the mask alone."""
    relevance_threshold: float = 0.5
    """Threshold of the rendered relevance field (the authors' code: 0.5; the paper: 0.4-0.6)."""
    lr_scale: float = 1.0
    """Multiplies the scene's learning rates during a turn."""
    densify: bool = True
    """Let the scene grow and prune points during a turn (3DGS densification)."""
    max_side: int | None = None
    """Longest image side used for editing and training; None keeps the cameras' resolution."""
    seed: int = 0
    """Seed of every random choice of the turn: the same seed gives the same files."""

    def validate(self) -> None:
        problems = []
        if self.iters < 1:
            problems.append(f"iters must be at least 1, got {self.iters}")
        if self.edit_every < 1:
            problems.append(f"edit_every must be at least 1, got {self.edit_every}")
        if self.edit_batch < 1:
            problems.append(f"edit_batch must be at least 1, got {self.edit_batch}")
        if not 0 <= self.t_min <= self.t_max <= 1:
            problems.append(f"need 0 <= t_min <= t_max <= 1, got t_min={self.t_min}, t_max={self.t_max}")
        if not 0 < self.relevance_threshold < 1:
            problems.append(f"relevance_threshold must be in (0, 1), got {self.relevance_threshold}")
        if self.feather < 0:
            problems.append(f"feather must be >= 0, got {self.feather}")
        if problems:
            raise GseditError("Invalid edit settings: " + "; ".join(problems) + ".")


def preset_names() -> list[str]:
    return sorted({p.stem for d in PRESET_DIRS if d.is_dir() for p in d.glob("*.yaml")})


def load_preset(name: str) -> tuple[EditConfig, str]:
    """(settings, description) of the method preset `name` (configs/NAME.yaml)."""
    for folder in PRESET_DIRS:
        path = folder / f"{name}.yaml"
        if path.is_file():
            break
    else:
        raise GseditError(f"Unknown method preset '{name}': the presets are {', '.join(preset_names())}.")
    data = yaml.safe_load(path.read_text()) or {}
    description = data.pop("description", "")
    known = {f.name for f in dataclasses.fields(EditConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise GseditError(f"{path}: unknown settings {unknown}; known settings are {sorted(known)}.")
    return EditConfig(**data), description
