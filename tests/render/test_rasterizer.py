"""The pure-PyTorch rasterizer against a slow per-pixel reference, finite differences, and gsplat's
densification strategy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gsedit.render import torch_rasterizer
from gsedit.render.projection import project_gaussians
from gsedit.render.rasterize import rasterize
from gsedit.render.torch_rasterizer import intersect_tiles, rasterize_to_pixels


def look_at(campos, target=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """[4, 4] OpenCV world-to-camera matrix of a camera at `campos` looking at `target`."""
    campos = torch.as_tensor(campos, dtype=torch.float64)
    forward = torch.as_tensor(target, dtype=torch.float64) - campos
    forward = forward / forward.norm()
    right = torch.linalg.cross(forward, torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64))
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    rot = torch.stack([right, down, forward])  # rows: camera axes in world coordinates
    view = torch.eye(4, dtype=torch.float64)
    view[:3, :3] = rot
    view[:3, 3] = -rot @ campos
    return view


def make_cameras(n: int, width: int, height: int, fov_deg: float = 60.0):
    """n cameras on a circle of radius 4 around the origin, all looking at it."""
    views, Ks = [], []
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    for i in range(n):
        angle = 2 * math.pi * i / n + 0.3
        views.append(look_at((4 * math.cos(angle), 4 * math.sin(angle), 0.8)))
        Ks.append(
            torch.tensor([[f, 0, width / 2 + 0.7], [0, f * 1.1, height / 2 - 0.4], [0, 0, 1]])
        )
    return torch.stack(views), torch.stack(Ks).double()


def make_scene(n: int, sh_bases: int, n_extras: int, seed: int, spread: float = 1.0):
    """Random Gaussians around the origin, float64, with parameters in rasterize()'s convention."""
    g = torch.Generator().manual_seed(seed)
    return {
        "means": (torch.rand(n, 3, generator=g, dtype=torch.float64) * 2 - 1) * spread,
        "quats": torch.randn(n, 4, generator=g, dtype=torch.float64),
        "scales": torch.exp(torch.rand(n, 3, generator=g, dtype=torch.float64) * 1.5 - 3.2),
        "opacities": torch.rand(n, generator=g, dtype=torch.float64) * 0.7 + 0.2,
        "colors": torch.randn(n, sh_bases, 3, generator=g, dtype=torch.float64) * 0.4,
        "extras": torch.rand(n, n_extras, generator=g, dtype=torch.float64),
    }


def render(scene: dict, viewmats, Ks, width: int, height: int, **kwargs):
    """rasterize() on a scene dict (colors as given: SH coefficients or features)."""
    params = (scene[k] for k in ("means", "quats", "scales", "opacities", "colors"))
    return rasterize(*params, viewmats, Ks, width, height, **kwargs)


# ---------------------------------------------------------------- independent slow reference


def _rotation(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z],
        ]
    )


def _sh_rgb(coeffs: np.ndarray, d: np.ndarray, degree: int) -> np.ndarray:
    """Real SH up to degree 3 in the INRIA 3DGS form (Condon-Shortley phase), + 0.5, clamped."""
    x, y, z = d / np.linalg.norm(d)
    basis = [0.28209479177387814]
    if degree >= 1:
        c1 = 0.4886025119029199
        basis += [-c1 * y, c1 * z, -c1 * x]
    if degree >= 2:
        basis += [
            1.0925484305920792 * x * y,
            -1.0925484305920792 * y * z,
            0.31539156525252005 * (2 * z * z - x * x - y * y),
            -1.0925484305920792 * x * z,
            0.5462742152960396 * (x * x - y * y),
        ]
    if degree >= 3:
        basis += [
            -0.5900435899266435 * y * (3 * x * x - y * y),
            2.890611442640554 * x * y * z,
            -0.4570457994644658 * y * (4 * z * z - x * x - y * y),
            0.3731763325901154 * z * (2 * z * z - 3 * x * x - 3 * y * y),
            -0.4570457994644658 * x * (4 * z * z - x * x - y * y),
            1.445305721320277 * z * (x * x - y * y),
            -0.5900435899266435 * x * (x * x - 3 * y * y),
        ]
    basis = np.array(basis)
    return np.maximum(basis @ coeffs[: len(basis)] + 0.5, 0.0)


