"""Rasterizer throughput: the pure-PyTorch backend on CPU (and gsplat on CUDA when present).

    python tools/bench_render.py [--counts 1000 10000 100000] [--resolutions 64 128 256 512]
    python tools/bench_render.py --compare-backward --counts 10000 100000 --resolutions 256 512
    python tools/bench_render.py --compare-native --counts 10000 100000 --resolutions 128 256 512 \
        --thread-counts 1 2

Scenes are N random Gaussians filling the cube [-1, 1]^3 with scales near half their spacing
(about N^(-1/3)), so that a pixel sees a similar number of Gaussians at every N, seen by one
camera at distance 3 (50 degree field of view), SH degree 3 plus one extra channel. Prints, per
(N, resolution): seconds per frame forward (no autograd) and forward + backward, throughput in
Gaussians x pixels per second, and the number of (Gaussian, tile) intersections.

--compare-backward instead times the CPU backend's two ways of differentiating compositing side by
side: forward, forward + backward through autograd (the compositing recomputed under checkpoint)
and forward + backward with the closed-form backward, interleaved run by run so that load from
other processes hits all three alike. These frames go through `rasterize_torch` with
view-independent features (the SH DC colour and the extra channel): SH evaluation, common to both,
is left out.

--compare-native times the native CPU kernels (cuda_ext/, backend "native") against the PyTorch
rasterizer (backend "torch") on whole frames (SH degree 3 + one extra channel), forward and
forward + backward, for every thread count of --thread-counts, the two backends interleaved run by
run; it prints seconds per frame and the speed-ups.

--compare-process times what a user waits for, whole `gsedit` processes (start-up, scene and
camera files, rendering or optimisation, PNG and .ply writes), the default (native kernels)
against GSEDIT_NATIVE=0 (the PyTorch rasterizer), the two interleaved in every one of --rounds
rounds: `gsedit render` of a 100k-Gaussian synthetic labelled scene to orbit:24@512x512, and a
200-step `gsedit edit` (synthetic stand-in editor) of the 4k-Gaussian labelled scene with 8 views
at 80x60. It prints the median and the range of each, and the ratio of the medians with the range
of the per-round ratios. With --before TREE (a checkout of an earlier commit, e.g. `git worktree
add /tmp/before COMMIT`), the default path of that tree runs in every round too (PYTHONPATH=TREE)
and the before/after ratio is printed.

--composite-flops times the native compositing forward alone (frames per second, on this
process's torch threads) at every --counts x --resolutions, counts the (pixel, list entry) pairs it
evaluates (every entry of a tile's list whose row box reaches a row, up to the last entry any pixel
of that row uses) and turns them into FLOP/s with the operation count of one pixel-entry in
cuda_ext/cpu_kernels.cpp (`row_forward` with its exp polynomial, then one FMA per channel and the
alpha sum; an FMA counts 2), against a peak of threads x --ghz x 2 FMA units x 2 FLOP x 16
float lanes (AVX-512; 8 for the 256-bit vectors GCC emits for -march=native here).
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import tyro

from gsedit.render.rasterize import TORCH_TILE_SIZE, rasterize
from gsedit.render.torch_rasterizer import rasterize_torch


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
    compare_backward: bool = False
    """Time autograd against the closed-form compositing backward on CPU instead (see above)."""
    compare_native: bool = False
    """Time the native CPU kernels against the PyTorch rasterizer instead (see above)."""
    thread_counts: list[int] = field(default_factory=lambda: [1, 2])
    """CPU thread counts for --compare-native."""
    compare_process: bool = False
    """Time whole `gsedit render` and `gsedit edit` processes, native vs GSEDIT_NATIVE=0 (see above)."""
    rounds: int = 3
    """Interleaved rounds of --compare-process."""
    edit_iters: int = 200
    """Optimisation steps of the --compare-process edit."""
    before: Path | None = None
    """--compare-process: also time the default path of this source tree (an earlier commit)."""
    composite_flops: bool = False
    """Time the native compositing forward and estimate its FLOP/s against the CPU's peak (see above)."""
    ghz: float = 2.6
    """Clock for --composite-flops' peak (this VM's TSC; /proc/cpuinfo shows no turbo clock)."""


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


