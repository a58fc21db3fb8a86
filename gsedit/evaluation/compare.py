"""Comparisons of backends (`gsedit compare`): the same turns, editor and preset on 3DGS and nerfacto.

    DIR/compare.json           the plan (scene, cameras, backends, turns), refits and results
    DIR/compare.html           tables and grids; opens from disk
    DIR/refit/BACKEND/scene.*  the scene refitted in a backend it was not given in
    DIR/BACKEND/               an ordinary edit session per backend (gsedit edit --out DIR/BACKEND)
    DIR/grids/turn_NN.png      per turn: rows BACKEND before / after, columns a few views

Both backends start from the same scene: the one the scene file is in edits it as is, the others
are fitted to its renders of the session's cameras (labels carried over, see scene/convert.py), and
the refit's PSNR against those renders says how close the starting points are. Each backend's
session is resumable on its own; `--resume` reruns whatever is unfinished and appends new turns.
"""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

import numpy as np

from gsedit.atomic import write_json
from gsedit.edit.lock import FolderLock
from gsedit.edit.session import SESSION_FILE, SessionFolder, Turn, continue_plan
from gsedit.errors import GseditError
from gsedit.evaluation.metrics_table import COLUMNS, format_value

COMPARE_FILE = "compare.json"
BACKENDS = ("3dgs", "nerfacto")
SCENE_FILES = {"3dgs": "scene.ply", "nerfacto": "scene.ckpt"}
#: metrics of `gsedit eval` shown per turn (all of them stay in each session's metrics.json)
METRIC_COLUMNS = {
    k: COLUMNS[k] for k in ("psnr_unedited", "ssim_unedited", "edit_psnr", "miou", "clip_text_image", "clip_direction")
}
COST_COLUMNS = {
    "seconds": "s/turn",
    "seconds_per_iter": "s/iter",
    "peak_rss_mb": "peak RSS MB",
    "peak_cuda_mb": "peak CUDA MB",
}


