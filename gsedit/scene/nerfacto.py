"""The nerfacto implementation of the Scene interface: nerfstudio's fields, sampler and recipe.

Needs nerfstudio (installed by the README's install command); no other gsedit module imports it. The model is put together
from nerfstudio's nerfacto parts (`NerfactoField`, one `HashMLPDensityField` per proposal level,
`ProposalNetworkSampler`, MSE + interlevel + distortion loss, Adam with exponential decay per
parameter group) instead of being built as a `NerfactoModel`:
that class's setup also builds an LPIPS metric, which downloads AlexNet weights, plus per-image
appearance embeddings and pose refinement, which an edit loop with given cameras does not want.

Watch Your Steps' relevance field (Sec. 4.3) is a head on top: a small hash grid + MLP giving
r(x) in [0, 1], rendered with the main field's weights detached, so that fitting it never moves the
geometry and it follows the geometry as edits change it. Every channel lifted with
`lift_channel` gets such a head.

World coordinates map to the model's frame by `(x - centre) * scale`, chosen from the training
cameras (the point they look at goes to the origin, the farthest camera to distance 1) as
nerfstudio's data parsers do; scene contraction squeezes what lies beyond the unit cube.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from gsedit.cameras import Cameras
from gsedit.errors import GseditError, InputFileError, MissingPackageError
from gsedit.scene.base import PARAMETER_CHECK_EVERY, RenderOutput, Scene, SceneTrainer, check_finite
from gsedit.scene.optim import Adam
from gsedit.torch_files import load_tensor_file

# nerfstudio 1.1.5 pins viser==0.2.7, gsplat==1.4.0 and timm==0.6.7, which clash with gsedit's own
# requirements; the parts used here (fields, sampler, renderers, losses, optimisers) run on gsedit's
# versions, so the install command adds nerfstudio without its dependencies ([nerf] has the rest).

try:
    with warnings.catch_warnings():  # nerfstudio's torch.cuda.amp decorators warn on import
        warnings.simplefilter("ignore", FutureWarning)
        from nerfstudio.cameras.rays import RayBundle, RaySamples
        from nerfstudio.engine.optimizers import AdamOptimizerConfig, Optimizers
        from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
        from nerfstudio.field_components.field_heads import FieldHeadNames
        from nerfstudio.field_components.mlp import MLPWithHashEncoding
        from nerfstudio.field_components.spatial_distortions import SceneContraction
        from nerfstudio.fields.density_fields import HashMLPDensityField
        from nerfstudio.fields.nerfacto_field import NerfactoField
        from nerfstudio.model_components.losses import distortion_loss, interlevel_loss
        from nerfstudio.model_components.ray_samplers import ProposalNetworkSampler
        from nerfstudio.model_components.renderers import RGBRenderer
        from nerfstudio.model_components.scene_colliders import NearFarCollider
except ImportError as exc:  # the optional extra is missing: say which install fixes it
    raise MissingPackageError("The nerfacto backend", "nerfstudio", str(exc)) from exc

CHECKPOINT_FORMAT = "gsedit-nerfacto"
CHECKPOINT_VERSION = 1
CHANNEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(=-?[0-9]+)?$")  # a head's key: no dots


@dataclass
class NerfactoConfig:
    """The nerfacto model and training recipe; defaults are `ns-train nerfacto` (nerfstudio 1.1)."""

    hidden_dim: int = 64
    """Width of the density MLP of the main field."""
    hidden_dim_color: int = 64
    """Width of the colour MLP of the main field."""
    num_levels: int = 16
    """Hash grid levels of the main field."""
    base_res: int = 16
    """Coarsest hash grid resolution of the main field."""
    max_res: int = 2048
    """Finest hash grid resolution of the main field."""
    log2_hashmap_size: int = 19
    """log2 of the entries per hash grid level of the main field."""
    features_per_level: int = 2
    """Features per hash grid level."""
    proposal_samples: tuple[int, ...] = (256, 96)
    """Samples per ray of each proposal level (one proposal network per entry)."""
    proposal_max_res: tuple[int, ...] = (128, 256)
    """Finest hash grid resolution of each proposal network (one entry per proposal level)."""
    proposal_hidden_dim: int = 16
    """Width of the proposal networks' MLPs."""
    proposal_levels: int = 5
    """Hash grid levels of each proposal network."""
    proposal_log2_hashmap_size: int = 17
    """log2 of the entries per hash grid level of the proposal networks."""
    nerf_samples: int = 48
    """Samples per ray of the main field."""
    proposal_update_every: int = 5
    """After the warm-up, the proposal networks get gradients every this many steps."""
    proposal_warmup: int = 5000
    """Steps over which the proposal update period grows from 1 to `proposal_update_every`."""
    anneal_steps: int = 1000
    """Steps over which the proposal weights' annealing exponent grows to 1 (mip-NeRF 360, 18)."""
    anneal_slope: float = 10.0
    """Slope of that annealing."""
    average_init_density: float = 0.01
    """Density scale at initialisation."""
    near: float = 0.05
    """Near plane while training, in model units (the farthest training camera is at distance 1)."""
    far: float = 1000.0
    """Far plane, in model units."""
    background: Literal["last_sample", "black", "white"] = "last_sample"
    """What shows where rays accumulate less than full opacity."""
    implementation: Literal["torch", "tcnn"] = "torch"
    """Hash grid code: pure PyTorch (any device) or tiny-cuda-nn (CUDA, if installed). A checkpoint
    can only be loaded with the implementation it was trained with."""
    head_levels: int = 8
    """Hash grid levels of a channel head (the relevance field)."""
    head_max_res: int = 256
    """Finest hash grid resolution of a channel head."""
    head_log2_hashmap_size: int = 16
    """log2 of the entries per hash grid level of a channel head."""
    head_hidden_dim: int = 32
    """Width of a channel head's MLP."""
    lift_steps: int = 300
    """Adam steps that fit a channel head to per-view maps in `lift_channel`."""
    lift_lr: float = 1e-2
    """Learning rate of those steps."""
    rays_per_batch: int = 4096
    """Rays per training step, drawn at random from the step's views."""
    lr: float = 1e-2
    """Adam learning rate of the fields and of the proposal networks."""
    lr_final: float = 1e-4
    """Where the exponential decay of the learning rate heads to."""
    decay_horizon: float = 200_000 / 30_000
    """The decay reaches `lr_final` after this many times the run's steps (nerfacto decays over 200k
    steps in a 30k-step run)."""
    interlevel_loss_mult: float = 1.0
    """Weight of the proposal (interlevel) loss."""
    distortion_loss_mult: float = 0.002
    """Weight of the distortion loss."""
    render_chunk: int = 1 << 15
    """Rays rendered together when rendering without gradients."""

    def validate(self) -> None:
        levels = len(self.proposal_samples)
        if levels < 1 or levels != len(self.proposal_max_res):
            raise ValueError(
                f"proposal_samples {self.proposal_samples} and proposal_max_res "
                f"{self.proposal_max_res} need one entry per proposal level (at least one)"
            )
        if self.rays_per_batch < 1 or self.render_chunk < 1 or self.nerf_samples < 2:
            raise ValueError("rays_per_batch and render_chunk must be >= 1 and nerf_samples >= 2")