def reference_render(scene, viewmats, Ks, width, height, sh_degree, use_extras, backgrounds=None):
    """Loops over cameras and pixels; every Gaussian is projected with dense 3x3 matrix algebra."""
    s = {k: v.detach().numpy() for k, v in scene.items()}
    out_colors, out_alpha, out_depth = [], [], []
    for c in range(len(viewmats)):
        view, K = viewmats[c].numpy(), Ks[c].numpy()
        rot, trans = view[:3, :3], view[:3, 3]
        campos = -rot.T @ trans
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        splats = []
        for n in range(len(s["means"])):
            p = rot @ s["means"][n] + trans
            if not 0.01 <= p[2] <= 1e10 or s["opacities"][n] < 1 / 255:
                continue
            r = _rotation(s["quats"][n])
            cov_cam = rot @ r @ np.diag(s["scales"][n] ** 2) @ r.T @ rot.T
            # Jacobian at the mean, with x/z and y/z clamped to 1.3x the field of view (gsplat).
            u = np.clip(
                p[0] / p[2], -(cx / fx + 0.15 * width / fx), (width - cx) / fx + 0.15 * width / fx
            )
            v = np.clip(
                p[1] / p[2],
                -(cy / fy + 0.15 * height / fy),
                (height - cy) / fy + 0.15 * height / fy,
            )
            jac = np.array([[fx / p[2], 0, -fx * u / p[2]], [0, fy / p[2], -fy * v / p[2]]])
            cov2d = jac @ cov_cam @ jac.T + 0.3 * np.eye(2)
            if np.linalg.det(cov2d) <= 0:
                continue
            color = _sh_rgb(s["colors"][n], s["means"][n] - campos, sh_degree)
            feat = np.concatenate([color, s["extras"][n]]) if use_extras else color
            mean2d = np.array([fx * p[0] / p[2] + cx, fy * p[1] / p[2] + cy])
            splats.append((p[2], n, mean2d, np.linalg.inv(cov2d), s["opacities"][n], feat))
        splats.sort(key=lambda t: (t[0], t[1]))
        n_feat = 3 + (s["extras"].shape[1] if use_extras else 0)
        colors = np.zeros((height, width, n_feat))
        alpha = np.zeros((height, width, 1))
        depth = np.zeros((height, width, 1))
        for py in range(height):
            for px in range(width):
                trans_ = 1.0
                for z, _, mean2d, conic, opacity, feat in splats:
                    d = mean2d - np.array([px + 0.5, py + 0.5])
                    sigma = 0.5 * d @ conic @ d
                    a = min(0.999, opacity * math.exp(-sigma))
                    if sigma < 0 or a < 1 / 255:
                        continue
                    if trans_ * (1 - a) <= 1e-4:
                        break
                    colors[py, px] += a * trans_ * feat
                    depth[py, px] += a * trans_ * z
                    trans_ *= 1 - a
                alpha[py, px] = 1 - trans_
                if backgrounds is not None:
                    colors[py, px] += trans_ * backgrounds[c].numpy()
        out_colors.append(colors)
        out_alpha.append(alpha)
        out_depth.append(depth)
    return [torch.from_numpy(np.stack(x)) for x in (out_colors, out_alpha, out_depth)]


