"""The HTML session report DIR/report.html, and the turntable videos it shows.

Everything is linked by relative path (images, videos, .ply files), so the report opens from disk
and keeps working when the session folder is moved or zipped. It is cheap to write: every turn run
through a `gsedit.Session` given `report_after_turn()` as its after_turn hook rewrites it (the
command line, batch, comparisons and the tools that run them do).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path

from gsedit.atomic import atomic_path
from gsedit.edit.refine import REFINED_DIR
from gsedit.edit.session import SessionFolder, TurnRecord, turn_dirname
from gsedit.errors import InputFileError
from gsedit.evaluation.metrics_table import METRICS_FILE
from gsedit.scene.base import Scene

REPORT_FILE = "report.html"
TURNTABLE = "renders/turntable.mp4"
BEFORE_AFTER = "renders/before_after.mp4"

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{margin-bottom:0} .sub{color:#666;margin-top:.2em}
table{border-collapse:collapse;margin:1em 0} td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:4.5em repeat(var(--cols),minmax(0,1fr));gap:4px;align-items:center}
.grid img{width:100%;image-rendering:pixelated;border:1px solid #ddd;display:block}
.lab{font-size:.8em;color:#555} .warn{background:#fff3cd;border:1px solid #e0c060;padding:.6em}
.videos{display:flex;gap:1em;flex-wrap:wrap} .videos figure{margin:0} video{width:280px;max-width:100%;image-rendering:pixelated;border:1px solid #ddd}
figcaption{font-size:.8em;color:#555} .note{color:#666;font-size:.9em}
"""

STAND_IN_WARNING = (
    "<p class='warn' id='stand-in'>Edited with the <b>synthetic</b> editor, an offline stand-in for "
    "InstructPix2Pix that exists to exercise the loop. These images and numbers show the "
    "mechanics, <b>not edit quality</b>.</p>"
)


def _esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return _esc(value)


def _img(rel: str, alt: str) -> str:
    return f'<img src="{_esc(rel)}" alt="{_esc(alt)}">'


