"""3DGS vs nerfacto on the same scene and turns: speed, memory and preservation, side by side.

    python tools/bench_backends.py              # CPU, 2.5-4 minutes: synthetic scene, 8 views at
                                                # 48 px, 2 turns of 60 steps, 300-step tiny refit
    python tools/bench_backends.py --threads 1  # the same, robust to other jobs on a shared CPU
    # full size on a GPU (InstructPix2Pix weights local or in the Hugging Face cache):
    python tools/bench_backends.py --device cuda --editor ip2p --views 24 --size 512 \\
        --points 20000 --iters 1500 --refit-iters 30000 --nerfacto-preset nerfacto

Everything is measured in ONE run, both backends side by side, because the machines this runs on
are shared and noisy: only figures taken together are compared, never figures of another run.

1. `gsedit compare`'s comparison (gsedit.evaluation.comparison, sessions through gsedit.Session)
   on the scene (default: the synthetic labelled one, `--views` orbit cameras at `--size` px, `--points` Gaussians per object) with the same
   turns, editor, preset and seed for both backends; the nerfacto scene is refitted from the 3DGS
   one's renders (`--refit-iters`, `--nerfacto-preset`). It runs in phases, each in its own fresh
   process (multiprocessing, spawn): the refit, the 3DGS session, the nerfacto session. A
   process's peak RSS covers everything it ever allocated, so a backend run after the other in
   the same process would inherit the other's memory; in its own process each backend's peak
   (read by the process itself from getrusage at its end, so nothing is missed between samples;
   CUDA: the allocator's peak) is its own: the imports (torch, gsedit, and for nerfacto
   nerfstudio), the scene, the editor, the turns. The per-turn figures (seconds, peak RSS) are the
   sessions' own (session.json). A last resumed comparison in this process finds both
   sessions finished and only evaluates them: preservation (PSNR/SSIM of the unedited region
   against the previous turn), Edit PSNR, mIoU of the masks vs the true objects, CLIP when its
   weights are local (this tool sets HF_HUB_OFFLINE=1 unless it is set: nothing is downloaded;
   what is missing is reported unavailable).
2. Pure optimisation speed: the input scene and its refit, loaded fresh from their files, train
   against the turn-0 renders with the turns' optimiser settings (`scene.optimizer`, one view per
   step, the same views in the same order for both) in blocks of `--block` steps; the backends
   take turns block by block (ABBA order) for `--rounds` rounds after one untimed warm-up round,
   so load changes on a shared machine fall on both alike. Reported: the median seconds per step.
   Rendering every view (the edit loop does at the start and end of every turn, and renders the
   views it edits) is timed the same way: the median of `--renders` interleaved renders of all
   views, per view. The spread rows (slowest over fastest round) say how steady the machine was.
3. One rich table: rows are the measures, columns 3dgs, nerfacto and the ratio nerfacto/3dgs.

How busy other jobs kept the machine is measured too (`others_share`: the CPU time the machine
spent minus this benchmark's, during the speed timings and during each phase), because on a CPU
that others share, torch's threads wait for each other whenever another process holds a core: on
the 2-core CI machine, one single-threaded test running beside it made a 3DGS step of a small
scene about 40x slower with 2 threads (1.2 s instead of 0.03 s), in bursts, and the 300-step tiny
refit took 110-180 s instead of about 50. With `--threads 1` such a job costs a share of the
machine, not a multiple: use it for figures on a shared CPU.

Both backends run the preset as it is (only --iters changes). `--demo-overrides` adds `gsedit
demo`'s settings for short CPU turns (gsedit.data.demo.DEMO_OVERRIDES: learning rates x5, no
densification, an edit every 5 steps); they are tuned for 3DGS, and learning rates x5 wreck a
fitted nerfacto field within the first steps. With the synthetic editor (the default) the quality
rows measure the loop's mechanics, NEVER edit quality.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import tyro

from gsedit.data.demo import DEMO_OVERRIDES
from gsedit.data.demo import DEMO_TURNS as TURNS
from gsedit.errors import GseditError
from gsedit.evaluation.compare import BACKENDS
from gsedit.evaluation.comparison import CompareOptions
from gsedit.evaluation.metrics_table import format_value
from gsedit.evaluation.evaluate_config import EvalConfig
from gsedit.models.ip2p.config import IP2PConfig
from gsedit.scene.convert_config import ConvertConfig


@dataclass
class BenchConfig:
    """What to compare."""

    scene: Path | None = None
    """A scene file (.ply, or a gsedit nerfacto .ckpt); default: the synthetic labelled scene."""
    cameras: str | None = None
    """Cameras of --scene (any `gsedit edit --cameras` source); the synthetic scene has its own."""
    views: int = 8
    """Orbit views of the synthetic scene."""
    size: int = 48
    """Image side of the synthetic scene's views (pixels)."""
    points: int = 400
    """Gaussians per object of the synthetic scene (the floor has twice as many)."""
    turn: list[str] = field(default_factory=lambda: list(TURNS))
    """The instructions, in order."""
    method: str = "gsedit"
    """Method preset (in2n, edit3d, wys, gsedit)."""
    editor: Literal["synthetic", "ip2p"] = "synthetic"
    """The offline stand-in (mechanics only) or InstructPix2Pix (--ip2p.model)."""
    ip2p: IP2PConfig = field(default_factory=IP2PConfig)
    iters: int = 60
    """Optimisation steps per turn."""
    demo_overrides: bool = False
    """Apply `gsedit demo`'s short-turn settings (gsedit.data.demo.DEMO_OVERRIDES) to the preset."""
    refit_iters: int = 300
    """Steps of the refit in the other backend."""
    nerfacto_preset: Literal["auto", "tiny", "nerfacto"] = "auto"
    """nerfacto size: auto is tiny on CPU, the method's defaults on CUDA."""
    rounds: int = 5
    """Timed rounds of the optimisation and render timings (after one warm-up round)."""
    block: int = 8
    """Optimisation steps per backend in one round."""
    renders: int = 3
    """Timed renders of all views per backend."""
    metrics: EvalConfig = field(default_factory=EvalConfig)
    """The metrics of `gsedit eval`."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0
    """CPU threads for torch in every process (0: torch's default)."""
    out: Path | None = None
    """Folder of the scene and the comparison (kept); default: a new temporary folder."""
    json: Path | None = None
    """Also write the results (the table and the raw timings) to this JSON file."""


# -- the comparison, one process per phase --------------------------------------------------------
def compare_args(cfg: BenchConfig, out: Path) -> CompareOptions:
    """The comparison of this benchmark (`gsedit compare`'s options) (the synthetic scene is written first)."""
    from gsedit.edit.config import load_preset

    if (out / "compare").exists():
        raise GseditError(f"{out} already holds a benchmark's comparison: choose another --out.")
    scene, cameras = cfg.scene, cfg.cameras
    if scene is None:
        from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene

        scene = out / "input" / "scene.ply"
        cameras = str(
            write_synthetic_scene(
                scene,
                SyntheticSceneConfig(points_per_object=cfg.points),
                n_cameras=cfg.views,
                size=cfg.size,
            )
        )
    elif cameras is None:
        raise GseditError(
            f"--scene {scene} needs --cameras (only the synthetic scene brings its own)."
        )
    settings, _ = load_preset(cfg.method)
    settings = replace(settings, iters=cfg.iters, **(DEMO_OVERRIDES if cfg.demo_overrides else {}))
    return CompareOptions(
        scene=scene,
        cameras=cameras,
        turn=list(cfg.turn),
        out=out / "compare",
        method=cfg.method,
        editor=cfg.editor,
        device=cfg.device,
        settings=settings,
        ip2p=cfg.ip2p,
        refit=ConvertConfig(iters=cfg.refit_iters, nerfacto_preset=cfg.nerfacto_preset),
        metrics=cfg.metrics,
    )


def run_phase(args: CompareOptions, backend: str | None, threads: int) -> dict:
    """In a fresh process: the refits (backend None, which creates compare.json) or `backend`'s
    session; returns this process's peak RSS and CUDA memory in MiB."""
    import torch

    from gsedit.edit.lock import FolderLock
    from gsedit.edit.options import options_of, resolve_device
    from gsedit.evaluation.compare import (
        edit_backend,
        open_plan,
        plan_turns,
        planned_options,
        scene_for,
    )

    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(args.device)
    out = Path(args.out)
    with FolderLock(out) as lock:
        if backend is None:
            plan = open_plan(args, out, lock)
            for name in plan["backends"]:
                scene_for(name, plan, out, device, args.refit)
        else:
            plan = open_plan(replace(args, resume=True, turn=[]), out, lock)
            scene_file = scene_for(backend, plan, out, device, args.refit)
            edit_backend(planned_options(options_of(args), plan), scene_file, out / backend, plan_turns(plan),
                         device, lambda session: session.run_pending())
    cuda = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mb": cuda,
    }


