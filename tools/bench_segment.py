"""ADSS segmentation against ground truth: mIoU on labelled renders of a synthetic scene.

    python tools/bench_segment.py --sam-checkpoint sam_vit_h.pth        # real SAM + BLIP
    python tools/bench_segment.py                                       # no weights: tiny random

Renders every view of a labelled scene (default: the synthetic one) and its true object masks
(the `label=K` indicator channels), asks each segmenter for "the <object>" of every object, and
scores each answer by IoU with the true mask: the mean over views per query, then over queries
(Edit3D Sec. 4.4, Table 3). Segmenters:

    ADSS, caption prefix    BLIP's caption of the view prepended to the query (the paper's ADSS)
    ADSS, no caption        the query alone (the paper's ablation)
    labels oracle           gsedit's `labels` segmenter, which renders the true masks (IoU 1)

each per view, and lifted: the per-view masks back-projected to one value per Gaussian
(`scene.lift_channel`), rendered and thresholded at 0.5, as gsedit's 3D relevance field is. The
lifted oracle measures what lifting alone loses on perfect masks.

Without SAM/BLIP weights (or with `--weights random`) the script says so and runs the tests' tiny
random SAM and BLIP so the whole path runs; those numbers mean nothing about segmentation quality.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import pytest
import torch
import tyro
from tyro.conf import OmitArgPrefixes

from gsedit.data.synthetic import scene_or_synthetic
from gsedit.errors import ModelMissingError
from gsedit.metrics.masks import iou
from gsedit.models.adss import ADSS
from gsedit.models.adss_config import ADSSConfig

TESTS_MODELS = Path(__file__).resolve().parents[1] / "tests" / "models"
LIFT_CHANNEL = "adss"
LIFT_THRESHOLD = 0.5

SCOPE = """\
What this benchmark can show: on these renders, how the caption prefix and 3D lifting change
ADSS's agreement with exact object masks, with the models you give it; that the whole path runs.
What it cannot show: Edit3D's Table 3 (mIoU 0.9357 with captions vs 0.0970 without) was measured
on 30 DeepFashion photos with part queries (hair, shirt, trousers) against human annotations;
these are renders of a few coloured primitives queried by whole objects, so the numbers are not
comparable, and simple shapes on a plain floor may be easy for SAM and hard for BLIP to caption
usefully. It says nothing about real captures, about parts of objects, or about edit quality."""


@dataclass
class BenchConfig:
    """What to measure."""

    scene: Path | None = None
    """A labelled .ply (with its SCENE.labels.json); default: the synthetic labelled scene."""
    cameras: str | None = None
    """Cameras of --scene (any `gsedit edit --cameras` source); default: an orbit of --views."""
    views: int = 8
    """Orbit views when no --cameras are given."""
    points: int = 1200
    """Gaussians per object of the synthetic scene."""
    size: int | None = None
    """Longest image side; default 512 with real weights, 64 with the tiny random models."""
    objects: list[str] = field(default_factory=list)
    """Label names to query as "the NAME" (default: every label of the scene)."""
    weights: Literal["auto", "pretrained", "random"] = "auto"
    """auto: the given SAM/BLIP if they load, else tiny random; pretrained: they must load."""
    adss: OmitArgPrefixes[ADSSConfig] = field(default_factory=ADSSConfig)
    """ADSS models and settings (--sam-checkpoint, --blip-caption-model, --blip-itm-model, ...)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"


# ----------------------------------------------------------------------------- models


def load_adss(cfg: BenchConfig, device: torch.device, stack) -> tuple[ADSS, str]:
    """ADSS with its captioner (both variants share the models) and a line saying which weights."""
    config = replace(cfg.adss, use_caption=True)
    if cfg.weights != "random":
        try:
            return ADSS.from_pretrained(config, device), "pretrained SAM and BLIP"
        except ModelMissingError as err:
            if cfg.weights == "pretrained":
                raise
            reason = str(err)
    else:
        reason = "--weights random"
    sys.path.insert(0, str(TESTS_MODELS))
    from tiny_adss import tiny_adss_config

    # the tiny SAM is reached through segment-anything's registry, patched for this run only
    monkeypatch = stack.enter_context(pytest.MonkeyPatch.context())
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gsedit_tiny_adss_")))
    tiny = tiny_adss_config(folder, monkeypatch, use_caption=True)
    note = (
        f"WEIGHTS ABSENT ({reason}). Running TINY RANDOM SAM and BLIP: the numbers below only "
        "show that the path runs; they mean NOTHING about segmentation quality."
    )
    return ADSS.from_pretrained(tiny, device), note


