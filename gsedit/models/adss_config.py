"""Settings of the ADSS segmenter (SAM masks chosen by BLIP Grad-CAM) and of SAM's automatic mask
generator; imports no torch (command options name them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

SamModelType = Literal["vit_h", "vit_l", "vit_b"]
Selection = Literal["best_iou", "union"]
ItmStartToken = Literal["enc", "cls"]


@dataclass
class SamMaskConfig:
    """Settings of segment-anything's `SamAutomaticMaskGenerator` (its defaults suit ViT-H)."""

    points_per_side: int = 32
    """Point prompts per image side; SAM is prompted with points_per_side² points."""
    points_per_batch: int = 64
    """Point prompts run at once; lower it when GPU memory is short."""
    pred_iou_thresh: float = 0.88
    """Drop masks whose predicted quality (IoU) is below this, in [0, 1]."""
    stability_score_thresh: float = 0.95
    """Drop masks whose stability under a shifted binarisation cutoff is below this."""
    box_nms_thresh: float = 0.7
    """Box IoU above which duplicate masks are suppressed."""
    crop_n_layers: int = 0
    """If > 0, also run on 2**i crops per layer i: finer masks of small parts, slower."""
    min_mask_region_area: int = 0
    """If > 0, remove islands and holes smaller than this many pixels (needs opencv-python)."""


@dataclass
class ADSSConfig:
    """Settings of the ADSS segmenter; the defaults are the paper's models and threshold.

    Selection: "best_iou" (the default) is the paper's rule and the one its Table 3 scores;
    a single SAM mask has clean object edges and no stray fragments. "union" joins every SAM
    mask mostly inside the thresholded map, for regions SAM splits into several masks (two
    trouser legs), at the risk of adding small background masks inside a loose attention blob.
    """

    sam_checkpoint: Path | None = None
    """SAM checkpoint: a .pth in segment-anything's format, from Meta's download page."""
    sam_model_type: SamModelType = "vit_h"
    """SAM backbone of the checkpoint; the paper uses vit_h (MobileSAM fell short)."""
    sam_masks: SamMaskConfig = field(default_factory=SamMaskConfig)
    """SAM automatic-mask-generator settings."""
    blip_caption_model: str = "Salesforce/blip-image-captioning-large"
    """BLIP captioning model: local folder or Hugging Face id (BLIP-large in the paper)."""
    blip_itm_model: str = "Salesforce/blip-itm-large-coco"
    """BLIP image-text-matching model whose Grad-CAM locates the query: folder or hub id."""
    threshold: float = 0.6
    """Attention maps in [0, 1] become masks where they are >= this (0.6 in the paper)."""
    use_caption: bool = True
    """Prepend the image caption to the query (without it the paper's mIoU drops 0.94 -> 0.10)."""
    caption: str | None = None
    """Fixed caption for every image instead of BLIP's (hand-refined captions help); no captioner."""
    caption_max_new_tokens: int = 30
    """Longest BLIP caption, in tokens (LAVIS captions up to 30)."""
    caption_num_beams: int = 3
    """Beam width of BLIP captioning (LAVIS uses 3)."""
    gradcam_layer: int = 7
    """ITM text layer (0-based, not the last) whose cross-attention is explained; LAVIS uses 7."""
    itm_start_token: ItmStartToken = "enc"
    """First ITM token: BLIP's [ENC], which the ITM head was trained on, or transformers' [CLS]."""
    selection: Selection = "best_iou"
    """How SAM masks become the segmentation: the best-IoU mask or a union (see above)."""
    union_min_inside: float = 0.5
    """For selection "union": fraction of a SAM mask's area that must lie inside the map."""
