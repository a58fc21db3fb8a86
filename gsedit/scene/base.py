"""The representation-agnostic Scene interface that the edit loop talks to.

The loop in `gsedit.edit` knows only this module: a 3DGS scene and a nerfacto scene are two
implementations of it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.errors import GseditError

#: optimisers check every parameter this often (and after the last step); the loss at every step
PARAMETER_CHECK_EVERY = 50


class NonFiniteError(GseditError):
    """An optimisation produced NaN or inf (in its loss or a parameter) and was stopped."""

    def __init__(self, step: int, what: str):
        self.step, self.what = step, what
        super().__init__(
            f"the optimisation went non-finite at step {step}: {what}. Nothing of it was written. "
            "A learning rate too high for the scene (try a lower --lr-scale) or NaN in the "
            "targets usually causes this."
        )


def check_finite(step: int, loss: float | None = None,
                 parameters: Iterable[tuple[str, Tensor]] = ()) -> None:
    """Raises NonFiniteError when `loss` or any of the named `parameters` is NaN or inf."""
    if loss is not None and not math.isfinite(loss):
        raise NonFiniteError(step, f"the loss is {loss}")
    for name, value in parameters:
        finite = torch.isfinite(value.detach())
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise NonFiniteError(step, f"parameter '{name}' holds NaN or inf in {bad:,} of {value.numel():,} values")


@dataclass
class RenderOutput:
    """What a scene renders for a batch of C views."""

    rgb: Tensor  # [C, H, W, 3] in [0, 1]
    alpha: Tensor  # [C, H, W] accumulated opacity
    channels: dict[str, Tensor] = field(default_factory=dict)  # name -> [C, H, W]


class SceneOptimizer(ABC):
    """Optimises a scene against target images with the backend's own recipe and schedule.

    Optimisers stop with NonFiniteError as soon as the loss is not finite (before it reaches the
    parameters), when a parameter is not finite at a check, and in `finish`, so that no NaN scene
    is ever saved.
    """

    #: steps after which the schedule no longer reshapes the scene (3DGS: densification and
    #: opacity resets, which drop its fidelity for a while): a flat fit before it is not converged
    settled_step: int = 0

    @abstractmethod
    def step(self, cameras: Cameras, targets: Tensor) -> float:
        """One optimisation step on views `cameras` against `targets` [C, H, W, 3]; returns the loss."""

    def finish(self) -> None:
        """Called once after the last step (e.g. to drop optimiser state)."""


class Scene(ABC):
    """A 3D scene that renders views and can be optimised, saved, loaded and cloned."""

    #: file name of the scene inside a turn folder (e.g. "scene.ply")
    filename: str = "scene"

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @abstractmethod
    def render(self, cameras: Cameras, channels: Sequence[str] = ()) -> RenderOutput:
        """Renders RGB and the named extra channels of `cameras` in one pass."""

    def render_between_steps(self, cameras: Cameras) -> RenderOutput:
        """`render` of RGB in the middle of an optimisation that must go on as if it had not
        happened (a refit's PSNR checks): no draws from the random streams it uses."""
        devices = [self.device] if torch.device(self.device).type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            return self.render(cameras)

    @abstractmethod
    def channel_names(self) -> list[str]:
        """Names of the extra per-point channels this scene can render (e.g. relevance, label)."""

    @abstractmethod
    def optimizer(
        self, steps: int, lr_scale: float = 1.0, densify: bool = True, opacity_reset: bool = True
    ) -> SceneOptimizer:
        """An optimiser for `steps` optimisation steps, with the backend's schedule.

        Args:
            lr_scale: multiplies the backend's learning rates.
            densify: let the backend add and remove points (3DGS densification).
            opacity_reset: periodic opacity resets (fitting from images; edit turns turn them off).
        """

    @abstractmethod
    def save(self, folder: Path) -> Path:
        """Writes the scene into `folder` (atomically) and returns the main file."""

    @abstractmethod
    def clone(self) -> "Scene":
        """An independent copy (used for undo and comparisons)."""

    def label_names(self) -> dict[int, str]:
        """Label id -> object name, for labelled scenes; empty otherwise."""
        return {}

    def lift_channel(self, name: str, cameras: Cameras, maps: Tensor) -> None:
        """Sets channel `name` from per-view maps [C, H, W] so that its renders agree across views.

        Backends that cannot store per-point channels raise NotImplementedError.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot lift per-view maps to 3D")

    def lift_labels(self, names: dict[int, str], cameras: Cameras, maps: Tensor) -> None:
        """Makes the scene labelled: `names` id -> object, `maps` [L, C, H, W] each label's coverage
        in every view (ids in sorted order), so that `label=K` channels render those objects."""
        raise NotImplementedError(f"{type(self).__name__} cannot hold labels")

    def bounds(self) -> tuple[Tensor, Tensor]:
        """([3], [3]) axis-aligned bounds of the scene content, used for orbit cameras."""
        raise NotImplementedError
