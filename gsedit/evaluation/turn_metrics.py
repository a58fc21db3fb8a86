"""The metrics of one turn: turn k's renders and masks against turn k-1's (Edit3D Table 1's pairs),
each a mean over views unless said otherwise:

- psnr/ssim/lpips_unedited: turn k's renders against turn k-1's over the region the turn was not
  meant to change, weighted by 1 - turn_k/masks (the feathered edge counts partly); preservation.
  SSIM and LPIPS are means over views; the PSNR is that of the squared error pooled over the
  unedited pixels of all views, so one view kept bit-exact (common: fusion keeps the outside) does
  not make the turn's value infinite and hide the drift of the others.
- edit_psnr: Watch Your Steps' Edit PSNR (Sec. 5, Metrics), whole views, mean over views.
- clip_text_image, clip_image_sim, clip_frame_sim: WYS "Txt-Img Sim.", "Image Sim.", "Frame Sim.".
- clip_direction: CLIP directional similarity (IN2N / Edit3D Sec. 4.3) between caption k-1 and k.
- clip_direction_consistency: IN2N's direction consistency (WYS "Edit Sim.") of views i and i+1
  in camera order.
- miou: the turn's masks against the rendered ground-truth label of the object the turn names
  (its --target, else its instruction; minus its --keep object), on the scene the masks were made
  on (turn k-1). With `--segmenter labels` the masks are that ground truth by construction, so
  mIoU then only checks the mechanics (feathering, PNG round trip).
- seconds, peak_rss_mb, peak_cuda_mb: copied from session.json.

Captions (for the CLIP scores): caption 0 describes the input scene and caption k the scene after
turn k. Unless a captions file is given they are `base_caption` followed by the instructions so
far, e.g. "a photo of a scene, make the sphere red, make the cube yellow"; metrics.json lists the
ones used. Text-image similarity uses caption k.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gsedit.edit.session import TurnRecord
from gsedit.errors import InputFileError
from gsedit.evaluation.evaluate_config import EvalConfig
from gsedit.metrics.image import edit_psnr, lpips, psnr, ssim
from gsedit.render.images import read_image_folder, read_mask

if TYPE_CHECKING:
    from gsedit.cameras import Cameras
    from gsedit.metrics.clip import CLIPScorer
    from gsedit.scene.base import Scene


# -- reading the session ------------------------------------------------------------------------
def read_images(folder: Path) -> tuple[list[str], Tensor]:
    """(file names, [V, H, W, 3] images in [0, 1]) of the PNGs in `folder`, sorted by name."""
    return read_image_folder(folder, "*.png")


def read_masks(folder: Path) -> tuple[list[str], Tensor]:
    """(file names, [V, H, W] masks in [0, 1]) of the mask PNGs in `folder` (colour: mean of RGB)."""
    return read_image_folder(folder, "*.png", read=read_mask)


def same_views(
    expected: tuple[list[str], Tensor], found: tuple[list[str], Tensor], folder: Path
) -> None:
    """The images or masks `found` in `folder` cover the views of `expected`, at the same size."""
    (names_a, a), (names_b, b) = expected, found
    if names_a != names_b or a.shape[:3] != b.shape[:3]:
        raise InputFileError(
            folder,
            f"{len(names_b)} images of {tuple(b.shape[1:3])} do not match the previous turn's "
            f"{len(names_a)} of {tuple(a.shape[1:3])} (names and sizes must agree).",
        )


def captions_for(records: list[TurnRecord], config: EvalConfig) -> list[str]:
    """Caption of the scene after every turn, index 0 = input (see the module docstring: caption 0 is the input's)."""
    count = len(records) + 1
    if config.captions is None:
        instructions = [r.instruction for r in records]
        return [", ".join([config.base_caption, *instructions[:k]]) for k in range(count)]
    path = Path(config.captions)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"not a readable JSON captions file ({exc}).") from None
    if isinstance(data, dict):
        data = [data.get(str(k)) for k in range(count)]
    if (
        not isinstance(data, list)
        or len(data) < count
        or not all(isinstance(c, str) for c in data[:count])
    ):
        raise InputFileError(
            path,
            f"expected {count} captions (the input scene, then after each of the {count - 1} turns) "
            'as a JSON list of strings or {"0": ..., "1": ...}.',
        )
    return data[:count]


# -- metrics of one row -------------------------------------------------------------------------
def mean_of(values: Tensor) -> float | None:
    """Mean of the finite-or-infinite entries of `values`, NaN ignored; None when all are NaN."""
    value = float(torch.nanmean(values.double()))
    return None if math.isnan(value) else value


def preservation(
    before: Tensor, after: Tensor, masks: Tensor, lpips_net
) -> dict[str, float | None]:
    """Image scores of `after` against `before` ([V, H, W, 3]) outside the turn `masks` [V, H, W]."""
    unedited = 1 - masks
    views, h, w = masks.shape
    return {  # views stacked into one tall image: one PSNR of the pooled squared error
        "psnr_unedited": mean_of(
            psnr(
                after.reshape(1, views * h, w, 3),
                before.reshape(1, views * h, w, 3),
                unedited.reshape(1, views * h, w),
            )
        ),
        "ssim_unedited": mean_of(ssim(after, before, unedited)),
        "lpips_unedited": None
        if lpips_net is None
        else mean_of(lpips(after, before, unedited, net=lpips_net)),
        "edit_psnr": float(edit_psnr(before, after)),
    }


def clip_scores(
    scorer: CLIPScorer, before: Tensor, after: Tensor, caption_before: str, caption_after: str
) -> dict:
    """The CLIP columns of one row, each the mean over views (pairs of neighbouring views)."""
    scores = {
        "clip_text_image": mean_of(scorer.text_image_similarity(after, caption_after)),
        "clip_direction": mean_of(
            scorer.directional_similarity(before, after, caption_before, caption_after)
        ),
        "clip_direction_consistency": None,  # needs two views
        "clip_image_sim": mean_of(scorer.image_similarity(before, after)),
        "clip_frame_sim": None,
    }
    if len(after) >= 2:
        neighbours = (before[:-1], after[:-1], before[1:], after[1:])
        scores["clip_direction_consistency"] = mean_of(scorer.direction_consistency(*neighbours))
        scores["clip_frame_sim"] = mean_of(scorer.frame_similarity(after))
    return scores


def ground_truth_masks(scene: Scene, cameras: Cameras, record: TurnRecord) -> Tensor:
    """[C, H, W] rendered coverage of the labelled object turn `record` names, minus its keep object.

    Raises:
        GseditError: the scene has no labels, or no label is named.
    """
    from gsedit.edit.masks import label_masks

    target_what = "--target" if record.target else "the instruction"
    gt = label_masks(scene, cameras, record.target or record.instruction, target_what)
    if record.keep:
        gt = gt * (1 - label_masks(scene, cameras, record.keep, "--keep"))
    return gt
