"""`gsedit refine`: the super-resolution refine stage of a session."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tyro.conf import OmitArgPrefixes, Positional

from gsedit.commands.options import (
    Device,
    resolve_device,
)
from gsedit.edit.refine import RefineConfig
from gsedit.models.adss import ADSSConfig


@dataclass
class Refine:
    """Super-resolves every view of the last turn (Real-ESRGAN, GFPGAN on faces) and fine-tunes on them."""

    session: Positional[Path]
    sr: RefineConfig = field(default_factory=RefineConfig)
    face_segmenter: Literal["none", "adss"] = "none"
    """Find faces with ADSS (query --sr.face-query) when no --sr.face-masks folder is given."""
    adss: OmitArgPrefixes[ADSSConfig] = field(default_factory=ADSSConfig)
    device: Device = "auto"
    quiet: bool = False

    def run(self) -> None:
        from gsedit.commands.sessions import run_refine_command
        from gsedit.edit.api import Session

        with Session.open(self.session, resolve_device(self.device)) as session:
            run_refine_command(session, self.sr, self.face_segmenter, self.adss, self.quiet)
