"""View-dependent colour from spherical-harmonic coefficients, in gsplat's convention.

gsplat (and the INRIA 3DGS code) evaluate real SH bases up to degree 3 at the unit direction from
the camera centre to the Gaussian's mean, sum them with the coefficients, add 0.5 and clamp at 0
from below (no clamp from above). The polynomial forms and constants below are those of Sloan,
"Efficient Spherical Harmonic Evaluation" (JCGT 2013), which gsplat 1.5.3 uses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_SH_DEGREE = 3


def sh_bases(degree: int, dirs: Tensor) -> Tensor:
    """Real SH bases at unit directions.

    Args:
        degree: 0 to 3.
        dirs: [..., 3] unit vectors.

    Returns:
        [..., (degree + 1) ** 2] basis values, DC first, in the INRIA coefficient order.
    """
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"sh_degree must be 0..{MAX_SH_DEGREE}, got {degree}")
    bases = [torch.full_like(dirs[..., 0], 0.2820947917738781)]
    if degree >= 1:
        x, y, z = dirs.unbind(-1)
        bases += [-0.48860251190292 * y, 0.48860251190292 * z, -0.48860251190292 * x]
    if degree >= 2:
        z2 = z * z
        c1 = x * x - y * y  # cos(2 phi) sin^2(theta)
        s1 = 2.0 * x * y  # sin(2 phi) sin^2(theta)
        tmp_b = -1.092548430592079 * z
        bases += [
            0.5462742152960395 * s1,
            tmp_b * y,
            0.9461746957575601 * z2 - 0.3153915652525201,
            tmp_b * x,
            0.5462742152960395 * c1,
        ]
    if degree >= 3:
        c2 = x * c1 - y * s1
        s2 = x * s1 + y * c1
        tmp_c = -2.285228997322329 * z2 + 0.4570457994644658
        tmp_b = 1.445305721320277 * z
        bases += [
            -0.5900435899266435 * s2,
            tmp_b * s1,
            tmp_c * y,
            z * (1.865881662950577 * z2 - 1.119528997770346),
            tmp_c * x,
            tmp_b * c1,
            -0.5900435899266435 * c2,
        ]
    return torch.stack(bases, dim=-1)


def eval_sh(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Raw SH radiance (before the +0.5 offset), like `gsplat.spherical_harmonics`.

    Args:
        degree: bands to use, 0 to 3; `coeffs` may hold more bands, the extra ones are ignored.
        dirs: [..., 3] view directions, not necessarily normalised.
        coeffs: [..., K, 3] with K >= (degree + 1) ** 2.

    Returns:
        [..., 3]
    """
    n_bases = (degree + 1) ** 2
    if coeffs.shape[-2] < n_bases:
        raise ValueError(
            f"sh_degree {degree} needs {n_bases} SH coefficients per channel, colors has "
            f"{coeffs.shape[-2]}"
        )
    # Degree 0 ignores the direction; normalising a zero direction there would only make NaNs.
    unit = F.normalize(dirs, dim=-1) if degree > 0 else dirs
    bases = sh_bases(degree, unit)  # [..., n_bases]
    return (bases[..., None] * coeffs[..., :n_bases, :]).sum(dim=-2)