def in_own_process(fn, *args):
    """fn(*args) in a new spawned process (nothing inherited from this one); its result, once the
    process has exited (so that its CPU time counts in this one's RUSAGE_CHILDREN)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def cpu_clock() -> tuple[float, float, float]:
    """(CPU seconds all processes spent since boot, Linux /proc/stat, steal included; this
    process's and its finished children's; wall seconds)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split()[1:9]
    )
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    usages = map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return busy, sum(r.ru_utime + r.ru_stime for r in usages), time.perf_counter()


def others_share(since: tuple[float, float, float]) -> float:
    """The share of the machine's CPU time that other processes took since `since` (a cpu_clock()):
    near 0 on a quiet machine; timings taken while it is high are slowed by those jobs, often far
    more than the share itself (threads of one operation wait for each other)."""
    (busy0, own0, t0), (busy1, own1, t1) = since, cpu_clock()
    return max(0.0, (busy1 - busy0) - (own1 - own0)) / ((t1 - t0) * os.cpu_count())


def run_comparison(args: CompareOptions, backends: list[str], threads: int) -> tuple[dict, dict]:
    """(compare's plan with its results, {phase: peaks}): refits, each session in its own process,
    then the evaluation here (the comparison resumed with nothing left to edit)."""
    from gsedit.evaluation.comparison import run_comparison as resume_comparison

    peaks = {}
    for phase, backend in [("refit", None), *((b, b) for b in backends)]:
        since = cpu_clock()
        peaks[phase] = in_own_process(run_phase, args, backend, threads)
        peaks[phase]["others_cpu_share"] = others_share(since)
    finished = resume_comparison(replace(args, resume=True, turn=[]), lambda session: session.run_pending())
    return finished, peaks


