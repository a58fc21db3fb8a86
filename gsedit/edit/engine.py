"""Runs the pending turns of a session: load, edit turn by turn, write each turn atomically."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gsedit.atomic import atomic_dir
from gsedit.cameras import Cameras
from gsedit.edit.events import Progress, Reporter, TurnCancelled
from gsedit.edit.lock import FolderLock
from gsedit.edit.loop import TurnResult, run_turn
from gsedit.edit.masks import SelectedRegions
from gsedit.edit.memory import Preflight, out_of_memory_error
from gsedit.edit.session import SessionFolder, Turn, TurnRecord
from gsedit.errors import GseditError
from gsedit.memory import MemoryMeter
from gsedit.models.base import ImageEditor, ImageSegmenter
from gsedit.render.images import save_images
from gsedit.scene.base import NonFiniteError, Scene


def calibrate_stand_in(editor: ImageEditor, scenes: list[Scene], cameras: Cameras) -> None:
    """Shows a stand-in editor that can learn objects' looks (the synthetic one) the labelled scenes."""
    calibrate = getattr(editor, "calibrate", None)
    if calibrate is None:
        return
    for scene in scenes:
        names = scene.label_names()
        if not names:
            continue
        channels = [f"label={k}" for k in names]
        out = scene.render(cameras, channels=channels)
        calibrate(out.rgb, {names[k]: out.channels[f"label={k}"] for k in names})


@dataclass
class TurnState:
    """What consecutive turns carry over: the scene as turn `index` left it, the session's
    cameras, and the turn-0 scene with its renders (IN2N's conditions)."""

    index: int
    scene: Scene
    original_scene: Scene
    cameras: Cameras
    originals: Tensor  # [C, H, W, 3]


@dataclass
class Engine:
    """Everything a session run needs besides the session folder itself."""

    load_scene: Callable[[Path], Scene]
    cameras_for: Callable[[Scene], Cameras]
    """The session's cameras at training resolution, on the scene's device."""
    editor: ImageEditor
    segmenter: ImageSegmenter | None = None
    reporter: Reporter | None = None
    preflight: Preflight | None = None
    """The memory pre-flight of this run, quoted when a turn runs out of GPU memory."""

    def run(self, session: SessionFolder) -> list[TurnRecord]:
        """Runs every pending turn; returns the records of the turns it finished.

        Raises:
            SessionBusyError: another process is writing the session.
        """
        with FolderLock(session.folder):
            pending = session.pending()
            if not pending:
                return []
            state = self.prepare(session, pending[0].index)
            return [self.run_record(session, state, record) for record in pending]

    def prepare(self, session: SessionFolder, index: int) -> TurnState:
        """The state turn `index` starts from: the scene of turn index-1 and the turn-0 renders."""
        original_scene = self.load_scene(session.scene_path(0))
        scene = self.load_scene(session.scene_path(index - 1))
        cameras = self.cameras_for(scene)
        originals = original_scene.render(cameras).rgb
        return TurnState(index - 1, scene, original_scene, cameras, originals)

    def run_record(self, session: SessionFolder, state: TurnState, record: TurnRecord) -> TurnRecord:
        """Runs turn `record` from `state` (which it advances) and writes its folder.

        On any exception (Ctrl-C, TurnCancelled, a fault) the record is marked, no turn folder is
        left, and `state`'s scene is part-trained: prepare a new state before running it again.
        """
        if self.reporter:
            self.reporter.attach(state.scene, state.cameras)  # a live viewer shows the scene as it trains
        record = self._run_one(session, state.scene, state.original_scene, state.cameras, state.originals, record)
        state.index = record.index
        return record

    def _run_one(self, session, scene, original_scene, cameras, originals, record: TurnRecord) -> TurnRecord:
        settings = session.settings
        config = _turn_config(settings, record.index)
        calibrate_stand_in(self.editor, [original_scene, scene], cameras)
        record.status = "running"
        session.update(record)
        meter = MemoryMeter()
        meter.start(scene.device)
        if self.reporter:
            self.reporter.turn_started(record, config.iters)

        start = time.perf_counter()
        reached = Progress(0, config.iters, 0, float("nan"))  # the last step reported, for an OOM message

        def on_step(progress: Progress) -> None:
            nonlocal reached
            reached = progress
            if self.reporter:
                self.reporter.step(progress)

        try:
            with atomic_dir(session.turn_dir(record.index)) as tmp:
                result = run_turn(scene, cameras, record.turn, config, self.editor, originals,
                                  self.segmenter, on_step, turn_selections(session, record.turn, scene))
                write_turn(tmp, scene, result, cameras)
        except BaseException as exc:
            record.status = "interrupted" if isinstance(exc, (KeyboardInterrupt, TurnCancelled)) else "failed"
            record.peak_rss_mb, record.peak_cuda_mb = meter.peaks_mb()
            try:
                session.update(record)
            except OSError:  # a full disk may refuse this too: the record stays 'running', just as pending
                pass
            if isinstance(exc, NonFiniteError):
                raise GseditError(f"Turn {record.index} ({record.instruction!r}) stopped: {exc}") from exc
            if isinstance(exc, torch.OutOfMemoryError):
                raise out_of_memory_error(record.index, record.instruction, reached.step, config.iters, exc,
                                          self.preflight) from exc
            raise
        record.seconds = round(time.perf_counter() - start, 3)
        record.peak_rss_mb, record.peak_cuda_mb = meter.peaks_mb()
        record.edits, record.loss = result.edits, result.loss
        record.status = "done"
        record.finished_at = time.strftime("%Y-%m-%dT%H:%M:%S")
        session.update(record)
        if self.reporter:
            self.reporter.turn_finished(record)
        return record


