"""`gsedit edit`: its options (shared with `gsedit compare`) and the command."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro
from tyro.conf import OmitArgPrefixes, Positional, UseAppendAction

from gsedit.commands.options import (
    CAMERAS_HELP,
    DATAPARSER_HELP,
    DEFAULT_METHOD,
    FRAME_CHECK_HELP,
    ITERATION_HELP,
    SPZ_AXES_HELP,
    Device,
    SpzAxesOption,
)
from gsedit.edit.config import EditConfig
from gsedit.edit.refine_config import RefineConfig
from gsedit.models.adss_config import ADSSConfig
from gsedit.models.ip2p.config import IP2PConfig


@dataclass
class EditRun:
    """What `gsedit edit` and `gsedit compare` share: the scene, the turns, the method and plug-ins."""

    scene: Positional[Path | None] = None
    """The input scene (.ply, .spz, .compressed.ply, .sog, .splat, a trainer's output folder, or a gsedit
    nerfacto .ckpt); not needed with --resume."""
    cameras: Annotated[str | None, tyro.conf.arg(help=CAMERAS_HELP)] = None
    iteration: Annotated[int | None, tyro.conf.arg(help=ITERATION_HELP)] = None
    dataparser_transforms: Annotated[Path | None, tyro.conf.arg(help=DATAPARSER_HELP)] = None
    frame_check: Annotated[bool, tyro.conf.arg(help=FRAME_CHECK_HELP)] = True
    export: str = ""
    """Comma-separated splat formats written beside every turn's scene.ply: spz, compressed.ply, splat (3DGS)."""
    spz_axes: Annotated[SpzAxesOption, tyro.conf.arg(help=SPZ_AXES_HELP)] = "auto"
    turn: UseAppendAction[list[str]] = field(default_factory=list)
    """An instruction; repeat for several turns (they run in order)."""
    out: Path = Path("session")
    """The session folder."""
    method: str = DEFAULT_METHOD
    """Method preset (configs/NAME.yaml): in2n, edit3d, wys or gsedit; the flags below override it."""
    editor: Literal["ip2p", "synthetic"] = "ip2p"
    """Image editor: InstructPix2Pix, or the offline synthetic stand-in (never edit quality)."""
    target: UseAppendAction[list[str]] = field(default_factory=list)
    """What to edit, for the segmenter: once for all turns or once per turn."""
    keep: UseAppendAction[list[str]] = field(default_factory=list)
    """What must stay unchanged (inverse masks for additive edits): once for all turns or per turn."""
    resume: bool = False
    """Continue the session in --out from its last finished turn. The same command line plus --resume finishes its turns and adds none; a longer --turn list appends only its new tail; a --turn list that starts like none of the session's turn lists appends all its turns (add turns later); one that starts like the session's turns and then differs is refused (README, "Resuming a session")."""
    device: Device = "auto"
    gpu_memory: float | None = None
    """GPU memory budget in GB (default: what the device has free; none on CPU). A pre-flight estimate is printed
    before any work; over budget, the cheapest editor settings that fit are chosen (README, "GPU memory"), and
    when nothing fits the run is refused with the numbers."""
    refine: bool = False
    """Run the super-resolution refine stage after the last turn (settings: --sr.*)."""
    turntable: bool = False
    """Write renders/turntable.mp4 (and before_after.mp4) for every finished turn."""
    quiet: bool = False
    """No progress display (the JSON-lines log in the session is still written)."""
    settings: OmitArgPrefixes[EditConfig] = field(default_factory=EditConfig)
    ip2p: IP2PConfig = field(default_factory=IP2PConfig)
    """InstructPix2Pix (--editor ip2p)."""
    adss: OmitArgPrefixes[ADSSConfig] = field(default_factory=ADSSConfig)
    """ADSS segmenter (--segmenter adss, and --keep queries)."""
    sr: RefineConfig = field(default_factory=RefineConfig)
    """Refine stage (--refine)."""


@dataclass
class Edit(EditRun):
    """Edits a scene from text instructions, turn after turn; writes DIR/turn_NN/ after every turn."""

    view: bool = False
    """Show the scene updating live in a web viewer (viser) while it trains."""
    view_port: int = 8080

    def run(self) -> None:
        from gsedit.commands.sessions import run_edit_command

        run_edit_command(self)