# -- speed, interleaved ---------------------------------------------------------------------------
def interleaved_seconds(
    tasks: dict[str, Callable[[int], object]], rounds: int, device
) -> dict[str, list[float]]:
    """Seconds of tasks[name](round) for rounds 1..`rounds` (round 0 is an untimed warm-up); the
    tasks take turns in ABBA order so that load changes on the machine fall on all of them alike."""
    import torch

    def now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    names, times = list(tasks), {name: [] for name in tasks}
    for r in range(rounds + 1):
        for name in names if r % 2 == 0 else names[::-1]:
            start = now()
            tasks[name](r)
            if r:
                times[name].append(now() - start)
    return times


def step_block(optimizer, cameras, targets, block: int) -> Callable[[int], None]:
    """Round r: `block` optimiser steps on views r*block, r*block+1, ... (cyclic) against their
    targets [C, H, W, 3]."""

    def run(r: int) -> None:
        for k in range(block):
            i = (r * block + k) % len(cameras)
            optimizer.step(cameras[i], targets[i : i + 1])

    return run


def measure_speed(plan: dict, args: CompareOptions, cfg: BenchConfig, device) -> dict[str, dict]:
    """{backend: {step_seconds: [s/step of every round], render_seconds: [s/view of every render]}}."""
    from gsedit.cameras.formats import training_cameras
    from gsedit.evaluation.compare import scene_for
    from gsedit.scene.files import load_scene_file

    out = Path(args.out)
    scenes = {
        b: load_scene_file(scene_for(b, plan, out, device, args.refit), device)
        for b in plan["backends"]
    }
    cameras = training_cameras(plan["cameras"], scenes[plan["backends"][0]], plan["max_side"])
    targets = (
        load_scene_file(plan["scene"], device).render(cameras).rgb
    )  # [C, H, W, 3] the turn-0 renders
    settings = args.settings
    optimizers = {
        b: s.optimizer(
            (cfg.rounds + 1) * cfg.block,
            lr_scale=settings.lr_scale,
            densify=settings.densify,
            opacity_reset=False,
        )
        for b, s in scenes.items()
    }
    steps = interleaved_seconds(
        {b: step_block(t, cameras, targets, cfg.block) for b, t in optimizers.items()},
        cfg.rounds,
        device,
    )
    for optimizer in optimizers.values():
        optimizer.finish()
    renders = interleaved_seconds(
        {b: lambda r, s=s: s.render(cameras) for b, s in scenes.items()}, cfg.renders, device
    )
    return {
        b: {
            "step_seconds": [t / cfg.block for t in steps[b]],
            "render_seconds": [t / len(cameras) for t in renders[b]],
        }
        for b in scenes
    }


