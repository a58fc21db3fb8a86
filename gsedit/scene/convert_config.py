"""How a scene is refitted in another backend (`gsedit convert`, `gsedit compare`); imports no
torch (command options name it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Backend = Literal["3dgs", "nerfacto"]


@dataclass
class ConvertConfig:
    """How a scene is refitted in another backend, from its renders of a set of cameras."""

    iters: int = 3000
    """Optimisation steps of the refit."""
    points: int = 20_000
    """Initial Gaussians of a 3DGS refit (spread where the cameras look)."""
    nerfacto_preset: Literal["auto", "nerfacto", "tiny"] = "auto"
    """nerfacto size: the method's defaults, the CPU-sized one, or auto (tiny on CPU)."""
    seed: int = 0

    def validate(self) -> None:
        from gsedit.errors import GseditError

        if self.iters < 1 or self.points < 1:
            raise GseditError(f"--refit.iters and --refit.points must be at least 1, got {self.iters} and {self.points}.")
