"""The native CPU kernels (cuda_ext/) against their PyTorch twin: tile lists, compositing forward
and gradients, whole frames, multi-channel back-projection; the fallback; the CUDA source builds.

These tests run the native path explicitly (they fail, never skip, when it cannot be built);
the rest of the suite runs on the default path, which is native on CPU when it builds."""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
import torch

import cuda_ext
from gsedit.errors import GseditError
from gsedit.render import native
from gsedit.render.projection import project_gaussians
from gsedit.render.rasterize import blend_weight_sums
from gsedit.render.torch_rasterizer import intersect_tiles, rasterize_to_pixels
from tests.render.test_rasterizer import (
    DIFFERENTIABLE,
    composite_reference,
    input_gradients,
    make_cameras,
    make_scene,
    make_splats,
    render,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def native_kernels():
    """Builds (or loads) the kernels once: a failed build fails these tests, with its reason."""
    native.require()


def tile_lists(splats: dict, tile: int, width: int, height: int, impl):
    return impl(splats["means2d"].detach(), splats["radii"], splats["depths"], tile, width, height)


def composite(splats: dict, width: int, height: int, tile: int, kernels: str):
    """Tile lists then compositing, both by the native kernels or both by the PyTorch twin."""
    if kernels == "native":
        isect = tile_lists(splats, tile, width, height, native.intersect_tiles)
        return native.rasterize_to_pixels(
            *(splats[k] for k in DIFFERENTIABLE), isect, width, height, tile
        )
    isect = tile_lists(splats, tile, width, height, intersect_tiles)
    return rasterize_to_pixels(*(splats[k] for k in DIFFERENTIABLE), isect, width, height, tile)


def test_projection_and_its_gradients_match_the_twin():
    """Clamped Jacobians (means beyond 1.3x the field of view), Gaussians behind the camera and
    too faint ones (culled), three cameras."""
    width, height = 23, 17
    viewmats, Ks = make_cameras(3, width, height)
    scene = make_scene(60, 1, 0, seed=3)
    for c, side in enumerate((1.0, -1.0, 1.0)):
        cam_point = torch.tensor([side * 0.95 * 2.0, 0.4, 2.0], dtype=torch.float64)
        scene["means"][10 + c] = viewmats[c, :3, :3].T @ (cam_point - viewmats[c, :3, 3])
        scene["scales"][10 + c] = torch.tensor([0.6, 0.3, 0.5])
    campos = torch.linalg.inv(viewmats[0])[:3, 3]
    scene["means"][20] = campos - 2.0 * viewmats[0, 2, :3]  # behind camera 0
    scene["opacities"][21] = 0.002  # too faint to be seen
    results = []
    for project in (native.project_gaussians, project_gaussians):
        leaves = {k: scene[k].clone().requires_grad_(True) for k in ("means", "quats", "scales")}
        proj = project(*leaves.values(), scene["opacities"], viewmats, Ks, width, height)
        g = torch.Generator().manual_seed(0)
        outputs = (proj.means2d, proj.conics, proj.depths)
        loss = sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in outputs)
        loss.backward()
        results.append((proj, {k: v.grad for k, v in leaves.items()}))
    (ours, our_grads), (twin, twin_grads) = results
    assert (twin.radii[0, 20] == 0).all() and (twin.radii[:, 21] == 0).all()
    assert torch.equal(ours.radii, twin.radii)
    seen = (twin.radii > 0).all(-1)  # culled Gaussians' other outputs are unused
    for name in ("means2d", "conics", "depths"):
        got, want = getattr(ours, name)[seen], getattr(twin, name)[seen]
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12, msg=name)
    torch.testing.assert_close(ours.depths, twin.depths, atol=1e-12, rtol=0)
    for name, grad in our_grads.items():
        torch.testing.assert_close(grad, twin_grads[name], atol=1e-12, rtol=1e-10, msg=name)


@pytest.mark.parametrize("tile", [4, 5, 16])
def test_tile_lists_are_those_of_the_twin(tile):
    width, height = 23, 17
    splats = make_splats(3, 60, 1, width, height, seed=tile)
    splats["depths"][:, 10:20] = 1.5  # ties: the lower index first
    ours = tile_lists(splats, tile, width, height, native.intersect_tiles)
    twin = tile_lists(splats, tile, width, height, intersect_tiles)
    for name in ("flatten_ids", "tile_counts", "tile_offsets", "tiles_per_gauss"):
        assert torch.equal(getattr(ours, name), getattr(twin, name)), name
    assert (ours.tile_width, ours.tile_height) == (twin.tile_width, twin.tile_height)