def parse_backends(text: str) -> list[str]:
    """'3dgs,nerfacto' -> ['3dgs', 'nerfacto']; unknown or repeated names are an error."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names or len(set(names)) != len(names):
        raise GseditError(
            f"--backends {text!r}: give distinct names from {', '.join(BACKENDS)}, comma-separated."
        )
    if "nerfacto" in names:
        import gsedit.scene.nerfacto  # noqa: F401  (says how to install it, before any work is done)
    return names


# -- the plan -------------------------------------------------------------------------------------
def _turn_dicts(turns: list[Turn]) -> list[dict]:
    return [{"instruction": t.instruction, "target": t.target, "keep": t.keep} for t in turns]


def plan_turns(plan: dict) -> list[Turn]:
    return [Turn(t["instruction"], t["target"], t["keep"]) for t in plan["turns"]]


def open_plan(args, out: Path, lock: FolderLock) -> dict:
    """compare.json: created from the arguments (`args`: the options of `gsedit compare`, as
    CompareOptions and the Compare command hold them), or (`args.resume`) read back with the turns it lacks
    appended by the --resume rule (`continue_plan`); takes `lock` before the first write."""
    from gsedit.edit.plugins import plugin_settings
    from gsedit.edit.start import make_turns
    from gsedit.scene.splat_formats import parse_formats

    path = out / COMPARE_FILE
    turns = make_turns(args.turn, args.target, args.keep)
    if args.resume and (path.is_file() or args.scene is None):
        if not path.is_file():
            raise GseditError(f"{out} holds no comparison ({COMPARE_FILE}) to resume: run without --resume.")
        lock.acquire()
        plan = _read_plan(path)
        parse_backends(",".join(plan["backends"]))  # a hand-edited plan, or nerfacto since uninstalled
        new, start = continue_plan(plan_turns(plan), plan.get("turn_lists") or [1], turns,
                                   f"gsedit compare --out {out}")
        if new:
            plan["turns"] += _turn_dicts(new)
            plan["turn_lists"] = sorted({*(plan.get("turn_lists") or [1]), start})
    else:
        if path.exists():
            raise GseditError(
                f"{out} already holds a comparison: continue it with `gsedit compare --out {out} --resume` "
                "(add --turn to append turns), or choose another --out."
            )
        if args.scene is None:
            raise GseditError("gsedit compare needs a scene and --cameras (or --resume with --out DIR).")
        if args.iteration is not None:
            raise GseditError("gsedit compare edits a trainer folder's last step; for another one, first "
                              "`gsedit convert FOLDER --iteration N --out scene.ply`.")
        if not turns:
            raise GseditError("gsedit compare needs at least one --turn 'instruction'.")
        args.settings.validate()
        args.refit.validate()
        backends = parse_backends(args.backends)
        parse_formats(args.export)
        cameras, spz_axes = checked_cameras(Path(args.scene), args.cameras, out, lock, args.dataparser_transforms,
                                            args.frame_check, args.spz_axes)
        plan = {
            "format": 1,
            "scene": str(Path(args.scene).resolve()),
            "cameras": cameras,
            "spz_axes": spz_axes,
            "backends": backends,
            "max_side": args.settings.max_side,
            "method": args.method,
            "editor": args.editor,
            "settings": dataclasses.asdict(args.settings),
            "plugins": plugin_settings(args.editor, args.ip2p, args.adss),
            "refit": dataclasses.asdict(args.refit),
            "turns": _turn_dicts(turns),
            "turn_lists": [1],
            "refits": {},
        }
        lock.acquire()
        if path.exists():
            raise GseditError(f"{out} already holds a comparison: another run created it meanwhile.")
    write_json(path, plan)
    return plan


def checked_cameras(scene_file: Path, spec: str | None, out: Path, lock: FolderLock,
                    dataparser_transforms: Path | None = None, frame_check: bool = True,
                    spz_axes: str = "auto") -> tuple[str, str | None]:
    """The cameras spec every backend's session uses, checked before anything is written, and the
    axes an .spz scene is read in (None for other files), so that every backend reads it alike.

    Loads the scene and its cameras (`spec`, by default a trainer folder's own; mapped through
    `dataparser_transforms` when given), and refuses them when they do not see each other (a broken
    input fails here, not after the folder exists). An orbit is made once, around the input scene,
    and written to DIR/cameras.json: rebuilt around a refit's bounds (a 3DGS refit spreads Gaussians
    wider than the content) it would circle other views than the ones the refit was fitted on.
    Mapped cameras are kept as DIR/transforms.json, so that refits and sessions share them.
    `frame_check` False skips the refusal (--no-frame-check).
    """
    from gsedit.cameras.inria import write_inria_cameras
    from gsedit.edit.start import absolute_cameras_spec, mapped_cameras_file
    from gsedit.scene.files import (
        check_scene_in_view,
        choose_spz_axes,
        load_scene_file,
        orient_spz,
        scene_cameras,
    )

    scene = load_scene_file(scene_file, "cpu")
    chosen = scene_cameras(scene_file, spec, dataparser_transforms, scene.bounds())
    axes = choose_spz_axes(scene, chosen, scene_file, spz_axes)[0]  # the edit that follows says which
    scene = orient_spz(scene, None, scene_file, axes or "rub")[0]
    if frame_check:
        check_scene_in_view(scene, chosen, scene_file)
    if chosen.spec is not None and not chosen.spec.startswith("orbit:"):
        return absolute_cameras_spec(chosen.spec), axes
    lock.acquire()
    if chosen.spec is None:
        return mapped_cameras_file(chosen.cameras, out), axes
    path = out / "cameras.json"
    write_inria_cameras(chosen.cameras, path)
    return str(path.resolve()), axes


def _read_plan(path: Path) -> dict:
    import json

    from gsedit.errors import InputFileError

    try:
        plan = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(path, f"not a readable comparison file ({exc}).") from exc
    required = ("scene", "cameras", "backends", "max_side", "method", "editor", "settings", "plugins", "refit",
                "turns", "refits")
    missing = [k for k in required if k not in plan]
    missing += [f"plugins.{k}" for k in ("ip2p", "adss") if k not in plan.get("plugins", {})]
    if missing:
        raise InputFileError(path, f"not a gsedit comparison file: it lacks {', '.join(missing)}.")
    return plan


# -- the scene in every backend -------------------------------------------------------------------
def scene_for(backend: str, plan: dict, out: Path, device, refit_config, fit=None) -> Path:
    """The scene file `backend` edits: the input itself, or its refit (made once, then reused).

    Args:
        fit: makes the refit, with gsedit.scene.refit.refit's arguments but its on_* callbacks
            (default: that function, silent); its step cap scales with the plan's --iters.
    """
    from gsedit.scene.files import scene_backend

    if scene_backend(plan["scene"]) == backend:
        return Path(plan["scene"])
    path = out / "refit" / backend / SCENE_FILES[backend]
    if path.is_file() and backend in plan["refits"]:
        return path
    from gsedit.scene.refit import refit

    plan["refits"][backend] = (fit or refit)(plan["scene"], plan["cameras"], plan["max_side"], backend, path, device,
                                             refit_config, session_iters=plan["settings"]["iters"],
                                             spz_axes=plan.get("spz_axes") or "rub")
    write_json(out / COMPARE_FILE, plan)
    return path


# -- the edits ------------------------------------------------------------------------------------
def planned_options(options, plan: dict):
    """`options` (SessionOptions) with the plan's method, editor, settings and cameras, for every
    backend's session (so that a backend session started on --resume matches the others)."""
    from gsedit.edit.config import EditConfig
    from gsedit.edit.plugins import config_from_dict
    from gsedit.models.adss_config import ADSSConfig
    from gsedit.models.ip2p.config import IP2PConfig

    return dataclasses.replace(
        options,
        cameras=plan["cameras"],
        spz_axes=plan.get("spz_axes") or options.spz_axes,  # as the plan's refits read it
        dataparser_transforms=None,  # the plan's cameras are in the scene's frame already
        method=plan["method"],
        editor=plan["editor"],
        settings=config_from_dict(EditConfig, plan["settings"]),
        ip2p=config_from_dict(IP2PConfig, plan["plugins"]["ip2p"]),
        adss=config_from_dict(ADSSConfig, plan["plugins"]["adss"]),
    )


