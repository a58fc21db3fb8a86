"""`gsedit edit`: builds the session, the plug-ins and the engine from the command line."""

from __future__ import annotations

from pathlib import Path

from gsedit.edit.engine import Engine, write_input_turn
from gsedit.edit.masks import Turn
from gsedit.edit.session import Session
from gsedit.errors import GseditError
from gsedit.progress import JsonLog, TurnReporter, console, progress_display


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
        if not text.strip():
            raise GseditError(f"--turn {i} is an empty instruction: say what to change, e.g. --turn 'make the cube red'.")
    n = len(instructions)
    return [Turn(t, g, k) for t, g, k in zip(instructions, per_turn(targets, n, "--target"), per_turn(keeps, n, "--keep"))]


def build_editor(name: str, device, ip2p_model: str):
    if name == "synthetic":
        from gsedit.models.synthetic import SyntheticEditor

        console.print(
            "[yellow]note:[/] the synthetic editor is an offline stand-in for InstructPix2Pix: it exercises "
            "the loop and its numbers are not edit quality.",
            highlight=False,
        )
        return SyntheticEditor()
    from gsedit.models.ip2p import IP2PConfig, IP2PEditor

    return IP2PEditor.from_pretrained(IP2PConfig(model=ip2p_model), device)


def build_segmenter(kind: str, device, sam_checkpoint: Path | None):
    if kind != "adss":
        return None
    from gsedit.models.adss import ADSS, ADSSConfig

    config = ADSSConfig() if sam_checkpoint is None else ADSSConfig(sam_checkpoint=str(sam_checkpoint))
    return ADSS.from_pretrained(config, device)


def start_or_resume(args, device) -> Session:
    """Opens (--resume) or creates the session folder and appends the new turns."""
    turns = make_turns(args.turn, args.target, args.keep)
    if args.resume:
        session = Session.open(args.out)
        if turns:
            session.add_turns(turns)
        if not session.pending():
            raise GseditError(f"{args.out}: every turn is finished; add one with --turn '...'.")
        return session
    if args.scene is None or args.cameras is None:
        raise GseditError("gsedit edit needs a scene and --cameras (or --resume with --out DIR).")
    if not turns:
        raise GseditError("gsedit edit needs at least one --turn 'instruction'.")
    args.settings.validate()
    from gsedit.cli import load_scene_file

    scene = load_scene_file(args.scene, device)  # fails early, before any folder is written
    session = Session.create(
        args.out,
        scene_file=scene.filename,
        input_path=str(Path(args.scene).resolve()),
        cameras=_absolute_spec(args.cameras),
        method=args.method,
        settings=args.settings,
        plugins={"editor": args.editor, "ip2p_model": args.ip2p_model,
                 "sam_checkpoint": None if args.sam_checkpoint is None else str(args.sam_checkpoint)},
    )
    session.add_turns(turns)
    cameras = _cameras(session, scene)
    write_input_turn(session, scene, cameras, Path(args.scene))
    return session


def _absolute_spec(spec: str) -> str:
    return spec if spec.startswith("orbit:") else str(Path(spec).resolve())


def _cameras(session: Session, scene):
    from gsedit.cameras.formats import load_cameras

    cams = load_cameras(session.data["cameras"], bounds=scene.bounds())
    return cams.limited(session.settings.max_side).to(scene.device)


def run_edit_command(args) -> Session:
    from gsedit.cli import load_scene_file, resolve_device

    device = resolve_device(args.device)
    session = start_or_resume(args, device)
    plugins = session.data["plugins"]
    editor = build_editor(plugins["editor"], device, plugins["ip2p_model"])
    sam = plugins.get("sam_checkpoint")
    segmenter = build_segmenter(session.settings.segmenter, device, Path(sam) if sam else None)
    engine = Engine(
        load_scene=lambda path: load_scene_file(path, device),
        cameras_for=lambda scene: _cameras(session, scene),
        editor=editor,
        segmenter=segmenter,
    )
    with progress_display(args.quiet) as progress:
        engine.reporter = TurnReporter(progress, JsonLog(session.folder / "log.jsonl"))
        finished = engine.run(session)
    for record in finished:
        console.print(f"turn {record.index} done in {record.seconds:.1f} s → {session.turn_dir(record.index)}")
    _write_report(session)
    return session


def _write_report(session: Session) -> None:
    from gsedit.report import write_report

    path = write_report(session)
    console.print(f"report: {path}")

