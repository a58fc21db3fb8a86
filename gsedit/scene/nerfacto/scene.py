"""`NerfactoScene`: a nerfacto field with its channel heads behind the Scene interface (rendering,
checkpoints, channels lifted from per-view maps), and `fit_nerfacto`, which fits a fresh one."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path

import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.errors import GseditError, InputFileError
from gsedit.scene.base import RenderOutput, Scene, SceneOptimizer
from gsedit.scene.fit import fit_scene, look_at_centre
from gsedit.scene.nerfacto.config import NerfactoConfig
from gsedit.scene.nerfacto.field import (
    ModelFrame,
    NerfactoNetwork,
    camera_rays,
    make_head,
    pixel_grid,
    random_pixels,
    reproducible,
)
from gsedit.scene.nerfacto.optimize import NerfactoOptimizer, cpu_copy
from gsedit.scene.optim import Adam
from gsedit.torch_files import load_tensor_file

CHECKPOINT_FORMAT = "gsedit-nerfacto"
CHECKPOINT_VERSION = 1
CHANNEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(=-?[0-9]+)?$")  # a head's key: no dots


def camera_region(cameras: Cameras) -> tuple[Tensor, Tensor]:
    """([3], [3]) the cube the cameras look at: centred on their look-at point, as wide as their
    mean field of view at their mean distance (where 3DGS fitting spreads its first Gaussians)."""
    cameras = cameras.to("cpu")
    centre = look_at_centre(cameras)
    distance = (cameras.centers - centre).norm(dim=1).mean()
    half = distance * torch.atan(cameras.width / (2 * cameras.Ks[:, 0, 0])).mean().tan()
    return centre - half, centre + half


class NerfactoScene(Scene):
    """A nerfacto radiance field with a relevance head, behind gsedit's Scene interface."""

    filename = "scene.ckpt"

    def __init__(
        self,
        network: NerfactoNetwork,
        frame: ModelFrame,
        content_bounds: tuple[Tensor, Tensor],
        steps_trained: int = 0,
        labels: dict[int, str] | None = None,
        optimizer_state: dict[str, dict] | None = None,
    ):
        self.network = network
        self.config = network.config
        self.frame = frame
        self.content_bounds = content_bounds
        self.steps_trained = steps_trained
        self.labels = dict(labels or {})  # id -> name; label=K is the head of that name
        # Adam's moments per parameter group, carried from one optimisation to the next as
        # nerfstudio does when it resumes: a fresh Adam's first steps move every hash-grid entry
        # by about the full learning rate and wreck a fitted field (19 dB of its own renders after one
        # step, 34 dB with the moments carried).
        self.optimizer_state = optimizer_state or {}

    # -- construction and I/O -------------------------------------------------------------
    @classmethod
    def create(
        cls,
        cameras: Cameras,
        config: NerfactoConfig | None = None,
        bounds: tuple[Tensor, Tensor] | None = None,
        device: str | torch.device = "cpu",
    ) -> NerfactoScene:
        """A freshly initialised (untrained) field framed by the training `cameras`.

        Args:
            bounds: ([3], [3]) world box of the content, kept for orbit cameras (a .ply's bounds
                when fitting to its renders); by default the region the cameras look at.
        """
        network = NerfactoNetwork(config or NerfactoConfig()).to(device)
        bounds = bounds if bounds is not None else camera_region(cameras)
        return cls(network, ModelFrame.from_cameras(cameras), bounds)

    def state(self) -> dict:
        """Everything needed to rebuild the scene, as plain tensors and numbers (for torch.save)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": asdict(self.config),
            "frame": {"centre": self.frame.centre.cpu(), "scale": self.frame.scale},
            "bounds": [b.detach().cpu().float() for b in self.content_bounds],
            "heads": list(self.network.heads),
            "sampler": self.network.sampler_state(),
            "steps_trained": self.steps_trained,
            "labels": {str(k): v for k, v in self.labels.items()},
            "optimizers": self.optimizer_state,
            "network": {k: v.detach().cpu() for k, v in self.network.state_dict().items()},
        }

    @classmethod
    def from_state(cls, state: dict, device: str | torch.device = "cpu") -> NerfactoScene:
        known = {f.name for f in fields(NerfactoConfig)}
        settings = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in state["config"].items()
            if k in known
        }
        network = NerfactoNetwork(NerfactoConfig(**settings))
        for name in state["heads"]:
            network.heads[name] = make_head(network.config)
        network.load_state_dict(state["network"])
        network.load_sampler_state(state["sampler"])
        frame = ModelFrame(state["frame"]["centre"].float(), float(state["frame"]["scale"]))
        bounds = (state["bounds"][0], state["bounds"][1])
        labels = {int(k): str(v) for k, v in state.get("labels", {}).items()}
        return cls(network.to(device), frame, bounds, int(state["steps_trained"]), labels,
                   cpu_copy(state.get("optimizers", {})))

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> NerfactoScene:
        """Reads a checkpoint written by `save` / `save_as`."""
        path = Path(path)
        if not path.is_file():
            raise InputFileError(path, "nerfacto checkpoint not found.")
        state = load_tensor_file(path, "; gsedit nerfacto scenes are written by `gsedit fit --backend nerfacto` "
                                       "and by nerfacto edit sessions")
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise InputFileError(
                path, f"not a gsedit nerfacto checkpoint (expected format '{CHECKPOINT_FORMAT}')."
            )
        if state.get("version") != CHECKPOINT_VERSION:
            raise InputFileError(
                path,
                f"checkpoint version {state.get('version')} is not the supported "
                f"{CHECKPOINT_VERSION}.",
            )
        try:
            return cls.from_state(state, device)
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise InputFileError(path, f"broken nerfacto checkpoint: {exc}") from exc

    def save(self, folder: Path) -> Path:
        return self.save_as(Path(folder) / self.filename)

    def save_as(self, path: str | Path) -> Path:
        """Writes the checkpoint to `path` atomically."""
        from gsedit.torch_files import save_tensor_file

        return save_tensor_file(self.state(), path)

    def clone(self) -> NerfactoScene:
        return NerfactoScene.from_state(self.state(), self.device)

    def to(self, device: str | torch.device) -> NerfactoScene:
        return NerfactoScene.from_state(self.state(), device)

    # -- state ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.network.field.parameters()).device

    def channel_names(self) -> list[str]:
        return list(self.network.heads)

    def label_names(self) -> dict[int, str]:
        return dict(self.labels)

    def bounds(self) -> tuple[Tensor, Tensor]:
        return self.content_bounds

    # -- rendering --------------------------------------------------------------------------
    def _check_channels(self, channels: Sequence[str]) -> None:
        for name in channels:
            if name not in self.network.heads:
                raise KeyError(
                    f"the scene has no '{name}' channel (it has: {self.channel_names()})"
                )

    @torch.no_grad()
    def render(self, cameras: Cameras, channels: Sequence[str] = ()) -> RenderOutput:
        self._check_channels(channels)
        cameras = cameras.to(self.device)
        self.network.eval()
        parts = [
            self.network.render_rays(camera_rays(cameras, self.frame, chunk), channels)
            for chunk in pixel_grid(cameras).split(self.config.render_chunk)
        ]
        shape = (len(cameras), cameras.height, cameras.width)
        return RenderOutput(
            rgb=torch.cat([p[0] for p in parts]).reshape(*shape, 3).clamp(0, 1),
            alpha=torch.cat([p[1] for p in parts]).reshape(shape).clamp(0, 1),
            channels={
                name: torch.cat([p[2][name] for p in parts]).reshape(shape) for name in channels
            },
        )

    def render_between_steps(self, cameras: Cameras) -> RenderOutput:
        # a render counts as a proposal-network update in nerfstudio's sampler schedule
        schedule = self.network.sampler_state()
        try:
            return super().render_between_steps(cameras)
        finally:
            self.network.load_sampler_state(schedule)

    # -- optimisation -----------------------------------------------------------------------
    def optimizer(
        self, steps: int, lr_scale: float = 1.0, densify: bool = True, opacity_reset: bool = True
    ) -> SceneOptimizer:
        """nerfacto's recipe; `densify` and `opacity_reset` are 3DGS notions that a field lacks."""
        return NerfactoOptimizer(self, steps, lr_scale)

    def lift_channel(self, name: str, cameras: Cameras, maps: Tensor) -> None:
        """Fits a fresh head `name` to `maps` [C, H, W] along the current geometry (WYS 4.3)."""
        self.lift_channels({name: maps}, cameras)

    def lift_channels(self, maps: dict[str, Tensor], cameras: Cameras) -> None:
        """Fits a fresh head per channel name to its `maps` [C, H, W], all on the same rays.

        The geometry is only read, so each step samples its rays once for every head: sampling
        (the proposal networks and the field) is nearly all of a step's time, and a labelled scene
        lifts one head per label. Each head has its own loss and its own Adam moments.
        """
        shape = (len(cameras), cameras.height, cameras.width)
        for name, values in maps.items():
            if not CHANNEL_NAME.match(name):
                raise ValueError(f"channel name '{name}' must be a Python identifier or label=K")
            if tuple(values.shape) != shape:
                raise ValueError(
                    f"maps for channel '{name}' must be [C, H, W] = {list(shape)}, "
                    f"got {list(values.shape)}"
                )
        cameras = cameras.to(self.device)
        targets = {name: values.to(self.device, torch.float32) for name, values in maps.items()}
        for name in targets:
            self.network.heads[name] = make_head(self.config).to(self.device)
        parameters = [p for name in targets for p in self.network.heads[name].parameters()]
        optimizer = Adam(parameters, lr=self.config.lift_lr, eps=1e-15)
        self.network.eval()  # the geometry is only read: deterministic samples, no proposal updates
        for _ in range(self.config.lift_steps):
            pixels = random_pixels(cameras, self.config.rays_per_batch)
            with torch.no_grad():
                sampling = self.network.sample(camera_rays(cameras, self.frame, pixels))
                positions = self.network.head_positions(sampling)
            losses = [
                torch.nn.functional.mse_loss(
                    self.network.render_head(name, sampling, positions),
                    target[pixels[:, 0], pixels[:, 1], pixels[:, 2]],
                )
                for name, target in targets.items()
            ]
            optimizer.zero_grad(set_to_none=True)
            with reproducible(self.device):
                torch.stack(losses).sum().backward()
            optimizer.step()

    def lift_labels(self, names: dict[int, str], cameras: Cameras, maps: Tensor) -> None:
        """One head `label=K` per label, fitted to its coverage maps [L, C, H, W] (ids sorted)."""
        self.lift_channels({f"label={label}": maps[index] for index, label in enumerate(sorted(names))}, cameras)
        self.labels = dict(names)


def fit_nerfacto(
    images: Tensor,
    cameras: Cameras,
    steps: int,
    config: NerfactoConfig | None = None,
    bounds: tuple[Tensor, Tensor] | None = None,
    seed: int = 0,
    on_step=None,
    stop=None,
) -> NerfactoScene:
    """A nerfacto scene fitted to `images` [C, H, W, 3] in [0, 1] seen by `cameras` (`gsedit fit`).

    Args:
        bounds: the content's world box, kept for orbit cameras (see `NerfactoScene.create`).
        on_step: called with (step, loss) after every step.
        stop: called with (the scene, steps done) after every step; True ends the fit there.
    """
    shape = (len(cameras), cameras.height, cameras.width, 3)
    if tuple(images.shape) != shape:
        raise GseditError(
            f"fit_nerfacto: images must be [C, H, W, 3] = {list(shape)}, got {list(images.shape)}."
        )
    if steps < 1:
        raise GseditError(f"fit_nerfacto: steps must be >= 1, got {steps}.")
    torch.manual_seed(seed)  # hash grid initialisation and ray draws
    scene = NerfactoScene.create(cameras, config, bounds, device=images.device)
    fit_scene(scene, cameras, images, steps, on_step, stop)
    return scene