# -- the table ------------------------------------------------------------------------------------
Row = tuple[str, dict[str, object]]  # (measure, {backend: value})


def turn_rows(plan: dict, metrics: list[tuple[str, str]]) -> list[Row]:
    """For every turn, one row per (compare.json row key, label) in `metrics`."""
    results = plan["results"]["rows"]
    rows = []
    for index in range(1, len(plan["turns"]) + 1):
        found = {r["backend"]: r for r in results if r["turn"] == index}
        for key, label in metrics:
            rows.append((f"turn {index} {label}", {b: r.get(key) for b, r in found.items()}))
    return rows


def refit_rows(plan: dict) -> list[Row]:
    rows = []
    for backend, entry in plan["refits"].items():
        rows.append(
            (
                f"refit s ({entry['iters']} steps, {entry['nerfacto_preset'] or '3dgs'})",
                {backend: entry["seconds"]},
            )
        )
        rows.append(("refit PSNR to input dB", {backend: entry["psnr_to_input"]}))
    return rows


def table_rows(
    plan: dict, speed: dict, peaks: dict, cfg: BenchConfig, cuda: bool
) -> list[list[Row]]:
    """Sections of rows: speed, cost of the sessions, memory, preservation and edit."""
    others = [
        (
            "  other jobs' CPU share, session",
            {b: f"{peaks[b]['others_cpu_share']:.0%}" for b in plan["backends"]},
        ),
        (
            "  other jobs' CPU share, refit",
            {b: f"{peaks['refit']['others_cpu_share']:.0%}" for b in plan["refits"]},
        ),
    ]
    quality = [
        ("psnr_unedited", "PSNR unedited dB"),
        ("ssim_unedited", "SSIM unedited"),
        ("edit_psnr", "Edit PSNR dB"),
        ("miou", "mIoU"),
    ]
    clip = [("clip_text_image", "CLIP text-image"), ("clip_direction", "CLIP direction")]
    if any(r.get(k) is not None for r in plan["results"]["rows"] for k, _ in clip):
        quality += clip
    memory = [
        ("peak RSS MB, session process", {b: peaks[b]["peak_rss_mb"] for b in plan["backends"]})
    ]
    memory += [
        ("peak RSS MB, refit process", {b: peaks["refit"]["peak_rss_mb"] for b in plan["refits"]})
    ]
    memory += turn_rows(plan, [("peak_rss_mb", "peak RSS MB")])
    if cuda:
        memory += [
            (
                "peak CUDA MB, session process",
                {b: peaks[b]["peak_cuda_mb"] for b in plan["backends"]},
            )
        ]
        memory += turn_rows(plan, [("peak_cuda_mb", "peak CUDA MB")])
    return [
        [
            (
                f"optimisation s/step (median of {cfg.rounds}x{cfg.block})",
                {b: statistics.median(s["step_seconds"]) for b, s in speed.items()},
            ),
            (
                "  spread: slowest/fastest round",
                {b: spread(s["step_seconds"]) for b, s in speed.items()},
            ),
            (
                f"render s/view (median of {cfg.renders})",
                {b: statistics.median(s["render_seconds"]) for b, s in speed.items()},
            ),
            (
                "  spread: slowest/fastest render",
                {b: spread(s["render_seconds"]) for b, s in speed.items()},
            ),
        ],
        turn_rows(plan, [("seconds", "s/turn"), ("seconds_per_iter", "s/step (whole turn)")])
        + refit_rows(plan)
        + others,
        memory,
        turn_rows(plan, quality),
    ]


