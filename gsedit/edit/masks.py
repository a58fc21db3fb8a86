"""Per-view edit masks of a turn (1 = edit here), from the segmenter plug-ins of the edit loop."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.edit.config import EditConfig
from gsedit.edit.session import Turn
from gsedit.errors import GseditError
from gsedit.models.base import ImageEditor, ImageSegmenter
from gsedit.scene.base import Scene

RELEVANCE_CHANNEL = "relevance"
MASK_CHANNEL = "mask"
SELECTED_CHANNEL = "selected"


@dataclass
class SelectedRegions:
    """Selections of Gaussians a turn uses as its masks (the studio's "Use selection as")."""

    target: Tensor | None = None
    """[N] bool: edit only where these show (instead of the segmenter's target mask)."""
    keep: Tensor | None = None
    """[N] bool: never edit where these show (subtracted, like --keep)."""


def selection_masks(scene: Scene, cameras: Cameras, selected: Tensor, threshold: float = 0.5) -> Tensor:
    """[C, H, W] 1 where the `selected` [N] bool Gaussians make more than `threshold` of a pixel.

    The selection is rendered as an extra channel of a copy of the scene (its blending weights, as
    the labels segmenter renders a label), so the masks agree across views by construction.
    """
    if not hasattr(scene, "set_channel"):
        raise GseditError("A selection of Gaussians as a turn's target or keep region needs a 3DGS scene; "
                          "this session's scene is a NeRF.")
    marked = scene.clone()
    marked.set_channel(SELECTED_CHANNEL, selected.float())
    coverage = marked.render(cameras, channels=[SELECTED_CHANNEL]).channels[SELECTED_CHANNEL]
    return (coverage > threshold).float()


def find_label(names: dict[int, str], text: str, what: str) -> int:
    """The label whose name appears (as whole words) earliest in `text`."""
    lowered = text.lower()
    hits = []
    for label, name in names.items():
        match = re.search(r"\b" + re.escape(name.lower()) + r"\b", lowered)
        if match:
            hits.append((match.start(), -len(name), label))
    if not hits:
        raise GseditError(
            f"No object of the scene is named in {what} '{text}': the scene's labels are "
            f"{', '.join(sorted(names.values()))}. Name one of them, or pass --target."
        )
    return min(hits)[2]


def label_masks(scene: Scene, cameras: Cameras, query: str, what: str) -> Tensor:
    """[C, H, W] rendered coverage of the labelled object named in `query`."""
    names = scene.label_names()
    if not names:
        raise GseditError(
            "The labels segmenter needs a labelled scene (a 'label' property and a SCENE.labels.json "
            "sidecar); this scene has none. Use --segmenter relevance, adss or none."
        )
    label = find_label(names, query, what)
    return scene.render(cameras, channels=[f"label={label}"]).channels[f"label={label}"].clamp(0, 1)


def relevance_masks(
    scene: Scene,
    cameras: Cameras,
    prerenders: Tensor,
    instruction: str,
    editor: ImageEditor,
    config: EditConfig,
    generator: torch.Generator,
) -> Tensor:
    """[C, H, W] Watch Your Steps masks: per-view relevance maps lifted to a 3D field, rendered, thresholded.

    The field makes the masks agree across views; it is stored in the scene's `relevance` channel.
    """
    maps = torch.cat(
        [
            editor.relevance(prerenders[i : i + config.edit_batch], instruction, generator)
            for i in range(0, len(prerenders), config.edit_batch)
        ]
    )
    scene.lift_channel(RELEVANCE_CHANNEL, cameras, maps.to(scene.device))
    field = scene.render(cameras, channels=[RELEVANCE_CHANNEL]).channels[RELEVANCE_CHANNEL]
    return (field > config.relevance_threshold).float()


def turn_masks(
    scene: Scene,
    cameras: Cameras,
    prerenders: Tensor,
    turn: Turn,
    config: EditConfig,
    editor: ImageEditor,
    segmenter: ImageSegmenter | None,
    generator: torch.Generator,
    selected: SelectedRegions | None = None,
) -> Tensor:
    """[C, H, W] in [0, 1]: where this turn may edit each view (before feathering).

    `selected`: selections of Gaussians that replace the segmenter's target mask and/or add a keep region.
    """
    kind = config.segmenter
    selected = selected or SelectedRegions()
    if selected.target is not None:
        masks = selection_masks(scene, cameras, selected.target)
    elif kind == "none":
        masks = torch.ones(prerenders.shape[:3], device=prerenders.device)
    elif kind == "relevance":
        masks = relevance_masks(scene, cameras, prerenders, turn.instruction, editor, config, generator)
    elif kind == "labels":
        query = turn.target or turn.instruction
        masks = label_masks(scene, cameras, query, "--target" if turn.target else "the instruction")
    elif kind == "adss":
        if segmenter is None:
            raise GseditError("--segmenter adss needs the ADSS models (see --sam-checkpoint).")
        masks = segmenter.segment(prerenders, turn.target or turn.instruction)
    else:
        raise GseditError(f"Unknown segmenter '{kind}': use labels, adss, relevance or none.")
    if turn.keep:
        masks = masks.to(prerenders.device) * (1 - _keep_masks(scene, cameras, prerenders, turn.keep, kind, segmenter))
    if selected.keep is not None:
        masks = masks.to(prerenders.device) * (1 - selection_masks(scene, cameras, selected.keep).to(prerenders.device))
    if config.lift_masks and kind != "relevance" and selected.target is None:  # a selection's masks agree already
        masks = lifted_masks(scene, cameras, masks, threshold=0.5)
    return masks.to(prerenders.device).float()


def lifted_masks(scene: Scene, cameras: Cameras, masks: Tensor, threshold: float) -> Tensor:
    """[C, H, W] per-view masks made consistent: lifted to the scene's `mask` channel, rendered, thresholded."""
    scene.lift_channel(MASK_CHANNEL, cameras, masks.to(scene.device))
    rendered = scene.render(cameras, channels=[MASK_CHANNEL]).channels[MASK_CHANNEL]
    return (rendered > threshold).float()


def _keep_masks(scene, cameras, prerenders, query: str, kind: str, segmenter) -> Tensor:
    if kind == "adss" and segmenter is not None:
        return segmenter.segment(prerenders, query).to(prerenders.device)
    if scene.label_names():
        return label_masks(scene, cameras, query, "--keep").to(prerenders.device)
    raise GseditError(
        f"--keep '{query}' needs a segmenter that finds it: --segmenter adss, or a labelled scene."
    )
