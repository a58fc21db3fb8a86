"""`gsedit eval DIR`: the metrics of every finished turn of a session -> DIR/metrics.json and a table.

Turn k is scored against turn k-1 (Edit3D Table 1 scores the pairs (NeRF, turn 1), (turn 1, turn 2),
...), from the PNGs the session wrote, so evaluation renders nothing except the label masks mIoU
needs. This module walks the session and writes the file; what each metric of a row measures, and
the captions the CLIP scores use, is in gsedit.evaluation.turn_metrics, the table in metrics_table.

`DIR/refined/` (from `gsedit refine`), when it was made from the last finished turn, gets a row of
its own: the last turn's metrics recomputed with the refined renders in place of the turn's
(resized to the turn's resolution when refine kept a higher one), plus the sharpness refine
recorded. It has no masks of its own, so its mIoU is null.

Nothing is made up: a metric whose model is missing (CLIP, the LPIPS backbone) or that does not
apply is null, and the top-level "unavailable" list says why. A view whose unedited region is
empty is left out of that view's average; identical images give an infinite PSNR, written "inf".
When the session's editor was an offline stand-in, "editor_is_stand_in" is true and the table's
caption says the numbers measure mechanics, not edit quality.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gsedit.atomic import write_json
from gsedit.edit.refine import REFINED_DIR
from gsedit.edit.session import SessionFolder, TurnRecord
from gsedit.errors import GseditError, InputFileError
from gsedit.evaluation.evaluate_config import EvalConfig
from gsedit.evaluation.metrics_table import CLIP_COLUMNS, COLUMNS, COST_COLUMNS, METRICS_FILE
from gsedit.evaluation.turn_metrics import (
    captions_for,
    clip_scores,
    ground_truth_masks,
    preservation,
    read_images,
    read_masks,
    same_views,
)
from gsedit.metrics.masks import miou

if TYPE_CHECKING:
    from gsedit.cameras import Cameras
    from gsedit.metrics.clip import CLIPScorer
    from gsedit.scene.base import Scene

def is_stand_in(session: SessionFolder) -> bool:
    """True when the session's editor is an offline stand-in (its numbers are not edit quality)."""
    from gsedit.models.synthetic import SyntheticEditor

    return session.data.get("plugins", {}).get("editor") == SyntheticEditor.name


# -- the session --------------------------------------------------------------------------------
@dataclass
class _Tools:
    """Models and scene access shared by the rows; `unavailable` collects why a metric is null."""

    device: torch.device
    load_scene: Callable[[Path], Scene]
    cameras_for: Callable[[Scene], Cameras]
    clip: CLIPScorer | None = None
    lpips_net: Any = None  # torchmetrics' LPIPS module
    unavailable: list[dict] = field(default_factory=list)


def _load_tools(config: EvalConfig, device, load_scene, cameras_for) -> _Tools:
    from gsedit.metrics.clip import CLIPScorer
    from gsedit.metrics.image import load_lpips

    tools = _Tools(torch.device(device), load_scene, cameras_for)
    try:
        tools.clip = CLIPScorer.from_pretrained(config.clip_model, device, config.clip_batch)
    except GseditError as exc:  # ModelMissingError, or open_clip not installed
        tools.unavailable.append({"metric": "clip", "columns": CLIP_COLUMNS, "reason": str(exc)})
    try:
        tools.lpips_net = load_lpips(config.lpips_net, config.lpips_weights, tools.device)
    except GseditError as exc:  # ModelMissingError, or torchmetrics not installed
        tools.unavailable.append(
            {"metric": "lpips", "columns": ["lpips_unedited"], "reason": str(exc)}
        )
    return tools


def _row(
    tools: _Tools, before: Tensor, after: Tensor, masks: Tensor, captions: tuple[str, str]
) -> dict:
    before, after, masks = before.to(tools.device), after.to(tools.device), masks.to(tools.device)
    row = preservation(before, after, masks, tools.lpips_net)
    if tools.clip is None:
        row.update({k: None for k in CLIP_COLUMNS})
    else:
        row.update(clip_scores(tools.clip, before, after, *captions))
    return row


def _miou(tools: _Tools, session: SessionFolder, record: TurnRecord, masks: Tensor) -> float | None:
    """mIoU of a turn's masks, or None with the reason added to `tools.unavailable`."""

    def unavailable(reason: str) -> None:
        tools.unavailable.append(
            {"metric": "miou", "turn": record.index, "columns": ["miou"], "reason": reason}
        )

    scene = tools.load_scene(session.scene_path(record.index - 1))
    if not scene.label_names():
        unavailable("the scene has no labels (a 'label' property and a SCENE.labels.json sidecar).")
        return None
    try:
        gt = ground_truth_masks(scene, tools.cameras_for(scene), record).cpu()
    except GseditError as exc:
        unavailable(str(exc))
        return None
    if gt.shape != masks.shape:
        unavailable(
            f"the masks are {tuple(masks.shape[1:])} but the cameras render {tuple(gt.shape[1:])}."
        )
        return None
    return float(miou(masks, gt))


def _costs(entry: dict) -> dict:
    return {k: entry.get(k) for k in COST_COLUMNS}


