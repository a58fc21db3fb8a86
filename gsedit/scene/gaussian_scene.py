"""The 3D Gaussian splatting implementation of the Scene interface."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Sequence

import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.scene.base import RenderOutput, Scene, SceneOptimizer
from gsedit.scene.fit import GaussianOptimizer
from gsedit.scene.fit_config import FitConfig
from gsedit.scene.gaussians import Gaussians

EXTRA_PREFIX = "extra_"  # ParameterDict keys of the extra channels (kept out of the optimisers)
CORE_PARAMS = ("means", "scales", "quats", "opacities", "sh0", "shN")


@dataclass
class GaussianSceneConfig:
    """How a Gaussian scene renders and trains."""

    backend: Literal["auto", "torch", "native", "gsplat"] = "auto"
    """Rasterizer: gsplat on CUDA; on CPU the native C++ kernels, or the pure-PyTorch reference
    they are the twin of ("auto": gsplat on CUDA, else native unless GSEDIT_NATIVE=0 or it cannot
    be built, else torch)."""
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Background colour behind the Gaussians."""
    render_batch: int = 4
    """Views rendered together when rendering many views without gradients."""
    fit: FitConfig = field(default_factory=FitConfig)
    """The optimisation recipe used by edit turns and `gsedit fit`."""


def indicator_channel(name: str) -> tuple[str, float] | None:
    """'label=3' -> ('label', 3.0): a channel rendering 1 where the extra equals the value."""
    if "=" not in name:
        return None
    base, value = name.split("=", 1)
    return base, float(value)