def composite_reference(splats: dict, width: int, height: int, tile_size: int):
    """Compositing of projected Gaussians one at a time over all pixels at once: no tile tables,
    slabs or running products, so that autograd through it checks the closed-form backward.

    A pixel sees a Gaussian when the pixel's tile is in the Gaussian's tile box (gsplat's rule, as
    `intersect_tiles`). Returns colors [C, H, W, D], alpha [C, H, W, 1], which pixels stopped early
    [C, H, W] and where the alpha of a Gaussian that counts was clamped [C, H, W].
    """
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    px, py = xs.flatten().double() + 0.5, ys.flatten().double() + 0.5  # [P]
    tile_x, tile_y = xs.flatten() // tile_size, ys.flatten() // tile_size
    grid = torch.tensor([math.ceil(width / tile_size), math.ceil(height / tile_size)])
    n_cams, n_gauss, n_feat = splats["features"].shape
    colors, alphas, stops, clamps = [], [], [], []
    for c in range(n_cams):
        trans = torch.ones(height * width, dtype=torch.float64)
        stopped = torch.zeros(height * width, dtype=torch.bool)
        color = torch.zeros(height * width, n_feat, dtype=torch.float64)
        acc = torch.zeros(height * width, dtype=torch.float64)
        clamped = torch.zeros(height * width, dtype=torch.bool)
        order = sorted(range(n_gauss), key=lambda n: (float(splats["depths"][c, n]), n))
        for n in order:
            mean, radius = splats["means2d"][c, n], splats["radii"][c, n]
            centre, reach = mean.detach() / tile_size, radius.double() / tile_size
            lo = torch.minimum(torch.floor(centre - reach).clamp_min(0).long(), grid)
            hi = torch.minimum(torch.ceil(centre + reach).clamp_min(0).long(), grid)
            seen = (tile_x >= lo[0]) & (tile_x < hi[0]) & (tile_y >= lo[1]) & (tile_y < hi[1])
            a, b, cc = splats["conics"][c, n]
            dx, dy = mean[0] - px, mean[1] - py
            sigma = 0.5 * a * dx * dx + b * dx * dy + 0.5 * cc * dy * dy
            raw = splats["opacities"][c, n] * torch.exp(-sigma)
            alpha = torch.clamp_max(raw, 0.999)
            alpha = torch.where(seen & (sigma >= 0) & (alpha >= 1 / 255), alpha, 0.0)
            t_next = trans * (1 - alpha)
            stopped = stopped | (t_next <= 1e-4)  # this Gaussian and all later ones excluded
            clamped = clamped | ((alpha > 0) & ~stopped & (raw.detach() > 0.999))
            weight = torch.where(stopped, 0.0, alpha * trans)
            color = color + weight[:, None] * splats["features"][c, n]
            acc = acc + weight
            trans = torch.where(stopped, trans, t_next)
        colors.append(color.reshape(height, width, n_feat))
        alphas.append(acc.reshape(height, width, 1))
        stops.append(stopped.reshape(height, width))
        clamps.append(clamped.reshape(height, width))
    return torch.stack(colors), torch.stack(alphas), torch.stack(stops), torch.stack(clamps)


# ---------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("sh_degree, tile_size", [(0, 16), (3, 8)])
def test_matches_per_pixel_reference(sh_degree, tile_size):
    width, height = 23, 17  # not multiples of the tile size
    viewmats, Ks = make_cameras(3, width, height)
    scene = make_scene(40, (sh_degree + 1) ** 2, 2, seed=sh_degree)
    scene["opacities"][:10] = 0.98  # opaque enough that some pixels stop early (T <= 1e-4)
    # Large Gaussians centred just outside each camera's clamped field of view (|x/z| > 1.3 tan)
    # whose footprint still reaches the image: their Jacobian is the clamped one.
    for c, side in enumerate((1.0, -1.0, 1.0)):
        cam_point = torch.tensor([side * 0.95 * 2.0, 0.4, 2.0], dtype=torch.float64)
        scene["means"][10 + c] = viewmats[c, :3, :3].T @ (cam_point - viewmats[c, :3, 3])
        scene["scales"][10 + c] = torch.tensor([0.6, 0.3, 0.5])
    backgrounds = torch.rand(3, 5, dtype=torch.float64)
    out = render(
        scene,
        viewmats,
        Ks,
        width,
        height,
        sh_degree=sh_degree,
        extras=scene["extras"],
        backgrounds=backgrounds,
        tile_size=tile_size,
    )
    colors, alpha, depth = reference_render(
        scene, viewmats, Ks, width, height, sh_degree, True, backgrounds
    )
    assert out.colors.shape == (3, height, width, 5)
    assert (alpha > 0.99).any() and (alpha < 0.5).any()  # the scene exercises both regimes
    torch.testing.assert_close(out.alpha, alpha, atol=1e-9, rtol=0)
    torch.testing.assert_close(out.colors, colors, atol=1e-9, rtol=0)
    torch.testing.assert_close(out.depth, depth, atol=1e-8, rtol=0)


