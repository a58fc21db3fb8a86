"""`gsedit.Session`: the one way to run a session, under the command line, batch, compare, the
benchmarks, the studio and users' scripts.

A Session object holds the folder's lock from `create`/`open` until `close`, loads the editor and
the segmenter once (on the first turn that needs them), and carries the trained scene from one
turn to the next. Its turns are the command line's: the same options give the same files.

Every turn it runs is logged in DIR/log.jsonl (gsedit.edit.turn_log). What the layers above the
session add after a turn (the HTML report and turntable videos of gsedit.evaluation, which this
layer may not import) comes through the `after_turn` hook:
`Session.create(..., after_turn=gsedit.evaluation.report.report_after_turn())`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gsedit.edit.events import Progress, Reporter, TurnCancelled
from gsedit.edit.lock import FolderLock
from gsedit.edit.options import Device, SessionOptions, resolve_device, session_options
from gsedit.edit.plugins import build_adss, build_editor, needs_adss
from gsedit.edit.session import SessionFolder, Turn, TurnRecord, check_instruction, session_cameras
from gsedit.edit.turn_log import LOG_FILE, JsonLog, TurnLog
from gsedit.errors import GseditError

if TYPE_CHECKING:  # torch loads with them: a session opens (and undoes a turn) without it
    from gsedit.edit.engine import Engine, TurnState

Selection = Any
"""A selection of Gaussians: an [N] bool tensor or array, a file name that a turn recorded, or None."""


@dataclass(frozen=True)
class TurnInfo:
    """A finished turn."""

    index: int
    instruction: str
    target: str | None
    keep: str | None
    scene_path: Path
    """DIR/turn_NN/scene.ply (or scene.ckpt for a nerfacto session)."""
    seconds: float | None
    edits: int | None
    """Editor calls made."""
    loss: float | None
    """The last training loss."""
    target_selection: str | None = None
    """The file (relative to the folder) of the selection of Gaussians the turn edited, if one was given."""
    keep_selection: str | None = None
    """The file of the selection of Gaussians the turn kept unchanged, if one was given."""


@dataclass(frozen=True)
class TurnProgress:
    """What `run_turn`'s on_progress callback gets after every optimisation step."""

    turn: int
    step: int
    total: int
    loss: float
    edits: int
    preview: Any = None
    """[H, W, 3] float CPU tensor: the first view as the scene stands (every `preview_every` steps), else None."""


AfterTurn = Callable[["Session", TurnInfo], None]


