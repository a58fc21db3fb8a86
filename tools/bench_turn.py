"""One full edit turn with InstructPix2Pix, timed phase by phase, at several image sizes.

    python tools/bench_turn.py                          # CPU: tiny random IP2P, 64 px
    python tools/bench_turn.py --sizes 512 1024         # CUDA: full-size SD1.5 IP2P

Runs `gsedit.edit.loop.run_turn` (the loop itself, unchanged) and `write_turn` on a scene (default:
the synthetic labelled one) with a method preset, and splits the wall time by wrapping the editor
and the scene optimiser:

    pre-render    the turn-start render of every view
    relevance     Watch Your Steps relevance maps (diffusion), when the segmenter is `relevance`
    masks         the rest of the segmenter (labels render, or lifting relevance to the 3D field
                  and rendering it), feathering
    editing       InstructPix2Pix calls (VAE encode, DDIM diffusion, decode)
    optimisation  optimiser steps (render, loss, backward, Adam, densification)
    loop other    the rest of the loop: renders of views to edit, fusion
    export        the final renders and writing scene.ply, renders/, masks/

Weights: the real InstructPix2Pix when it is a local folder or in the Hugging Face cache;
otherwise random weights of an architecture that costs what the real one does (`--arch sd15`:
the SD1.5 UNet, VAE and CLIP-L text encoder, the default on CUDA) or of the tiny test model
(`--arch tiny`, the default on CPU: its timings say nothing about the real model's cost). Random
weights make the images meaningless; the seconds and memory are what is measured.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
import tyro

from gsedit.data.synthetic import scene_or_synthetic
from gsedit.edit.config import EditConfig, load_preset
from gsedit.edit.engine import write_turn
from gsedit.edit.loop import run_turn
from gsedit.edit.session import Turn
from gsedit.errors import ModelMissingError
from gsedit.models.base import ImageEditor
from gsedit.models.ip2p.config import IP2PConfig
from gsedit.models.ip2p.editor import IP2PEditor, resolve_dtype

TESTS_MODELS = Path(__file__).resolve().parents[1] / "tests" / "models"
PHASES = ("pre-render", "relevance", "masks", "editing", "optimisation", "loop other", "export")


@dataclass
class BenchConfig:
    """What to measure."""

    scene: Path | None = None
    """A 3DGS .ply scene; default: the synthetic labelled scene (`--points` per object)."""
    cameras: str | None = None
    """Cameras of --scene (any `gsedit edit --cameras` source); default: an orbit of --views."""
    views: int = 8
    """Orbit views when no --cameras are given."""
    points: int = 1200
    """Gaussians per object of the synthetic scene."""
    sizes: list[int] | None = None
    """Longest image side of the cameras, one turn per size; default 512 1024 on CUDA, 64 on CPU."""
    method: str = "gsedit"
    """Method preset; an `adss` segmenter is replaced by `labels` (the bench loads no SAM/BLIP)."""
    iters: int = 40
    """Optimisation steps of the timed turn (the projection scales the loop to the preset's)."""
    edit_every: int | None = None
    """Edit a view every this many steps (default: the preset's)."""
    instruction: str = "make the cube red"
    weights: Literal["auto", "pretrained", "random"] = "auto"
    """auto: --ip2p.model if it is local or cached, else random; pretrained: must load it."""
    arch: Literal["auto", "sd15", "tiny"] = "auto"
    """Architecture of random weights: sd15 (real cost) or tiny (tests); auto: sd15 on CUDA."""
    ip2p: IP2PConfig = field(default_factory=IP2PConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0
    """CPU threads for torch (0: torch's default)."""


# ----------------------------------------------------------------------------- instrumentation


class Clock:
    """Marks and sums of one turn's wall time (CUDA synchronised, so GPU work is counted)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.marks: dict[str, float] = {}
        self.sums = {"relevance": 0.0, "editing": 0.0, "optimisation": 0.0}
        self.edited_images = 0
        self.steps = 0

    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, self.now())  # the first time only

    def timed(self, bucket: str, fn, *args, **kwargs):
        start = self.now()
        result = fn(*args, **kwargs)
        self.sums[bucket] += self.now() - start
        return result

    def phases(self) -> dict[str, float]:
        m = self.marks
        loop = m["finished"] - m["optimizer"]
        return {
            "pre-render": m["prerendered"] - m["start"],
            "relevance": self.sums["relevance"],
            "masks": m["optimizer"] - m["prerendered"] - self.sums["relevance"],
            "editing": self.sums["editing"],
            "optimisation": self.sums["optimisation"],
            "loop other": loop - self.sums["editing"] - self.sums["optimisation"],
            "export": m["exported"] - m["finished"],
        }


class TimedEditor(ImageEditor):
    """Wraps an editor: times `edit` and `relevance` (the diffusion), counts the images edited."""

    def __init__(self, inner: ImageEditor, clock: Clock):
        self.inner, self.clock, self.name = inner, clock, inner.name

    def edit(self, images, conditions, instruction, noise_levels, generator=None, regions=None):
        self.clock.edited_images += len(images)
        return self.clock.timed(
            "editing",
            self.inner.edit,
            images,
            conditions,
            instruction,
            noise_levels,
            generator,
            regions,
        )

    def relevance(self, images, instruction, generator=None):
        return self.clock.timed("relevance", self.inner.relevance, images, instruction, generator)


class TimedOptimizer:
    """Wraps a scene optimiser: times its steps, marks when it finishes."""

    def __init__(self, inner, clock: Clock):
        self.inner, self.clock = inner, clock

    def step(self, cameras, targets) -> float:
        self.clock.steps += 1
        return self.clock.timed("optimisation", self.inner.step, cameras, targets)

    def finish(self) -> None:
        self.inner.finish()
        self.clock.mark("finished")


class TimedScene:
    """Wraps a scene: the first render ends the pre-render, creating the optimiser ends the masks."""

    def __init__(self, inner, clock: Clock):
        self.inner, self.clock = inner, clock

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def render(self, cameras, channels=()):
        out = self.inner.render(cameras, channels)
        self.clock.mark("prerendered")
        return out

    def optimizer(self, *args, **kwargs):
        self.clock.mark("optimizer")
        return TimedOptimizer(self.inner.optimizer(*args, **kwargs), self.clock)


# ----------------------------------------------------------------------------- memory


def reset_peaks(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM restarts from the current RSS


def peak_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated (CUDA) or peak resident memory (CPU) since `reset_peaks`, MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not in /proc/self/status")


# ----------------------------------------------------------------------------- editor


def load_editor(cfg: BenchConfig, device: torch.device) -> tuple[IP2PEditor, str]:
    """The IP2P editor and a line saying which weights it has."""
    if cfg.weights != "random":
        config = (
            cfg.ip2p if cfg.weights == "pretrained" else replace(cfg.ip2p, local_files_only=True)
        )
        try:
            return IP2PEditor.from_pretrained(config, device), f"pretrained {cfg.ip2p.model}"
        except ModelMissingError:
            if cfg.weights == "pretrained":
                raise
    arch = cfg.arch if cfg.arch != "auto" else ("sd15" if device.type == "cuda" else "tiny")
    editor = (
        sd15_random_editor(cfg.ip2p, device)
        if arch == "sd15"
        else tiny_random_editor(cfg.ip2p, device)
    )
    note = {
        "sd15": "the SD1.5 InstructPix2Pix architecture: timings and memory as the real model's",
        "tiny": "the tiny test architecture: timings exercise the loop, NOT the real model's cost",
    }[arch]
    return editor, f"WEIGHTS ABSENT ({cfg.ip2p.model}): random weights of {note}; images are noise"


def tiny_random_editor(config: IP2PConfig, device: torch.device) -> IP2PEditor:
    """The tests' tiny random IP2P folder, loaded through `from_pretrained`."""
    sys.path.insert(0, str(TESTS_MODELS))
    from tiny_ip2p import save_tiny_ip2p

    folder = Path(tempfile.mkdtemp(prefix="gsedit_tiny_ip2p_"))
    return IP2PEditor.from_pretrained(replace(config, model=str(save_tiny_ip2p(folder))), device)


def sd15_random_editor(config: IP2PConfig, device: torch.device) -> IP2PEditor:
    """Random weights in the shapes of timbrooks/instruct-pix2pix (SD1.5 UNet with 8 input
    channels, SD VAE, CLIP ViT-L/14 text encoder). The tokenizer is the tests' character-level one
    padded to CLIP's 77 tokens, so the text encoder's vocabulary is small; its cost is the same."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    sys.path.insert(0, str(TESTS_MODELS))
    from tiny_ip2p import _write_tokenizer

    folder = Path(tempfile.mkdtemp(prefix="gsedit_sd15_tokenizer_"))
    _write_tokenizer(folder)
    tokenizer = CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77
    )
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        in_channels=8,
        out_channels=4,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        cross_attention_dim=768,
        attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    )
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        scaling_factor=0.18215,
    )
    vocab = len(tokenizer)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab,
            hidden_size=768,
            intermediate_size=3072,
            num_attention_heads=12,
            num_hidden_layers=12,
            max_position_embeddings=77,
            bos_token_id=vocab - 2,
            eos_token_id=vocab - 1,
            pad_token_id=vocab - 1,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    dtype = resolve_dtype(config.dtype, device)
    unet, vae, text_encoder = (m.to(device=device, dtype=dtype) for m in (unet, vae, text_encoder))
    return IP2PEditor(unet, vae, text_encoder, tokenizer, scheduler, config)


# ----------------------------------------------------------------------------- the turn


def cameras_at(cfg: BenchConfig, scene, size: int):
    """The bench cameras with their longest side at `size` pixels."""
    from gsedit.cameras.formats import load_cameras

    cams = load_cameras(cfg.cameras or f"orbit:{cfg.views}@{size}x{size}", bounds=scene.bounds())
    scale = size / max(cams.width, cams.height)
    return cams.resized(max(1, round(cams.width * scale)), max(1, round(cams.height * scale))).to(
        scene.device
    )


def turn_settings(cfg: BenchConfig) -> tuple[EditConfig, list[str]]:
    settings, _ = load_preset(cfg.method)
    notes = []
    if settings.segmenter == "adss":
        settings = replace(settings, segmenter="labels")
        notes.append("segmenter adss -> labels (no SAM/BLIP in this bench)")
    settings = replace(
        settings, iters=cfg.iters, edit_every=cfg.edit_every or settings.edit_every, max_side=None
    )
    return settings, notes


def bench_size(
    cfg: BenchConfig, editor: IP2PEditor, settings: EditConfig, size: int, device
) -> dict:
    """Runs one turn at `size` on a fresh copy of the scene; returns its timings and counts."""
    scene = scene_or_synthetic(cfg.scene, cfg.points, device)
    cameras = cameras_at(cfg, scene, size)
    estimate_mib = memory_estimate(editor, scene, cameras) / 2**20
    originals = scene.render(cameras).rgb
    clock = Clock(device)
    reset_peaks(device)
    with tempfile.TemporaryDirectory(prefix="gsedit_bench_turn_") as out:
        clock.mark("start")
        timed = TimedScene(scene, clock)
        result = run_turn(
            timed, cameras, Turn(cfg.instruction), settings, TimedEditor(editor, clock), originals
        )
        write_turn(Path(out), scene, result, cameras)
        clock.mark("exported")
    phases = clock.phases()
    total = clock.marks["exported"] - clock.marks["start"]
    return {
        "size": f"{cameras.width}x{cameras.height}",
        "views": len(cameras),
        "gaussians": len(scene),
        **phases,
        "total": total,
        "edits/s": clock.edited_images / max(phases["editing"], 1e-9),
        "it/s": clock.steps / max(phases["optimisation"], 1e-9),
        "peak MiB": peak_mb(device),
        "estimate MiB": estimate_mib,
        "edited": clock.edited_images,
        "projected": projected(phases, settings.iters, load_preset(cfg.method)[0].iters),
    }


def memory_estimate(editor: IP2PEditor, scene, cameras) -> float:
    """gsedit's pre-flight estimate (bytes) of this turn, for the measured peak to be set against:
    the editor's architecture from the configs of the model it loaded (the tiny one's folder; the
    SD1.5 random stand-in keeps the default model's id), in the dtype and settings it runs with."""
    from gsedit.edit.memory import TurnShape, estimate
    from gsedit.models.footprint import editor_architecture

    dtype = {torch.float16: "float16", torch.bfloat16: "bfloat16"}.get(editor.dtype, "float32")
    shape = TurnShape(len(scene), scene.gaussians.sh_degree, 2, len(cameras), cameras.width, cameras.height,
                      segmenter="none")
    return estimate(shape, replace(editor.config, dtype=dtype), editor_architecture(editor.config.model)).total


def warm_up(editor: IP2PEditor, size: int, device: torch.device) -> None:
    """One untimed edit and relevance map: first calls pay for lazy imports and kernel selection."""
    image = torch.rand(1, size, size, 3, device=device)
    editor.edit(image, image, "warm up", torch.tensor([0.5]))
    editor.relevance(image, "warm up")


def projected(phases: dict[str, float], iters: int, preset_iters: int) -> float:
    """Seconds of a turn of `preset_iters` steps: the loop scales with the steps, the rest does not."""
    loop = phases["editing"] + phases["optimisation"] + phases["loop other"]
    fixed = phases["pre-render"] + phases["relevance"] + phases["masks"] + phases["export"]
    return fixed + loop * preset_iters / iters


def print_table(rows: list[dict], device: torch.device, preset_iters: int) -> None:
    """One column per size, one line per measure."""
    lines = [("views", "views"), ("gaussians after the turn", "gaussians")]
    lines += [(f"{p} s", p) for p in PHASES] + [("total s", "total")]
    lines += [("edits/s (images)", "edits/s"), ("it/s (optimisation)", "it/s")]
    lines += [("peak CUDA MiB" if device.type == "cuda" else "peak RSS MiB", "peak MiB")]
    lines += [("estimated peak MiB (edit/memory.py)", "estimate MiB")]
    lines += [(f"projected {preset_iters}-step turn s", "projected")]
    width = max(len(label) for label, _ in lines)
    print(f"{'size':<{width}} " + " ".join(f"{r['size']:>11}" for r in rows))
    for label, key in lines:
        cells = (f"{r[key]:>11.3f}" if isinstance(r[key], float) else f"{r[key]:>11}" for r in rows)
        print(f"{label:<{width}} " + " ".join(cells))


def main(cfg: BenchConfig) -> None:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cuda = torch.cuda.is_available() and cfg.device != "cpu"
    device = torch.device("cuda" if cuda else "cpu")
    sizes = cfg.sizes or ([512, 1024] if cuda else [64])
    editor, weights = load_editor(cfg, device)
    settings, notes = turn_settings(cfg)
    preset_iters = load_preset(cfg.method)[0].iters
    print(
        f"device {device} ({torch.get_num_threads()} CPU threads), method {cfg.method}, "
        f"segmenter {settings.segmenter}, {settings.iters} steps, an edit every {settings.edit_every}, "
        f"IP2P {cfg.ip2p.steps} DDIM steps in {editor.dtype}"
    )
    print(f"editor: {weights}")
    for note in notes:
        print(f"note: {note}")
    warm_up(editor, min(sizes), device)
    rows = [bench_size(cfg, editor, settings, size, device) for size in sizes]
    print_table(rows, device, preset_iters)
    print(
        f"edits/s = images edited ({', '.join(str(r['edited']) for r in rows)}) per second of editing; "
        f"it/s = optimisation steps per second of optimisation; the last line projects a "
        f"{preset_iters}-step turn of the preset from these rates."
    )


if __name__ == "__main__":
    main(tyro.cli(BenchConfig))
