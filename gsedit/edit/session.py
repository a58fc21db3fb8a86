"""Session folders (DESIGN.md, "A session folder"): session.json, turn_NN/ per finished turn.

Every file is written atomically and a turn folder appears only when complete, so an interrupted
or killed run leaves the finished turns intact and `--resume` continues after the last of them.
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
from gsedit.edit.masks import Turn
from gsedit.errors import GseditError, InputFileError

SESSION_FILE = "session.json"
FORMAT_VERSION = 1


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
class TurnRecord:
    """One turn as session.json stores it."""

    index: int
    instruction: str
    target: str | None = None
    keep: str | None = None
    status: str = "pending"  # pending | running | interrupted | failed | done
    seconds: float | None = None
    edits: int | None = None
    loss: float | None = None
    peak_rss_mb: float | None = None
    peak_cuda_mb: float | None = None
    finished_at: str | None = None

    @property
    def turn(self) -> Turn:
        return Turn(self.instruction, self.target, self.keep)


class Session:
    """A session folder and its session.json."""

    def __init__(self, folder: Path, data: dict[str, Any]):
        self.folder = Path(folder)
        self.data = data

    # -- creation and loading ---------------------------------------------------------------
    @classmethod
    def create(cls, folder: Path, *, scene_file: str, input_path: str, cameras: str, method: str,
               settings: EditConfig, plugins: dict[str, Any]) -> "Session":
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
            "undone": [],
        }
        session = cls(folder, data)
        folder.mkdir(parents=True, exist_ok=True)
        session.save()
        return session

    @classmethod
    def open(cls, folder: Path) -> "Session":
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
        session.remove_stale_temporaries()
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

    def add_turns(self, turns: list[Turn]) -> None:
        start = len(self.data["turns"])
        for i, turn in enumerate(turns, start=start + 1):
            if not turn.instruction.strip():
                raise GseditError(f"Turn {i} has an empty instruction.")
            self.data["turns"].append(dataclasses.asdict(TurnRecord(i, turn.instruction, turn.target, turn.keep)))
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
        self.save()
        shutil.rmtree(trash)
        return last

    def remove_stale_temporaries(self) -> None:
        """Removes half-written turn folders a killed run left behind (they were never renamed)."""
        for tmp in self.folder.glob(".turn_*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)
