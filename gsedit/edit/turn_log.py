"""DIR/log.jsonl: the JSON-lines log of every turn a `gsedit.Session` runs, for machines following
a run (the command line's rich display is for people and is fed by the same events).

One object a line: `turn_started` (turn, instruction, steps), `step` (turn, step, total, edits,
loss; every `every` steps and the last), `turn_finished` (the turn's record), each with its `time`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

LOG_FILE = "log.jsonl"


class JsonLog:
    """Appends one JSON object per event to a file (flushed at once, so a killed run keeps its log)."""

    def __init__(self, path: Path | None):
        self.path = path

    def write(self, event: str, **fields) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps({"time": round(time.time(), 3), "event": event, **fields}) + "\n")


class TurnLog:
    """The edit engine's Reporter that writes a turn's events to a JsonLog."""

    def __init__(self, log: JsonLog, every: int = 10):
        self.log = log
        self.every = every
        self.record = None

    def turn_started(self, record, total_steps: int) -> None:
        self.record = record
        self.log.write("turn_started", turn=record.index, instruction=record.instruction, steps=total_steps)

    def step(self, p) -> None:
        if p.step % self.every == 0 or p.step == p.total:
            self.log.write("step", turn=self.record.index, step=p.step, total=p.total, edits=p.edits, loss=p.loss)

    def turn_finished(self, record) -> None:
        self.log.write("turn_finished", **dataclasses.asdict(record))

    def attach(self, scene, cameras) -> None:
        """Nothing to log: the scene is in the turn's folder."""
