"""nerfacto's networks behind gsedit's Scene: the main field, the proposal networks and sampler,
one head per lifted channel, and rays through camera pixels in the model's frame.

Watch Your Steps' relevance field (Sec. 4.3) is a head on top: a small hash grid + MLP giving
r(x) in [0, 1], rendered with the main field's weights detached, so that fitting it never moves the
geometry and it follows the geometry as edits change it. Every channel lifted with
`NerfactoScene.lift_channel` gets such a head.

World coordinates map to the model's frame by `(x - centre) * scale`, chosen from the training
cameras (the point they look at goes to the origin, the farthest camera to distance 1) as
nerfstudio's data parsers do; scene contraction squeezes what lies beyond the unit cube.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gsedit.cameras import Cameras
from gsedit.scene.fit import look_at_centre
from gsedit.scene.nerfacto.config import NerfactoConfig
from gsedit.scene.nerfacto.nerfstudio_parts import (
    FieldHeadNames,
    HashMLPDensityField,
    MLPWithHashEncoding,
    NearFarCollider,
    NerfactoField,
    ProposalNetworkSampler,
    RayBundle,
    RaySamples,
    RGBRenderer,
    SceneContraction,
)


@dataclass
class ModelFrame:
    """World -> model coordinates: `(x - centre) * scale`."""

    centre: Tensor  # [3]
    scale: float

    @classmethod
    def from_cameras(cls, cameras: Cameras) -> ModelFrame:
        """The cameras' look-at point at the origin, the farthest camera at distance 1."""
        cameras = cameras.to("cpu")
        centre = look_at_centre(cameras)
        if not torch.isfinite(centre).all():  # parallel optical axes: no common point
            centre = cameras.centers.mean(dim=0)
        reach = float((cameras.centers - centre).norm(dim=1).max())
        return cls(centre.float(), 1.0 / reach if reach > 1e-6 else 1.0)


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
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    _set_deterministic(True, warn_only=False)
    try:
        yield
    finally:
        _set_deterministic(*previous)


def _set_deterministic(mode: bool, warn_only: bool) -> None:
    """`torch.use_deterministic_algorithms` without its first statement, which imports
    `torch._inductor.config` (and with it `torch._dynamo`, about a second) to tell torch.compile:
    gsedit compiles nothing. The flag the kernels read is set the same way."""
    torch._C._set_deterministic_algorithms(mode, warn_only=warn_only)


def make_head(config: NerfactoConfig) -> nn.Module:
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

    def head_positions(self, sampling: RaySampling) -> Tensor:
        """[R, S, 3] the samples' positions as every channel head reads them: contracted, in [0, 1]."""
        contracted = self.contraction(sampling.samples.frustums.get_positions())
        return ((contracted + 2.0) / 4.0).clamp(0, 1)  # as the main field feeds its hash grid

    def render_head(self, name: str, sampling: RaySampling, positions: Tensor | None = None) -> Tensor:
        """[R] the channel `name` rendered along the rays, with the geometry's weights detached;
        `positions` are `head_positions(sampling)`, when already computed for another head."""
        positions = self.head_positions(sampling) if positions is None else positions
        values = self.heads[name](positions.reshape(-1, 3)).reshape(*positions.shape[:2], 1)
        return (sampling.weights.detach() * values).sum(dim=-2)[:, 0]

    def render_rays(
        self, rays: RayBundle, channels: Sequence[str]
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(rgb [R, 3], alpha [R], {channel: [R]})."""
        sampling = self.sample(rays)
        rgb = self.rgb_renderer(rgb=sampling.rgb, weights=sampling.weights)
        alpha = sampling.weights.sum(dim=-2)[:, 0]
        positions = self.head_positions(sampling) if channels else None
        return rgb, alpha, {name: self.render_head(name, sampling, positions) for name in channels}

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