def run_frame(params: dict, side: int, device: str, backend: str, backward: bool, cfg: BenchConfig):
    """Renders (and differentiates) one frame; returns its wall-clock seconds and the info."""
    viewmats, Ks = make_camera(side, device)
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
    return time.perf_counter() - start, out.info


def time_frame(scene: dict, side: int, device: str, backend: str, backward: bool, cfg: BenchConfig):
    """Best wall-clock seconds of one frame, and the rasterizer's info of the last run."""
    params = {k: v.clone().requires_grad_(backward) for k, v in scene.items()}
    best, info = float("inf"), None
    for run in range(cfg.repeats + 1):
        seconds, info = run_frame(params, side, device, backend, backward, cfg)
        if run > 0:
            best = min(best, seconds)
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


def time_backwards(scene: dict, side: int, cfg: BenchConfig) -> dict[str, float]:
    """Best seconds per frame of forward, and of forward + backward with each compositing
    backward, the three run in turn on the same frame."""
    viewmats, Ks = make_camera(side, "cpu")
    features = torch.cat([scene["colors"][:, 0], scene["extras"]], dim=-1)[None]  # [1, N, 4]
    geometry = [scene[k] for k in ("means", "quats", "scales", "opacities")]
    tile_size = cfg.tile_size or TORCH_TILE_SIZE
    modes = ("forward", "autograd", "closed-form")
    best = dict.fromkeys(modes, float("inf"))
    for run in range(cfg.repeats + 1):
        for mode in modes:
            backward = mode != "forward"
            inputs = [t.clone().requires_grad_(backward) for t in (*geometry, features)]
            start = time.perf_counter()
            with torch.set_grad_enabled(backward):
                render, alpha, _ = rasterize_torch(
                    *inputs,
                    viewmats,
                    Ks,
                    side,
                    side,
                    backgrounds=None,
                    near_plane=0.01,
                    far_plane=1e10,
                    eps2d=0.3,
                    tile_size=tile_size,
                    backward="closed-form" if mode == "forward" else mode,  # unused on forward
                )
                if backward:
                    (render.sum() + alpha.sum()).backward()
            if run > 0:
                best[mode] = min(best[mode], time.perf_counter() - start)
    return best


def compare_backwards(cfg: BenchConfig) -> None:
    """Prints, per (N, resolution), the seconds per frame of `time_backwards` and their ratios."""
    print(
        f"\ncompositing backward on cpu ({torch.get_num_threads()} CPU threads), seconds per frame"
    )
    header = (
        "N",
        "res",
        "fwd s",
        "f+b autograd",
        "f+b closed",
        "autograd/fwd",
        "closed/fwd",
        "speedup",
    )
    print("{:>8} {:>5} {:>8} {:>13} {:>11} {:>13} {:>11} {:>8}".format(*header))
    for n in cfg.counts:
        scene = make_scene(n, "cpu")
        for side in cfg.resolutions:
            best = time_backwards(scene, side, cfg)
            fwd, auto, closed = best["forward"], best["autograd"], best["closed-form"]
            row = (n, side, fwd, auto, closed, auto / fwd, closed / fwd, auto / closed)
            print(
                "{:>8} {:>5} {:>8.3f} {:>13.3f} {:>11.3f} {:>13.2f} {:>11.2f} {:>8.2f}".format(*row)
            )


