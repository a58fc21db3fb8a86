"""SAM prompted with clicked points: the mask of the object under positive clicks and not under
negative ones, on one image (segment-anything's `SamPredictor`, as GaussianEditor's WebUI uses it).

The studio lifts the mask to the Gaussians (gsedit.edit.selection.sam_selection).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gsedit.models.adss_config import SamModelType
from gsedit.models.sam_masks import load_sam


class SamPointSegmenter:
    """Segments one image from point prompts; the image embedding is computed once per image."""

    def __init__(self, sam):
        from segment_anything import SamPredictor

        self.predictor = SamPredictor(sam)
        self._image: Tensor | None = None  # the image whose embedding the predictor holds

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path | None, model_type: SamModelType, device) -> SamPointSegmenter:
        """Loads SAM as ADSS does (`load_sam`: weights only, clear errors for a missing or wrong file)."""
        return cls(load_sam(checkpoint, model_type, device))

    def segment(self, image: Tensor, points: Tensor, positive: Tensor) -> Tensor:
        """[H, W] bool: SAM's mask for `points` on `image`.

        Args:
            image: [H, W, 3] float in [0, 1].
            points: [K, 2] (x, y) pixel coordinates of the clicks.
            positive: [K] bool, False for a negative click (not this).

        Of SAM's three candidate masks (part, object, whole), the one it scores highest is kept.
        """
        image = image.detach().cpu()
        if self._image is None or self._image.shape != image.shape or not torch.equal(self._image, image):
            self.predictor.set_image((image.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
            self._image = image
        masks, scores, _ = self.predictor.predict(
            point_coords=points.detach().cpu().numpy().astype(np.float32),
            point_labels=positive.detach().cpu().numpy().astype(np.int64),
            multimask_output=True,
        )
        return torch.from_numpy(masks[int(np.argmax(scores))]).bool()
