"""Starts a session folder (checks the inputs, writes session.json and turn_00) or resumes one,
and writes the other splat formats of its turns."""

from __future__ import annotations

from pathlib import Path

from gsedit.edit.engine import write_input_turn
from gsedit.edit.lock import FolderLock
from gsedit.edit.options import SessionOptions
from gsedit.edit.plugins import plugin_settings
from gsedit.edit.session import (
    SESSION_FILE,
    SessionFolder,
    Turn,
    check_instruction,
    continue_plan,
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
    """The turns of --turn lists with their --target and --keep (once for all turns or once per turn)."""
    for i, text in enumerate(instructions, start=1):
        check_instruction(text, f"--turn {i}")
    n = len(instructions)
    return [Turn(t, g, k) for t, g, k in zip(instructions, per_turn(targets, n, "--target"), per_turn(keeps, n, "--keep"))]


def start_or_resume(options: SessionOptions, out: Path, device, lock: FolderLock, turns: list[Turn], *,
                    resume: bool, exact: bool = False, need_turns: bool = True) -> SessionFolder:
    """Opens (`resume`) or creates the session folder `out`, takes its `lock`, and appends turns.

    Args:
        turns: with `exact`, exactly the turns to add (gsedit compare's); else the turns of a
            --turn list, of which a resumed session gets those it lacks (`continue_plan`).
        need_turns: refuse to start a session without turns (the command line's rule).
    """
    out = Path(out)
    if resume and ((out / SESSION_FILE).is_file() or options.scene is None):
        lock.acquire()
        return _resume(options, SessionFolder.open(out), turns, exact)
    if options.scene is None:
        raise GseditError("gsedit edit needs a scene and --cameras (or --resume with --out DIR).")
    if need_turns and not turns:
        raise GseditError("gsedit edit needs at least one --turn 'instruction'.")
    options.settings.validate()
    from gsedit.scene.files import (
        check_scene_in_view,
        load_scene_file,
        scene_backend,
        scene_cameras,
    )

    # the scene and the cameras fail early, before any folder is written
    scene = load_scene_file(options.scene, device, options.iteration)
    chosen = scene_cameras(options.scene, options.cameras, options.dataparser_transforms, scene.bounds())
    if options.frame_check:
        check_scene_in_view(scene, chosen, options.scene)
    export_formats(options.export, scene_backend(options.scene))
    lock.acquire()
    if resume and (out / SESSION_FILE).is_file():  # another run created it meanwhile
        return _resume(options, SessionFolder.open(out), turns, exact)
    spec = absolute_cameras_spec(chosen.spec) if chosen.spec else mapped_cameras_file(chosen.cameras, out)
    cameras = training_cameras(spec, scene, options.settings.max_side)
    session = SessionFolder.create(
        out,
        scene_file=scene.filename,
        input_path=str(Path(options.scene).resolve()),
        cameras=spec,
        method=options.method,
        settings=options.settings,
        plugins=plugin_settings(options.editor, options.ip2p, options.adss),
    )
    try:
        session.add_turns(turns)
        write_input_turn(session, scene, cameras, Path(options.scene))
    except BaseException:  # e.g. Ctrl-C while turn_00 renders: leave no session that cannot resume
        (session.folder / SESSION_FILE).unlink(missing_ok=True)
        raise
    return session


def _resume(options: SessionOptions, session: SessionFolder, turns: list[Turn], exact: bool) -> SessionFolder:
    """The opened `session` with the turns it lacks appended (all of `turns` when `exact`)."""
    if options.scene is not None and str(Path(options.scene).resolve()) != session.data["input"]:
        raise GseditError(
            f"{session.folder} is a session of {session.data['input']}, not of {options.scene}: "
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
        raise GseditError(f"{session.folder}: every turn is finished; add one with --turn '...'.")
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


def export_turns(session: SessionFolder, indices, formats: list[str], load_scene) -> None:
    """Writes turn_k/scene.FORMAT beside turn_k/scene.ply for each finished turn k in `indices`."""
    for index in indices:
        missing = [session.turn_dir(index) / f"scene.{fmt}" for fmt in formats]
        missing = [path for path in missing if not path.exists()]
        if missing:
            scene = load_scene(session.scene_path(index))
            for path in missing:
                scene.save_as(path)