def _video(session: SessionFolder, rel: str, caption: str) -> str:
    """A looping video figure, or "" when the file does not exist."""
    if not (session.folder / rel).is_file():
        return ""
    return (
        f"<figure><video src='{_esc(rel)}' autoplay loop muted playsinline controls></video>"
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


# -- data -------------------------------------------------------------------------------------
def read_metrics(session: SessionFolder) -> dict | None:
    """DIR/metrics.json ({"turns": [{"turn": k, name: value}], "unavailable": [...],
    "editor_is_stand_in": bool}) or None when it does not exist."""
    path = session.folder / METRICS_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(
            path, f"not valid JSON ({exc}); rerun `gsedit eval {session.folder}`."
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("turns", []), list):
        raise InputFileError(path, 'expected an object with a "turns" list; rerun `gsedit eval`.')
    return data


def shown_views(session: SessionFolder, max_views: int) -> list[str]:
    """File names of at most `max_views` training views, spread evenly over all of them."""
    renders = sorted(p.name for p in (session.turn_dir(0) / "renders").glob("*.png"))
    step = max(1, -(-len(renders) // max_views))
    return renders[::step][:max_views]


# -- sections ---------------------------------------------------------------------------------
def _header(session: SessionFolder, stand_in: bool) -> str:
    data, plugins = session.data, session.data.get("plugins", {})
    settings = data.get("settings", {})
    rows = [
        ("method", data.get("method")),
        ("editor", plugins.get("editor")),
        ("segmenter", settings.get("segmenter")),
        ("iterations per turn", settings.get("iters")),
        ("input", data.get("input")),
        ("cameras", data.get("cameras")),
        ("created", data.get("created")),
        ("versions", ", ".join(f"{k} {v}" for k, v in data.get("versions", {}).items())),
    ]
    table = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
    return (
        f"<h1>gsedit session</h1><p class='sub'>{_esc(session.folder.name)}</p>"
        + (STAND_IN_WARNING if stand_in else "")
        + f"<table id='settings'>{table}</table>"
    )


def _turns_table(session: SessionFolder) -> str:
    head = (
        "<tr><th>turn</th><th>instruction</th><th>target</th><th>keep</th><th>status</th>"
        "<th>seconds</th><th>edits</th><th>loss</th><th>peak RSS MB</th><th>peak CUDA MB</th>"
        "<th>scene</th></tr>"
    )
    scene_file = session.data["scene_file"]
    rows = [
        "<tr><td>0</td><td>(input)</td><td></td><td></td><td>input</td>"
        + "<td></td>" * 5
        + f"<td>{_scene_link(session, 0, scene_file)}</td></tr>"
    ]
    for r in session.records:
        numbers = "".join(
            f"<td class='num'>{_fmt(v)}</td>"
            for v in (r.seconds, r.edits, r.loss, r.peak_rss_mb, r.peak_cuda_mb)
        )
        rows.append(
            f"<tr><td>{r.index}</td><td>{_esc(r.instruction)}</td><td>{_esc(r.target)}</td>"
            f"<td>{_esc(r.keep)}</td><td>{_esc(r.status)}</td>{numbers}"
            f"<td>{_scene_link(session, r.index, scene_file)}</td></tr>"
        )
    return f"<h2>Turns</h2><table id='turns'>{head}{''.join(rows)}</table>"


def _scene_link(session: SessionFolder, index: int, scene_file: str) -> str:
    if not session.is_finished(index):
        return ""
    rel = f"{turn_dirname(index)}/{scene_file}"
    return f"<a href='{_esc(rel)}'>{_esc(scene_file)}</a>"


def _metrics_section(metrics: dict | None) -> str:
    """The rows of metrics.json (turns, then refined), columns in the file's order; null is "—"."""
    if metrics is None:
        return (
            "<p class='note'>No metrics yet: <code>gsedit eval DIR</code> writes metrics.json.</p>"
        )
    rows = [r for r in metrics.get("turns", []) if isinstance(r, dict)]
    if isinstance(metrics.get("refined"), dict):
        rows.append(metrics["refined"])
    keys = list(dict.fromkeys(k for row in rows for k in row if k not in ("turn", "instruction")))
    head = "".join(f"<th>{_esc(k)}</th>" for k in keys)
    body = "".join(
        f"<tr><td>{_esc(row.get('turn'))}</td><td>{_esc(row.get('instruction'))}</td>"
        + "".join(f"<td class='num'>{_metric(row.get(k))}</td>" for k in keys)
        + "</tr>"
        for row in rows
    )
    parts = [
        "<h2>Metrics</h2>",
        f"<table id='metrics'><tr><th>turn</th><th>instruction</th>{head}</tr>{body}</table>",
    ]
    if metrics.get("editor_is_stand_in"):
        parts.append(
            "<p class='note'>The editor was a stand-in: these numbers measure the "
            "mechanics of the loop, not edit quality.</p>"
        )
    unavailable = metrics.get("unavailable") or []
    if unavailable:
        items = "".join(f"<li>{_unavailable(u)}</li>" for u in unavailable)
        parts.append(f"<p class='note'>— = not available:</p><ul class='note'>{items}</ul>")
    return "".join(parts)


def _metric(value) -> str:
    if value is None:
        return "—"
    if value == "inf":
        return "∞"  # metrics.json writes an infinite PSNR (identical images) as "inf"
    return _fmt(value)


def _unavailable(entry) -> str:
    """'miou (turn 2): reason' from {"metric", "turn"?, "reason"}; other entries as text."""
    if not isinstance(entry, dict):
        return _esc(entry)
    turn = f" (turn {entry['turn']})" if "turn" in entry else ""
    return f"<b>{_esc(entry.get('metric'))}</b>{_esc(turn)}: {_esc(entry.get('reason'))}"


def _grid(rows: list[tuple[str, list[str]]], alt: str) -> str:
    """A labelled image grid: one row per (label, relative paths)."""
    cols = max(len(paths) for _, paths in rows)
    cells = [f'<div class="grid" style="--cols:{cols}">']
    for label, paths in rows:
        cells.append(f'<div class="lab">{_esc(label)}</div>')
        cells += [_img(p, f"{alt} {label} {Path(p).stem}") for p in paths]
    cells.append("</div>")
    return "\n".join(cells)


def _turn_section(session: SessionFolder, record: TurnRecord, views: list[str]) -> str:
    before, after = turn_dirname(record.index - 1), turn_dirname(record.index)
    rows = [("before", [f"{before}/renders/{v}" for v in views])]
    if (session.turn_dir(record.index) / "masks").is_dir():
        rows.append(("mask", [f"{after}/masks/{v}" for v in views]))
    rows.append(("after", [f"{after}/renders/{v}" for v in views]))
    videos = _video(session, f"{after}/{BEFORE_AFTER}", "before | after wipe") + _video(
        session, f"{after}/{TURNTABLE}", "turntable after the turn"
    )
    what = f"target: {_esc(record.target)} " if record.target else ""
    what += f"keep: {_esc(record.keep)}" if record.keep else ""
    return (
        f"<section id='turn-{record.index}'><h3>Turn {record.index}: {_esc(record.instruction)}</h3>"
        + (f"<p class='note'>{what}</p>" if what else "")
        + (f"<div class='videos'>{videos}</div>" if videos else "")
        + _grid(rows, f"turn {record.index}")
        + "</section>"
    )


def _refined_section(session: SessionFolder, views: list[str]) -> str:
    folder = session.folder / REFINED_DIR
    scene = folder / session.data["scene_file"]
    if not scene.is_file():
        return ""
    last = turn_dirname(session.last_finished())
    rows = [("last turn", [f"{last}/renders/{v}" for v in views])]
    if (folder / "renders").is_dir():
        rows.append(("refined", [f"{REFINED_DIR}/renders/{v}" for v in views]))
    link = f"{REFINED_DIR}/{session.data['scene_file']}"
    return (
        f"<section id='refined'><h3>Refined (super-resolution fine-tune)</h3>"
        f"<p><a href='{_esc(link)}'>{_esc(link)}</a></p>" + _grid(rows, "refined") + "</section>"
    )


def write_report(session: SessionFolder, max_views: int = 6) -> Path:
    """Writes DIR/report.html (images by relative path, so the folder can be moved or zipped)."""
    metrics = read_metrics(session)
    stand_in = session.data.get("plugins", {}).get("editor") == "synthetic" or bool(
        metrics and metrics.get("editor_is_stand_in")
    )
    views = shown_views(session, max_views)
    parts = [
        (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>gsedit session {_esc(session.folder.name)}</title>"
            f"<style>{STYLE}</style></head><body>"
        ),
        _header(session, stand_in),
        _turns_table(session),
        _metrics_section(metrics),
        "<h2>Before and after</h2>",
    ]
    intro = _video(session, f"{turn_dirname(0)}/{TURNTABLE}", "turntable of the input")
    if intro:
        parts.append(f"<div class='videos'>{intro}</div>")
    finished = [r for r in session.records if session.is_finished(r.index)]
    if not finished:
        parts.append("<p class='note'>No finished turn yet.</p>")
    parts += [_turn_section(session, r, views) for r in finished]
    parts.append(_refined_section(session, views))
    parts.append("</body></html>")
    path = session.folder / REPORT_FILE
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return path


def report_after_turn(turntable: bool = False, on_report: Callable[[Path], None] | None = None):
    """A `gsedit.Session` after_turn hook: after every finished turn its turntable videos (when
    `turntable`) and a fresh report.html; `on_report` gets the report's path (the console prints it).

    Example: `Session.create("out/", ..., after_turn=report_after_turn())`.
    """

    def after_turn(session, turn) -> None:
        path = update_report(session, turn.index, turntable)
        if on_report is not None:
            on_report(path)

    return after_turn


def update_report(session, index: int, turntable: bool = False) -> Path:
    """Turn `index`'s videos (when `turntable`) and a fresh report of the open gsedit.Session
    `session`; returns the report's path."""
    if turntable:
        from gsedit.scene.files import load_scene_file

        write_turn_videos(session.record, index, lambda path: load_scene_file(path, session.device))
    return write_report(session.record)


def write_turn_videos(
    session: SessionFolder,
    index: int,
    load_scene: Callable[[Path], Scene],
    frames: int = 48,
    size: int = 256,
) -> list[Path]:
    """Writes turn_k/renders/turntable.mp4 and, for k >= 1, turn_k/renders/before_after.mp4.

    Every video of a session circles the input scene's bounds around the up axis of the
    session's cameras, so the videos of successive turns line up frame for frame.
    """
    from gsedit.cameras import OrbitConfig
    from gsedit.render.video import write_before_after, write_turntable

    if not session.is_finished(index):
        raise InputFileError(
            session.turn_dir(index), f"turn {index} is not finished: no scene to film."
        )
    first = load_scene(session.scene_path(0))
    orbit = OrbitConfig(up=tuple(float(v) for v in _session_up(session, first)))
    bounds = first.bounds()
    after = first if index == 0 else load_scene(session.scene_path(index))
    folder = session.turn_dir(index)
    written = [write_turntable(after, bounds, folder / TURNTABLE, frames, size, orbit=orbit)]
    if index > 0:
        before = load_scene(session.scene_path(index - 1))
        written.append(
            write_before_after(
                before, after, bounds, folder / BEFORE_AFTER, frames, size, orbit=orbit
            )
        )
    return written


def _session_up(session: SessionFolder, scene: Scene):
    """[3] up axis from the session's cameras (-y when they cannot be read any more)."""
    from gsedit.viewer.camera import up_direction
    from gsedit.viewer.content import training_cameras

    return up_direction(training_cameras(session, scene))