def compare_native(cfg: BenchConfig) -> None:
    """Prints, per (threads, N, resolution), seconds per frame of the PyTorch and native CPU
    backends, forward and forward + backward, and native's speed-ups."""
    from gsedit.render import native

    native.require()  # builds the kernels before anything is timed
    header = ("thr", "N", "res", "torch fwd", "native fwd", "x", "torch f+b", "native f+b", "x")
    print("\nnative CPU kernels vs the PyTorch rasterizer, seconds per frame (best of repeats)")
    print("{:>3} {:>7} {:>5} {:>10} {:>10} {:>6} {:>10} {:>10} {:>6}".format(*header))
    previous = torch.get_num_threads()
    for threads in cfg.thread_counts:
        torch.set_num_threads(threads)
        for n in cfg.counts:
            scene = make_scene(n, "cpu")
            for side in cfg.resolutions:
                best = {}
                for backward in (False, True):
                    params = {k: v.clone().requires_grad_(backward) for k, v in scene.items()}
                    for run in range(cfg.repeats + 1):  # the backends in turn: load hits both
                        for backend in ("torch", "native"):
                            seconds, _ = run_frame(params, side, "cpu", backend, backward, cfg)
                            key = (backend, backward)
                            if run > 0:
                                best[key] = min(best.get(key, float("inf")), seconds)
                tf, nf = best["torch", False], best["native", False]
                tb, nb = best["torch", True], best["native", True]
                row = (threads, n, side, tf, nf, tf / nf, tb, nb, tb / nb)
                print(
                    "{:>3} {:>7} {:>5} {:>10.4f} {:>10.4f} {:>5.1f}x {:>10.4f} {:>10.4f} "
                    "{:>5.1f}x".format(*row),
                    flush=True,
                )
    torch.set_num_threads(previous)


def write_process_scenes(folder: Path) -> dict[str, Path]:
    """The --compare-process inputs: a 100k-Gaussian and a 4k-Gaussian synthetic labelled scene
    (5 surface samplings of `points_per_object`: the floor counts twice), and 8 views at 80x60."""
    from gsedit.cameras.formats import write_inria_cameras
    from gsedit.cameras.orbit import orbit_cameras
    from gsedit.data.synthetic import (
        SyntheticSceneConfig,
        make_synthetic_scene,
        write_synthetic_scene,
    )

    big = write_synthetic_scene(folder / "big" / "scene.ply", SyntheticSceneConfig(points_per_object=20_000))
    small = write_synthetic_scene(folder / "small" / "scene.ply", SyntheticSceneConfig(points_per_object=800))
    gaussians, _ = make_synthetic_scene(SyntheticSceneConfig(points_per_object=800))
    write_inria_cameras(orbit_cameras(8, gaussians.bounds(), 80, 60), small)
    return {"big": big.with_name("scene.ply"), "small": small.with_name("scene.ply"), "small_cams": small}


def _timed_process(args: list[str], native: bool, tree: Path | None, cwd: Path) -> float:
    """Seconds of one `python -m gsedit ARGS` run from `cwd`, which must not hold a gsedit: `-m` puts
    the working directory first on sys.path, ahead of PYTHONPATH's `tree`."""
    env = {k: v for k, v in os.environ.items() if k != "GSEDIT_NATIVE"}
    if not native:
        env["GSEDIT_NATIVE"] = "0"
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "gsedit", *args], env=env, capture_output=True, text=True,
                            check=False, cwd=cwd)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"gsedit {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return seconds