def test_float32_matches_reference():
    width, height = 20, 14
    viewmats, Ks = make_cameras(2, width, height)
    scene = make_scene(30, 4, 0, seed=7)
    scene32 = {k: v.float() for k, v in scene.items()}
    out = render(scene32, viewmats.float(), Ks.float(), width, height, sh_degree=1)
    colors, alpha, depth = reference_render(scene, viewmats, Ks, width, height, 1, False)
    assert out.colors.dtype == torch.float32
    torch.testing.assert_close(out.colors.double(), colors, atol=2e-4, rtol=0)
    torch.testing.assert_close(out.alpha.double(), alpha, atol=2e-4, rtol=0)
    torch.testing.assert_close(out.depth.double(), depth, atol=2e-3, rtol=0)


def test_result_does_not_depend_on_tile_size_or_chunking():
    width, height = 40, 30
    viewmats, Ks = make_cameras(2, width, height)
    scene = make_scene(200, 1, 1, seed=3)
    base = render(
        scene, viewmats, Ks, width, height, sh_degree=0, extras=scene["extras"], tile_size=16
    )
    other = render(
        scene, viewmats, Ks, width, height, sh_degree=0, extras=scene["extras"], tile_size=5
    )
    torch.testing.assert_close(base.colors, other.colors, atol=1e-12, rtol=0)
    torch.testing.assert_close(base.depth, other.depth, atol=1e-12, rtol=0)

    # Tiny chunks (one tile each) and slabs (one list entry per early-exit step), directly.
    geometry = (scene[k] for k in ("means", "quats", "scales", "opacities"))
    proj = project_gaussians(*geometry, viewmats, Ks, width, height)
    isect = intersect_tiles(proj.means2d, proj.radii, proj.depths, 16, width, height)
    feats = scene["extras"][None].expand(2, -1, -1)
    opac = scene["opacities"][None].expand(2, -1)
    small, small_alpha = rasterize_to_pixels(
        proj.means2d,
        proj.conics,
        opac,
        feats,
        isect,
        width,
        height,
        16,
        max_chunk_elements=1,
        slab=1,
        slab_elements=0,
    )
    torch.testing.assert_close(small, base.colors[..., 3:], atol=1e-12, rtol=0)
    torch.testing.assert_close(small_alpha, base.alpha, atol=1e-12, rtol=0)


def test_extras_in_same_pass_equal_a_render_of_them_as_colours():
    width, height = 24, 18
    viewmats, Ks = make_cameras(2, width, height)
    scene = make_scene(60, 16, 3, seed=11)
    geom = (scene["means"], scene["quats"], scene["scales"], scene["opacities"])
    joint = rasterize(
        *geom, scene["colors"], viewmats, Ks, width, height, sh_degree=3, extras=scene["extras"]
    )
    alone = rasterize(*geom, scene["extras"], viewmats, Ks, width, height)
    rgb = rasterize(*geom, scene["colors"], viewmats, Ks, width, height, sh_degree=3)
    torch.testing.assert_close(joint.colors[..., 3:], alone.colors, atol=1e-12, rtol=0)
    torch.testing.assert_close(joint.colors[..., :3], rgb.colors, atol=1e-12, rtol=0)
    torch.testing.assert_close(joint.alpha, alone.alpha, atol=1e-12, rtol=0)


def test_background_fills_what_is_not_covered():
    width, height = 16, 12
    viewmats, Ks = make_cameras(2, width, height)
    scene = make_scene(20, 1, 0, seed=5)
    bg = torch.tensor([[0.2, 0.5, 0.9], [1.0, 0.0, 0.3]], dtype=torch.float64)
    plain = render(scene, viewmats, Ks, width, height, sh_degree=0)
    with_bg = render(scene, viewmats, Ks, width, height, sh_degree=0, backgrounds=bg)
    expected = plain.colors + (1 - plain.alpha) * bg[:, None, None, :]
    torch.testing.assert_close(with_bg.colors, expected, atol=1e-12, rtol=0)
    # The depth channel composites over 0, whatever the background.
    torch.testing.assert_close(with_bg.depth, plain.depth, atol=0, rtol=0)
    assert (plain.alpha < 1e-3).any()  # part of the image shows the background


