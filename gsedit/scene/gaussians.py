"""Gaussian parameters in the INRIA 3DGS parametrisation (log scales, logit opacities, wxyz quaternions)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814  # Y_0^0; INRIA stores colour as (rgb - 0.5) / SH_C0 in f_dc


def num_sh_bases(degree: int) -> int:
    return (degree + 1) ** 2


def sh_degree_from_bases(bases: int) -> int:
    degree = round(bases**0.5) - 1
    if num_sh_bases(degree) != bases or not 0 <= degree <= 3:
        raise ValueError(f"{bases} SH coefficients per colour channel is not (degree+1)^2 for degree 0-3")
    return degree


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    return (rgb - 0.5) / SH_C0


def sh0_to_rgb(sh0: Tensor) -> Tensor:
    return sh0 * SH_C0 + 0.5


@dataclass
class Gaussians:
    """N Gaussians; names follow gsplat (means, scales, quats, opacities, sh0, shN).

    `extras` holds named per-Gaussian float channels (`relevance`, `label`, or any extra property of a
    foreign file); they are rendered like colours and written after the INRIA properties.
    `normals` is kept only so a file's nx/ny/nz survive a round trip unchanged.
    """

    means: Tensor  # [N, 3]
    scales: Tensor  # [N, 3] log scales
    quats: Tensor  # [N, 4] wxyz, not necessarily normalised
    opacities: Tensor  # [N] logits
    sh0: Tensor  # [N, 1, 3]
    shN: Tensor  # [N, K-1, 3], K = (degree+1)^2
    extras: dict[str, Tensor] = field(default_factory=dict)  # name -> [N]
    normals: Tensor | None = None  # [N, 3]

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        expected = {
            "means": (n, 3),
            "scales": (n, 3),
            "quats": (n, 4),
            "opacities": (n,),
            "sh0": (n, 1, 3),
        }
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"Gaussians.{name} must be {list(shape)}, got {list(got)}")
        if self.shN.ndim != 3 or self.shN.shape[0] != n or self.shN.shape[2] != 3:
            raise ValueError(f"Gaussians.shN must be [N, K-1, 3], got {list(self.shN.shape)}")
        sh_degree_from_bases(self.shN.shape[1] + 1)
        for name, values in self.extras.items():
            if tuple(values.shape) != (n,):
                raise ValueError(f"extra channel '{name}' must be [N], got {list(values.shape)}")
        if self.normals is not None and tuple(self.normals.shape) != (n, 3):
            raise ValueError(f"Gaussians.normals must be [N, 3], got {list(self.normals.shape)}")

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_bases(self.shN.shape[1] + 1)

    @property
    def colors(self) -> Tensor:
        """[N, K, 3] all SH coefficients, DC first (gsplat's `colors` with `sh_degree`)."""
        return torch.cat([self.sh0, self.shN], dim=1)

    @property
    def device(self) -> torch.device:
        return self.means.device

    def map(self, fn) -> "Gaussians":
        """Applies `fn` to every tensor (e.g. `.to(device)`, `.clone()`, index selection)."""
        return Gaussians(
            means=fn(self.means),
            scales=fn(self.scales),
            quats=fn(self.quats),
            opacities=fn(self.opacities),
            sh0=fn(self.sh0),
            shN=fn(self.shN),
            extras={k: fn(v) for k, v in self.extras.items()},
            normals=None if self.normals is None else fn(self.normals),
        )

    def to(self, device: torch.device | str) -> "Gaussians":
        return self.map(lambda t: t.to(device))

    def clone(self) -> "Gaussians":
        return self.map(lambda t: t.detach().clone())

    def select(self, mask_or_index: Tensor) -> "Gaussians":
        return self.map(lambda t: t[mask_or_index])

    def bounds(self) -> tuple[Tensor, Tensor]:
        """([3], [3]) min and max of the means."""
        return self.means.min(dim=0).values, self.means.max(dim=0).values

    def nonfinite_fields(self) -> list[str]:
        """Names of the fields holding NaN or inf values."""
        bad = []
        for name in ("means", "scales", "quats", "opacities", "sh0", "shN"):
            if not torch.isfinite(getattr(self, name)).all():
                bad.append(name)
        bad += [name for name, v in self.extras.items() if not torch.isfinite(v).all()]
        return bad