def _turn_rows(
    tools: _Tools,
    session: SessionFolder,
    records: list[TurnRecord],
    captions: list[str],
    config: EvalConfig,
) -> tuple[list[dict], dict]:
    """The rows of the finished turns, and the images of the last one (for the refined row)."""
    rows, last = [], None
    previous = read_images(session.turn_dir(0) / "renders")
    for record in records:
        folder = session.turn_dir(record.index)
        current = read_images(folder / "renders")
        masks = read_masks(folder / "masks")
        same_views(previous, current, folder / "renders")
        same_views(current, masks, folder / "masks")
        row = {"turn": record.index, "instruction": record.instruction}
        row.update(
            _row(
                tools,
                previous[1],
                current[1],
                masks[1],
                (captions[record.index - 1], captions[record.index]),
            )
        )
        row["miou"] = _miou(tools, session, record, masks[1]) if config.miou else None
        row.update(_costs(dataclasses.asdict(record)))
        rows.append(row)
        last = {"before": previous, "masks": masks[1], "record": record}
        previous = current
    return rows, last


def _refined_row(tools: _Tools, session: SessionFolder, last: dict, captions: list[str]) -> dict | None:
    """The refined row (see the module docstring); `last` holds the last turn's inputs."""
    folder = session.folder / REFINED_DIR
    entry = session.data.get("refine")
    if not folder.is_dir() or entry is None:
        return None
    record = last["record"]
    if entry.get("turn") != record.index:  # turns were undone or added since
        reason = (
            f"refined/ was made from turn {entry.get('turn')}, but the last finished turn is "
            f"{record.index}: run `gsedit refine` again."
        )
        tools.unavailable.append({"metric": "refined", "columns": list(COLUMNS), "reason": reason})
        return None
    names, after = read_images(folder / "renders")
    before_names, before = last["before"]
    if names != before_names:
        raise InputFileError(
            folder / "renders", f"views {names} do not match the turns' {before_names}."
        )
    if after.shape != before.shape:  # refine kept a higher resolution: compare at the turns' one
        after = F.interpolate(
            after.permute(0, 3, 1, 2), size=before.shape[1:3], mode="area"
        ).permute(0, 2, 3, 1)
    row = {"turn": REFINED_DIR, "instruction": record.instruction}
    row.update(
        _row(
            tools,
            before,
            after,
            last["masks"],
            (captions[record.index - 1], captions[record.index]),
        )
    )
    row["miou"] = None
    row.update(_costs(entry))
    sharpness = entry.get("sharpness", {})
    row["sharpness_before"] = sharpness.get("before")
    row["sharpness_after"] = sharpness.get("after")
    return row


def _summary(rows: list[dict]) -> dict:
    """Mean of every metric over the turns (Edit3D averages its directional score over turns), total time."""
    mean = {}
    for key in COLUMNS:
        values = [row[key] for row in rows if row.get(key) is not None]
        mean[key] = sum(values) / len(values) if values else None
    seconds = [row["seconds"] for row in rows if row.get("seconds") is not None]
    peaks = [row["peak_rss_mb"] for row in rows if row.get("peak_rss_mb") is not None]
    return {
        "mean": mean,
        "total_seconds": sum(seconds) if seconds else None,
        "max_peak_rss_mb": max(peaks) if peaks else None,
    }


def _json_value(value: Any) -> Any:
    """JSON has no NaN or infinity: NaN (no pixels) -> null, +-inf (identical images) -> "inf" / "-inf"."""
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value


def evaluate_session(
    session_folder: Path,
    config: EvalConfig,
    device: str | torch.device = "cpu",
    *,
    load_scene: Callable[[Path], Scene] | None = None,
    cameras_for: Callable[[Scene], Cameras] | None = None,
) -> dict:
    """Scores every finished turn (and refined/) of a session; writes DIR/metrics.json and returns it.

    Args:
        session_folder: the session (`gsedit edit --out DIR`).
        config: models and captions.
        device: where CLIP and LPIPS run.
        load_scene: reads a turn's scene for the mIoU label masks (default: the .ply loader on `device`).
        cameras_for: the session's cameras at training resolution for a scene (default: from session.json).

    Returns:
        the content of metrics.json (see the module docstring).
    """
    session = SessionFolder.open(session_folder)
    last = session.last_finished()
    if last == 0:
        raise GseditError(
            f"{session.folder} has no finished turn to evaluate: run `gsedit edit` first."
        )
    records = session.records[:last]
    captions = captions_for(records, config)
    if load_scene is None:
        from gsedit.scene.files import load_scene_file

        load_scene = lambda path: load_scene_file(path, device)
    if cameras_for is None:
        from gsedit.edit.session import session_cameras

        cameras_for = lambda scene: session_cameras(session, scene)
    tools = _load_tools(config, device, load_scene, cameras_for)
    rows, last_images = _turn_rows(tools, session, records, captions, config)
    metrics = {
        "format": 1,
        "session": str(session.folder.resolve()),
        "editor": session.data.get("plugins", {}).get("editor"),
        "editor_is_stand_in": is_stand_in(session),
        "method": session.data.get("method"),
        "clip_model": config.clip_model,
        "lpips_net": config.lpips_net,
        "captions": {str(k): c for k, c in enumerate(captions)},
        "turns": rows,
        "refined": _refined_row(tools, session, last_images, captions),
        "summary": _summary(rows),
        "unavailable": tools.unavailable,
    }
    metrics = _json_value(metrics)
    write_json(session.folder / METRICS_FILE, metrics)
    return metrics
