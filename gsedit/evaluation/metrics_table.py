"""metrics.json as a table: the column names of its rows and the rich table `gsedit eval` prints
(torch-free: the command line and the benchmarks format values without loading the metrics)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

METRICS_FILE = "metrics.json"  # in the session folder, written by gsedit.evaluation.evaluate

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