def test_gaussians_behind_camera_or_off_image_contribute_nothing():
    width, height = 16, 16
    viewmats, Ks = make_cameras(1, width, height)
    scene = make_scene(6, 1, 1, seed=2, spread=0.3)
    campos = torch.linalg.inv(viewmats[0])[:3, 3]
    forward = viewmats[0, 2, :3]
    right = viewmats[0, 0, :3]
    behind, off_image = campos - 2.0 * forward, campos + 1.0 * forward + 5.0 * right
    hidden = torch.stack([behind, off_image])
    full = {k: v.clone() for k, v in scene.items()}
    full["means"] = torch.cat([scene["means"], hidden])
    for key in ("quats", "scales", "opacities", "colors", "extras"):
        full[key] = torch.cat([scene[key], scene[key][:2]])
    full["opacities"][-2:] = 0.9
    for value in full.values():
        value.requires_grad_(True)

    ref = render(scene, viewmats, Ks, width, height, sh_degree=0, extras=scene["extras"])
    out = render(full, viewmats, Ks, width, height, sh_degree=0, extras=full["extras"])
    torch.testing.assert_close(out.colors, ref.colors, atol=0, rtol=0)
    torch.testing.assert_close(out.depth, ref.depth, atol=0, rtol=0)
    assert (out.info["radii"][0, -2:] == 0).all() and (out.info["radii"][0, :6] > 0).all()
    (out.colors.sum() + out.depth.sum()).backward()
    for key, value in full.items():
        assert value.grad[-2:].abs().max() == 0, key
        assert torch.isfinite(value.grad).all(), key


def test_radii_follow_gsplat_opacity_aware_box():
    width, height = 64, 48
    viewmats, Ks = make_cameras(1, width, height)
    scene = make_scene(30, 1, 0, seed=9)
    scene["opacities"][0] = 1 / 255 * 0.99  # too faint: culled
    geometry = (scene[k] for k in ("means", "quats", "scales", "opacities"))
    proj = project_gaussians(*geometry, viewmats, Ks, width, height)
    assert proj.radii.dtype == torch.int32 and proj.radii.shape == (1, 30, 2)
    assert (proj.radii[0, 0] == 0).all()
    # Hand computation from the conic: cov2d = conic^-1, extent from the opacity.
    a, b, c = proj.conics[0, 1:].unbind(-1)
    det = a * c - b * b
    var_x, var_y = c / det, a / det
    extent = torch.clamp(torch.sqrt(2 * torch.log(scene["opacities"][1:] * 255)), max=3.33)
    expected = torch.stack(
        [torch.ceil(extent * var_x.sqrt()), torch.ceil(extent * var_y.sqrt())], -1
    )
    visible = proj.radii[0, 1:].all(-1)
    assert visible.sum() > 20
    torch.testing.assert_close(
        proj.radii[0, 1:][visible].double(), expected[visible], atol=0, rtol=0
    )