@pytest.mark.parametrize("n_feat, tile", [(1, 4), (3, 5), (4, 4), (3, 16)])
def test_forward_and_gradients_match_the_twin_and_the_reference(n_feat, tile):
    width, height = 13, 11
    splats = make_splats(3, 40, n_feat, width, height, seed=n_feat + tile)
    # Camera 0's nearest Gaussian ties the alpha clamp at a pixel centre (no gradient there).
    splats["means2d"][0, 8] = torch.tensor([6.5, 4.5])
    splats["opacities"][0, 8] = 0.999
    splats["depths"][0, 8] = 0.5
    colors, alpha, stopped, clamped = composite_reference(splats, width, height, tile)
    assert stopped.any() and not stopped.all() and clamped.sum() >= 3 and (alpha < 0.5).any()

    out_colors, out_alpha = composite(splats, width, height, tile, "native")
    torch.testing.assert_close(out_colors, colors, atol=1e-12, rtol=0)
    torch.testing.assert_close(out_alpha, alpha, atol=1e-12, rtol=0)

    ours = input_gradients(splats, lambda s: composite(s, width, height, tile, "native"), 1)
    twin = input_gradients(splats, lambda s: composite(s, width, height, tile, "torch"), 1)
    ref = input_gradients(splats, lambda s: composite_reference(s, width, height, tile)[:2], 1)
    for name, got, want, slow in zip(DIFFERENTIABLE, ours, twin, ref):
        assert got.abs().max() > 0, name
        torch.testing.assert_close(got, want, atol=1e-11, rtol=1e-9, msg=name)
        torch.testing.assert_close(got, slow, atol=1e-11, rtol=1e-9, msg=name)


def test_float32_matches_float64():
    width, height, tile = 16, 12, 8
    splats = make_splats(2, 60, 4, width, height, seed=7)
    single = {k: v.float() if v.is_floating_point() else v for k, v in splats.items()}

    def run(s):
        return composite(s, width, height, tile, "native")

    colors32, alpha32 = run(single)
    colors64, alpha64 = run(splats)
    assert colors32.dtype == torch.float32
    torch.testing.assert_close(colors32.double(), colors64, atol=2e-5, rtol=0)
    torch.testing.assert_close(alpha32.double(), alpha64, atol=2e-5, rtol=0)
    for name, got, want in zip(
        DIFFERENTIABLE, input_gradients(single, run, 2), input_gradients(splats, run, 2)
    ):
        torch.testing.assert_close(
            got.double(), want, atol=2e-5 * want.abs().max(), rtol=0, msg=name
        )


