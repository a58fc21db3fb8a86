"""Rasterizer throughput: the pure-PyTorch backend on CPU (and gsplat on CUDA when present).

    python tools/bench_render.py [--counts 1000 10000 100000] [--resolutions 64 128 256 512]

Scenes are N random Gaussians filling the cube [-1, 1]^3 with scales near half their spacing
(about N^(-1/3)), so that a pixel sees a similar number of Gaussians at every N, seen by one
camera at distance 3 (50 degree field of view), SH degree 3 plus one extra channel. Prints, per
(N, resolution): seconds per frame forward (no autograd) and forward + backward, throughput in
Gaussians x pixels per second, and the number of (Gaussian, tile) intersections.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import tyro

from gsedit.render.rasterize import rasterize


@dataclass
class BenchConfig:
    """What to measure."""

    counts: list[int] = field(default_factory=lambda: [1_000, 10_000, 100_000])
    """Gaussian counts."""
    resolutions: list[int] = field(default_factory=lambda: [64, 128, 256, 512])
    """Square image sides in pixels."""
    repeats: int = 2
    """Timed runs per setting (the fastest is reported), after one warm-up run."""
    threads: int = 0
    """CPU threads for torch (0: torch's default)."""
    tile_size: int | None = None
    """Tile side passed to the rasterizer (None: the backend's default)."""


def make_scene(n: int, device: str) -> dict:
    g = torch.Generator().manual_seed(0)
    spacing = 2.0 * n ** (-1.0 / 3.0)
    scene = {
        "means": torch.rand(n, 3, generator=g) * 2 - 1,
        "quats": torch.randn(n, 4, generator=g),
        "scales": 0.5 * spacing * torch.exp(0.3 * torch.randn(n, 3, generator=g)),
        "opacities": torch.rand(n, generator=g) * 0.8 + 0.1,
        "colors": torch.randn(n, 16, 3, generator=g) * 0.3,
        "extras": torch.rand(n, 1, generator=g),
    }
    return {k: v.to(device) for k, v in scene.items()}


def make_camera(side: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    f = 0.5 * side / math.tan(math.radians(25))
    Ks = torch.tensor([[f, 0, side / 2], [0, f, side / 2], [0, 0, 1.0]])[None]
    viewmats = torch.eye(4)[None].clone()
    viewmats[0, 2, 3] = 3.0  # camera at z = -3 looking down +z at the cube
    return viewmats.to(device), Ks.to(device)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_frame(scene: dict, side: int, device: str, backend: str, backward: bool, cfg: BenchConfig):
    """Best wall-clock seconds of one frame, and the rasterizer's info of the last run."""
    viewmats, Ks = make_camera(side, device)
    params = {k: v.clone().requires_grad_(backward) for k, v in scene.items()}
    best, info = float("inf"), None
    for run in range(cfg.repeats + 1):
        for p in params.values():
            p.grad = None
        _sync(device)
        start = time.perf_counter()
        with torch.set_grad_enabled(backward):
            out = rasterize(
                params["means"],
                params["quats"],
                params["scales"],
                params["opacities"],
                params["colors"],
                viewmats,
                Ks,
                side,
                side,
                sh_degree=3,
                extras=params["extras"],
                backend=backend,
                tile_size=cfg.tile_size,
            )
            if backward:
                (out.colors.sum() + out.depth.sum()).backward()
        _sync(device)
        if run > 0:
            best = min(best, time.perf_counter() - start)
        info = out.info
    return best, info


def bench(device: str, backend: str, cfg: BenchConfig) -> None:
    print(f"\n{backend} backend on {device} ({torch.get_num_threads()} CPU threads)")
    header = ("N", "res", "isects", "fwd s", "fwd+bwd s", "fwd GxP/s", "f+b GxP/s")
    print("{:>8} {:>5} {:>9} {:>8} {:>10} {:>10} {:>10}".format(*header))
    times = {}  # (N, side) -> (forward s, forward + backward s)
    for n in cfg.counts:
        scene = make_scene(n, device)
        for side in cfg.resolutions:
            fwd, info = time_frame(scene, side, device, backend, False, cfg)
            both, _ = time_frame(scene, side, device, backend, True, cfg)
            times[n, side] = (fwd, both)
            work = n * side * side
            isects = int(info["tiles_per_gauss"].sum())
            row = (n, side, isects, fwd, both, work / fwd, work / both)
            print("{:>8} {:>5} {:>9} {:>8.3f} {:>10.3f} {:>10.2e} {:>10.2e}".format(*row))
    print_scaling(times, cfg)


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) against log(x): the exponent k in y ~ x^k."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def print_scaling(times: dict, cfg: BenchConfig) -> None:
    """Exponents of time against pixel count (fixed N) and against N (fixed resolution)."""
    if len(cfg.resolutions) > 1:
        pixels = [side * side for side in cfg.resolutions]
        for n in cfg.counts:
            fwd = _slope(pixels, [times[n, side][0] for side in cfg.resolutions])
            both = _slope(pixels, [times[n, side][1] for side in cfg.resolutions])
            print(f"N={n}: time ~ pixels^{fwd:.2f} forward, ^{both:.2f} forward+backward")
    if len(cfg.counts) > 1:
        for side in cfg.resolutions:
            fwd = _slope(cfg.counts, [times[n, side][0] for n in cfg.counts])
            both = _slope(cfg.counts, [times[n, side][1] for n in cfg.counts])
            print(f"{side}x{side}: time ~ N^{fwd:.2f} forward, ^{both:.2f} forward+backward")


def main(cfg: BenchConfig) -> None:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    bench("cpu", "torch", cfg)
    if torch.cuda.is_available():
        bench("cuda", "gsplat", cfg)
        bench("cuda", "torch", cfg)


if __name__ == "__main__":
    main(tyro.cli(BenchConfig))