def test_gradients_match_finite_differences():
    width, height = 10, 8
    viewmats, Ks = make_cameras(2, width, height, fov_deg=40)
    scene = make_scene(5, 4, 2, seed=4, spread=0.4)
    scene["scales"] = scene["scales"] * 3
    names = ("means", "quats", "scales", "opacities", "colors", "extras")

    def outputs(*params):
        out = render(
            dict(zip(names, params)), viewmats, Ks, width, height, sh_degree=1, extras=params[-1]
        )
        return out.colors, out.alpha, out.depth

    inputs = [scene[k].clone().requires_grad_(True) for k in names]
    assert outputs(*inputs)[1].max() > 0.5  # the Gaussians are in view
    assert torch.autograd.gradcheck(outputs, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


def test_screen_space_gradient_matches_finite_differences():
    """means2d.grad (what densification reads) is the derivative w.r.t. the projected means."""
    width, height = 12, 9
    viewmats, Ks = make_cameras(2, width, height, fov_deg=40)
    scene = make_scene(6, 1, 2, seed=6, spread=0.4)
    scene["scales"] = scene["scales"] * 3
    geometry = (scene[k] for k in ("means", "quats", "scales", "opacities"))
    proj = project_gaussians(*geometry, viewmats, Ks, width, height)
    isect = intersect_tiles(proj.means2d, proj.radii, proj.depths, 4, width, height)
    opac = scene["opacities"][None].expand(2, -1).clone()
    feats = scene["extras"][None].expand(2, -1, -1).clone()

    def composite(means2d, conics, opacities, features):
        # slab=2: lists are walked two entries at a time, so gradients cross the carried T too.
        return rasterize_to_pixels(
            means2d, conics, opacities, features, isect, width, height, 4, slab=2, slab_elements=0
        )

    inputs = [
        t.detach().clone().requires_grad_(True) for t in (proj.means2d, proj.conics, opac, feats)
    ]
    assert torch.autograd.gradcheck(
        composite, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True
    )


def make_splats(n_cams: int, n: int, n_feat: int, width: int, height: int, seed: int) -> dict:
    """Random projected Gaussians [C, N, ...] (float64) covering compositing's special cases: four
    with opacity 1 centred within 0.01 px of a pixel centre (alpha clamped there), two too faint
    to ever count (skipped), boxes from a few pixels to the whole image, random depths."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    means2d = rand(n_cams, n, 2) * torch.tensor([width + 4.0, height + 4.0]) - 2.0
    pixel = torch.floor(rand(n_cams, 4, 2) * torch.tensor([width, height])) + 0.5
    means2d[:, :4] = pixel + (rand(n_cams, 4, 2) - 0.5) * 0.02
    angle = rand(n_cams, n) * math.pi
    rot = torch.stack(
        [torch.cos(angle), -torch.sin(angle), torch.sin(angle), torch.cos(angle)], -1
    ).reshape(n_cams, n, 2, 2)
    cov = rot @ torch.diag_embed((rand(n_cams, n, 2) * 3.0 + 0.8) ** 2) @ rot.transpose(-1, -2)
    inv = torch.linalg.inv(cov)
    opacities = rand(n_cams, n) * 0.9 + 0.05
    opacities[:, :4] = 1.0
    opacities[:, 4:6] = 0.003
    radii = torch.randint(1, 10, (n_cams, n, 2), generator=g, dtype=torch.int32)
    radii[:, ::3] = max(width, height) * 2
    return {
        "means2d": means2d,
        "conics": torch.stack([inv[..., 0, 0], inv[..., 0, 1], inv[..., 1, 1]], -1),
        "opacities": opacities,
        "features": rand(n_cams, n, n_feat) * 2 - 1,
        "radii": radii,
        "depths": rand(n_cams, n) + 1.0,
    }


DIFFERENTIABLE = ("means2d", "conics", "opacities", "features")


def composite_with(splats: dict, width: int, height: int, tile_size: int, **kwargs):
    """rasterize_to_pixels on a splats dict, its tile lists from its radii and depths."""
    isect = intersect_tiles(
        splats["means2d"].detach(), splats["radii"], splats["depths"], tile_size, width, height
    )
    inputs = (splats[k] for k in DIFFERENTIABLE)
    return rasterize_to_pixels(*inputs, isect, width, height, tile_size, **kwargs)


def input_gradients(splats: dict, composite, seed: int) -> list[torch.Tensor]:
    """Gradients w.r.t. DIFFERENTIABLE of a random linear function of composite's outputs."""
    leaves = {k: v.detach().clone().requires_grad_(k in DIFFERENTIABLE) for k, v in splats.items()}
    colors, alpha = composite(leaves)
    g = torch.Generator().manual_seed(seed)  # the same upstream gradients in every dtype
    loss = (colors * torch.randn(colors.shape, generator=g, dtype=torch.float64)).sum()
    loss = loss + (alpha * torch.randn(alpha.shape, generator=g, dtype=torch.float64)).sum()
    return torch.autograd.grad(loss, [leaves[k] for k in DIFFERENTIABLE])


@pytest.mark.parametrize(
    "n_feat, chunking, backward_block",
    [
        (1, {}, torch_rasterizer.BACKWARD_BLOCK_ELEMENTS),  # one chunk, one slab, one block
        (3, {"max_chunk_elements": 1, "slab": 2, "slab_elements": 0}, 1),  # a tile per chunk
        (4, {"max_chunk_elements": 300, "slab": 3, "slab_elements": 0}, 1),  # a tile per block
        (3, {"slab": 5, "slab_elements": 100}, 200),  # slabs lengthen as tiles leave the walk
    ],
)
def test_closed_form_backward_matches_autograd_and_reference(
    n_feat, chunking, backward_block, monkeypatch
):
    monkeypatch.setattr(torch_rasterizer, "BACKWARD_BLOCK_ELEMENTS", backward_block)
    width, height, tile = 13, 11, 4
    splats = make_splats(3, 40, n_feat, width, height, seed=n_feat)
    # Camera 0's nearest Gaussian sits on a pixel centre with opacity 0.999: alpha ties the clamp
    # there, where torch.clamp_max passes no gradient.
    splats["means2d"][0, 8] = torch.tensor([6.5, 4.5])
    splats["opacities"][0, 8] = 0.999
    splats["depths"][0, 8] = 0.5

    def closed(s):
        return composite_with(s, width, height, tile, **chunking)

    def twin(s):
        return composite_with(s, width, height, tile, backward="autograd", **chunking)

    def reference(s):
        return composite_reference(s, width, height, tile)[:2]

    colors, alpha, stopped, clamped = composite_reference(splats, width, height, tile)
    # The scene exercises early stops, clamped alphas and faint pixels.
    assert stopped.any() and not stopped.all() and clamped.sum() >= 3 and (alpha < 0.5).any()
    out_colors, out_alpha = closed(splats)
    torch.testing.assert_close(out_colors, colors, atol=1e-12, rtol=0)
    torch.testing.assert_close(out_alpha, alpha, atol=1e-12, rtol=0)
    twin_colors, twin_alpha = twin(splats)
    assert torch.equal(twin_colors, out_colors) and torch.equal(twin_alpha, out_alpha)

    grads = input_gradients(splats, closed, seed=1)
    for name, got, want, ref in zip(
        DIFFERENTIABLE,
        grads,
        input_gradients(splats, twin, 1),
        input_gradients(splats, reference, 1),
    ):
        assert got.abs().max() > 0, name
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10, msg=name)
        torch.testing.assert_close(got, ref, atol=1e-11, rtol=1e-9, msg=name)