#: a small model for CPU (tests, CI, quick looks): 0.1-0.15 s per step of 1024 rays on one core
#: (the full model: ~4 s), with higher learning rates so that a few dozen steps show progress
TINY = NerfactoConfig(
    hidden_dim=16,
    hidden_dim_color=16,
    num_levels=4,
    max_res=64,
    log2_hashmap_size=12,
    proposal_samples=(32,),
    proposal_max_res=(32,),
    proposal_hidden_dim=8,
    proposal_levels=3,
    proposal_log2_hashmap_size=10,
    nerf_samples=16,
    proposal_warmup=100,
    anneal_steps=50,
    head_levels=3,
    head_max_res=32,
    head_log2_hashmap_size=10,
    head_hidden_dim=8,
    lift_steps=60,
    lift_lr=3e-2,
    rays_per_batch=1024,
    lr=3e-2,
    render_chunk=8192,
)
NERFACTO_PRESETS = {"nerfacto": NerfactoConfig(), "tiny": TINY}


@dataclass
class ModelFrame:
    """World -> model coordinates: `(x - centre) * scale`."""

    centre: Tensor  # [3]
    scale: float

    @classmethod
    def from_cameras(cls, cameras: Cameras) -> ModelFrame:
        """The cameras' look-at point at the origin, the farthest camera at distance 1."""
        from gsedit.scene.fit import look_at_centre

        cameras = cameras.to("cpu")
        centre = look_at_centre(cameras)
        if not torch.isfinite(centre).all():  # parallel optical axes: no common point
            centre = cameras.centers.mean(dim=0)
        reach = float((cameras.centers - centre).norm(dim=1).max())
        return cls(centre.float(), 1.0 / reach if reach > 1e-6 else 1.0)


