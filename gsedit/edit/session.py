"""Session folders (DESIGN.md, "A session folder"): session.json, turn_NN/ per finished turn.

Every file is written atomically and a turn folder appears only when complete, so an interrupted
or killed run leaves the finished turns intact and `--resume` continues after the last of them.
One process writes a session at a time (gsedit.edit.lock); `continue_plan` is the rule that says
which turns of a `--turn` list a resumed session lacks.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gsedit.atomic import write_json
from gsedit.edit.config import EditConfig
from gsedit.edit.lock import FolderLock
from gsedit.errors import GseditError, InputFileError

SESSION_FILE = "session.json"
FORMAT_VERSION = 1
MAX_INSTRUCTION_CHARS = 2000  # a sentence or a paragraph; the text encoders read 77 tokens of it


def turn_dirname(index: int) -> str:
    return f"turn_{index:02d}"


def package_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in ("gsedit", "torch", "gsplat", "diffusers", "transformers", "numpy", "nerfstudio"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


@dataclass
class Turn:
    """One instruction of a session, with the optional segmentation queries that go with it."""

    instruction: str
    target: str | None = None
    """What to edit, for segmenters that take a query (default: the object named in the instruction)."""
    keep: str | None = None
    """What must stay unchanged (Edit3D's inverse masks for additive edits like 'give him a hat')."""
    target_selection: str | None = None
    """A selection of Gaussians to edit instead of the segmenter's target: its file, relative to the
    session folder (`turn_selections/<hash>.json`, gsedit.edit.selection.write_selection)."""
    keep_selection: str | None = None
    """A selection of Gaussians that must stay unchanged: its file, as target_selection."""


@dataclass
class TurnRecord:
    """One turn as session.json stores it."""

    index: int
    instruction: str
    target: str | None = None
    keep: str | None = None
    target_selection: str | None = None
    keep_selection: str | None = None
    status: str = "pending"  # pending | running | interrupted | failed | done
    seconds: float | None = None
    edits: int | None = None
    loss: float | None = None
    peak_rss_mb: float | None = None
    peak_cuda_mb: float | None = None
    finished_at: str | None = None

    @property
    def turn(self) -> Turn:
        return Turn(self.instruction, self.target, self.keep, self.target_selection, self.keep_selection)


class SessionFolder:
    """A session folder and its session.json."""

    def __init__(self, folder: Path, data: dict[str, Any]):
        self.folder = Path(folder)
        self.data = data

    # -- creation and loading ---------------------------------------------------------------
    @classmethod
    def create(cls, folder: Path, *, scene_file: str, input_path: str, cameras: str, method: str,
               settings: EditConfig, plugins: dict[str, Any]) -> "SessionFolder":
        folder = Path(folder)
        if (folder / SESSION_FILE).exists():
            raise GseditError(
                f"{folder} already holds a session. Continue it with `gsedit edit --out {folder} --resume` "
                f"(add --turn to append turns), drop turns with `gsedit undo {folder}`, or choose another --out."
            )
        data = {
            "format": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "input": str(input_path),
            "scene_file": scene_file,
            "cameras": cameras,
            "method": method,
            "settings": dataclasses.asdict(settings),
            "plugins": plugins,
            "versions": package_versions(),
            "turns": [],
            "turn_lists": [],
            "undone": [],
        }
        session = cls(folder, data)
        folder.mkdir(parents=True, exist_ok=True)
        session.save()
        return session

    @classmethod
    def open(cls, folder: Path) -> "SessionFolder":
        path = Path(folder) / SESSION_FILE
        if not path.is_file():
            raise InputFileError(path, "no session here: start one with `gsedit edit SCENE --cameras CAMS --turn ... --out DIR`.")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputFileError(path, f"session.json is not valid JSON ({exc}).") from None
        missing = [k for k in ("scene_file", "cameras", "settings", "turns") if k not in data]
        if not isinstance(data, dict) or missing:
            raise InputFileError(path, f"session.json lacks {missing}: it was not written by gsedit.")
        session = cls(Path(folder), data)
        session.records  # validates the turns
        return session

    def save(self) -> None:
        write_json(self.folder / SESSION_FILE, self.data)

    # -- turns ------------------------------------------------------------------------------
    @property
    def settings(self) -> EditConfig:
        known = {f.name for f in dataclasses.fields(EditConfig)}
        return EditConfig(**{k: v for k, v in self.data["settings"].items() if k in known})

    @property
    def records(self) -> list[TurnRecord]:
        try:
            return [TurnRecord(**t) for t in self.data["turns"]]
        except TypeError as exc:
            raise InputFileError(self.folder / SESSION_FILE, f"a turn entry is malformed ({exc}).") from None

    def update(self, record: TurnRecord) -> None:
        self.data["turns"][record.index - 1] = dataclasses.asdict(record)
        self.save()

    @property
    def turn_lists(self) -> list[int]:
        """The turn numbers at which each `--turn` list given to the session began (see continue_plan)."""
        return list(self.data.get("turn_lists") or [1])  # sessions older than the record: one list

    def add_turns(self, turns: list[Turn], start: int | None = None) -> None:
        """Appends `turns`; `start` is where the `--turn` list they came from began (default: with them)."""
        first = len(self.data["turns"]) + 1
        lists = self.turn_lists if first > 1 else []
        for i, turn in enumerate(turns, start=first):
            check_instruction(turn.instruction, f"Turn {i}")
            self.data["turns"].append(dataclasses.asdict(TurnRecord(i, turn.instruction, turn.target, turn.keep,
                                                                       turn.target_selection, turn.keep_selection)))
        self.data["turn_lists"] = sorted({*lists, start or first})
        self.save()

    def drop_pending(self) -> None:
        """Drops the planned turns that are not finished (kept in "undone" for the record)."""
        last = self.last_finished()
        self.data.setdefault("undone", []).extend(self.data["turns"][last:])
        del self.data["turns"][last:]
        self.data["turn_lists"] = [s for s in self.turn_lists if s <= last]
        self.save()

    def turn_dir(self, index: int) -> Path:
        return self.folder / turn_dirname(index)

    def scene_path(self, index: int) -> Path:
        return self.turn_dir(index) / self.data["scene_file"]

    def is_finished(self, index: int) -> bool:
        if index == 0:
            return self.scene_path(0).exists()
        records = self.records
        return (
            index <= len(records)
            and records[index - 1].status == "done"
            and self.scene_path(index).exists()
        )

    def last_finished(self) -> int:
        """Index of the last turn whose folder is complete (0 = only the input)."""
        last = 0
        while last < len(self.records) and self.is_finished(last + 1):
            last += 1
        return last

    def pending(self) -> list[TurnRecord]:
        return self.records[self.last_finished():]

    def undo(self) -> int:
        """Drops the last finished turn (folder and record); returns its index."""
        with FolderLock(self.folder):
            self.data = SessionFolder.open(self.folder).data  # as the last writer left it
            return self._undo_locked()

    def _undo_locked(self) -> int:
        last = self.last_finished()
        if last == 0:
            raise GseditError(f"{self.folder} has no finished turn to undo.")
        trash = self.folder / f".undo_{turn_dirname(last)}"
        if trash.exists():
            shutil.rmtree(trash)
        self.turn_dir(last).rename(trash)  # atomic: the turn disappears at once
        # later, unfinished turns depended on it: they go too, kept in "undone" for the record
        self.data["undone"].extend(self.data["turns"][last - 1 :])
        del self.data["turns"][last - 1 :]
        self.data["turn_lists"] = [s for s in self.turn_lists if s < last]
        self.save()
        shutil.rmtree(trash)
        return last


def check_instruction(text: str, where: str) -> None:
    """An instruction is a non-empty sentence; `where` names it in the error ("--turn 2")."""
    if not text.strip():
        raise GseditError(f"{where} is an empty instruction: say what to change, e.g. --turn 'make the cube red'.")
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise GseditError(
            f"{where} is {len(text):,} characters long; an instruction is a sentence, at most "
            f"{MAX_INSTRUCTION_CHARS:,} characters (the text encoders read its first 77 tokens)."
        )


def continue_plan(planned: list[Turn], turn_lists: list[int], given: list[Turn], command: str
                  ) -> tuple[list[Turn], int]:
    """The `--resume` rule (README, "Resuming a session"): the turns of `given` that the plan lacks.

    `planned` are the session's own turns, `turn_lists` the turn numbers at which each `--turn`
    list given to it began (turn 1 for the list that created it). `given` is aligned with the plan
    at each of those turns: if it repeats the plan from there, or the start of it, nothing is new
    (the same command line plus --resume only finishes the plan); if it goes on past the plan's
    end, its tail is new. A list whose first instruction matches none of them is new as a whole.
    A list that starts like the plan at one of them and then differs is refused: gsedit cannot
    tell whether it should replace turns or add them.

    Args:
        command: the command that resumes it, for the error ("gsedit edit --out D").

    Returns:
        (the new turns, the turn number at which `given` begins).

    Raises:
        GseditError: `given` differs from the plan after starting like it.
    """
    if not given:
        return [], len(planned) + 1
    conflict = None
    for start in turn_lists:
        have = planned[start - 1 :]
        if not have or have[0].instruction != given[0].instruction:
            continue
        k = next((i for i, (a, b) in enumerate(zip(have, given)) if a != b), None)
        if k is None:
            return list(given[len(have) :]), start
        conflict = conflict or (start, k, have[k])
    if conflict is None:
        return list(given), len(planned) + 1
    start, k, planned_turn = conflict
    raise GseditError(
        f"--turn {k + 1} {_describe(given[k])} differs from turn {start + k} of the session "
        f"{_describe(planned_turn)}, though the --turn list starts like the session's turns from turn "
        f"{start}. With --resume, give the same --turn list to finish the session, the same list "
        f"with more turns after it to add those, or only new turns (`{command} --resume --turn "
        f"'...'`) to append them; to change finished turns, drop them first with `gsedit undo`."
    )


def _describe(turn: Turn) -> str:
    extra = "".join(f", --{k} {v!r}" for k, v in (("target", turn.target), ("keep", turn.keep)) if v)
    extra += "".join(f", {k} selection {v}" for k, v in (("target", turn.target_selection),
                                                         ("keep", turn.keep_selection)) if v)
    return f"({turn.instruction!r}{extra})"


def session_cameras(session: SessionFolder, scene):
    """The session's cameras at its training resolution, on the scene's device."""
    from gsedit.cameras.formats import training_cameras

    return training_cameras(session.data["cameras"], scene, session.settings.max_side)