def edit_backend(options, scene_file: Path, folder: Path, turns: list[Turn], device, run) -> None:
    """Creates or continues the session in `folder` until it has finished every turn.

    Args:
        options: the plan's SessionOptions (`planned_options`).
        run: runs an open Session's planned turns (the console's `run_session`, or a script's own);
            the session comes with a report_after_turn hook, so every backend has its report.html.
    """
    from gsedit.edit.api import Session
    from gsedit.evaluation.report import report_after_turn
    from gsedit.scene.files import scene_backend

    # --export writes splat files: the 3DGS session's
    options = dataclasses.replace(options, export=options.export if scene_backend(scene_file) == "3dgs" else "")
    if not (folder / SESSION_FILE).is_file():
        with Session.start(folder, dataclasses.replace(options, scene=scene_file), turns, resume=False, exact=True,
                           device=device, after_turn=report_after_turn()) as session:
            run(session)
        return
    session = SessionFolder.open(folder)
    done = [r.instruction for r in session.records]
    if done != [t.instruction for t in turns[: len(done)]]:
        raise GseditError(
            f"{folder} has the turns {done}, which are not the start of this comparison's "
            f"{[t.instruction for t in turns]}: it was changed outside `gsedit compare`."
        )
    new = turns[len(done):]
    if new or session.pending():
        with Session.start(folder, dataclasses.replace(options, scene=None), new, resume=True, exact=True,
                           device=device, after_turn=report_after_turn()) as opened:
            run(opened)


# -- results --------------------------------------------------------------------------------------
def backend_rows(folder: Path, backend: str, config, device) -> tuple[list[dict], list[dict]]:
    """(one row per finished turn of the session in `folder`, the metrics it could not compute)."""
    from gsedit.evaluation.evaluate import evaluate_session

    session = SessionFolder.open(folder)
    if session.last_finished() == 0:
        return [], []
    metrics = evaluate_session(folder, config, device)
    iters = session.settings.iters
    rows = []
    for row in metrics["turns"]:
        entry = {"backend": backend, "turn": row["turn"], "instruction": row["instruction"]}
        entry.update({k: row.get(k) for k in METRIC_COLUMNS})
        entry.update({k: row.get(k) for k in ("seconds", "peak_rss_mb", "peak_cuda_mb")})
        entry["seconds_per_iter"] = row["seconds"] / iters if row.get("seconds") else None
        rows.append(entry)
    return rows, metrics["unavailable"]