def compare_process(cfg: BenchConfig) -> None:
    """Prints the whole-process seconds of `gsedit render` and `gsedit edit`, native vs torch."""
    from gsedit.render import native

    native.require()  # built once here, so no timed process compiles it
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = write_process_scenes(folder)
        commands = {
            "render 100k, orbit:24@512x512": lambda out: [
                "render", str(files["big"]), "--cameras", "orbit:24@512x512", "--out", str(out), "--device", "cpu"
            ],
            f"edit 4k, 8 views 80x60, {cfg.edit_iters} steps": lambda out: [
                "edit", str(files["small"]), "--cameras", str(files["small_cams"]), "--turn", "make the sphere red",
                "--out", str(out), "--editor", "synthetic", "--iters", str(cfg.edit_iters), "--device", "cpu",
                "--quiet",
            ],
        }
        modes = ("native", "torch", "before") if cfg.before else ("native", "torch")
        seconds = {(name, mode): [] for name in commands for mode in modes}
        for round_index in range(cfg.rounds):  # interleaved: load from other processes hits all alike
            for name, argv in commands.items():
                for mode in modes:
                    out = folder / f"{len(seconds[name, mode])}_{mode}_{name.split()[0]}"
                    tree = cfg.before if mode == "before" else None
                    seconds[name, mode].append(_timed_process(argv(out), mode != "torch", tree, folder))
            print(f"round {round_index + 1}/{cfg.rounds} done", file=sys.stderr, flush=True)
    print(f"\nwhole gsedit processes, default (native) vs GSEDIT_NATIVE=0, {cfg.rounds} interleaved rounds")
    print("{:<34} {:>20} {:>20} {:>8} {:>15}".format("command", "native s (min-max)", "torch s (min-max)",
                                                     "ratio", "round ratios"))
    for name in commands:
        nat, tor = seconds[name, "native"], seconds[name, "torch"]
        ratios = [t / n for n, t in zip(nat, tor)]
        med_n, med_t = statistics.median(nat), statistics.median(tor)
        print(f"{name:<34} {med_n:>6.2f} ({min(nat):>5.2f}-{max(nat):>5.2f}) {med_t:>6.2f} "
              f"({min(tor):>5.2f}-{max(tor):>5.2f}) {med_t / med_n:>7.2f}x {min(ratios):>6.2f}-{max(ratios):>5.2f}x")
        if cfg.before:
            old = seconds[name, "before"]
            gains = [b / n for n, b in zip(nat, old)]
            print(f"{'  before (' + str(cfg.before) + ')':<34} {statistics.median(old):>6.2f} "
                  f"({min(old):>5.2f}-{max(old):>5.2f}) before/native {statistics.median(old) / med_n:.2f}x "
                  f"(rounds {min(gains):.2f}-{max(gains):.2f}x)")


# FLOP of one (pixel, entry) pair in row_forward, counted in cuda_ext/cpu_kernels.cpp: dx 2, -sigma 5,
# vexp 24 (clamps 2, rounding FMA + subtract 3, Cody-Waite 2 FMA 4, 7 Horner FMA 14, scale 1), alpha 2,
# the masks 4, T(1 - alpha) 2, stop 2, add 1, w 2, T select 1, live 1, last 3, stops 1
ROW_FORWARD_FLOP = 50