def test_gradients_match_finite_differences():
    width, height, tile = 6, 5, 4
    splats = make_splats(2, 7, 2, width, height, seed=3)
    splats["opacities"][:, :4] = 0.9  # away from the clamp, where alpha is not differentiable
    isect = tile_lists(splats, tile, width, height, native.intersect_tiles)

    def run(*inputs):
        return native.rasterize_to_pixels(*inputs, isect, width, height, tile)

    inputs = [splats[k].clone().requires_grad_(True) for k in DIFFERENTIABLE]
    assert torch.autograd.gradcheck(run, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_whole_frames_match_the_torch_backend_with_every_gradient():
    """SH degree 3, extras, backgrounds, three cameras, early stops: rasterize() end to end."""
    width, height = 23, 17
    viewmats, Ks = make_cameras(3, width, height)
    scene = make_scene(80, 16, 3, seed=5)
    scene["opacities"][:20] = 0.98
    backgrounds = torch.rand(3, 6, dtype=torch.float64)
    outputs, grads = {}, {}
    for backend in ("native", "torch"):
        leaves = {k: v.clone().requires_grad_(True) for k, v in scene.items()}
        out = render(
            leaves, viewmats, Ks, width, height, sh_degree=3, extras=leaves["extras"],
            backgrounds=backgrounds, backend=backend, tile_size=8,  # the same tile lists
        )  # fmt: skip
        g = torch.Generator().manual_seed(0)
        loss = sum(
            (t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum()
            for t in (out.colors, out.alpha, out.depth)
        )
        loss.backward()
        outputs[backend] = out
        grads[backend] = {k: v.grad for k, v in leaves.items()}
    ours, twin = outputs["native"], outputs["torch"]
    assert (twin.alpha > 0.999).any() and (twin.alpha < 0.5).any()
    for name in ("colors", "alpha", "depth"):
        torch.testing.assert_close(
            getattr(ours, name), getattr(twin, name), atol=1e-12, rtol=0, msg=name
        )
    for name in ("flatten_ids", "tiles_per_gauss", "isect_offsets", "radii"):
        assert torch.equal(ours.info[name], twin.info[name]), name
    for name, grad in grads["native"].items():
        want = grads["torch"][name]
        assert want.abs().max() > 0, name
        torch.testing.assert_close(grad, want, atol=1e-10, rtol=1e-8, msg=name)


def test_results_do_not_depend_on_the_thread_count():
    width, height, tile = 40, 30, 8
    splats = make_splats(2, 300, 3, width, height, seed=11)
    single = {k: v.float() if v.is_floating_point() else v for k, v in splats.items()}

    def run():
        out = composite(single, width, height, tile, "native")
        return [
            *out,
            *input_gradients(single, lambda s: composite(s, width, height, tile, "native"), 3),
        ]

    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run()
        torch.set_num_threads(2)
        two = run()
    finally:
        torch.set_num_threads(previous)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def test_blend_weight_sums_in_one_pass_match_the_probe_twin():
    width, height = 24, 18
    viewmats, Ks = make_cameras(2, width, height)
    scene = {k: v.float() for k, v in make_scene(120, 1, 0, seed=9).items()}
    maps = torch.rand(3, 2, height, width, generator=torch.Generator().manual_seed(1))
    geometry = [scene[k] for k in ("means", "quats", "scales", "opacities")]
    ours = blend_weight_sums(
        *geometry, viewmats.float(), Ks.float(), width, height, maps, backend="native"
    )
    twin = blend_weight_sums(
        *geometry, viewmats.float(), Ks.float(), width, height, maps, backend="torch"
    )
    assert ours.shape == (120, 4) and (ours[:, -1] > 0.05).sum() > 50
    torch.testing.assert_close(ours, twin, atol=1e-5, rtol=1e-5)
    # Each channel alone gives the same sums as in the joint pass.
    alone = blend_weight_sums(
        *geometry, viewmats.float(), Ks.float(), width, height, maps[1:2], backend="native"
    )
    torch.testing.assert_close(alone[:, 0], ours[:, 1], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(alone[:, 1], ours[:, 3], atol=1e-6, rtol=1e-6)


@pytest.fixture
def fresh_state(monkeypatch):
    """A native path not yet loaded, so that the next call decides again."""
    monkeypatch.setattr(native, "_state", {})


def test_gsedit_native_0_falls_back_to_pytorch_with_one_warning(fresh_state, monkeypatch):
    monkeypatch.setenv("GSEDIT_NATIVE", "0")
    width, height = 16, 12
    viewmats, Ks = make_cameras(1, width, height)
    scene = make_scene(20, 1, 0, seed=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = render(scene, viewmats, Ks, width, height, sh_degree=0)
        render(scene, viewmats, Ks, width, height, sh_degree=0)
    reports = [w for w in caught if "native CPU kernels are not used" in str(w.message)]
    assert len(reports) == 1 and "GSEDIT_NATIVE=0" in str(reports[0].message)  # reported once
    twin = render(scene, viewmats, Ks, width, height, sh_degree=0, backend="torch")
    assert torch.equal(out.colors, twin.colors)
    with pytest.raises(GseditError, match="GSEDIT_NATIVE=0"):
        render(scene, viewmats, Ks, width, height, sh_degree=0, backend="native")


def test_a_failed_build_falls_back_instead_of_crashing(fresh_state, monkeypatch):
    def no_compiler():
        raise RuntimeError("Error building extension 'gsedit_native': g++ not found")

    monkeypatch.setattr(cuda_ext, "build_cpu", no_compiler)
    with pytest.warns(RuntimeWarning, match="g\\+\\+ not found"):
        assert not native.available()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        assert not native.available()


def test_sources_ship_as_package_data():
    """The sources are found from an installed package too, since they are compiled on first use."""
    text = (ROOT / "pyproject.toml").read_text()
    include = re.search(
        r"^\[tool\.setuptools\.packages\.find\]\ninclude = \[(.*)\]$", text, re.MULTILINE
    )
    assert include and '"cuda_ext"' in include.group(1)
    patterns = re.search(r"^cuda_ext = \[(.*)\]", text, re.MULTILINE).group(1)
    shipped = {
        p.name
        for pattern in re.findall(r'"([^"]+)"', patterns)
        for p in cuda_ext.SOURCE_DIR.glob(pattern)
    }
    assert {cuda_ext.CPU_SOURCE.name, cuda_ext.CUDA_SOURCE.name} <= shipped
    assert re.search(r'^    "ninja>=', text, re.MULTILINE)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs CUDA's nvcc")
def test_cuda_backprojection_source_compiles(tmp_path):
    """nvcc builds the CUDA kernel as an object on its own (running it needs a GPU)."""
    obj = tmp_path / "backproject.o"
    subprocess.run(
        ["nvcc", "-c", str(cuda_ext.CUDA_SOURCE), "-o", str(obj)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    symbols = subprocess.run(["nm", str(obj)], check=True, capture_output=True, text=True).stdout
    assert "gsedit_blend_sums_cuda" in symbols