class Session:
    """An open session folder: run turns, undo them, read its scenes. Use `create` or `open`.

    Attributes:
        after_turn: called with (this session, the TurnInfo) after every turn it finishes, once
            turn_NN/ and its exports are written (e.g. gsedit.evaluation.report.report_after_turn());
            None: nothing. Set by `create`/`start`/`open` or later.
    """

    def __init__(self, folder: SessionFolder, lock: FolderLock, device: Device | Any = "auto", export: str = "",
                 spz_axes: str = "auto", after_turn: AfterTurn | None = None):
        self._folder, self._lock = folder, lock
        self.after_turn = after_turn
        self._device = device
        self._export, self._spz_axes = export, spz_axes
        self._editor = self._segmenter = None
        self._plugins: dict | None = None  # the plug-ins with this object's memory settings (plan_memory)
        self._preflight = None
        self._state: TurnState | None = None  # the scene as the last turn this object ran left it

    # -- opening and closing -----------------------------------------------------------------
    @classmethod
    def create(cls, out: str | Path, scene: str | Path | None = None, cameras: str | Path | None = None, *,
               device: Device = "auto", after_turn: AfterTurn | None = None, **options) -> Session:
        """A new session in `out` on `scene` seen by `cameras`; turn_00 written, no turn run yet.

        Args:
            options: any `gsedit edit` option by its name (`method`, `editor`, `iters`, `seed`,
                `segmenter`, `export`, ...), nested ones as mappings (`ip2p={...}`, `adss={...}`,
                `sr={...}`), as in the jobs of `gsedit batch`; relative paths are the working
                directory's.

        Raises:
            GseditError: an unknown option or a bad value (named), unreadable inputs, a folder
                that holds a session already, or one that another writer holds.
        """
        values = session_options({"scene": scene, "cameras": cameras, **options}, Path.cwd())
        return cls.start(out, values, [], resume=False, device=device, need_turns=False, after_turn=after_turn)

    @classmethod
    def start(cls, out: str | Path, options: SessionOptions, turns: list[Turn], *, resume: bool,
              exact: bool = False, device: Device | Any = "auto", need_turns: bool = True,
              after_turn: AfterTurn | None = None) -> Session:
        """A new session with the planned `turns`, or (`resume`) the one in `out` with the turns of
        `turns` that it lacks (the --resume rule of `gsedit edit`; all of them when `exact`).
        Run the planned turns with `run_pending`."""
        from gsedit.edit.start import start_or_resume

        device = resolve_device(device) if isinstance(device, str) else device
        lock = FolderLock(out, reentrant=False)  # taken by start_or_resume once the inputs are checked
        try:
            folder = start_or_resume(options, Path(out), device, lock, turns, resume=resume, exact=exact,
                                     need_turns=need_turns)
            session = cls(folder, lock, device, options.export, options.spz_axes, after_turn)
            session._export_turns(range(folder.last_finished() + 1))
        except BaseException:
            lock.release()
            raise
        return session

    @classmethod
    def open(cls, out: str | Path, device: Device | Any = "auto", export: str = "", spz_axes: str = "auto",
             after_turn: AfterTurn | None = None) -> Session:
        """The session in `out`, with the settings it was created with.

        Args:
            export: splat formats written beside every finished turn's scene.ply (as --export).
            spz_axes: the axes of the .spz files `export` writes: "rub" (auto) or "ply" (as --spz-axes).
        """
        SessionFolder.open(out)  # "no session here" before the lock would create the folder
        lock = FolderLock(out, reentrant=False).acquire()
        try:
            session = cls(SessionFolder.open(out), lock, device, export, spz_axes, after_turn)  # as the last writer left it
            session._export_turns(range(session._folder.last_finished() + 1))
        except BaseException:
            lock.release()
            raise
        return session

    def close(self) -> None:
        """Releases the session's lock; the object can no longer run or undo turns."""
        self._lock.release()
        self._state = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        return self._folder.folder

    @property
    def record(self) -> SessionFolder:
        """The session.json record (read-only use: the Session writes it)."""
        return self._folder

    @property
    def device(self):
        if isinstance(self._device, str):
            self._device = resolve_device(self._device)
        return self._device

    @property
    def turns(self) -> list[TurnInfo]:
        """The finished turns, in order (turn 0, the input, left out)."""
        records = self._folder.records[: self._folder.last_finished()]
        return [self._info(r) for r in records]

    @property
    def pending(self) -> list[Turn]:
        """Turns planned (by `start` or a cancelled `run_turn`) and not finished yet."""
        return [r.turn for r in self._folder.pending()]

    def scene(self, index: int | None = None):
        """The Scene of finished turn `index` (0 = the input; default: the last), loaded afresh."""
        from gsedit.scene.files import load_scene_file

        index = self._folder.last_finished() if index is None else index
        if not self._folder.is_finished(index):
            raise GseditError(f"{self.folder} has no finished turn {index}: its turns are 0..{self._folder.last_finished()}.")
        return load_scene_file(self._folder.scene_path(index), self.device)

    @property
    def cameras(self):
        """The session's training cameras (at its max_side), on the session's device."""
        if self._state is not None:
            return self._state.cameras
        return session_cameras(self._folder, self.scene(0))

    # -- turns -------------------------------------------------------------------------------
    def run_turn(self, instruction: str, target: str | None = None, keep: str | None = None, *,
                 target_selection: Selection = None, keep_selection: Selection = None,
                 on_progress: Callable[[TurnProgress], None] | None = None,
                 cancel: threading.Event | None = None, preview_every: int = 0,
                 reporter: Reporter | None = None) -> TurnInfo:
        """Runs the next turn and returns it once turn_NN/ is written (blocking).

        The next planned turn if it is this one (a cancelled or interrupted turn is redone exactly),
        else this turn replaces the planned ones.

        Args:
            target_selection: [N] bool over the last finished turn's Gaussians: edit only where they
                show (rendered into per-view masks), instead of the segmenter's target mask. Stored
                in the folder (turn_selections/) and named in the turn's record, so `--resume`
                redoes the turn exactly; a TurnInfo's or Turn's file name is accepted too.
            keep_selection: [N] bool (or a file name, as above): never edit where they show.
            on_progress: called after every step with a TurnProgress.
            cancel: when set, the turn stops at its next step with TurnCancelled; the finished turns
                stay, no turn folder is left, and the turn is marked interrupted (as Ctrl-C does).
            preview_every: render TurnProgress.preview every this many steps (0: never).
            reporter: an engine Reporter that gets every event too (the command line's display,
                the live viewer); DIR/log.jsonl gets them in any case.
        """
        self._check_open()
        check_instruction(instruction, f"Turn {self._folder.last_finished() + 1}")
        turn = Turn(instruction, target, keep, self._selection_file(target_selection),
                    self._selection_file(keep_selection))
        pending = self._folder.pending()
        if not pending or pending[0].turn != turn:
            self._folder.drop_pending()
            self._folder.add_turns([turn])
        record = self._folder.pending()[0]
        if cancel is not None and cancel.is_set():
            raise TurnCancelled(f"turn {record.index} ({instruction!r}) was cancelled before it started")
        log = TurnLog(JsonLog(self.folder / LOG_FILE))
        return self._run(record, _Feed(on_progress, cancel, preview_every, [log, reporter]))

    def run_pending(self, on_progress=None, cancel=None, preview_every: int = 0, reporter=None) -> list[TurnInfo]:
        """Runs the planned turns in order (see `start`); returns them."""
        return [self.run_turn(t.instruction, t.target, t.keep, target_selection=t.target_selection,
                              keep_selection=t.keep_selection, on_progress=on_progress, cancel=cancel,
                              preview_every=preview_every, reporter=reporter) for t in self.pending]

    def preview(self, camera, instruction: str, target: str | None = None, keep: str | None = None, *,
                target_selection: Selection = None, keep_selection: Selection = None):
        """The next turn's edit of one view, nothing written: its last scene, settings, editor,
        segmenter and masks (loaded once, as its turns load them), its input for in2n's conditions.

        Args:
            camera: one camera (a Cameras of length 1), at any resolution.
            target, keep, target_selection, keep_selection: as `run_turn`'s.

        Returns:
            gsedit.edit.preview.Preview: before, edited, mask ([H, W, 3], [H, W, 3], [H, W]), seconds.
        """
        from gsedit.edit.engine import calibrate_stand_in
        from gsedit.edit.masks import SelectedRegions
        from gsedit.edit.preview import preview_view
        from gsedit.edit.selection import as_selection

        self._check_open()
        check_instruction(instruction, "The instruction")
        engine = self._engine(None)
        scene, original = self.scene(), self.scene(0)
        calibrate_stand_in(engine.editor, [original, scene], self.cameras)
        selected = SelectedRegions(*(as_selection(self.folder, s, len(scene)) for s in (target_selection, keep_selection)))
        return preview_view(scene, camera.to(scene.device), Turn(instruction, target, keep), self._folder.settings,
                            engine.editor, engine.segmenter, original, selected)

    def delete_gaussians(self, selected) -> TurnInfo:
        """A turn that removes the `selected` [N] bool Gaussians of the last finished turn (no editor):
        a normal turn folder, undoable and exported; planned turns give way, as for a new run_turn.

        Raises:
            GseditError: a NeRF session, nothing selected, or everything selected.
        """
        import torch

        from gsedit.edit.delete import delete_turn
        from gsedit.scene.gaussian_scene import GaussianScene

        self._check_open()
        scene = self.scene()
        if not isinstance(scene, GaussianScene):
            raise GseditError("Deleting Gaussians works on 3DGS scenes; this session's scene is a NeRF.")
        selected = torch.as_tensor(selected, dtype=torch.bool).flatten().cpu()
        if len(selected) != len(scene):
            raise GseditError(f"delete_gaussians: the selection has {len(selected):,} entries, the last turn's "
                              f"scene {len(scene):,} Gaussians.")
        self._folder.drop_pending()
        record = delete_turn(self._folder, scene, selected, self.cameras)
        self._state = None  # the next turn starts from the file just written, not the carried scene
        self._export_turns([record.index])
        return self._info(record)

    def undo(self) -> int:
        """Drops the last finished turn (its folder and record); returns its index."""
        self._check_open()
        self._state = None
        return self._folder.undo()

    def refine(self, config=None, adss=None, on_step=None) -> Path:
        """The super-resolution refine stage of the last turn (gsedit.edit.refine); returns its scene.

        Args:
            config: RefineConfig (default settings if None).
            adss: an ADSSConfig to find faces with (else the config's face masks, or none).
            on_step: called with (step, loss).
        """
        import dataclasses

        from gsedit.edit.refine import run_refine
        from gsedit.edit.refine_config import RefineConfig

        self._check_open()
        segmenter = build_adss(dataclasses.asdict(adss), self.device) if adss is not None else None
        refined = run_refine(self.folder, config or RefineConfig(), self.device, self._load_scene, segmenter,
                             on_step=on_step)
        self._folder = SessionFolder.open(self.folder)  # run_refine recorded the stage in session.json
        return refined

    # -- internals ---------------------------------------------------------------------------
    def _check_open(self) -> None:
        if not self._lock.held:
            raise GseditError(f"the session object of {self.folder} is closed: open it again with Session.open.")

    def _load_scene(self, path: Path):
        from gsedit.scene.files import load_scene_file

        return load_scene_file(path, self.device)

    def plan_memory(self, gpu_memory: float | None = None, **ip2p_settings) -> str | None:
        """Fits the editor's memory settings to a budget before any turn runs (`--gpu-memory`).

        Args:
            gpu_memory: the budget in GB; default: the device's free memory on CUDA, none on CPU.
            ip2p_settings: this object's own values of the memory settings (`dtype`, `attention`,
                `vae_tiling`, `max_batch`, `offload`), which may differ from the session's.

        Returns:
            The line that reports the estimate and the settings chosen, or None without a budget.

        Raises:
            GseditError: nothing fits the budget (the numbers and what would fit are named).
        """
        from gsedit.edit.budget import memory_preflight

        self._check_open()
        self._plugins, self._preflight, line = memory_preflight(self._folder, self.device, self._load_scene,
                                                                ip2p_settings, gpu_memory)
        self._editor = None  # built again with the chosen settings
        return line

    def _engine(self, reporter: Reporter) -> Engine:
        from gsedit.edit.engine import Engine

        plugins = self._plugins or self._folder.data["plugins"]
        if self._editor is None:
            self._editor = build_editor(plugins, self.device)
        if self._segmenter is None and needs_adss(self._folder):
            self._segmenter = build_adss(plugins["adss"], self.device)
        return Engine(load_scene=self._load_scene, cameras_for=lambda scene: session_cameras(self._folder, scene),
                      editor=self._editor, segmenter=self._segmenter, reporter=reporter, preflight=self._preflight)

    def _run(self, record: TurnRecord, feed: _Feed) -> TurnInfo:
        engine = self._engine(feed)
        state = self._state if self._state is not None and self._state.index == record.index - 1 else None
        self._state = None  # part-trained if the turn stops
        state = state or engine.prepare(self._folder, record.index)
        record = engine.run_record(self._folder, state, record)
        self._state = state
        self._export_turns([record.index])
        info = self._info(record)
        if self.after_turn is not None:
            self.after_turn(self, info)
        return info

    def _export_turns(self, indices) -> None:
        if not self._export:
            return
        from gsedit.edit.start import export_formats, export_turns
        from gsedit.scene.files import scene_backend

        formats = export_formats(self._export, scene_backend(self._folder.scene_path(0)))
        export_turns(self._folder, indices, formats, self._load_scene, self._spz_axes)

    def _info(self, record: TurnRecord) -> TurnInfo:
        return TurnInfo(record.index, record.instruction, record.target, record.keep,
                        self._folder.scene_path(record.index), record.seconds, record.edits, record.loss,
                        record.target_selection, record.keep_selection)

    def _selection_file(self, selection: Selection) -> str | None:
        """The session-folder file of `selection` (written now if it is a tensor), or None."""
        if selection is None or isinstance(selection, str):
            return selection
        from gsedit.edit.selection import write_selection

        return write_selection(self.folder, selection)


