"""gsplat's CUDA backend and the pure-PyTorch backend give the same renders and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from gsedit.render.rasterize import rasterize

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

NAMES = ("means", "quats", "scales", "opacities", "colors", "extras")


def make_inputs(
    n: int, n_cams: int, width: int, height: int, sh_bases: int, seed: int, device: str = "cuda"
) -> dict:
    g = torch.Generator().manual_seed(seed)
    scene = {
        "means": torch.rand(n, 3, generator=g) * 2 - 1,
        "quats": torch.randn(n, 4, generator=g),
        "scales": torch.exp(torch.rand(n, 3, generator=g) * 2 - 4.5),
        "opacities": torch.rand(n, generator=g) * 0.9 + 0.05,
        "colors": torch.randn(n, sh_bases, 3, generator=g) * 0.4
        if sh_bases
        else torch.rand(n, 3, generator=g),
        "extras": torch.rand(n, 2, generator=g),
    }
    viewmats, Ks = [], []
    f = 0.5 * width / math.tan(math.radians(30))
    for i in range(n_cams):
        angle = 2 * math.pi * i / n_cams
        campos = torch.tensor([3.5 * math.cos(angle), 0.5, 3.5 * math.sin(angle)])
        forward = -campos / campos.norm()
        right = torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0]), forward)
        right = right / right.norm()
        down = torch.linalg.cross(forward, right)
        view = torch.eye(4)
        view[:3, :3] = torch.stack([right, down, forward])
        view[:3, 3] = -view[:3, :3] @ campos
        viewmats.append(view)
        Ks.append(torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]]))
    scene["viewmats"], scene["Ks"] = torch.stack(viewmats), torch.stack(Ks)
    scene["backgrounds"] = torch.rand(n_cams, 5, generator=g)
    return {k: v.to(device) for k, v in scene.items()}


def render(inputs: dict, backend: str, sh_degree, width: int, height: int):
    params = {k: inputs[k].clone().requires_grad_(True) for k in NAMES}
    out = rasterize(
        params["means"],
        params["quats"],
        params["scales"],
        params["opacities"],
        params["colors"],
        inputs["viewmats"],
        inputs["Ks"],
        width,
        height,
        sh_degree=sh_degree,
        extras=params["extras"],
        backgrounds=inputs["backgrounds"],
        backend=backend,
    )
    out.info["means2d"].retain_grad()
    device = inputs["means"].device
    g = torch.Generator(device=device).manual_seed(0)
    loss = (out.colors * torch.rand(out.colors.shape, generator=g, device=device)).sum()
    loss = loss + (out.alpha * torch.rand(out.alpha.shape, generator=g, device=device)).sum()
    loss = loss + 0.1 * (out.depth * torch.rand(out.depth.shape, generator=g, device=device)).sum()
    loss.backward()
    grads = {k: p.grad for k, p in params.items()}
    grads["means2d"] = out.info["means2d"].grad
    return out, grads


def mostly_close(a: torch.Tensor, b: torch.Tensor, tol: float, name: str) -> None:
    """All but a few elements agree to `tol`: float32 rounding may flip a threshold test (alpha
    >= 1/255, T <= 1e-4, ceil of a radius) for a rare pixel or Gaussian, differently per backend."""
    off = (a - b).abs() > tol * (1 + b.abs())
    assert off.float().mean() < 1e-3, (
        f"{name}: {int(off.sum())} of {off.numel()} differ beyond {tol}"
    )


@pytest.mark.parametrize("sh_degree", [None, 0, 3])
def test_backends_agree(sh_degree):
    width, height = 96, 72
    inputs = make_inputs(
        3000, 3, width, height, 0 if sh_degree is None else 16, seed=1 + (sh_degree or 0)
    )
    ours, our_grads = render(inputs, "torch", sh_degree, width, height)
    ref, ref_grads = render(inputs, "gsplat", sh_degree, width, height)

    assert ours.colors.shape == ref.colors.shape == (3, height, width, 5)
    assert ref.alpha.max() > 0.9 and ref.alpha.min() < 0.1
    mostly_close(ours.colors, ref.colors, 1e-4, "colors")
    mostly_close(ours.alpha, ref.alpha, 1e-4, "alpha")
    mostly_close(ours.depth, ref.depth, 1e-4, "depth")

    radii, ref_radii = ours.info["radii"], ref.info["radii"]
    assert radii.shape == ref_radii.shape and radii.dtype == ref_radii.dtype == torch.int32
    mostly_close(radii.float(), ref_radii.float(), 0, "radii")
    valid = (radii > 0).all(-1) & (ref_radii > 0).all(-1)
    for key in ("means2d", "depths", "conics"):
        mostly_close(ours.info[key][valid].detach(), ref.info[key][valid].detach(), 1e-4, key)

    for key in (*NAMES, "means2d"):
        ours_g, ref_g = our_grads[key], ref_grads[key]
        if key == "means2d":
            ours_g, ref_g = ours_g[valid], ref_g[valid]
        rel = (ours_g - ref_g).norm() / ref_g.norm()
        assert rel < 5e-3, f"gradient of {key} differs by {rel:.2e} (relative L2)"