def test_closed_form_backward_in_float32_matches_float64():
    width, height, tile = 16, 12, 8
    splats = make_splats(2, 60, 4, width, height, seed=7)
    single = {k: v.float() if v.is_floating_point() else v for k, v in splats.items()}

    def composite(s):
        return composite_with(s, width, height, tile, slab=4, slab_elements=0)

    for name, got, want in zip(
        DIFFERENTIABLE, input_gradients(single, composite, 2), input_gradients(splats, composite, 2)
    ):
        scale = want.abs().max()
        torch.testing.assert_close(got.double(), want, atol=1e-5 * scale, rtol=0, msg=name)


def test_closed_form_backward_matches_finite_differences():
    width, height, tile = 6, 5, 4
    splats = make_splats(2, 7, 2, width, height, seed=3)
    splats["opacities"][:, :4] = 0.9  # away from the clamp, where alpha is not differentiable
    isect = intersect_tiles(
        splats["means2d"], splats["radii"], splats["depths"], tile, width, height
    )

    def composite(*inputs):
        return rasterize_to_pixels(
            *inputs, isect, width, height, tile, max_chunk_elements=1, slab=2, slab_elements=0
        )

    inputs = [splats[k].clone().requires_grad_(True) for k in DIFFERENTIABLE]
    assert torch.autograd.gradcheck(composite, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_unknown_backward_is_rejected():
    splats = make_splats(1, 8, 1, 8, 8, seed=0)
    with pytest.raises(ValueError, match="backward must be 'closed-form' or 'autograd'"):
        composite_with(splats, 8, 8, 4, backward="checkpoint")


def test_info_drives_gsplat_default_strategy():
    from gsplat.strategy import DefaultStrategy

    width, height = 32, 24
    viewmats, Ks = make_cameras(2, width, height)
    scene = make_scene(50, 4, 0, seed=8)
    params = torch.nn.ParameterDict(
        {
            "means": scene["means"].float(),
            "scales": scene["scales"].float().log(),
            "quats": scene["quats"].float(),
            "opacities": torch.logit(scene["opacities"].float()),
            "sh0": scene["colors"][:, :1].float(),
            "shN": scene["colors"][:, 1:].float(),
        }
    )
    optimizers = {k: torch.optim.Adam([p], lr=1e-3) for k, p in params.items()}
    strategy = DefaultStrategy(
        refine_start_iter=0, refine_every=1, grow_grad2d=1e-12, prune_opa=0.0
    )
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=1.0)

    out = rasterize(
        params["means"],
        params["quats"],
        torch.exp(params["scales"]),
        torch.sigmoid(params["opacities"]),
        torch.cat([params["sh0"], params["shN"]], 1),
        viewmats.float(),
        Ks.float(),
        width,
        height,
        sh_degree=1,
    )
    info = out.info
    strategy.step_pre_backward(params, optimizers, state, 0, info)
    target = torch.rand_like(out.colors)
    ((out.colors - target) ** 2).mean().backward()
    grad2d = info["means2d"].grad
    assert grad2d.shape == (2, 50, 2) and grad2d.abs().sum() > 0
    strategy.step_post_backward(params, optimizers, state, 0, info, packed=False)

    visible = (info["radii"] > 0).all(-1)  # [C, N]
    scaled = grad2d * torch.tensor([width / 2 * 2, height / 2 * 2])
    expected = (scaled.norm(dim=-1) * visible).sum(0)
    torch.testing.assert_close(state["grad2d"], expected)
    torch.testing.assert_close(state["count"], visible.sum(0).float())

    # A refinement step (step 1 > refine_start_iter) grows Gaussians with non-zero gradients.
    n_before = len(params["means"])
    strategy.step_post_backward(params, optimizers, state, 1, info, packed=False)
    assert len(params["means"]) > n_before