def pixel_entries(means2d, conics, opacities, flatten_ids, offsets, last, side: int, tile: int) -> tuple[int, int]:
    """Bounds on the (pixel, list entry) pairs the compositing forward evaluates for one
    [1, side, side] frame: per tile row, the entries whose box (entry_geometry's) reaches the row,
    times the 8-pixel blocks of the row that the box reaches (walk_tile's), up to the row's largest
    `last` (low: a row walks at least that far) or to the list's end (high: a row whose pixels
    never saturate walks the whole list)."""
    tiles = (side + tile - 1) // tile
    counts = torch.diff(torch.cat([offsets.flatten(), offsets.new_tensor([flatten_ids.numel()])]))
    tile_of = torch.repeat_interleave(torch.arange(tiles * tiles), counts)  # [M]
    k = torch.arange(flatten_ids.numel()) - offsets.flatten()[tile_of]  # index within the tile's list
    g = flatten_ids.long()
    a, b, c = conics[0, g].double().unbind(-1)
    reach = torch.log(opacities[0, g].double() * 255.0)
    level = 2.0 * (reach.clamp_min(0) * 1.01 + 1e-2) / (a * c - b * b)
    half_x, half_y = (torch.sqrt(level * v) * 1.001 + 1e-3 for v in (c, a))
    x0 = (tile_of % tiles * tile).double()
    first = torch.ceil(means2d[0, g, 0].double() - half_x - 0.5 - x0).clamp_min(0)
    last_x = torch.floor(means2d[0, g, 0].double() + half_x - 0.5 - x0).clamp_max(tile - 1)
    block_end = ((torch.div(last_x, 8, rounding_mode="floor") + 1) * 8).clamp_max(tile)
    width = block_end - torch.div(first, 8, rounding_mode="floor") * 8
    width = torch.where(first <= last_x, width, 0)  # [M] pixels of each row the entry visits
    y0 = (tile_of // tiles * tile).double()
    lo = torch.ceil(means2d[0, g, 1].double() - half_y - 0.5 - y0).clamp_min(0)
    hi = torch.floor(means2d[0, g, 1].double() + half_y - 0.5 - y0).clamp_max(tile - 1)
    hi = torch.where(reach > -1e-3, hi, lo - 1)  # alpha < 1/255 everywhere: no row
    padded = torch.zeros(tiles * tile, tiles * tile)
    padded[:side, :side] = last[0]
    row_last = padded.reshape(tiles, tile, tiles, tile).amax(-1).permute(0, 2, 1).reshape(-1, tile)  # [T, rows]
    rows = torch.arange(tile).double()
    reached = (rows >= lo[:, None]) & (rows <= hi[:, None])  # [M, rows]
    pairs = reached * width[:, None]
    return int((pairs * (k[:, None] < row_last[tile_of])).sum()), int(pairs.sum())


def composite_flops(cfg: BenchConfig) -> None:
    """Prints frames per second of the native compositing forward and its estimated FLOP/s."""
    from gsedit.render import native
    from gsedit.render.rasterize import NATIVE_TILE_SIZE

    native.require()
    threads = torch.get_num_threads()
    peak = threads * cfg.ghz * 1e9 * 2 * 2 * 16
    print(f"\nnative compositing forward, {threads} threads, peak {peak / 1e9:.0f} GFLOP/s "
          f"(AVX-512 at {cfg.ghz} GHz; {peak / 2e9:.0f} with 256-bit vectors)")
    header = ("N", "res", "frames/s", "pixel-entries", "core-ns/px-entry", "GFLOP/s", "of peak", "of 256b")
    print("{:>7} {:>5} {:>9} {:>19} {:>17} {:>11} {:>11} {:>11}".format(*header))
    for n in cfg.counts:
        scene = make_scene(n, "cpu")
        for side in cfg.resolutions:
            _, info = run_frame(scene, side, "cpu", "native", False, cfg)
            channels = 3 + 1 + 1  # SH colour, the extra channel, depth
            features = torch.rand(1, n, channels)
            means2d = info["means2d"].detach()
            isect = native.intersect_tiles(means2d, info["radii"], info["depths"].detach(), NATIVE_TILE_SIZE, side, side)
            args = [t.contiguous() for t in (means2d, info["conics"].detach(), info["opacities"], features)]
            lists = (isect.flatten_ids, isect.tile_offsets, isect.tile_counts)
            best = float("inf")
            for _ in range(cfg.repeats + 1):
                start = time.perf_counter()
                *_, last = torch.ops.gsedit_native.composite_forward(
                    *args, *lists, side, side, NATIVE_TILE_SIZE, info["tile_width"]
                )
                best = min(best, time.perf_counter() - start)
            low, high = pixel_entries(*args[:3], isect.flatten_ids, isect.tile_offsets, last, side, NATIVE_TILE_SIZE)
            gflops = [pairs * (ROW_FORWARD_FLOP + 2 * channels + 1) / best / 1e9 for pairs in (low, high)]
            print("{:>7} {:>5} {:>9.2f} {:>8.2e}-{:>8.2e} {:>7.2f}-{:>7.2f} {:>5.1f}-{:>5.1f} {:>4.1%}-{:>5.1%} "
                  "{:>4.1%}-{:>5.1%}".format(
                      n, side, 1 / best, low, high, best * 1e9 * threads / high, best * 1e9 * threads / low,
                      *gflops, *(g * 1e9 / peak for g in gflops), *(2 * g * 1e9 / peak for g in gflops)),
                  flush=True)


def main(cfg: BenchConfig) -> None:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.composite_flops:
        composite_flops(cfg)
        return
    if cfg.compare_process:
        compare_process(cfg)
        return
    if cfg.compare_native:
        compare_native(cfg)
        return
    if cfg.compare_backward:
        compare_backwards(cfg)
        return
    bench("cpu", "torch", cfg)
    if torch.cuda.is_available():
        bench("cuda", "gsplat", cfg)
        bench("cuda", "torch", cfg)


if __name__ == "__main__":
    main(tyro.cli(BenchConfig))
