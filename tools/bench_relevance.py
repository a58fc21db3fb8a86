"""The 3D relevance field, lifted two ways: (a) gradient fit, (b) one-pass back-projection.

    python tools/bench_relevance.py [--size 96] [--views 12] [--points 600] [--fit-steps 60 240]

On the labelled synthetic scene, the offline synthetic editor (a STAND-IN for InstructPix2Pix: its
maps measure the lifting mechanism, never a real editor's relevance) gives one relevance map per
view for "make the sphere red". The maps are lifted to one value per Gaussian with
`gsedit.scene.relevance_fit.fit_channel` (a) and `GaussianScene.lift_channel` (b, back-projection);
each field is rendered and thresholded like the edit loop does. Truth is the sphere's rendered
label indicator > 0.5.

Reported per source of masks (the per-view maps themselves, field a, field b):
- seconds to lift the maps to the field;
- IoU against the truth per view: mean, worst view, mean over the views given noise;
- IoU against the per-view thresholded maps (does the field keep what the maps say?);
- std across views of the mask area divided by the true area (consistency: a view-specific error
  shows as one view's area off from the rest).
A second run adds noise to a few views (random relevance blobs, as a real editor's maps disagree
from view to view): the field should keep the object and drop what only one view claims.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.cameras.formats import orbit_cameras
from gsedit.data.synthetic import SyntheticSceneConfig, make_synthetic_scene
from gsedit.edit.engine import calibrate_stand_in
from gsedit.edit.masks import find_label
from gsedit.metrics.masks import iou
from gsedit.models.synthetic import SyntheticEditor
from gsedit.scene.gaussian_scene import GaussianScene
from gsedit.scene.relevance_fit import fit_channel

INSTRUCTION = "make the sphere red"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=96, help="image side in pixels")
    parser.add_argument("--views", type=int, default=12, help="orbit views")
    parser.add_argument(
        "--points", type=int, default=600, help="Gaussians per object (the floor has twice as many)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the scene, the noise and the fit"
    )
    parser.add_argument(
        "--fit-steps",
        type=int,
        nargs="+",
        default=[60, 240],
        help="Adam steps of the gradient fit (one view each); one row per value",
    )
    parser.add_argument(
        "--fit-lr", type=float, default=0.1, help="Adam learning rate of the gradient fit"
    )
    parser.add_argument(
        "--threshold", type=float, default=0.5, help="threshold of maps and rendered fields"
    )
    parser.add_argument(
        "--noisy-views", type=int, default=3, help="views that get spurious relevance blobs"
    )
    parser.add_argument("--blobs", type=int, default=2, help="blobs per noisy view")
    parser.add_argument(
        "--blob-radius", type=float, default=0.1, help="blob radius, fraction of the image side"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: torch's default)"
    )
    return parser.parse_args()


def add_blobs(
    maps: Tensor, views: list[int], blobs: int, radius: float, generator: torch.Generator
) -> Tensor:
    """[C, H, W] `maps` with `blobs` Gaussian bumps of height 1 at random places in each of `views`."""
    noisy = maps.clone()
    _, h, w = maps.shape
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    sigma = radius * min(h, w)
    for view in views:
        for _ in range(blobs):
            cy, cx = (
                float(torch.rand(1, generator=generator)) * h,
                float(torch.rand(1, generator=generator)) * w,
            )
            bump = torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma**2))
            noisy[view] = torch.maximum(noisy[view], bump)
    return noisy


def mask_stats(masks: Tensor, truth: Tensor, maps: Tensor, noisy: list[int]) -> dict[str, float]:
    """Agreement of binary masks [C, H, W] with the truth and with the per-view map masks."""
    to_truth = iou(masks, truth)  # [C]
    area = masks.sum(dim=(1, 2)) / truth.sum(dim=(1, 2)).clamp_min(1)
    return {
        "iou_mean": float(to_truth.mean()),
        "iou_worst": float(to_truth.min()),
        "iou_noisy": float(to_truth[noisy].mean()) if noisy else float("nan"),
        "iou_maps": float(iou(masks, maps).mean()),
        "area_std": float(area.std()),
    }


def lifting_methods(scene: GaussianScene, cams: Cameras, maps: Tensor, args: argparse.Namespace):
    """[(row, channel, lift)]: every way compared of lifting `maps`; lift(channel) sets the channel."""

    def fit(steps: int):
        return lambda name: fit_channel(scene, name, cams, maps, steps, args.fit_lr, seed=args.seed)

    methods = [(f"field (a) fit, {n} steps", f"field_a{n}", fit(n)) for n in args.fit_steps]
    methods.append(
        ("field (b) back-proj.", "field_b", lambda name: scene.lift_channel(name, cams, maps))
    )
    return methods


def lift_and_measure(
    scene: GaussianScene,
    cams: Cameras,
    maps: Tensor,
    truth: Tensor,
    noisy: list[int],
    args: argparse.Namespace,
) -> dict[str, dict[str, float]]:
    """Stats of the per-view map masks and of the two fields' rendered masks, with lifting times."""
    map_masks = (maps > args.threshold).float()
    rows = {"per-view maps": {"seconds": None, **mask_stats(map_masks, truth, map_masks, noisy)}}
    lifts = lifting_methods(scene, cams, maps, args)
    for label, channel, lift in lifts:
        start = time.perf_counter()
        lift(channel)
        seconds = time.perf_counter() - start
        field = scene.render(cams, channels=[channel]).channels[channel]
        masks = (field > args.threshold).float()
        rows[label] = {"seconds": seconds, **mask_stats(masks, truth, map_masks, noisy)}
    return rows