class GaussianScene(Scene):
    """Gaussians held as a ParameterDict (gsplat's names) that the optimiser grows and prunes in place."""

    filename = "scene.ply"

    def __init__(
        self,
        gaussians: Gaussians,
        labels: dict[int, str] | None = None,
        config: GaussianSceneConfig | None = None,
    ):
        self.config = config or GaussianSceneConfig()
        self.labels = dict(labels or {})
        self._normals = gaussians.normals
        self._count_at_load = len(gaussians)
        self.params = torch.nn.ParameterDict()
        for name in CORE_PARAMS:
            value = getattr(gaussians, name).detach().clone()
            trainable = value.numel() > 0
            self.params[name] = torch.nn.Parameter(value, requires_grad=trainable)
        for name, value in gaussians.extras.items():
            self.params[EXTRA_PREFIX + name] = torch.nn.Parameter(value.detach().clone(), requires_grad=False)

    # -- construction and I/O -------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", config=None,
             spz_axes: str = "rub") -> "GaussianScene":
        """`spz_axes`: of an .spz file, "rub" or "ply" (scene/splat_formats.py)."""
        from gsedit.scene.labels import read_labels
        from gsedit.scene.splat_formats import read_gaussians

        gaussians = read_gaussians(path, spz_axes)
        return cls(gaussians.to(device), read_labels(path), config)

    def save(self, folder: Path) -> Path:
        return self.save_as(Path(folder) / self.filename)

    def save_as(self, path: Path, spz_axes: str = "rub") -> Path:
        """Writes the scene to `path`: a .ply (and its labels sidecar when labelled), or another
        splat format by the name's ending (.spz, .compressed.ply, .splat: without the extras);
        an .spz in `spz_axes` ("rub" or "ply", scene/splat_formats.py)."""
        from gsedit.scene.labels import write_labels
        from gsedit.scene.splat_formats import splat_format, write_gaussians

        path = Path(path)
        write_gaussians(self.gaussians.to("cpu"), path, spz_axes)
        if self.labels and splat_format(path) == "ply":
            write_labels(path, self.labels)
        return path

    def clone(self) -> "GaussianScene":
        return GaussianScene(self.gaussians.clone(), self.labels, self.config)

    # -- state ------------------------------------------------------------------------------
    @property
    def gaussians(self) -> Gaussians:
        """The current Gaussians (detached views of the parameters)."""
        p = self.params
        normals = self._normals if len(p["means"]) == self._count_at_load else None
        return Gaussians(
            means=p["means"].detach(),
            scales=p["scales"].detach(),
            quats=p["quats"].detach(),
            opacities=p["opacities"].detach(),
            sh0=p["sh0"].detach(),
            shN=p["shN"].detach(),
            extras={k[len(EXTRA_PREFIX):]: v.detach() for k, v in p.items() if k.startswith(EXTRA_PREFIX)},
            normals=normals,
        )

    def params_changed(self) -> None:
        """Called after training: normals of a file no longer match once Gaussians were added."""
        if len(self.params["means"]) != self._count_at_load:
            self._normals = None

    @property
    def device(self) -> torch.device:
        return self.params["means"].device

    def to(self, device: str | torch.device) -> "GaussianScene":
        return GaussianScene(self.gaussians.to(device), self.labels, self.config)

    def __len__(self) -> int:
        return len(self.params["means"])

    def channel_names(self) -> list[str]:
        return [k[len(EXTRA_PREFIX):] for k in self.params if k.startswith(EXTRA_PREFIX)]

    def label_names(self) -> dict[int, str]:
        return dict(self.labels)

    def set_channel(self, name: str, values: Tensor) -> None:
        """Sets (or adds) the per-Gaussian channel `name` to `values` [N]."""
        if values.shape != (len(self),):
            raise ValueError(f"channel '{name}' needs {len(self)} values, got {list(values.shape)}")
        self.params[EXTRA_PREFIX + name] = torch.nn.Parameter(
            values.detach().to(self.device, torch.float32).clone(), requires_grad=False
        )

    def bounds(self) -> tuple[Tensor, Tensor]:
        return self.gaussians.bounds()

    def scene_scale(self) -> float:
        """Half the diagonal of the central 98% of the means (robust to stray floaters)."""
        means = self.params["means"].detach()
        lo = torch.quantile(means[: 200_000].float(), 0.01, dim=0)
        hi = torch.quantile(means[: 200_000].float(), 0.99, dim=0)
        return max(float((hi - lo).norm()) / 2, 1e-3)

    # -- rendering --------------------------------------------------------------------------
    def _extras(self, channels: Sequence[str]) -> Tensor | None:
        """[N, E] the requested channels as per-Gaussian values."""
        if not channels:
            return None
        columns = []
        for name in channels:
            indicator = indicator_channel(name)
            base = indicator[0] if indicator else name
            key = EXTRA_PREFIX + base
            if key not in self.params:
                raise KeyError(f"the scene has no '{base}' channel (it has: {self.channel_names()})")
            values = self.params[key]
            columns.append((values == indicator[1]).float() if indicator else values)
        return torch.stack(columns, dim=1)

    def rasterize(self, cameras: Cameras, channels: Sequence[str] = ()):
        """Differentiable render of `cameras` (RGB + `channels` in one pass); gsedit.render's output."""
        from gsedit.render.rasterize import rasterize

        p = self.params
        cameras = cameras.to(self.device)
        extras = self._extras(channels)
        n_channels = 3 + (0 if extras is None else extras.shape[1])
        background = torch.zeros(len(cameras), n_channels, device=self.device)
        background[:, :3] = torch.tensor(self.config.background, device=self.device)
        return rasterize(
            means=p["means"],
            quats=p["quats"],
            scales=torch.exp(p["scales"]),
            opacities=torch.sigmoid(p["opacities"]),
            colors=torch.cat([p["sh0"], p["shN"]], dim=1),
            viewmats=cameras.viewmats,
            Ks=cameras.Ks,
            width=cameras.width,
            height=cameras.height,
            sh_degree=self.gaussians.sh_degree,
            extras=extras,
            backgrounds=background,
            backend=self.config.backend,
        )

    @torch.no_grad()
    def render(self, cameras: Cameras, channels: Sequence[str] = ()) -> RenderOutput:
        rgbs, alphas, extra_maps = [], [], []
        step = max(1, self.config.render_batch)
        for start in range(0, len(cameras), step):
            out = self.rasterize(cameras[start : start + step], channels)
            rgbs.append(out.colors[..., :3].clamp(0, 1))
            alphas.append(out.alpha[..., 0])
            extra_maps.append(out.colors[..., 3:])
        extras = torch.cat(extra_maps)
        return RenderOutput(
            rgb=torch.cat(rgbs),
            alpha=torch.cat(alphas),
            channels={name: extras[..., i] for i, name in enumerate(channels)},
        )

    def optimizer(
        self, steps: int, lr_scale: float = 1.0, densify: bool = True, opacity_reset: bool = True
    ) -> SceneOptimizer:
        fit = self.config.fit
        config = replace(
            fit,
            lr_scale=fit.lr_scale * lr_scale,
            densify=fit.densify and densify,
            opacity_reset_every=fit.opacity_reset_every if opacity_reset else 0,
        )
        return GaussianOptimizer(self.params, self.rasterize, steps, config, self.scene_scale(), self.params_changed)

    def geometry(self):
        """The frozen geometry that back-projection and relevance fitting render with."""
        from gsedit.scene.backproject import FrozenGeometry

        return FrozenGeometry.from_params(self.params, self.config.backend, self.config.render_batch)

    def lift_channel(self, name: str, cameras: Cameras, maps: Tensor) -> None:
        from gsedit.scene.backproject import backproject

        self.set_channel(name, backproject(self.geometry(), cameras, maps))

    def lift_labels(self, names: dict[int, str], cameras: Cameras, maps: Tensor) -> None:
        """Each Gaussian takes the label with the largest back-projected coverage, unless what no
        label covers (1 - their sum: an unlabelled region, soft edges) is larger; then, and for
        Gaussians no view sees, -1. Relative, because a radiance field's label heads are soft."""
        from gsedit.scene.backproject import backproject

        ids = torch.tensor(sorted(names), dtype=torch.float32, device=self.device)
        scores = backproject(self.geometry(), cameras, maps)  # [N, L] from maps [L, C, H, W], one pass
        best, index = scores.max(dim=1)
        self.set_channel("label", torch.where(best > 1 - scores.sum(dim=1), ids[index], torch.full_like(best, -1.0)))
        self.labels = dict(names)
