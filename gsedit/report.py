"""The HTML session report: instructions, before/after per turn, masks, timings; opens from disk."""

from __future__ import annotations

import html
import json
from pathlib import Path

from gsedit.atomic import atomic_path
from gsedit.edit.session import Session, turn_dirname

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
h1{margin-bottom:0} .sub{color:#666;margin-top:.2em}
table{border-collapse:collapse;margin:1em 0} td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
.grid{display:grid;grid-template-columns:repeat(var(--cols),auto);gap:4px;align-items:start}
.grid img{width:100%;image-rendering:pixelated;border:1px solid #ddd}
.lab{font-size:.8em;color:#555} .warn{background:#fff3cd;border:1px solid #e0c060;padding:.6em}
"""


def _img(rel: str, alt: str) -> str:
    return f'<img src="{html.escape(rel)}" alt="{html.escape(alt)}" loading="lazy">'


def _turn_grid(session: Session, index: int, views: list[str]) -> str:
    before, after = turn_dirname(index - 1), turn_dirname(index)
    rows = ['<div class="grid" style="--cols:%d">' % (len(views) + 1), '<div class="lab">before</div>']
    rows += [_img(f"{before}/renders/{v}", f"turn {index - 1} view {v}") for v in views]
    rows.append('<div class="lab">mask</div>')
    rows += [_img(f"{after}/masks/{v}", f"turn {index} mask {v}") for v in views]
    rows.append('<div class="lab">after</div>')
    rows += [_img(f"{after}/renders/{v}", f"turn {index} view {v}") for v in views]
    rows.append("</div>")
    return "\n".join(rows)


def _metrics_table(session: Session) -> str:
    path = session.folder / "metrics.json"
    if not path.exists():
        return ""
    data = json.loads(path.read_text())
    rows = data.get("turns", [])
    if not rows:
        return ""
    keys = sorted({k for row in rows for k in row if k != "turn"})
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join(
        "<tr><td>%s</td>%s</tr>" % (row.get("turn"), "".join(f"<td>{_fmt(row.get(k))}</td>" for k in keys))
        for row in rows
    )
    return f"<h2>Metrics</h2><table><tr><th>turn</th>{head}</tr>{body}</table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape("" if value is None else str(value))


def write_report(session: Session, max_views: int = 6) -> Path:
    """Writes DIR/report.html (images by relative path, so the folder can be moved or zipped)."""
    renders = sorted(p.name for p in (session.turn_dir(0) / "renders").glob("*.png"))
    step = max(1, len(renders) // max_views)
    views = renders[::step][:max_views]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>gsedit session</title><style>{STYLE}</style></head><body>"]
    parts.append(f"<h1>gsedit session</h1><p class='sub'>{html.escape(str(session.folder.resolve()))}</p>")
    plugins = session.data.get("plugins", {})
    if plugins.get("editor") == "synthetic":
        parts.append(
            "<p class='warn'>Edited with the <b>synthetic</b> editor, an offline stand-in for "
            "InstructPix2Pix that exists to exercise the loop. These images and numbers show the "
            "mechanics, <b>not edit quality</b>.</p>"
        )
    parts.append(
        "<table><tr><th>method</th><td>%s</td></tr><tr><th>editor</th><td>%s</td></tr>"
        "<tr><th>input</th><td>%s</td></tr></table>"
        % (html.escape(session.data.get("method", "")), html.escape(str(plugins.get("editor"))),
           html.escape(session.data.get("input", "")))
    )
    parts.append("<h2>Turns</h2><table><tr><th>turn</th><th>instruction</th><th>status</th>"
                 "<th>seconds</th><th>edits</th><th>peak RSS MB</th><th>peak CUDA MB</th><th>scene</th></tr>")
    for record in session.records:
        done = session.is_finished(record.index)
        link = f"<a href='{turn_dirname(record.index)}/{session.data['scene_file']}'>ply</a>" if done else ""
        parts.append(
            f"<tr><td>{record.index}</td><td>{html.escape(record.instruction)}</td><td>{record.status}</td>"
            f"<td>{_fmt(record.seconds)}</td><td>{_fmt(record.edits)}</td><td>{_fmt(record.peak_rss_mb)}</td>"
            f"<td>{_fmt(record.peak_cuda_mb)}</td><td>{link}</td></tr>"
        )
    parts.append("</table>")
    parts.append(_metrics_table(session))
    for record in session.records:
        if session.is_finished(record.index):
            parts.append(f"<h3>Turn {record.index}: {html.escape(record.instruction)}</h3>")
            parts.append(_turn_grid(session, record.index, views))
    parts.append("</body></html>")
    path = session.folder / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts))
    return path
