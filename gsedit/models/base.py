"""Plug-in interfaces for the image models the edit loop uses: editors and segmenters."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class EditOutput:
    images: Tensor  # [B, H, W, 3] edited images in [0, 1]
    relevance: Tensor | None = None  # [B, H, W] in [0, 1]: where the editor wants to change the image


class ImageEditor(ABC):
    """Edits images from a text instruction, conditioned on condition images (InstructPix2Pix style)."""

    #: short name used in session.json and reports
    name: str = "editor"
    #: True for stand-ins whose results must never be reported as edit quality
    is_stand_in: bool = False

    @abstractmethod
    def edit(
        self,
        images: Tensor,
        conditions: Tensor,
        instruction: str,
        noise_levels: Tensor,
        generator: torch.Generator | None = None,
        regions: Tensor | None = None,
    ) -> EditOutput:
        """Edits a batch.

        Args:
            images: [B, H, W, 3] current renders; noised to `noise_levels` and denoised.
            conditions: [B, H, W, 3] condition images (pre-renders or originals).
            instruction: the text instruction.
            noise_levels: [B] noise level t in [0, 1] per image (0 = no noise, 1 = pure noise).
            generator: random generator for reproducible noise.
            regions: [B, H, W] binary masks; where 0 the result must equal the input
                (relevance-guided editing), None for unrestricted editing.
        """

    def relevance(
        self, images: Tensor, instruction: str, generator: torch.Generator | None = None
    ) -> Tensor:
        """[B, H, W] relevance maps in [0, 1] of `instruction` for `images` [B, H, W, 3]."""
        raise NotImplementedError(f"the {self.name} editor gives no relevance maps")


class ImageSegmenter(ABC):
    """Open-set segmentation of images from a text query."""

    name: str = "segmenter"

    @abstractmethod
    def segment(self, images: Tensor, query: str) -> Tensor:
        """[B, H, W] masks in [0, 1] of the region `query` names in `images` [B, H, W, 3]."""
