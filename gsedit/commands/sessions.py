"""`gsedit edit`: builds the session, the plug-ins and the engine from the command line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gsedit.commands.progress import JsonLog, TurnReporter, console, progress_display
from gsedit.edit.engine import Engine, write_input_turn
from gsedit.edit.lock import FolderLock, deferred_lock
from gsedit.edit.masks import Turn
from gsedit.edit.session import (
    SESSION_FILE,
    Session,
    check_instruction,
    continue_plan,
    session_cameras,
    training_cameras,
)
from gsedit.errors import GseditError


def per_turn(values: list[str], count: int, flag: str) -> list[str | None]:
    """Spreads a repeated option over `count` turns: none, one for all, or exactly one per turn."""
    if not values:
        return [None] * count
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise GseditError(f"{flag} was given {len(values)} times for {count} turns: give it once or once per turn.")
    return list(values)


def make_turns(instructions: list[str], targets: list[str], keeps: list[str]) -> list[Turn]:
    for i, text in enumerate(instructions, start=1):
        check_instruction(text, f"--turn {i}")
    n = len(instructions)
    return [Turn(t, g, k) for t, g, k in zip(instructions, per_turn(targets, n, "--target"), per_turn(keeps, n, "--keep"))]


def config_from_dict(cls, data: dict):
    """A (nested) config dataclass from its `dataclasses.asdict` form, as session.json stores it."""
    import typing

    hints = typing.get_type_hints(cls, include_extras=False)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            value = config_from_dict(kind, value)
        elif value is not None and (kind is Path or Path in typing.get_args(kind)):
            value = Path(value)
        values[f.name] = value
    return cls(**values)


def plugin_settings(args) -> dict:
    """What session.json records about the plug-ins, so --resume rebuilds the same ones."""
    return {
        "editor": args.editor,
        "ip2p": dataclasses.asdict(args.ip2p),
        "adss": _jsonable(dataclasses.asdict(args.adss)),
    }


def _jsonable(data):
    if isinstance(data, dict):
        return {k: _jsonable(v) for k, v in data.items()}
    return str(data) if isinstance(data, Path) else data


def build_editor(plugins: dict, device):
    if plugins["editor"] == "synthetic":
        from gsedit.models.synthetic import SyntheticEditor

        console.print(
            "[yellow]note:[/] the synthetic editor is an offline stand-in for InstructPix2Pix: it exercises "
            "the loop and its numbers are not edit quality.",
            highlight=False,
        )
        return SyntheticEditor()
    from gsedit.models.ip2p import IP2PConfig, IP2PEditor

    return IP2PEditor.from_pretrained(config_from_dict(IP2PConfig, plugins["ip2p"]), device)


def build_adss(settings: dict, device):
    from gsedit.models.adss import ADSS, ADSSConfig

    return ADSS.from_pretrained(config_from_dict(ADSSConfig, settings), device)


def needs_adss(session: Session) -> bool:
    return session.settings.segmenter == "adss" or (
        any(r.keep for r in session.pending()) and not _labelled_input(session)
    )


def _labelled_input(session: Session) -> bool:
    from gsedit.scene.files import scene_label_names

    return bool(scene_label_names(session.scene_path(0)))


def start_or_resume(args, device, lock: FolderLock, turns: list[Turn] | None = None) -> Session:
    """Opens (--resume) or creates the session folder, takes its `lock`, and appends the new turns.

    Args:
        turns: exactly the turns to add (gsedit compare's); default: the turns of --turn, --target
            and --keep that the session lacks, by the --resume rule (`continue_plan`).
    """
    exact = turns is not None
    if turns is None:
        turns = make_turns(args.turn, args.target, args.keep)
    out = Path(args.out)
    if args.resume and ((out / SESSION_FILE).is_file() or args.scene is None):
        lock.acquire()
        return _resume(args, Session.open(out), turns, exact)
    if args.scene is None:
        raise GseditError("gsedit edit needs a scene and --cameras (or --resume with --out DIR).")
    if not turns:
        raise GseditError("gsedit edit needs at least one --turn 'instruction'.")
    args.settings.validate()
    from gsedit.scene.files import (
        check_scene_in_view,
        load_scene_file,
        scene_backend,
        scene_cameras,
    )

    # the scene and the cameras fail early, before any folder is written
    scene = load_scene_file(args.scene, device, args.iteration)
    chosen = scene_cameras(args.scene, args.cameras, args.dataparser_transforms, scene.bounds())
    if args.frame_check:
        check_scene_in_view(scene, chosen, args.scene)
    export_formats(args.export, scene_backend(args.scene))
    lock.acquire()
    if args.resume and (out / SESSION_FILE).is_file():  # another run created it meanwhile
        return _resume(args, Session.open(out), turns, exact)
    spec = absolute_cameras_spec(chosen.spec) if chosen.spec else mapped_cameras_file(chosen.cameras, out)
    cameras = training_cameras(spec, scene, args.settings.max_side)
    session = Session.create(
        out,
        scene_file=scene.filename,
        input_path=str(Path(args.scene).resolve()),
        cameras=spec,
        method=args.method,
        settings=args.settings,
        plugins=plugin_settings(args),
    )
    try:
        session.add_turns(turns)
        write_input_turn(session, scene, cameras, Path(args.scene))
    except BaseException:  # e.g. Ctrl-C while turn_00 renders: leave no session that cannot resume
        (session.folder / SESSION_FILE).unlink(missing_ok=True)
        raise
    return session


def _resume(args, session: Session, turns: list[Turn], exact: bool) -> Session:
    """The opened `session` with the turns it lacks appended (all of `turns` when `exact`)."""
    if args.scene is not None and str(Path(args.scene).resolve()) != session.data["input"]:
        raise GseditError(
            f"{session.folder} is a session of {session.data['input']}, not of {args.scene}: "
            "continue it without a scene (`--resume --out DIR`), or choose another --out."
        )
    if exact:
        new, start = turns, None
    else:
        new, start = continue_plan([r.turn for r in session.records], session.turn_lists, turns,
                                   f"gsedit edit --out {session.folder}")
    if new:
        session.add_turns(new, start)
    if not session.pending() and not turns:
        raise GseditError(f"{args.out}: every turn is finished; add one with --turn '...'.")
    return session


def absolute_cameras_spec(spec: str) -> str:
    return spec if spec.startswith("orbit:") else str(Path(spec).resolve())


def mapped_cameras_file(cameras, out: Path) -> str:
    """Cameras mapped into the scene's frame (--dataparser-transforms), kept as DIR/transforms.json
    so that every turn and --resume read the same ones."""
    from gsedit.cameras.nerfstudio import write_transforms_json

    path = out / "transforms.json"
    write_transforms_json(cameras, path)
    return str(path.resolve())


def export_formats(text: str, backend: str) -> list[str]:
    """The --export formats (checked against the scene's backend), '.ply' left out: every turn has it."""
    from gsedit.scene.splat_formats import parse_formats

    formats = [f for f in parse_formats(text) if f != "ply"]
    if formats and backend != "3dgs":
        raise GseditError(f"--export {text} writes splat files, which a nerfacto scene is not: convert a turn with "
                          "`gsedit convert DIR/turn_NN/scene.ckpt --cameras CAMS --out scene.spz`.")
    return formats


def export_turns(session: Session, indices, formats: list[str], load_scene) -> None:
    """Writes turn_k/scene.FORMAT beside turn_k/scene.ply for each finished turn k in `indices`."""
    for index in indices:
        missing = [session.turn_dir(index) / f"scene.{fmt}" for fmt in formats]
        missing = [path for path in missing if not path.exists()]
        if missing:
            scene = load_scene(session.scene_path(index))
            for path in missing:
                scene.save_as(path)


def run_edit_command(args, turns: list[Turn] | None = None) -> Session:
    """Runs `gsedit edit` (args: the Edit command); `turns` replaces --turn/--target/--keep."""
    from gsedit.commands.options import resolve_device

    device = resolve_device(args.device)
    with deferred_lock(args.out) as lock:  # start_or_resume takes it once the inputs are checked
        session, live = _run_edit(args, device, lock, turns)
    if live is not None:
        console.print(f"edit finished; the viewer stays at {live.viewer.url} until Ctrl-C")
        live.viewer.serve_forever()
    return session


def _run_edit(args, device, lock: FolderLock, turns: list[Turn] | None):
    """(the session, the live viewer if --view) once every turn (and --refine) is done."""
    from gsedit.scene.files import load_scene_file, scene_backend

    session = start_or_resume(args, device, lock, turns)
    formats = export_formats(args.export, scene_backend(session.scene_path(0)))
    load_scene = lambda path: load_scene_file(path, device)
    export_turns(session, range(session.last_finished() + 1), formats, load_scene)
    if args.turntable:
        _after_turn(session, None, load_scene, True)
    live = None
    if not session.pending():  # no editor to load (IP2P takes a while)
        console.print(f"nothing to do: every turn of {session.folder} that the --turn list names is finished.")
    else:
        live = _run_pending_turns(args, session, device, load_scene, formats)
    if args.refine:
        run_refine_command(session.folder, args.sr, "none", args.adss, device, args.quiet)
    return session, live


def _run_pending_turns(args, session: Session, device, load_scene, formats: list[str]):
    """Runs the session's pending turns with its editor; the live viewer if --view, else None."""
    from gsedit.commands.budget import preflight
    from gsedit.models.ip2p import IP2PConfig

    plugins, memory = preflight(args, session, session.data["plugins"], device, load_scene, needs_adss(session),
                                lambda settings: config_from_dict(IP2PConfig, settings))
    engine = Engine(
        preflight=memory,
        load_scene=load_scene,
        cameras_for=lambda scene: session_cameras(session, scene),
        editor=build_editor(plugins, device),
        segmenter=build_adss(plugins["adss"], device) if needs_adss(session) else None,
        after_turn=lambda s, record: _after_turn(s, record, load_scene, args.turntable, formats),
    )
    live = None
    with progress_display(args.quiet) as progress:
        reporter = TurnReporter(progress, JsonLog(session.folder / "log.jsonl"))
        if args.view:
            from gsedit.viewer import LiveViewer

            live = LiveViewer.start(device, port=args.view_port, forward=reporter)
            console.print(f"live viewer at {live.viewer.url}")
            reporter = live
        engine.reporter = reporter
        finished = engine.run(session)
    for record in finished:
        console.print(f"turn {record.index} done in {record.seconds:.1f} s → {session.turn_dir(record.index)}")
    return live


def _after_turn(session: Session, record, load_scene, turntable: bool, formats: list[str] = ()) -> None:
    """After every finished turn: its other splat formats and videos (if asked for), a fresh report."""
    if record is not None:
        export_turns(session, [record.index], formats, load_scene)
    if turntable:
        from gsedit.commands.report import write_turn_videos

        write_turn_videos(session, 0 if record is None else record.index, load_scene)
    _write_report(session)


def _write_report(session: Session) -> None:
    from gsedit.commands.report import write_report

    path = write_report(session)
    console.print(f"report: {path}")


def run_refine_command(folder: Path, config, face_segmenter: str, adss_config, device, quiet: bool) -> Path:
    from gsedit.commands.progress import fit_progress
    from gsedit.edit.refine import run_refine
    from gsedit.scene.files import load_scene_file

    segmenter = build_adss(dataclasses.asdict(adss_config), device) if face_segmenter == "adss" else None
    with fit_progress(quiet, config.iters) as on_step:
        refined = run_refine(folder, config, device, lambda p: load_scene_file(p, device), segmenter,
                             on_step=on_step)
    console.print(f"refined scene: {refined}")
    _write_report(Session.open(folder))
    return refined

