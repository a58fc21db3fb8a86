"""What a running turn tells whoever listens (the console, the JSON-lines log, the studio, a live
viewer), torch-free so that `gsedit.Session` opens a session without loading torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gsedit.cameras import Cameras
    from gsedit.edit.session import TurnRecord
    from gsedit.scene.base import Scene


@dataclass
class Progress:
    """What the loop reports after every step (for the rich display and the JSON-lines log)."""

    step: int
    total: int
    edits: int
    loss: float


class Reporter(Protocol):
    """Receives progress (the CLI shows it with rich and logs it as JSON lines)."""

    def turn_started(self, record: TurnRecord, total_steps: int) -> None: ...
    def step(self, progress: Progress) -> None: ...
    def turn_finished(self, record: TurnRecord) -> None: ...
    def attach(self, scene: Scene, cameras: Cameras) -> None: ...


class TurnCancelled(Exception):
    """A turn stopped at its next step because its cancellation event was set (see gsedit.Session);
    the session keeps its finished turns and the cancelled one stays pending, marked interrupted."""
