"""Fitting a Gaussian scene to images with the 3DGS recipe.

Adam with per-parameter learning rates (gsplat's `simple_trainer` values), L1 + D-SSIM loss,
densification (clone / split / prune) with gsplat's `DefaultStrategy`, which is plain PyTorch and
so runs on CPU with gsedit's reference rasterizer as well as on CUDA with gsplat, and opacity resets.
Every edit turn calls this optimiser; `gsedit fit` uses it to build a scene from images.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.render.filters import ssim
from gsedit.scene.base import PARAMETER_CHECK_EVERY, RenderOutput, SceneOptimizer, check_finite
from gsedit.scene.fit_config import FitConfig
from gsedit.scene.gaussians import Gaussians, rgb_to_sh0
from gsedit.scene.optim import Adam
from gsedit.scene.random_views import optimize_on_random_views

REFERENCE_STEPS = 30_000  # the 3DGS schedule below is written for this many steps


def schedule_scale(steps: int) -> float:
    return min(1.0, steps / REFERENCE_STEPS)


class GaussianOptimizer(SceneOptimizer):
    """Optimises Gaussians in place: `params` (gsplat's names) is what DefaultStrategy grows and
    prunes, `render` draws them (cameras -> RenderOutput with gsplat's `info`), and
    `params_changed` tells their owner when the optimisation is over."""

    def __init__(
        self,
        params: torch.nn.ParameterDict,
        render: Callable[[Cameras], RenderOutput],
        steps: int,
        config: FitConfig,
        scene_scale: float,
        params_changed: Callable[[], None],
    ):
        from gsplat.strategy import DefaultStrategy

        self.params = params
        self.render = render
        self.params_changed = params_changed
        self.steps = steps
        self.config = config
        self.step_index = 0
        s = schedule_scale(steps)
        self.strategy = DefaultStrategy(
            prune_opa=config.prune_opa,
            grow_grad2d=config.grow_grad2d,
            refine_start_iter=max(1, round(config.refine_start * s)),
            refine_stop_iter=round(config.refine_stop * s) if config.densify else 0,
            # the period is not scaled: densifying every few steps of a short run multiplies the count
            refine_every=config.refine_every,
            reset_every=10**9,  # resets are done here: gsplat 1.5.3's own reset test never fires
        )
        self.reset_every = round(config.opacity_reset_every * s) if config.opacity_reset_every else 0
        self.settled_step = self.strategy.refine_stop_iter  # resets stop with densification (_after_step)
        self.scene_scale = scene_scale
        self.strategy_state = self.strategy.initialize_state(scene_scale=self.scene_scale)
        self.optimizers = self._make_optimizers()
        self.strategy.check_sanity(params, self.optimizers)
        self.means_decay = 0.01 ** (1.0 / max(1, steps))

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        lrs = {
            "means": c.means_lr * self.scene_scale,
            "scales": c.scales_lr,
            "quats": c.quats_lr,
            "opacities": c.opacities_lr,
            "sh0": c.sh0_lr,
            "shN": c.shN_lr,
        }
        return {
            name: Adam(
                [{"params": self.params[name], "lr": lr * c.lr_scale, "name": name}],
                eps=1e-15,
            )
            for name, lr in lrs.items()
            if self.params[name].requires_grad
        }

    def step(self, cameras: Cameras, targets: Tensor) -> float:
        """One Adam step on views `cameras` against `targets` [C, H, W, 3]."""
        out = self.render(cameras)
        rgb = out.colors[..., :3]
        l1 = (rgb - targets).abs().mean()
        loss = (1 - self.config.ssim_lambda) * l1 + self.config.ssim_lambda * (1 - ssim(rgb, targets).mean())
        value = float(loss.detach())
        check_finite(self.step_index + 1, value)  # before backward: a NaN loss poisons every parameter
        self.strategy.step_pre_backward(
            self.params, self.optimizers, self.strategy_state, self.step_index, out.info
        )
        loss.backward()
        for opt in self.optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        self.strategy.step_post_backward(
            self.params, self.optimizers, self.strategy_state, self.step_index, out.info
        )
        self._after_step()
        if self.step_index % PARAMETER_CHECK_EVERY == 0:
            self._check_parameters()
        return value

    def _check_parameters(self) -> None:
        check_finite(self.step_index, parameters=((n, self.params[n]) for n in self.optimizers))

    def _after_step(self) -> None:
        from gsplat.strategy.ops import reset_opa

        self.step_index += 1
        opt = self.optimizers.get("means")
        if opt is not None:
            opt.param_groups[0]["lr"] *= self.means_decay
        i = self.step_index
        if self.reset_every and i % self.reset_every == 0 and i < self.strategy.refine_stop_iter:
            reset_opa(self.params, self.optimizers, self.strategy_state, self.config.prune_opa * 2)

    def finish(self) -> None:
        self._check_parameters()
        self.params_changed()
        self.optimizers.clear()



def images_for_cameras(folder, cameras: Cameras) -> tuple[Tensor, Cameras]:
    """([C, H, W, 3] images of `folder` matched to the camera names, cameras at the images' size).

    Images may be a uniform downscale of the cameras' size (images_2/ style folders): the cameras
    are rescaled to them.
    """
    from pathlib import Path

    from gsedit.errors import InputFileError
    from gsedit.render.images import read_image_stack

    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(folder, "images folder not found.")
    files = {p.stem: p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"}}
    missing = [n for n in cameras.names if Path(n).stem not in files]
    if missing:
        raise InputFileError(folder, f"no image for {len(missing)} camera(s), e.g. {missing[:3]}.")
    images = read_image_stack([files[Path(n).stem] for n in cameras.names], folder)  # [C, H, W, 3]
    h, w = images.shape[1:3]
    if abs(w / cameras.width - h / cameras.height) > 0.02:
        raise InputFileError(
            folder, f"images are {w}x{h} but the cameras are {cameras.width}x{cameras.height}: not a uniform scale."
        )
    return images, cameras.resized(w, h)


def look_at_centre(cameras: Cameras) -> Tensor:
    """[3] the point closest (least squares) to every camera's optical axis."""
    c2w = cameras.camtoworlds
    origins, dirs = c2w[:, :3, 3], c2w[:, :3, 2]
    projector = torch.eye(3) - dirs[:, :, None] * dirs[:, None, :]  # [C, 3, 3]
    a = projector.sum(0)
    b = (projector @ origins[:, :, None]).sum(0)
    return torch.linalg.lstsq(a, b).solution[:, 0]


def random_init(cameras: Cameras, count: int, seed: int = 0) -> Gaussians:
    """Gaussians spread uniformly in the region all cameras look at (no point cloud needed)."""

    gen = torch.Generator().manual_seed(seed)
    cameras = cameras.to("cpu")
    centre = look_at_centre(cameras)
    distance = (cameras.centers - centre).norm(dim=1).mean()
    half_fov = torch.atan(cameras.width / (2 * cameras.Ks[:, 0, 0])).mean()
    extent = float(distance * torch.tan(half_fov))
    means = centre + (torch.rand(count, 3, generator=gen) * 2 - 1) * extent
    spacing = extent * 2 / count ** (1 / 3)
    gaussians = Gaussians(
        means=means,
        scales=torch.full((count, 3), float(torch.log(torch.tensor(spacing * 0.5)))),
        quats=torch.tensor([1.0, 0, 0, 0]).repeat(count, 1),
        opacities=torch.full((count,), float(torch.logit(torch.tensor(0.1)))),
        sh0=torch.rand(count, 1, 3, generator=gen) * 0.2 - 0.1,
        shN=torch.zeros(count, 0, 3),
    )
    return gaussians


def init_from_points(points: Tensor, colors: Tensor | None = None) -> Gaussians:
    """Gaussians at `points` [N, 3] (an SfM point cloud), coloured by `colors` [N, 3] in [0, 1] or grey.

    Scales start at the mean distance to the 3 nearest neighbours, as the 3DGS recipe does.
    """
    n = points.shape[0]
    points = points.float()
    nearest = []
    for chunk in points.split(4096):
        d = torch.cdist(chunk, points)
        nearest.append(d.topk(min(4, n), largest=False).values[:, 1:].mean(dim=1))
    spacing = torch.cat(nearest).clamp_min(1e-7)
    rgb = torch.full((n, 3), 0.5) if colors is None else colors.float().clamp(0, 1)
    gaussians = Gaussians(
        means=points.clone(),
        scales=torch.log(spacing)[:, None].repeat(1, 3),
        quats=torch.tensor([1.0, 0, 0, 0]).repeat(n, 1),
        opacities=torch.full((n,), float(torch.logit(torch.tensor(0.1)))),
        sh0=rgb_to_sh0(rgb)[:, None, :],
        shN=torch.zeros(n, 0, 3),
    )
    return gaussians


def read_point_cloud(path) -> tuple[Tensor, Tensor | None]:
    """([N, 3] points, [N, 3] colours or None) of a point-cloud .ply (x y z [red green blue])."""
    import numpy as np
    import plyfile

    from gsedit.errors import InputFileError

    try:
        vertex = plyfile.PlyData.read(str(path))["vertex"]
    except (OSError, ValueError, KeyError, plyfile.PlyParseError) as exc:
        raise InputFileError(path, f"not a readable point-cloud .ply ({exc}).") from None
    names = set(vertex.data.dtype.names)
    if not {"x", "y", "z"} <= names:
        raise InputFileError(path, "the vertex element has no x/y/z properties.")
    points = torch.from_numpy(np.stack([vertex[a] for a in "xyz"], 1).astype(np.float32))
    colors = None
    if {"red", "green", "blue"} <= names:
        colors = torch.from_numpy(np.stack([vertex[c] for c in ("red", "green", "blue")], 1).astype(np.float32) / 255)
    return points, colors


def fit_scene(scene, cameras: Cameras, images: Tensor, steps: int, on_step=None, stop=None):
    """Optimises `scene` on random views of `images` [C, H, W, 3] for `steps` steps; returns the last loss.

    Args:
        stop: called with (`scene`, steps done) after every step once the optimiser's schedule
            has settled (SceneOptimizer.settled_step); True ends the fit there.
    """
    cameras = cameras.to(scene.device)
    images = images.to(scene.device)
    optimizer = scene.optimizer(steps)
    generator = torch.Generator().manual_seed(0)

    def settled_and_stop(done: int) -> bool:
        return done >= optimizer.settled_step and stop(scene, done)

    return optimize_on_random_views(optimizer, cameras, images, steps, generator, on_step=on_step,
                                    stop=None if stop is None else settled_and_stop)