def with_caption(adss: ADSS, on: bool) -> ADSS:
    """The same models with the caption prefix on or off."""
    return ADSS(
        replace(adss.config, use_caption=on),
        adss.mask_generator.predictor.model,
        adss.itm_model,
        adss.itm_processor,
        adss.caption_model,
        adss.caption_processor,
    )


# ----------------------------------------------------------------------------- data and scoring


def cameras_for(cfg: BenchConfig, scene, size: int):
    from gsedit.cameras.formats import load_cameras

    cams = load_cameras(cfg.cameras or f"orbit:{cfg.views}@{size}x{size}", bounds=scene.bounds())
    return cams.limited(size).to(scene.device)


def true_masks(scene, cameras, labels: dict[str, int]) -> dict[str, torch.Tensor]:
    """{query: [C, H, W]} rendered coverage of each queried object."""
    channels = [f"label={k}" for k in labels.values()]
    out = scene.render(cameras, channels=channels)
    return {query: out.channels[f"label={k}"].clamp(0, 1) for query, k in labels.items()}


def lifted(scene, cameras, masks: torch.Tensor) -> torch.Tensor:
    """[C, H, W] masks after lifting to one value per Gaussian, rendering and thresholding."""
    scene.lift_channel(LIFT_CHANNEL, cameras, masks.to(scene.device).float())
    field = scene.render(cameras, channels=[LIFT_CHANNEL]).channels[LIFT_CHANNEL]
    return (field >= LIFT_THRESHOLD).float()


def score(masks: dict[str, torch.Tensor], truth: dict[str, torch.Tensor]) -> dict[str, float]:
    """IoU per query (mean over views) and their mean under "mIoU"."""
    per_query = {q: float(iou(masks[q].cpu(), truth[q].cpu()).mean()) for q in truth}
    return {**per_query, "mIoU": sum(per_query.values()) / len(per_query)}


def segmenters(adss: ADSS, scene, cameras):
    """(name, query -> [C, H, W] masks) of every segmenter compared."""
    from gsedit.edit.masks import label_masks

    images = scene.render(cameras).rgb
    captioned, plain = with_caption(adss, True), with_caption(adss, False)
    return [
        ("ADSS, caption prefix", lambda q: captioned.segment(images, q)),
        ("ADSS, no caption", lambda q: plain.segment(images, q)),
        ("labels oracle", lambda q: label_masks(scene, cameras, q, "the query")),
    ]


def main(cfg: BenchConfig) -> None:
    from contextlib import ExitStack

    cuda = torch.cuda.is_available() and cfg.device != "cpu"
    device = torch.device("cuda" if cuda else "cpu")
    with ExitStack() as stack:
        adss, weights = load_adss(cfg, device, stack)
        size = cfg.size or (64 if weights.startswith("WEIGHTS ABSENT") else 512)
        scene = scene_or_synthetic(cfg.scene, cfg.points, device)
        cameras = cameras_for(cfg, scene, size)
        names = scene.label_names()
        if not names:
            raise SystemExit(f"{cfg.scene}: no labels (a 'label' property and SCENE.labels.json).")
        unknown = sorted(set(cfg.objects) - set(names.values()))
        if unknown:
            raise SystemExit(
                f"--objects {unknown} are not labels of the scene: {sorted(names.values())}"
            )
        labels = {
            f"the {n}": k for k, n in sorted(names.items()) if not cfg.objects or n in cfg.objects
        }
        truth = true_masks(scene, cameras, labels)
        print(
            f"{len(cameras)} views of {cameras.width}x{cameras.height} on {device}; "
            f"queries: {', '.join(labels)}"
        )
        print(f"models: {weights}")
        caption = with_caption(adss, True).captions(scene.render(cameras[[0]]).rgb)[0]
        print(f"BLIP caption of view 0 (prefixed to every query): {caption!r}")
        rows = []
        for name, segment in segmenters(adss, scene, cameras):
            masks = {q: segment(q).to(device) for q in labels}
            rows.append((name + ", per view", score(masks, truth)))
            rows.append(
                (
                    name + ", lifted",
                    score({q: lifted(scene, cameras, m) for q, m in masks.items()}, truth),
                )
            )
        print_table(rows, list(labels))
        print(SCOPE)
        if weights.startswith("WEIGHTS ABSENT"):
            print("(Weights were absent: the ADSS rows above are from random models.)")


def print_table(rows: list[tuple[str, dict[str, float]]], queries: list[str]) -> None:
    columns = ["mIoU", *queries]
    width = max(len(name) for name, _ in rows)
    print(f"{'segmenter':<{width}} " + " ".join(f"{c:>13}" for c in columns))
    for name, scores in rows:
        print(f"{name:<{width}} " + " ".join(f"{scores[c]:>13.4f}" for c in columns))


if __name__ == "__main__":
    main(tyro.cli(BenchConfig))
