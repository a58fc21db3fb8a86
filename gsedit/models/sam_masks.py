"""SAM automatic masks and the mask logic of ADSS: threshold, IoU, choice of the SAM mask.

ADSS (edit3d.txt, Sec. 3.2 "ADSS: Attention-Driven Open-Set Segmentation") asks SAM for
class-agnostic masks of the whole image, thresholds a text query's attention map into a
mask and keeps the SAM mask that best matches it. The mask functions here are pure torch;
the SAM model is loaded and run through segment-anything's own code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from gsedit.errors import GseditError, InputFileError, MissingPackageError, ModelMissingError
from gsedit.models.adss_config import SamMaskConfig, SamModelType, Selection
from gsedit.torch_files import load_tensor_file

if TYPE_CHECKING:
    from segment_anything import SamAutomaticMaskGenerator
    from segment_anything.modeling import Sam

#: Meta's official checkpoints (segment-anything README, "Model Checkpoints").
SAM_CHECKPOINT_URLS: dict[str, str] = {
    "vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
    "vit_l": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
}


class SamCheckpointMissingError(ModelMissingError):
    """The SAM checkpoint file is not given or does not exist.

    SAM weights in segment-anything's `.pth` format are not on the Hugging Face hub, so the
    message points to Meta's download address instead of `huggingface-cli download`.
    """

    def __init__(self, checkpoint: str | Path | None, model_type: str):
        self.model_id = str(checkpoint)
        what = (
            "ADSS needs a SAM checkpoint and none was given"
            if checkpoint is None
            else f"The SAM checkpoint '{checkpoint}' does not exist"
        )
        GseditError.__init__(
            self,
            f"{what}. SAM weights are not on the Hugging Face hub in segment-anything's "
            f"format: download the {model_type} checkpoint from "
            f"{SAM_CHECKPOINT_URLS[model_type]} (all sizes are listed at "
            "https://github.com/facebookresearch/segment-anything#model-checkpoints) and pass "
            "it with --sam-checkpoint PATH (and --sam-model-type if it is not vit_h).",
        )


def load_sam(checkpoint: str | Path | None, model_type: SamModelType, device: torch.device) -> Sam:
    """Builds SAM of `model_type` with segment-anything's registry and loads `checkpoint` (.pth)."""
    if model_type not in SAM_CHECKPOINT_URLS:
        raise GseditError(
            f"--sam-model-type: expected one of {', '.join(SAM_CHECKPOINT_URLS)}, "
            f"got '{model_type}'."
        )
    if checkpoint is None or not Path(checkpoint).is_file():
        raise SamCheckpointMissingError(checkpoint, model_type)
    import segment_anything

    # weights only: a checkpoint from the internet must not run code (segment-anything's own
    # torch.load unpickles anything on torch < 2.6)
    state = load_tensor_file(checkpoint, f"; a SAM {model_type} checkpoint is the .pth file segment-anything publishes")
    sam = segment_anything.sam_model_registry[model_type](checkpoint=None)
    try:
        sam.load_state_dict(state)
    except Exception as err:  # another SAM size, or not a state dict at all
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputFileError(
            checkpoint, f"not a SAM {model_type} checkpoint ({first_line})"
        ) from err
    return sam.to(device).eval()


def build_mask_generator(sam: Sam, config: SamMaskConfig) -> SamAutomaticMaskGenerator:
    """segment-anything's automatic mask generator over `sam` with `config`'s settings."""
    from segment_anything import SamAutomaticMaskGenerator

    if config.min_mask_region_area > 0:
        try:
            import cv2  # noqa: F401
        except ImportError as err:
            raise MissingPackageError("min_mask_region_area > 0 (or set it to 0)", "OpenCV") from err
    return SamAutomaticMaskGenerator(
        sam,
        points_per_side=config.points_per_side,
        points_per_batch=config.points_per_batch,
        pred_iou_thresh=config.pred_iou_thresh,
        stability_score_thresh=config.stability_score_thresh,
        box_nms_thresh=config.box_nms_thresh,
        crop_n_layers=config.crop_n_layers,
        min_mask_region_area=config.min_mask_region_area,
    )


def sam_masks(generator: SamAutomaticMaskGenerator, image: np.ndarray) -> Tensor:
    """[M, H, W] bool class-agnostic SAM masks of `image` [H, W, 3] uint8 (M may be 0)."""
    records = generator.generate(image)
    height, width = image.shape[:2]
    if not records:
        return torch.zeros(0, height, width, dtype=torch.bool)
    return torch.from_numpy(np.stack([r["segmentation"] for r in records])).bool()


def threshold_map(attention: Tensor, threshold: float) -> Tensor:
    """Binary mask (bool, same shape) of `attention` [..., H, W] in [0, 1]: value >= threshold.

    The comparison is inclusive, so a pixel exactly at the threshold (0.6 in edit3d.txt,
    Sec. 4.1) belongs to the mask.
    """
    return attention >= threshold


def mask_iou(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over union of binary masks `a` [..., H, W] and `b` [..., H, W] (broadcast).

    Returns [...] floats; two empty masks have IoU 0 (nothing to match).
    """
    a, b = a.bool(), b.bool()
    inter = (a & b).flatten(-2).sum(-1).float()  # [...]
    union = (a | b).flatten(-2).sum(-1).float()  # [...]
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))


def select_mask(
    sam_masks: Tensor, cam_mask: Tensor, mode: Selection = "best_iou", min_inside: float = 0.5
) -> Tensor:
    """The ADSS segmentation [H, W] (bool) from SAM masks and the thresholded attention map.

    Args:
        sam_masks: [M, H, W] binary SAM masks (M may be 0).
        cam_mask: [H, W] binary thresholded attention map of the query.
        mode: "best_iou" keeps the SAM mask with the largest IoU against `cam_mask`
            (edit3d.txt, Sec. 3.2; the first one on ties); "union" keeps the union of all
            SAM masks with at least `min_inside` of their area inside `cam_mask`, falling
            back to the best-IoU mask when none qualifies.
        min_inside: the fraction of a SAM mask's area that must lie inside `cam_mask` for
            "union".

    An empty `cam_mask` (the query attends nowhere) gives an empty mask, and no SAM masks
    give `cam_mask` itself: the attention map is then the best estimate there is.
    """
    if sam_masks.shape[-2:] != cam_mask.shape:
        raise ValueError(
            f"sam_masks {tuple(sam_masks.shape)} and cam_mask {tuple(cam_mask.shape)} "
            "must have the same height and width"
        )
    sam_masks, cam_mask = sam_masks.bool(), cam_mask.bool()
    if not cam_mask.any():
        return torch.zeros_like(cam_mask)
    if sam_masks.shape[0] == 0:
        return cam_mask.clone()
    best = sam_masks[mask_iou(sam_masks, cam_mask).argmax()]  # [H, W]
    if mode == "best_iou":
        return best
    if mode != "union":
        raise ValueError(f"mode: expected 'best_iou' or 'union', got {mode!r}")
    area = sam_masks.flatten(1).sum(1).float()  # [M]
    inside = (sam_masks & cam_mask).flatten(1).sum(1).float() / area.clamp(min=1)  # [M]
    chosen = (inside >= min_inside) & (area > 0)  # [M]
    if not chosen.any():
        return best
    return sam_masks[chosen].any(0)
