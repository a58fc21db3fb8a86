"""`gsedit demo`: a synthetic labelled scene edited in two turns, offline, on CPU, evaluated, with a report."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from gsedit.commands.options import (
    Device,
    resolve_device,
)
from gsedit.errors import GseditError

MARKER = ".gsedit-demo"


def _prepare(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise GseditError(f"{out} exists and is not a gsedit demo folder: choose another --out.")
        shutil.rmtree(out)  # a previous demo: start afresh
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("created by gsedit demo; rerunning the demo replaces this folder\n")


@contextlib.contextmanager
def _models_from_cache_only():
    """The demo never downloads: CLIP and LPIPS score only if they are already cached."""
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["HF_HUB_OFFLINE"]
        else:
            os.environ["HF_HUB_OFFLINE"] = previous


def run_demo(out: Path, iters: int, size: int, device, quiet: bool = False):
    from gsedit.commands.edit import Edit
    from gsedit.commands.eval import Eval
    from gsedit.commands.progress import console
    from gsedit.commands.sessions import run_edit_command
    from gsedit.data.demo import DEMO_OVERRIDES, DEMO_TURNS, write_demo_scene
    from gsedit.edit.config import load_preset

    out = Path(out)
    _prepare(out)
    scene_path, cameras_path = write_demo_scene(out, size)
    console.print(f"synthetic labelled scene: {scene_path} (+ {cameras_path.name})")
    settings, _ = load_preset("gsedit")
    args = Edit(
        scene=scene_path,
        cameras=str(cameras_path),
        turn=list(DEMO_TURNS),
        out=out / "session",
        method="gsedit",
        editor="synthetic",
        device=str(device),
        quiet=quiet,
        turntable=True,
        settings=replace(settings, iters=iters, **DEMO_OVERRIDES),
    )
    session = run_edit_command(args)
    with _models_from_cache_only():
        Eval(session=session.folder, device=str(device)).run()  # the report shows the metrics table
    console.print(f"[bold green]demo done[/]: open {session.folder / 'report.html'}")
    return session


@dataclass
class Demo:
    """Offline demo: a synthetic labelled scene, two turns with the synthetic editor, a report."""

    out: Path = Path("gsedit_demo")
    iters: int = 200
    """Optimisation steps per turn."""
    size: int = 96
    """Image size of the demo cameras (pixels)."""
    device: Device = "auto"
    quiet: bool = False

    def run(self) -> None:
        from gsedit.commands.demo import run_demo

        run_demo(self.out, iters=self.iters, size=self.size, device=resolve_device(self.device), quiet=self.quiet)