def print_table(results: dict[str, dict[str, dict[str, float]]], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Relevance masks for '{INSTRUCTION}' ({args.views} views, {args.size} px)")
    for column in (
        "maps",
        "masks from",
        "lift s",
        "IoU truth mean",
        "worst view",
        "noisy views",
        "IoU vs maps",
        "area/true std",
    ):
        table.add_column(column, justify="left" if column in ("maps", "masks from") else "right")
    for condition, rows in results.items():
        for label, r in rows.items():
            table.add_row(
                condition,
                label,
                "-" if r["seconds"] is None else f"{r['seconds']:.1f}",
                f"{r['iou_mean']:.3f}",
                f"{r['iou_worst']:.3f}",
                "-" if math.isnan(r["iou_noisy"]) else f"{r['iou_noisy']:.3f}",
                f"{r['iou_maps']:.3f}",
                f"{r['area_std']:.3f}",
            )
    console = Console(width=max(Console().width, 130))  # a piped run still gets one line per row
    console.print(table)
    console.print(
        "The relevance maps come from the synthetic editor, an offline STAND-IN for InstructPix2Pix: these "
        "numbers compare the lifting mechanisms, not a real editor's relevance. Truth: the sphere's rendered "
        f"label > 0.5. Noisy: {args.noisy_views} views with {args.blobs} random blobs each."
    )


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gaussians, names = make_synthetic_scene(
        SyntheticSceneConfig(points_per_object=args.points, seed=args.seed)
    )
    scene = GaussianScene(gaussians, names)
    cams = orbit_cameras(args.views, gaussians.bounds(), args.size, args.size)
    label = find_label(names, INSTRUCTION, "the instruction")
    out = scene.render(cams, channels=[f"label={label}"])
    truth = (out.channels[f"label={label}"] > 0.5).float()  # [C, H, W]
    editor = SyntheticEditor()
    calibrate_stand_in(editor, [scene], cams)
    generator = torch.Generator().manual_seed(args.seed)
    maps = editor.relevance(out.rgb, INSTRUCTION, generator)  # [C, H, W]
    noisy = (
        torch.randperm(args.views, generator=generator)[: args.noisy_views].sort().values.tolist()
    )
    noisy_maps = add_blobs(maps, noisy, args.blobs, args.blob_radius, generator)
    fit_channel(
        scene, "warm_up", cams[:1], maps[:1], steps=1
    )  # the first timed lift pays no start-up
    results = {
        "clean": lift_and_measure(scene, cams, maps, truth, [], args),
        f"noisy {noisy}": lift_and_measure(scene, cams, noisy_maps, truth, noisy, args),
    }
    print_table(results, args)


if __name__ == "__main__":
    main()
