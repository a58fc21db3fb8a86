"""`gsedit undo`: drops the last finished turn of a session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tyro.conf import Positional


@dataclass
class Undo:
    """Drops the last finished turn of a session."""

    session: Positional[Path]

    def run(self) -> None:
        from gsedit.edit.api import Session

        with Session.open(self.session) as session:
            index = session.undo()
        print(f"dropped turn {index} of {self.session}")
