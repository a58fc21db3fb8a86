"""`gsedit view`: the web viewer of a session or a scene."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tyro.conf import Positional

from gsedit.commands.options import (
    Device,
    resolve_device,
)


@dataclass
class View:
    """Web viewer (viser) of a session (turn slider, before/after, masks, relevance) or of one scene file."""

    path: Positional[Path]
    port: int = 8080
    host: str = "127.0.0.1"
    max_side: int | None = None
    """Longest side of the rendered view (default: 3DGS 256 px on CPU, 1024 on CUDA; nerfacto 64 / 256)."""
    device: Device = "auto"

    def run(self) -> None:
        from gsedit.viewer import run_viewer

        viewer = run_viewer(self.path, port=self.port, max_side=self.max_side,
                            device=resolve_device(self.device), host=self.host)
        print(f"viewer at {viewer.url} (Ctrl-C to stop)")
        viewer.serve_forever()