class _Feed:
    """The engine's Reporter of one `run_turn`: every event to the `forward` reporters (the log, the
    caller's), progress to the callback, cancellation checks."""

    def __init__(self, on_progress, cancel: threading.Event | None, preview_every: int,
                 forward: list[Reporter | None]):
        self.on_progress, self.cancel, self.preview_every = on_progress, cancel, preview_every
        self.forward = [r for r in forward if r is not None]
        self.scene = self.cameras = self.record = None

    def attach(self, scene, cameras) -> None:
        self.scene, self.cameras = scene, cameras
        for r in self.forward:
            r.attach(scene, cameras)

    def turn_started(self, record: TurnRecord, total_steps: int) -> None:
        self.record = record
        for r in self.forward:
            r.turn_started(record, total_steps)

    def step(self, p: Progress) -> None:
        for r in self.forward:
            r.step(p)
        if self.on_progress is not None:
            self.on_progress(TurnProgress(self.record.index, p.step, p.total, p.loss, p.edits, self._preview(p.step)))
        if self.cancel is not None and self.cancel.is_set():
            raise TurnCancelled(f"turn {self.record.index} ({self.record.instruction!r}) was cancelled at step {p.step}")

    def turn_finished(self, record: TurnRecord) -> None:
        for r in self.forward:
            r.turn_finished(record)

    def _preview(self, step: int):
        if not self.preview_every or step % self.preview_every:
            return None
        import torch

        with torch.no_grad():
            return self.scene.render(self.cameras[[0]]).rgb[0].detach().cpu()