def spread(seconds: list[float]) -> str:
    """Slowest over fastest (text, so no ratio is taken): near 1 on a quiet machine, well above it
    when other jobs got in the way."""
    return f"{max(seconds) / min(seconds):.2f}×"


def ratio(values: dict[str, object]) -> float | None:
    a, b = values.get("3dgs"), values.get("nerfacto")
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a:
        return b / a
    return None


def print_table(sections: list[list[Row]], backends: list[str], title: str, caption: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=caption, caption_justify="left")
    table.add_column("measure")
    for header in [*backends, "nerfacto/3dgs"]:
        table.add_column(header, justify="right")
    for section in sections:
        for label, values in section:
            r = ratio(values)
            table.add_row(
                label, *(format_value(values.get(b)) for b in backends), "—" if r is None else f"{r:.2f}×"
            )
        table.add_section()
    Console(width=max(Console().width, 110)).print(table)  # a piped run still gets one line per row


def caption_lines(
    plan: dict, args: CompareOptions, cfg: BenchConfig, device, others: float, seconds: float
) -> list[str]:
    """What ran where, how busy other jobs kept the machine, what the quality rows can't say."""
    import torch

    demo = " + demo overrides" if cfg.demo_overrides else ""
    threads = torch.get_num_threads()
    lines = [
        f"device {device}, {threads} torch thread{'s' * (threads != 1)}, {os.cpu_count()} cores; "
        + f"other jobs took {others:.0%} of the CPU during the speed rows (sessions: rows above).",
        f"{len(plan['turns'])} turns of {args.settings.iters} steps, method {plan['method']}{demo}, "
        + f"editor {plan['editor']}; refit and sessions each in their own process; "
        + f"total {seconds:.0f} s.",
    ]
    if plan["results"]["editor_is_stand_in"]:
        lines.append(
            "SYNTHETIC STAND-IN EDITOR: the quality rows measure the loop's mechanics, "
            + "NOT edit quality."
        )
    missing = sorted({u["metric"] for u in plan["results"]["unavailable"]})
    if missing:
        lines.append("unavailable (no local weights): " + ", ".join(missing))
    return lines


def json_results(
    sections: list[list[Row]],
    speed: dict,
    peaks: dict,
    cfg: BenchConfig,
    plan: dict,
    others: float,
    folder: Path,
) -> dict:
    import dataclasses
    import json

    return {
        "settings": json.loads(json.dumps(dataclasses.asdict(cfg), default=str)),  # paths as text
        "editor_is_stand_in": plan["results"]["editor_is_stand_in"],
        "compare": str(folder),
        "others_cpu_share_speed": others,
        "table": [
            {"measure": label, **values, "ratio": ratio(values)}
            for s in sections
            for label, values in s
        ],
        "speed": speed,
        "process_peaks": peaks,
        "unavailable": plan["results"]["unavailable"],
    }


def main(cfg: BenchConfig) -> None:
    import torch
    from rich.console import Console

    from gsedit.atomic import write_json
    from gsedit.edit.options import resolve_device

    console = Console(stderr=True)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # children inherit it: eval never downloads
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    out = cfg.out or Path(tempfile.mkdtemp(prefix="gsedit_bench_backends_"))
    start = time.perf_counter()
    args = compare_args(cfg, out)
    plan, peaks = run_comparison(args, list(BACKENDS), cfg.threads)
    since = cpu_clock()
    speed = measure_speed(plan, args, cfg, device)
    others = others_share(since)
    sections = table_rows(plan, speed, peaks, cfg, device.type == "cuda")
    caption = caption_lines(plan, args, cfg, device, others, time.perf_counter() - start)
    print_table(
        sections, plan["backends"], "3DGS vs nerfacto, same scene and turns", "\n".join(caption)
    )
    if cfg.json:
        write_json(cfg.json, json_results(sections, speed, peaks, cfg, plan, others, args.out))
        console.print(f"results: {cfg.json}")


if __name__ == "__main__":
    try:
        main(tyro.cli(BenchConfig))
    except GseditError as exc:
        raise SystemExit(f"error: {exc}") from None