def turn_selections(session: SessionFolder, turn: Turn, scene: Scene) -> SelectedRegions | None:
    """The selections of Gaussians `turn` recorded (target/keep), over `scene`'s Gaussians."""
    if not (turn.target_selection or turn.keep_selection):
        return None
    from gsedit.edit.selection import read_selection

    def read(relative):
        return read_selection(session.folder, relative, len(scene)) if relative else None

    return SelectedRegions(read(turn.target_selection), read(turn.keep_selection))


def _turn_config(settings, index: int):
    """Each turn draws from its own seed, so a resumed turn repeats exactly what it would have done."""
    from dataclasses import replace

    return replace(settings, seed=settings.seed * 1000 + index)


def write_turn(folder: Path, scene: Scene, result: TurnResult, cameras: Cameras) -> None:
    scene.save(folder)
    save_images(folder / "renders", result.renders)
    save_images(folder / "masks", result.masks)


def write_input_turn(session: SessionFolder, scene: Scene, cameras: Cameras, source: Path) -> None:
    """turn_00: the input scene file as given (bit-exact) with its sidecars, or, for a trainer's
    folder or another splat format, the scene as read, in gsedit's format; and its renders."""
    import shutil

    from gsedit.scene.files import is_copyable_input

    stem = Path(session.data["scene_file"]).stem
    with atomic_dir(session.turn_dir(0)) as tmp:
        if not is_copyable_input(source):
            scene.save(tmp)
        # contents only: the copies get the umask's mode like every other file, not the source's
        else:
            shutil.copyfile(source, tmp / session.data["scene_file"])
            for sidecar in sidecars(source):
                shutil.copyfile(sidecar, tmp / (stem + sidecar.name[len(source.stem):]))
        save_images(tmp / "renders", scene.render(cameras).rgb)


def sidecars(source: Path) -> list[Path]:
    """Files that travel with a scene file (the labels sidecar of a .ply)."""
    from gsedit.scene.labels import labels_path

    labels = labels_path(source)
    return [labels] if labels.exists() else []
