"""Multi-turn mechanisms compared: forgetting, drift and edit strength of two recolouring turns.

    python tools/bench_multiturn.py [--iters 100] [--size 96] [--views 12] [--presets in2n edit3d]

On the labelled synthetic scene (floor, cube, sphere, cylinder), every preset runs the same two turns
with the same seed: "make the sphere red", then "make the cube yellow". The editor is the offline
synthetic editor, a STAND-IN for InstructPix2Pix with a real editor's faults built in (spill around
and beyond the object, view-to-view jitter, edits drawn from the condition image): its numbers
measure the loop's mechanisms (conditioning, initial targets, fusion, masks), never edit quality.
Presets that ask for ADSS use the scene's labels instead (ADSS needs weights that are not here).

Measured on renders of every view, inside the true object masks (rendered label indicator > 0.5):
- edit strength: colour error of each turn's object after its own turn, over the whole mask and
  over its core (indicator > --core-threshold: the mask without its silhouette pixels), to tell
  error at the object's edges from error inside it;
- forgetting: colour error of turn 1's object (the sphere) after turn 2, against the instructed
  colour and against its colour after turn 1;
- drift: PSNR of the other content (turn-0 alpha > 0.5, away from both objects) against turn 0;
- seconds per turn.
A colour error is the RGB distance between the mean rendered colour and the reference: the colour
the stand-in paints when its faults are off (the instructed colour times the view's shading).

Short CPU turns need the demo's settings (gsedit.data.demo.DEMO_OVERRIDES) and, to stay short, edit a
batch of views per editor call and raise the colour learning rate (--colour-lr), so that 100 steps
move colours about as far as the demo's 200 do. About 2.5 minutes on 2 idle CPU cores.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, replace
from functools import partial

import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.cameras.formats import orbit_cameras
from gsedit.data.demo import DEMO_OVERRIDES
from gsedit.data.synthetic import SyntheticSceneConfig, make_synthetic_scene
from gsedit.edit.config import EditConfig, load_preset
from gsedit.edit.engine import calibrate_stand_in
from gsedit.edit.loop import run_turn
from gsedit.edit.masks import find_label
from gsedit.edit.session import Turn
from gsedit.metrics.image import psnr
from gsedit.models.synthetic import SyntheticEditor, SyntheticEditorConfig
from gsedit.scene.fit import FitConfig
from gsedit.scene.gaussian_scene import GaussianScene, GaussianSceneConfig

TURNS = ("make the sphere red", "make the cube yellow")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=100, help="optimisation steps per turn")
    parser.add_argument("--size", type=int, default=96, help="image side in pixels")
    parser.add_argument("--views", type=int, default=12, help="orbit views")
    parser.add_argument(
        "--points", type=int, default=600, help="Gaussians per object (the floor has twice as many)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the scene and of every turn (same for all presets)",
    )
    parser.add_argument(
        "--presets",
        nargs="+",
        default=["in2n", "edit3d", "wys", "gsedit"],
        help="method presets to compare",
    )
    parser.add_argument("--edit-batch", type=int, default=3, help="views edited per editor call")
    parser.add_argument(
        "--colour-lr", type=float, default=8.0, help="multiplies the SH colour learning rate"
    )
    parser.add_argument(
        "--core-threshold",
        type=float,
        default=0.97,
        help="object core (its mask without the silhouette): rendered label indicator above this",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: torch's default)"
    )
    return parser.parse_args()


@dataclass
class Region:
    """Where an object is in every view, and the colour the instruction should give it there."""

    mask: Tensor  # [C, H, W] bool
    reference: Tensor  # [3] the instructed colour as the stand-in paints it, mean over `mask`


@dataclass
class Truth:
    """What every preset is measured against, from the unedited scene."""

    renders: Tensor  # [C, H, W, 3] turn-0 renders
    objects: dict[str, Region]  # turn's object name -> rendered label indicator > 0.5
    cores: dict[str, Region]  # turn's object name -> indicator > core threshold (no silhouette)
    other: Tensor  # [C, H, W] bool: content away from both objects


def object_names(names: dict[int, str]) -> list[tuple[int, str]]:
    """(label, name) of the object each turn recolours."""
    labels = [find_label(names, text, "the instruction") for text in TURNS]
    return [(label, names[label]) for label in labels]


def measure_truth(scene: GaussianScene, cams: Cameras, core_threshold: float) -> Truth:
    targets = object_names(scene.label_names())
    out = scene.render(cams, channels=[f"label={label}" for label, _ in targets])
    coverage = {name: out.channels[f"label={label}"] for label, name in targets}
    faultless = SyntheticEditor(
        SyntheticEditorConfig(spill_halo=0, spill_global=0, inconsistency=0)
    )
    calibrate_stand_in(faultless, [scene], cams)
    objects, cores = {}, {}
    for text, (_, name) in zip(TURNS, targets):
        painted = faultless.edit(out.rgb, out.rgb, text, torch.ones(len(cams))).images
        for regions, threshold in ((objects, 0.5), (cores, core_threshold)):
            mask = coverage[name] > threshold
            regions[name] = Region(mask, painted[mask].mean(dim=0))
    near = torch.stack(list(coverage.values())).amax(dim=0)  # [C, H, W]
    return Truth(out.rgb, objects, cores, (near < 0.01) & (out.alpha > 0.5))


def colour(renders: Tensor, mask: Tensor) -> Tensor:
    """[3] mean colour of `renders` [C, H, W, 3] over the pixels of `mask` [C, H, W] in all views."""
    return renders[mask].mean(dim=0)


def colour_error(renders: Tensor, region: Region, reference: Tensor | None = None) -> float:
    """RGB distance of the mean colour of `renders` over the region from `reference` (default: the
    region's instructed colour)."""
    target = region.reference if reference is None else reference
    return float((colour(renders, region.mask) - target).norm())


def drift_psnr(renders: Tensor, truth: Truth) -> float:
    """PSNR (dB) of the other content against turn 0, over all views' pixels together."""
    width = renders.shape[2]
    stacked = renders.reshape(1, -1, width, 3)  # all views as one tall image
    before = truth.renders.reshape(1, -1, width, 3)
    return float(psnr(stacked, before, truth.other.reshape(1, -1, width).float()))


def turn_config(name: str, args: argparse.Namespace) -> EditConfig:
    config, _ = load_preset(name)
    segmenter = "labels" if config.segmenter == "adss" else config.segmenter  # no ADSS weights here
    return replace(
        config, **DEMO_OVERRIDES, iters=args.iters, edit_batch=args.edit_batch, segmenter=segmenter
    )


def run_preset(
    name: str, args: argparse.Namespace, make_scene, cams: Cameras, truth: Truth
) -> dict[str, float]:
    """Two turns of preset `name` on a fresh scene; its metrics."""
    config = turn_config(name, args)
    original, scene = make_scene(), make_scene()
    editor = SyntheticEditor()
    (_, first), (_, second) = object_names(scene.label_names())
    renders, seconds = [], []
    for index, text in enumerate(TURNS, start=1):
        calibrate_stand_in(editor, [original, scene], cams)  # as the engine does before every turn
        start = time.perf_counter()
        # the engine's per-turn seed, so a preset's turns here are the turns `gsedit edit` would run
        result = run_turn(
            scene,
            cams,
            Turn(text),
            replace(config, seed=args.seed * 1000 + index),
            editor,
            truth.renders,
        )
        seconds.append(time.perf_counter() - start)
        renders.append(result.renders)
    sphere_t1 = colour(renders[0], truth.objects[first].mask)
    return {
        "segmenter": config.segmenter,
        "s_turn1": seconds[0],
        "s_turn2": seconds[1],
        "strength1": colour_error(renders[0], truth.objects[first]),
        "strength2": colour_error(renders[1], truth.objects[second]),
        "core1": colour_error(renders[0], truth.cores[first]),
        "core2": colour_error(renders[1], truth.cores[second]),
        "forget": colour_error(renders[1], truth.objects[first]),
        "forget_t1": colour_error(renders[1], truth.objects[first], sphere_t1),
        "drift1": drift_psnr(renders[0], truth),
        "drift2": drift_psnr(renders[1], truth),
    }


def warm_up(scene: GaussianScene, cams: Cameras, renders: Tensor) -> None:
    """One training step on a scratch scene, so the first timed turn pays no one-off start-up cost."""
    trainer = scene.trainer(1, densify=False, opacity_reset=False)
    trainer.step(cams[0], renders[:1])
    trainer.finish()


COLUMNS = [  # result key, header, format
    ("s_turn1", "s turn 1", "{:.1f}"),
    ("s_turn2", "s turn 2", "{:.1f}"),
    ("strength1", "sphere err\nafter t1", "{:.3f}"),
    ("strength2", "cube err\nafter t2", "{:.3f}"),
    ("core1", "sphere core\nerr after t1", "{:.3f}"),
    ("core2", "cube core\nerr after t2", "{:.3f}"),
    ("forget", "forgetting:\nsphere err t2", "{:.3f}"),
    ("forget_t1", "forgetting:\nsphere t2 vs t1", "{:.3f}"),
    ("drift1", "drift PSNR\nt1 (dB)", "{:.2f}"),
    ("drift2", "drift PSNR\nt2 (dB)", "{:.2f}"),
]


def print_table(results: dict[str, dict], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Two turns: {' / '.join(TURNS)} ({args.views} views, {args.size} px, {args.iters} steps/turn, "
        f"seed {args.seed})"
    )
    table.add_column("preset")
    table.add_column("masks")
    for _, header, _ in COLUMNS:
        table.add_column(header, justify="right")
    for name, r in results.items():
        table.add_row(name, r["segmenter"], *[fmt.format(r[key]) for key, _, fmt in COLUMNS])
    if "in2n" in results and "edit3d" in results:
        a, b = results["edit3d"], results["in2n"]
        table.add_row(
            "edit3d/in2n",
            "",
            *[f"{a[key] / b[key]:.2f}" if b[key] else "-" for key, _, _ in COLUMNS],
        )
    console = Console(width=max(Console().width, 170))  # a piped run still gets one line per row
    console.print(table)
    console.print(
        "The editor is the synthetic STAND-IN for InstructPix2Pix: these numbers measure the loop's mechanisms "
        "(forgetting, drift, masks), not edit quality. Errors: RGB distance of the mean colour inside the true "
        "object mask from the colour the stand-in paints with its faults off (lower is better; ratios < 1 favour "
        "edit3d). Drift: PSNR of everything else against turn 0 (higher is better; ratios > 1 favour edit3d)."
    )


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gaussians, names = make_synthetic_scene(
        SyntheticSceneConfig(points_per_object=args.points, seed=args.seed)
    )
    fit = FitConfig(sh0_lr=FitConfig.sh0_lr * args.colour_lr)
    make_scene = partial(
        GaussianScene, gaussians, names, GaussianSceneConfig(fit=fit)
    )  # a fresh copy per call
    cams = orbit_cameras(args.views, gaussians.bounds(), args.size, args.size)
    truth = measure_truth(make_scene(), cams, args.core_threshold)
    warm_up(make_scene(), cams, truth.renders)
    load, wall, cpu = os.getloadavg()[0], time.perf_counter(), time.process_time()
    results = {name: run_preset(name, args, make_scene, cams, truth) for name in args.presets}
    print_table(results, args)
    print(
        f"All presets: {time.perf_counter() - wall:.0f} s wall, {time.process_time() - cpu:.0f} s CPU over "
        f"{torch.get_num_threads()} threads; load average {load:.1f} at the start (other processes slow the wall times)."
    )


if __name__ == "__main__":
    main()
