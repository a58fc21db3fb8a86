"""`gsedit eval DIR`: the metrics of every finished turn of a session -> DIR/metrics.json and a table.

Turn k is scored against turn k-1 (Edit3D Table 1 scores the pairs (NeRF, turn 1), (turn 1, turn 2),
...), from the PNGs the session wrote, so evaluation renders nothing except the label masks mIoU
needs:

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
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gsedit.atomic import write_json
from gsedit.edit.session import SessionFolder, TurnRecord
from gsedit.errors import GseditError, InputFileError
from gsedit.metrics.image import LpipsNet, edit_psnr, lpips, psnr, ssim
from gsedit.metrics.masks import miou
from gsedit.render.images import read_image_folder, read_mask

if TYPE_CHECKING:
    from rich.table import Table

    from gsedit.cameras import Cameras
    from gsedit.metrics.clip import CLIPScorer
    from gsedit.scene.base import Scene

METRICS_FILE = "metrics.json"
REFINED = "refined"

#: the metric columns of a row, with the table headers (arrows: which way is better)
COLUMNS = {
    "psnr_unedited": "PSNR↑ unedited",
    "ssim_unedited": "SSIM↑ unedited",
    "lpips_unedited": "LPIPS↓ unedited",
    "edit_psnr": "Edit PSNR↑",
    "clip_text_image": "CLIP txt-img↑",
    "clip_direction": "CLIP dir↑",
    "clip_direction_consistency": "CLIP dir cons↑",
    "clip_image_sim": "CLIP img sim↑",
    "clip_frame_sim": "CLIP frame sim↑",
    "miou": "mIoU↑",
}
CLIP_COLUMNS = [k for k in COLUMNS if k.startswith("clip_")]
COST_COLUMNS = {"seconds": "s", "peak_rss_mb": "peak RSS MB", "peak_cuda_mb": "peak CUDA MB"}


@dataclass
class EvalConfig:
    """What `gsedit eval` measures and with which models."""

    clip_model: str = "openai/clip-vit-large-patch14"
    """CLIP for the text and direction scores: a transformers hub id or local folder, or "open_clip:..."."""
    clip_batch: int = 16
    """Images per CLIP forward pass."""
    lpips_net: LpipsNet = "alex"
    """LPIPS backbone."""
    lpips_weights: Path | None = None
    """The backbone's torchvision weights file; None looks in the torch hub cache."""
    base_caption: str = "a photo of a scene"
    """Caption of the input scene; the caption after turn k appends the instructions of turns 1..k."""
    captions: Path | None = None
    """JSON file with the caption of the scene after every turn: a list, or {"0": input, "1": ...}."""
    miou: bool = True
    """Render ground-truth label masks of labelled scenes for mIoU (the only rendering eval does)."""


# -- reading the session ------------------------------------------------------------------------
def read_images(folder: Path) -> tuple[list[str], Tensor]:
    """(file names, [V, H, W, 3] images in [0, 1]) of the PNGs in `folder`, sorted by name."""
    return read_image_folder(folder, "*.png")


def read_masks(folder: Path) -> tuple[list[str], Tensor]:
    """(file names, [V, H, W] masks in [0, 1]) of the mask PNGs in `folder` (colour: mean of RGB)."""
    return read_image_folder(folder, "*.png", read=read_mask)


def _same_views(
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
    """Caption of the scene after every turn, index 0 = input (see the module docstring)."""
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


def is_stand_in(session: SessionFolder) -> bool:
    """True when the session's editor is an offline stand-in (its numbers are not edit quality)."""
    from gsedit.models.synthetic import SyntheticEditor

    return session.data.get("plugins", {}).get("editor") == SyntheticEditor.name


# -- metrics of one row -------------------------------------------------------------------------
def _mean(values: Tensor) -> float | None:
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
        "psnr_unedited": _mean(
            psnr(
                after.reshape(1, views * h, w, 3),
                before.reshape(1, views * h, w, 3),
                unedited.reshape(1, views * h, w),
            )
        ),
        "ssim_unedited": _mean(ssim(after, before, unedited)),
        "lpips_unedited": None
        if lpips_net is None
        else _mean(lpips(after, before, unedited, net=lpips_net)),
        "edit_psnr": float(edit_psnr(before, after)),
    }


def clip_scores(
    scorer: CLIPScorer, before: Tensor, after: Tensor, caption_before: str, caption_after: str
) -> dict:
    """The CLIP columns of one row, each the mean over views (pairs of neighbouring views)."""
    scores = {
        "clip_text_image": _mean(scorer.text_image_similarity(after, caption_after)),
        "clip_direction": _mean(
            scorer.directional_similarity(before, after, caption_before, caption_after)
        ),
        "clip_direction_consistency": None,  # needs two views
        "clip_image_sim": _mean(scorer.image_similarity(before, after)),
        "clip_frame_sim": None,
    }
    if len(after) >= 2:
        neighbours = (before[:-1], after[:-1], before[1:], after[1:])
        scores["clip_direction_consistency"] = _mean(scorer.direction_consistency(*neighbours))
        scores["clip_frame_sim"] = _mean(scorer.frame_similarity(after))
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
        _same_views(previous, current, folder / "renders")
        _same_views(current, masks, folder / "masks")
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
    folder = session.folder / REFINED
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
    row = {"turn": REFINED, "instruction": record.instruction}
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


# -- the table ----------------------------------------------------------------------------------
def format_value(value: Any) -> str:
    """A metric or cost as table text: — for null, ∞ for metrics.json's "inf", 4 digits for floats."""
    if value is None:
        return "—"
    if value == "inf":
        return "∞"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(metrics: dict) -> Table:
    """A rich table of metrics.json: one row per turn, the refined row, the mean over turns."""
    from rich.table import Table

    keys = list(COLUMNS) + list(COST_COLUMNS)
    captions = []
    if metrics.get("editor_is_stand_in"):
        captions.append(
            f"editor '{metrics.get('editor')}' is an offline stand-in: these numbers measure the "
            "mechanics of the loop, NOT edit quality."
        )
    if metrics.get("unavailable"):
        missing = sorted({u["metric"] for u in metrics["unavailable"]})
        captions.append(
            f"— = not available ({', '.join(missing)}; see 'unavailable' in metrics.json)."
        )
    table = Table(title="gsedit eval", caption="\n".join(captions) or None, caption_justify="left")
    table.add_column("turn", no_wrap=True)
    for key in keys:
        table.add_column({**COLUMNS, **COST_COLUMNS}[key], justify="right")
    rows = list(metrics.get("turns", []))
    if metrics.get("refined"):
        rows.append(metrics["refined"])
    for row in rows:
        table.add_row(str(row["turn"]), *(format_value(row.get(k)) for k in keys))
    summary = metrics.get("summary", {})
    mean = summary.get("mean", {})
    table.add_section()
    table.add_row(
        "mean (s: total)",
        *(format_value(mean.get(k)) for k in COLUMNS),
        format_value(summary.get("total_seconds")),
        format_value(summary.get("max_peak_rss_mb")),
        "",
    )
    return table