def camera_region(cameras: Cameras) -> tuple[Tensor, Tensor]:
    """([3], [3]) the cube the cameras look at: centred on their look-at point, as wide as their
    mean field of view at their mean distance (where 3DGS fitting spreads its first Gaussians)."""
    from gsedit.scene.fit import look_at_centre

    cameras = cameras.to("cpu")
    centre = look_at_centre(cameras)
    distance = (cameras.centers - centre).norm(dim=1).mean()
    half = distance * torch.atan(cameras.width / (2 * cameras.Ks[:, 0, 0])).mean().tan()
    return centre - half, centre + half


def pixel_grid(cameras: Cameras) -> Tensor:
    """[C*H*W, 3] (camera, row, column) of every pixel, camera-major."""
    c, y, x = torch.meshgrid(
        torch.arange(len(cameras)),
        torch.arange(cameras.height),
        torch.arange(cameras.width),
        indexing="ij",
    )
    return torch.stack([c, y, x], dim=-1).reshape(-1, 3)


def random_pixels(cameras: Cameras, count: int) -> Tensor:
    """[R, 3] (camera, row, column): all pixels when there are at most `count`, else `count` random.

    Draws from the global CPU generator, which the edit loop seeds per turn (resumes repeat it).
    """
    total = len(cameras) * cameras.height * cameras.width
    if total <= count:
        return pixel_grid(cameras)
    flat = torch.randint(total, (count,))
    per_camera = cameras.height * cameras.width
    return torch.stack(
        [flat // per_camera, (flat % per_camera) // cameras.width, flat % cameras.width], dim=-1
    )


def camera_rays(cameras: Cameras, frame: ModelFrame, pixels: Tensor) -> RayBundle:
    """Rays through the centres of `pixels` [R, 3] (camera, row, column), in model coordinates.

    OpenCV pinhole cameras: pixel (row y, column x) looks along K^-1 (x + 0.5, y + 0.5, 1).
    """
    device = cameras.device
    cam, y, x = pixels.to(device).unbind(-1)
    Ks = cameras.Ks[cam]  # [R, 3, 3]
    c2w = cameras.camtoworlds[cam]  # [R, 4, 4]
    d_cam = torch.stack(
        [
            (x + 0.5 - Ks[:, 0, 2]) / Ks[:, 0, 0],
            (y + 0.5 - Ks[:, 1, 2]) / Ks[:, 1, 1],
            torch.ones_like(Ks[:, 0, 0]),
        ],
        dim=-1,
    )  # [R, 3]
    directions = torch.nn.functional.normalize(
        (c2w[:, :3, :3] @ d_cam[:, :, None])[:, :, 0], dim=-1
    )
    origins = (c2w[:, :3, 3] - frame.centre.to(device)) * frame.scale
    pixel_area = 1.0 / (Ks[:, 0, 0] * Ks[:, 1, 1])  # [R] solid angle of a pixel near the axis
    return RayBundle(
        origins=origins,
        directions=directions,
        pixel_area=pixel_area[:, None],
        camera_indices=torch.zeros(len(pixels), 1, dtype=torch.long, device=device),
    )


@contextlib.contextmanager
def reproducible(device: torch.device):
    """Deterministic kernels on CPU: the hash grids' gradient scatter otherwise sums in an order
    that varies with thread timing, and resumed sessions would not repeat bit for bit. Measured
    no slower on CPU (52 vs 56-61 ms per tiny step); CUDA keeps its fast kernels."""
    if device.type != "cpu":
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def _head(config: NerfactoConfig) -> nn.Module:
    """A channel head: contracted position -> hash grid -> MLP -> value in [0, 1]."""
    return MLPWithHashEncoding(
        num_levels=config.head_levels,
        min_res=16,
        max_res=config.head_max_res,
        log2_hashmap_size=config.head_log2_hashmap_size,
        features_per_level=2,
        num_layers=2,
        layer_width=config.head_hidden_dim,
        out_dim=1,
        activation=nn.ReLU(),
        out_activation=nn.Sigmoid(),
        implementation=config.implementation,
    )


@dataclass
class RaySampling:
    """What one pass of the sampler and the main field gives for R rays."""

    samples: RaySamples  # [R, S]
    weights: Tensor  # [R, S, 1] of the main field
    rgb: Tensor  # [R, S, 3] per-sample colours
    weights_list: list[Tensor]  # every level's weights (proposals, then the main field)
    samples_list: list[RaySamples]


class NerfactoNetwork(nn.Module):
    """nerfacto's main field, proposal networks and sampler, plus one head per lifted channel."""

    def __init__(self, config: NerfactoConfig):
        super().__init__()
        config.validate()
        self.config = c = config
        # nerfstudio's fields require a box, which scene contraction makes unused
        aabb = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
        self.contraction = SceneContraction(order=float("inf"))
        self.field = NerfactoField(
            aabb,
            num_images=1,
            hidden_dim=c.hidden_dim,
            num_levels=c.num_levels,
            base_res=c.base_res,
            max_res=c.max_res,
            log2_hashmap_size=c.log2_hashmap_size,
            features_per_level=c.features_per_level,
            hidden_dim_color=c.hidden_dim_color,
            spatial_distortion=self.contraction,
            appearance_embedding_dim=0,
            average_init_density=c.average_init_density,
            implementation=c.implementation,
        )
        self.proposal_networks = nn.ModuleList(
            HashMLPDensityField(
                aabb,
                spatial_distortion=self.contraction,
                hidden_dim=c.proposal_hidden_dim,
                num_levels=c.proposal_levels,
                max_res=res,
                log2_hashmap_size=c.proposal_log2_hashmap_size,
                use_linear=False,
                average_init_density=c.average_init_density,
                implementation=c.implementation,
            )
            for res in c.proposal_max_res
        )
        self.sampler = ProposalNetworkSampler(
            num_proposal_samples_per_ray=tuple(c.proposal_samples),
            num_nerf_samples_per_ray=c.nerf_samples,
            num_proposal_network_iterations=len(c.proposal_samples),
            single_jitter=True,
            update_sched=self._proposal_period,
        )
        self.collider = NearFarCollider(near_plane=c.near, far_plane=c.far)
        self.rgb_renderer = RGBRenderer(background_color=c.background)
        self.heads = nn.ModuleDict()

    def _proposal_period(self, step: int) -> float:
        c = self.config
        return min(
            max(step / max(c.proposal_warmup, 1) * c.proposal_update_every, 1),
            c.proposal_update_every,
        )

    def set_anneal(self, step: int) -> None:
        """Proposal weight annealing at training step `step` (mip-NeRF 360, eq. 18)."""
        frac, b = min(step / max(self.config.anneal_steps, 1), 1.0), self.config.anneal_slope
        self.sampler.set_anneal(b * frac / ((b - 1) * frac + 1))

    def sample(self, rays: RayBundle) -> RaySampling:
        rays = self.collider(rays)
        density_fns = [net.density_fn for net in self.proposal_networks]
        samples, weights_list, samples_list = self.sampler(rays, density_fns=density_fns)
        out = self.field(samples)
        weights = samples.get_weights(out[FieldHeadNames.DENSITY])
        return RaySampling(
            samples,
            weights,
            out[FieldHeadNames.RGB],
            weights_list + [weights],
            samples_list + [samples],
        )

    def render_head(self, name: str, sampling: RaySampling) -> Tensor:
        """[R] the channel `name` rendered along the rays, with the geometry's weights detached."""
        contracted = self.contraction(sampling.samples.frustums.get_positions())  # [R, S, 3]
        positions = (contracted + 2.0) / 4.0  # in [0, 1], as the main field feeds its hash grid
        values = self.heads[name](positions.clamp(0, 1).reshape(-1, 3)).reshape(
            *positions.shape[:2], 1
        )
        return (sampling.weights.detach() * values).sum(dim=-2)[:, 0]

    def render_rays(
        self, rays: RayBundle, channels: Sequence[str]
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(rgb [R, 3], alpha [R], {channel: [R]})."""
        sampling = self.sample(rays)
        rgb = self.rgb_renderer(rgb=sampling.rgb, weights=sampling.weights)
        alpha = sampling.weights.sum(dim=-2)[:, 0]
        return rgb, alpha, {name: self.render_head(name, sampling) for name in channels}

    def sampler_state(self) -> dict:
        s = self.sampler
        return {
            "step": int(s._step),
            "since_update": int(s._steps_since_update),
            "anneal": float(s._anneal),
        }

    def load_sampler_state(self, state: dict) -> None:
        # the proposal schedule is state of nerfstudio's sampler: a resumed run must continue it
        self.sampler._step = state["step"]
        self.sampler._steps_since_update = state["since_update"]
        self.sampler._anneal = state["anneal"]


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
            network.heads[name] = _head(network.config)
        network.load_state_dict(state["network"])
        network.load_sampler_state(state["sampler"])
        frame = ModelFrame(state["frame"]["centre"].float(), float(state["frame"]["scale"]))
        bounds = (state["bounds"][0], state["bounds"][1])
        labels = {int(k): str(v) for k, v in state.get("labels", {}).items()}
        return cls(network.to(device), frame, bounds, int(state["steps_trained"]), labels,
                   _cpu_copy(state.get("optimizers", {})))

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
        from gsedit.atomic import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            torch.save(self.state(), tmp)
        return path

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

    # -- optimisation -----------------------------------------------------------------------
    def trainer(
        self, steps: int, lr_scale: float = 1.0, densify: bool = True, opacity_reset: bool = True
    ) -> SceneTrainer:
        """nerfacto's recipe; `densify` and `opacity_reset` are 3DGS notions that a field lacks."""
        return NerfactoTrainer(self, steps, lr_scale)

    def lift_channel(self, name: str, cameras: Cameras, maps: Tensor) -> None:
        """Fits a fresh head `name` to `maps` [C, H, W] along the current geometry (WYS 4.3)."""
        if not CHANNEL_NAME.match(name):
            raise ValueError(f"channel name '{name}' must be a Python identifier or label=K")
        shape = (len(cameras), cameras.height, cameras.width)
        if tuple(maps.shape) != shape:
            raise ValueError(
                f"maps for channel '{name}' must be [C, H, W] = {list(shape)}, "
                f"got {list(maps.shape)}"
            )
        cameras, maps = cameras.to(self.device), maps.to(self.device, torch.float32)
        head = _head(self.config).to(self.device)
        self.network.heads[name] = head
        optimizer = Adam(head.parameters(), lr=self.config.lift_lr, eps=1e-15)
        self.network.eval()  # the geometry is only read: deterministic samples, no proposal updates
        for _ in range(self.config.lift_steps):
            pixels = random_pixels(cameras, self.config.rays_per_batch)
            with torch.no_grad():
                sampling = self.network.sample(camera_rays(cameras, self.frame, pixels))
            values = self.network.render_head(name, sampling)
            target = maps[pixels[:, 0], pixels[:, 1], pixels[:, 2]]
            loss = torch.nn.functional.mse_loss(values, target)
            optimizer.zero_grad(set_to_none=True)
            with reproducible(self.device):
                loss.backward()
            optimizer.step()

    def lift_labels(self, names: dict[int, str], cameras: Cameras, maps: Tensor) -> None:
        """One head `label=K` per label, fitted to its coverage maps [L, C, H, W] (ids sorted)."""
        for index, label in enumerate(sorted(names)):
            self.lift_channel(f"label={label}", cameras, maps[index])
        self.labels = dict(names)


class NerfactoTrainer(SceneTrainer):
    """nerfacto's optimisation: Adam per group (fields, proposal networks), exponential decay."""

    def __init__(self, scene: NerfactoScene, steps: int, lr_scale: float = 1.0):
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.scene = scene
        c = scene.config
        network = scene.network
        groups = {
            "proposal_networks": list(network.proposal_networks.parameters()),
            "fields": list(network.field.parameters()),
        }
        recipe = {
            name: {
                "optimizer": AdamOptimizerConfig(_target=Adam, lr=c.lr * lr_scale, eps=1e-15),
                "scheduler": ExponentialDecaySchedulerConfig(
                    lr_final=c.lr_final * lr_scale, max_steps=max(1, round(steps * c.decay_horizon))
                ),
            }
            for name in groups
        }
        self.optimizers = Optimizers(recipe, groups)
        self.step_index = 0
        for name, optimizer in self.optimizers.optimizers.items():
            if name in scene.optimizer_state:  # the moments only: the turn's own schedule sets the rates
                saved = optimizer.state_dict()
                saved["state"] = scene.optimizer_state[name]
                optimizer.load_state_dict(saved)

    def step(self, cameras: Cameras, targets: Tensor) -> float:
        """One step on `rays_per_batch` random pixels of `cameras` against `targets` [C, H, W, 3]"""
        scene, network, c = self.scene, self.scene.network, self.scene.config
        shape = (len(cameras), cameras.height, cameras.width, 3)
        if tuple(targets.shape) != shape:
            raise ValueError(
                f"targets must be [C, H, W, 3] = {list(shape)}, got {list(targets.shape)}"
            )
        cameras, targets = cameras.to(scene.device), targets.to(scene.device)
        network.train()
        network.set_anneal(scene.steps_trained)
        pixels = random_pixels(cameras, c.rays_per_batch)
        sampling = network.sample(camera_rays(cameras, scene.frame, pixels))
        rgb = network.rgb_renderer(rgb=sampling.rgb, weights=sampling.weights)
        target = targets[pixels[:, 0], pixels[:, 1], pixels[:, 2]]
        loss = (
            torch.nn.functional.mse_loss(rgb, target)
            + c.interlevel_loss_mult * interlevel_loss(sampling.weights_list, sampling.samples_list)
            + c.distortion_loss_mult * distortion_loss(sampling.weights_list, sampling.samples_list)
        )
        value = float(loss.detach())
        check_finite(self.step_index + 1, value)  # before backward: a NaN loss poisons the whole field
        self.optimizers.zero_grad_all()
        with reproducible(scene.device):
            loss.backward()
        self.optimizers.optimizer_step_all()
        # not scheduler_step_all: it also logs every step to nerfstudio's global event writer
        for scheduler in self.optimizers.schedulers.values():
            scheduler.step()
        network.sampler.step_cb(scene.steps_trained)
        scene.steps_trained += 1
        self.step_index += 1
        if self.step_index % PARAMETER_CHECK_EVERY == 0:
            self._check_parameters()
        return value

    def _check_parameters(self) -> None:
        check_finite(self.step_index, parameters=self.scene.network.named_parameters())

    def finish(self) -> None:
        self._check_parameters()
        self.scene.optimizer_state = {
            name: _cpu_copy(optimizer.state_dict()["state"])
            for name, optimizer in self.optimizers.optimizers.items()
        }
        self.optimizers.optimizers.clear()
        self.optimizers.schedulers.clear()


def _cpu_copy(state):
    """A copy of `state` (nested dicts of tensors and numbers) with every tensor on the CPU.

    Optimiser state is kept there (Adam's load_state_dict moves the moments to the parameters'
    device itself, and wants its step counters on the CPU)."""
    if isinstance(state, dict):
        return {k: _cpu_copy(v) for k, v in state.items()}
    if isinstance(state, Tensor):
        return state.detach().to("cpu", copy=True)
    return state


def fit_nerfacto(
    images: Tensor,
    cameras: Cameras,
    steps: int,
    config: NerfactoConfig | None = None,
    bounds: tuple[Tensor, Tensor] | None = None,
    seed: int = 0,
    on_step=None,
) -> NerfactoScene:
    """A nerfacto scene fitted to `images` [C, H, W, 3] in [0, 1] seen by `cameras` (`gsedit fit`).

    Args:
        bounds: the content's world box, kept for orbit cameras (see `NerfactoScene.create`).
        on_step: called with (step, loss) after every step.
    """
    from gsedit.scene.fit import fit_scene

    shape = (len(cameras), cameras.height, cameras.width, 3)
    if tuple(images.shape) != shape:
        raise GseditError(
            f"fit_nerfacto: images must be [C, H, W, 3] = {list(shape)}, got {list(images.shape)}."
        )
    if steps < 1:
        raise GseditError(f"fit_nerfacto: steps must be >= 1, got {steps}.")
    torch.manual_seed(seed)  # hash grid initialisation and ray draws
    scene = NerfactoScene.create(cameras, config, bounds, device=images.device)
    fit_scene(scene, cameras, images, steps, on_step)
    return scene
