"""How a scene is refitted in another backend (`gsedit convert`, `gsedit compare`); imports no
torch (command options name it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Backend = Literal["3dgs", "nerfacto"]


@dataclass
class ConvertConfig:
    """How a scene is refitted in another backend, from its renders of a set of cameras.

    A refit runs only while it improves. An epoch is the number of steps that fit every training
    pixel once on average: the number of views for 3DGS (a step fits one whole view), views x
    pixels / rays per step for nerfacto. Every `check_epochs` epochs (at least 50 steps) the
    scene is rendered from every camera and its PSNR to the input's renders measured; the refit
    stops on a plateau, when `plateau_checks` checks in a row gain less than `plateau_db` over
    the best PSNR before them, and at the latest at its step cap: `iters`, and where a session's
    --iters is known (`gsedit compare`) at most max(`cap_epochs` epochs, `cap_per_session_step`
    x --iters), so a short comparison is not preceded by a refit many times its length. The
    learning-rate schedules are laid out over the cap. compare.json's refit entry and the
    console report the steps run, the PSNR reached and why it stopped (plateau or cap).
    """

    iters: int = 3000
    """Most optimisation steps of the refit (it stops earlier on a PSNR plateau)."""
    points: int = 20_000
    """Initial Gaussians of a 3DGS refit (spread where the cameras look)."""
    nerfacto_preset: Literal["auto", "nerfacto", "tiny"] = "auto"
    """nerfacto size: the method's defaults, the CPU-sized one, or auto (tiny on CPU)."""
    seed: int = 0
    check_epochs: float = 2.0
    """Epochs between two PSNR checks (an epoch fits every training pixel once on average)."""
    plateau_db: float = 0.1
    """A check that beats the best PSNR before it by less than this (dB) counts as flat."""
    plateau_checks: int = 2
    """Flat checks in a row that stop the refit; 0 turns the plateau rule off."""
    cap_epochs: int = 12
    """With a session's --iters known: the step cap is at least this many epochs ..."""
    cap_per_session_step: int = 10
    """... or this many refit steps per session step, whichever is more (and at most `iters`)."""

    def validate(self) -> None:
        from gsedit.errors import GseditError

        if self.iters < 1 or self.points < 1:
            raise GseditError(f"--refit.iters and --refit.points must be at least 1, got {self.iters} and {self.points}.")
        if self.check_epochs <= 0 or self.plateau_db < 0 or self.plateau_checks < 0 or self.cap_epochs < 1 \
                or self.cap_per_session_step < 1:
            raise GseditError(
                "--refit.check-epochs must be above 0, --refit.plateau-db and --refit.plateau-checks at least 0, "
                f"--refit.cap-epochs and --refit.cap-per-session-step at least 1; got {self.check_epochs}, "
                f"{self.plateau_db}, {self.plateau_checks}, {self.cap_epochs} and {self.cap_per_session_step}.")