def test_nothing_visible_still_gives_zero_gradients():
    width, height = 8, 8
    viewmats, Ks = make_cameras(1, width, height)
    scene = make_scene(3, 1, 0, seed=1)
    means = (torch.linalg.inv(viewmats[0])[:3, 3] - 3 * viewmats[0, 2, :3]).expand(3, 3).clone()
    means.requires_grad_(True)
    out = render({**scene, "means": means}, viewmats, Ks, width, height, sh_degree=0)
    out.info["means2d"].retain_grad()
    out.colors.sum().backward()
    assert out.alpha.abs().max() == 0
    assert out.info["means2d"].grad.abs().max() == 0 and means.grad.abs().max() == 0


@pytest.mark.parametrize(
    "change, message",
    [
        ({"quats": torch.zeros(4, 3)}, "quats must be"),
        ({"colors": torch.zeros(4, 3, 3), "sh_degree": 2}, "K>=9"),
        ({"sh_degree": 5, "colors": torch.zeros(4, 36, 3)}, "sh_degree must be"),
        ({"backgrounds": torch.zeros(1, 4)}, "backgrounds must be"),
        ({"Ks": torch.zeros(2, 3, 3)}, "Ks must be"),
        ({"backend": "cuda"}, "backend must be"),
        ({"backend": "gsplat"}, "needs CUDA"),
        ({"extras": torch.zeros(3, 1)}, "extras must be"),
    ],
)
def test_bad_inputs_are_rejected_with_a_message(change, message):
    args = {
        "means": torch.zeros(4, 3),
        "quats": torch.zeros(4, 4),
        "scales": torch.ones(4, 3),
        "opacities": torch.ones(4),
        "colors": torch.zeros(4, 1, 3),
        "viewmats": torch.eye(4)[None],
        "Ks": torch.eye(3)[None],
        "width": 8,
        "height": 8,
        "sh_degree": 0,
    }
    args.update(change)
    with pytest.raises(ValueError, match=message):
        rasterize(**args)