def labelled_grid(rows: list[tuple[str, list[np.ndarray]]], margin: int = 110, min_height: int = 128) -> np.ndarray:
    """[H, W, 3] uint8: one row of images [h, w, 3] per (label, images), the label at the left;
    small renders are enlarged (nearest, whole factors) to at least `min_height` pixels."""
    from PIL import Image, ImageDraw

    factor = -(-min_height // rows[0][1][0].shape[0])
    rows = [(label, [im.repeat(factor, 0).repeat(factor, 1) for im in images]) for label, images in rows]
    h, w = rows[0][1][0].shape[:2]
    columns = max(len(images) for _, images in rows)
    canvas = Image.new("RGB", (margin + columns * w, len(rows) * h), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (label, images) in enumerate(rows):
        draw.multiline_text((6, r * h + h // 2 - 12), label, fill="black", spacing=4)
        for c, image in enumerate(images):
            canvas.paste(Image.fromarray(image), (margin + c * w, r * h))
    return np.asarray(canvas)


def write_grids(out: Path, backends: list[str], turns: int, count: int) -> list[Path]:
    """DIR/grids/turn_NN.png for every turn all backends finished."""
    from gsedit.edit.session import turn_dirname
    from gsedit.evaluation.report import shown_views
    from gsedit.render.images import read_image, to_uint8, write_png

    views = shown_views(SessionFolder.open(out / backends[0]), count)
    written = []
    for index in range(1, turns + 1):
        rows = []
        for backend in backends:
            for label, turn in (("before", index - 1), ("after", index)):
                folder = out / backend / turn_dirname(turn) / "renders"
                rows.append((f"{backend}\n{label}", [to_uint8(read_image(folder / v)) for v in views]))
        path = out / "grids" / f"{turn_dirname(index)}.png"
        write_png(path, labelled_grid(rows))
        written.append(path)
    return written


def summarise(out: Path, plan: dict, metrics_config, device, views: int) -> dict:
    """Rows of every backend, grids, compare.json and compare.html; returns the results."""
    rows, unavailable = [], []
    for backend in plan["backends"]:
        backend_table, missing = backend_rows(out / backend, backend, metrics_config, device)
        rows += backend_table
        unavailable += [{**entry, "backend": backend} for entry in missing]
    finished = min(SessionFolder.open(out / b).last_finished() for b in plan["backends"])
    grids = write_grids(out, plan["backends"], finished, views)
    plan["results"] = {
        "editor_is_stand_in": plan["editor"] == "synthetic",
        "rows": rows,
        "unavailable": unavailable,
        "grids": [str(p.relative_to(out)) for p in grids],
    }
    write_json(out / COMPARE_FILE, plan)
    write_html(out, plan)
    return plan


def write_html(out: Path, plan: dict) -> Path:
    """DIR/compare.html: the plan, refits, results table and grids, with relative links."""
    from gsedit.atomic import atomic_path
    from gsedit.evaluation.report import STAND_IN_WARNING, STYLE

    results = plan["results"]
    columns = {**COST_COLUMNS, **METRIC_COLUMNS}
    esc = html.escape
    parts = [
        (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>gsedit compare</title>"
            f"<style>{STYLE} img{{max-width:100%;image-rendering:pixelated}}</style></head><body>"
        ),
        f"<h1>gsedit compare: {esc(', '.join(plan['backends']))}</h1>",
        (
            f"<p>scene {esc(plan['scene'])}; cameras {esc(plan['cameras'])}; method {esc(plan['method'])}; "
            f"editor {esc(plan['editor'])}</p>"
        ),
    ]
    if results["editor_is_stand_in"]:
        parts.append(STAND_IN_WARNING)
    if plan["refits"]:
        parts.append("<h2>Refits</h2><table><tr><th>backend</th><th>steps</th><th>s</th>"
                     "<th>peak RSS MB</th><th>PSNR to input</th></tr>")
        for backend, entry in plan["refits"].items():
            # a comparison made before the plateau rule ran all of its iters
            steps = f"{entry.get('steps', entry['iters'])} ({entry.get('stopped', 'cap')})"
            parts.append(f"<tr><td>{esc(backend)}</td><td>{steps}</td><td>{format_value(entry['seconds'])}</td>"
                         f"<td>{format_value(entry['peak_rss_mb'])}</td><td>{format_value(entry['psnr_to_input'])}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Turns</h2><table><tr><th>turn</th><th>backend</th>"
                 + "".join(f"<th>{esc(h)}</th>" for h in columns.values()) + "</tr>")
    for row in sorted(results["rows"], key=lambda r: (r["turn"], r["backend"])):
        parts.append(f"<tr><td>{row['turn']}</td><td>{esc(row['backend'])}</td>"
                     + "".join(f"<td>{format_value(row.get(k))}</td>" for k in columns) + "</tr>")
    parts.append("</table>")
    for entry in results["unavailable"]:
        parts.append(f"<p>{esc(entry['backend'])}: {esc(entry['metric'])} unavailable: {esc(entry['reason'])}</p>")
    for index, grid in enumerate(results["grids"], start=1):
        parts.append(f"<h2>Turn {index}: {esc(plan['turns'][index - 1]['instruction'])}</h2>"
                     f"<img src='{esc(grid)}' alt='turn {index} grid'>")
    parts.append("<h2>Sessions</h2><ul>" + "".join(
        f"<li><a href='{b}/report.html'>{b}</a></li>" for b in plan["backends"]) + "</ul></body></html>")
    path = out / "compare.html"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts))
    return path


