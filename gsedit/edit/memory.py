"""GPU memory budgets for a turn: a pre-flight estimate, the cheapest editor settings that fit, and
out-of-memory errors turned into advice.

The estimate (bytes) adds what sits on the device at a turn's peak:

- scene: parameters, gradients and Adam's two moments of every Gaussian (float32), plus
  DefaultStrategy's per-Gaussian state; counted at the turn's starting size (densification adds);
- rasterizer: gsplat's per-Gaussian buffers for one training view (projection, colours, their
  gradients), tile intersections (TILES_PER_GAUSSIAN per Gaussian, 24 bytes each with the sort's
  second buffer), the rendered channels and the L1 + SSIM loss at the turn's resolution, and every
  view's pre-render, target, condition, original and masks;
- editor (InstructPix2Pix): UNet, VAE and text-encoder weights in their dtype (parameter counts from
  the model's configs, `models/footprint.py`), and the larger of the UNet's activations for one call
  (3 guidance rows per view: skip connections, working tensors, attention) and the VAE's at full
  resolution (or per tile);
- segmenter (ADSS): SAM and the two BLIP-large models in float32 with SAM's encoder activations.

Offloading changes what is resident: with the text encoder and VAE on the CPU only the UNet stays
(the VAE visits for its calls); with model offload one network at a time. A 10% margin covers the
caching allocator's fragmentation. These are estimates, not measurements, until
`tools/gpu_checks.sh` compares them with a device's measured peak.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from gsedit.errors import GseditError
from gsedit.models.footprint import EditorArchitecture
from gsedit.models.ip2p.config import IP2PConfig

GB = 1e9  # --gpu-memory is in GB (10^9 bytes), as cards are sold
TILES_PER_GAUSSIAN = 4.0  # average tiles a Gaussian's footprint touches (16 px tiles)
MARGIN = 1.10  # the caching allocator's fragmentation
SSIM_MAPS = 12  # float maps per channel alive in the SSIM loss and its backward
UNET_WORKING = 4  # c0 x h x w tensors live inside a block besides the skip connections
VAE_FULLRES_CHANNELS = 768  # channel-maps alive at full resolution in the decoder's last block (256 + 256 + 128 + 128)
SAM_ENCODER_MAPS = 16  # ViT token maps alive in SAM's image encoder (4096 tokens x width)


@dataclass
class TurnShape:
    """What a turn works on, as far as memory goes."""

    gaussians: int
    sh_degree: int
    extras: int  # extra channels (relevance, label)
    views: int
    width: int
    height: int
    editor: str = "ip2p"  # "ip2p" or the synthetic stand-in (nothing on the device)
    segmenter: str = "adss"  # "adss" loads SAM + BLIP; the others hold nothing


@dataclass
class Estimate:
    """Bytes per part of a turn's peak device memory."""

    parts: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.parts.values()) * MARGIN

    def describe(self) -> str:
        items = ", ".join(f"{name} {gb(v)}" for name, v in self.parts.items() if v)
        return f"{gb(self.total)} ({items}, +{round((MARGIN - 1) * 100)}% allocator margin)"


def gb(value: float) -> str:
    return f"{value / GB:.1f} GB"


def scene_bytes(shape: TurnShape) -> float:
    floats = 3 + 3 + 4 + 1 + 3 * (shape.sh_degree + 1) ** 2  # optimised floats per Gaussian
    return shape.gaussians * (4 * floats * 4 + 4 * (3 + shape.extras))


def rasterizer_bytes(shape: TurnShape) -> float:
    channels = 3 + shape.extras + 1  # colour, extras, depth
    per_gaussian = 2 * 4 * (2 + 1 + 3 + 2 + 3 + channels)  # means2d, depth, conic, radii, dirs, features; + grads
    intersections = 24 * TILES_PER_GAUSSIAN * shape.gaussians
    pixels = shape.width * shape.height
    images = 4 * pixels * (2 * (channels + 1) + 3 * SSIM_MAPS)  # render + backward, loss
    views = 4 * pixels * shape.views * (4 * 3 + 2)  # pre-renders, targets, conditions, originals; masks
    return shape.gaussians * per_gaussian + intersections + images + views


def _itemsize(config: IP2PConfig) -> int:
    return 4 if config.dtype == "float32" else 2


def unet_activation_bytes(arch: EditorArchitecture, shape: TurnShape, config: IP2PConfig) -> float:
    """One UNet call: 3 guidance rows per view of max_batch views at latent size (pixels / 8)."""
    rows = 3 * min(config.max_batch, shape.views)
    h, w = -(-shape.height // 8), -(-shape.width // 8)
    skips = sum(
        (arch.unet_layers + 1) * c * (h >> level) * (w >> level) for level, c in enumerate(arch.unet_channels)
    )
    working = UNET_WORKING * arch.unet_channels[0] * h * w
    tokens = h * w
    if config.attention == "sliced":  # diffusers' "auto" slice: half the heads' scores at once
        attention = max(1, arch.unet_heads // 2) * tokens * tokens / rows
    else:  # PyTorch's fused SDPA / xformers: no tokens x tokens matrix
        attention = 4 * tokens * arch.unet_channels[0]
    return rows * (skips + working + attention) * _itemsize(config)


def vae_activation_bytes(arch: EditorArchitecture, shape: TurnShape, config: IP2PConfig) -> float:
    """One decode of max_batch views at full resolution, or per tile with VAE tiling."""
    batch = min(config.max_batch, shape.views)
    h, w = shape.height, shape.width
    if config.vae_tiling:
        h, w = min(h, arch.vae_tile), min(w, arch.vae_tile)
    output = batch * 3 * 4 * shape.height * shape.width  # the float32 images it assembles
    return batch * VAE_FULLRES_CHANNELS * h * w * _itemsize(config) + output


def editor_bytes(arch: EditorArchitecture, shape: TurnShape, config: IP2PConfig) -> float:
    size = _itemsize(config)
    unet, vae, text = (arch.unet_params * size, arch.vae_params * size, arch.text_params * size)
    unet_peak = unet_activation_bytes(arch, shape, config)
    vae_peak = vae_activation_bytes(arch, shape, config)
    if config.offload == "model":  # one network on the device at a time
        return max(unet + unet_peak, vae + vae_peak, text)
    if config.offload == "text_vae":  # the UNet stays; the VAE visits for its calls
        return unet + max(unet_peak, vae + vae_peak)
    return unet + vae + text + max(unet_peak, vae_peak)


def segmenter_bytes(sam: int, blip: int, sam_width: int = 1280) -> float:
    return 4 * (sam + blip) + 4 * 4096 * sam_width * SAM_ENCODER_MAPS


def estimate(
    shape: TurnShape, config: IP2PConfig, arch: EditorArchitecture | None, segmenter: float = 0.0
) -> Estimate:
    """The peak device memory of one turn of `shape` with editor settings `config`."""
    parts = {"scene": scene_bytes(shape), "rasterizer": rasterizer_bytes(shape)}
    if shape.editor == "ip2p" and arch is not None:
        parts["editor"] = editor_bytes(arch, shape, config)
    if shape.segmenter == "adss":
        parts["segmenter"] = segmenter
    return Estimate(parts)


#: the cheapest settings first: each step keeps the ones before it (documented in the README)
STEPS: tuple[tuple[str, dict], ...] = (
    ("fp16 weights (--ip2p.dtype float16)", {"dtype": "float16"}),
    ("attention slicing (--ip2p.attention sliced)", {"attention": "sliced"}),
    ("VAE tiling (--ip2p.vae-tiling)", {"vae_tiling": True}),
    ("2 views per editor call (--ip2p.max-batch 2)", {"max_batch": 2}),
    ("1 view per editor call (--ip2p.max-batch 1)", {"max_batch": 1}),
    ("text encoder and VAE on the CPU (--ip2p.offload text_vae)", {"offload": "text_vae"}),
    ("model CPU offload (--ip2p.offload model)", {"offload": "model"}),
)


@dataclass
class Plan:
    """Editor settings for a budget: what was chosen and the estimate with them."""

    config: IP2PConfig
    chosen: list[str]
    estimate: Estimate
    fits: bool


def plan(
    shape: TurnShape,
    config: IP2PConfig,
    arch: EditorArchitecture | None,
    budget: float | None,
    segmenter: float = 0.0,
) -> Plan:
    """The settings of `config` plus the fewest STEPS, in order, whose estimate fits `budget` bytes.

    A step that does not lower the estimate (attention slicing where fused attention is already
    linear, VAE tiling below the tile size) is passed over. No budget: `config` unchanged.
    """
    current = estimate(shape, config, arch, segmenter)
    chosen: list[str] = []
    for label, change in STEPS:
        if budget is None or current.total <= budget:
            break
        candidate = replace(config, **change)
        if candidate == config:
            continue
        after = estimate(shape, candidate, arch, segmenter)
        if after.total < current.total:
            config, current = candidate, after
            chosen.append(label)
    # a later step that sets the same settings supersedes an earlier one (2 views, then 1 view per call)
    changes = dict(STEPS)
    chosen = [a for i, a in enumerate(chosen) if not any(changes[a].keys() == changes[b].keys() for b in chosen[i + 1:])]
    return Plan(config, chosen, current, budget is None or current.total <= budget)


def refusal(shape: TurnShape, plan_: Plan, budget: float, base: IP2PConfig, arch, segmenter: float) -> GseditError:
    """Nothing fits: the numbers and what would (a smaller resolution, the synthetic editor, no ADSS)."""
    options = []
    for scale in (0.75, 0.5, 0.25):
        smaller = replace(shape, width=max(8, int(shape.width * scale)), height=max(8, int(shape.height * scale)))
        if plan(smaller, base, arch, budget, segmenter).fits:
            options.append(f"images at {smaller.width}x{smaller.height} (--max-side {max(smaller.width, smaller.height)})")
            break
    if shape.segmenter == "adss" and plan(replace(shape, segmenter="none"), base, arch, budget).fits:
        options.append("a segmenter other than ADSS (--segmenter relevance)")
    options.append(f"a card with at least {gb(plan_.estimate.total)}")
    return GseditError(
        f"This turn needs about {plan_.estimate.describe()} of GPU memory even with "
        f"{', '.join(plan_.chosen) or 'the default settings'}, but the budget is {gb(budget)} "
        f"(--gpu-memory). Nothing was run. What would fit: {'; '.join(options)}."
    )


@dataclass
class Preflight:
    """The pre-flight's outcome that an out-of-memory error is explained with."""

    plan: Plan
    budget: float | None  # bytes, None on CPU
    device_free: float | None  # bytes free on the device when the run started


#: where an out-of-memory error came from: the innermost gsedit frame, as "folder/file.py:function"
STAGES = (
    ("models/adss", "segmenter"), ("models/sam_masks", "segmenter"), ("models/blip_gradcam", "segmenter"),
    ("models/", "editor"), ("render/", "render"), ("scene/gaussian_scene.py:r", "render"),
    ("scene/", "training"), ("edit/masks.py", "segmenter"), ("edit/loop.py:_edit_views", "editor"),
)


def oom_stage(exc: BaseException) -> str:
    """The stage of a turn (editor, segmenter, render, training) whose code raised `exc`."""
    inner = None
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        path = code.co_filename.replace("\\", "/")
        if "/gsedit/" in path:
            inner = f"{path.rsplit('/gsedit/', 1)[1]}:{code.co_name}"
        tb = tb.tb_next
    return next((name for prefix, name in STAGES if inner and inner.startswith(prefix)), "turn")


def out_of_memory_error(turn: int, instruction: str, step: int, total: int, exc: BaseException,
                        preflight: Preflight | None) -> GseditError:
    """One paragraph: which turn, stage and step ran out, the estimate against the device, and the
    settings to pass on `--resume` (the next ones of STEPS not yet taken)."""
    where = f"Turn {turn} ({instruction!r}) ran out of GPU memory in the {oom_stage(exc)} at step {step} of {total}"
    if preflight is None:
        numbers, advice = "", [label for label, _ in STEPS[:3]]
    else:
        device = gb(preflight.device_free) if preflight.device_free is not None else "unknown"
        numbers = f" (estimate {preflight.plan.estimate.describe()}; the device had {device} free)"
        config = preflight.plan.config
        advice = [label for label, change in STEPS if replace(config, **change) != config][:3]
    return GseditError(
        f"{where}{numbers}. Finished turns are kept and this turn is marked failed; continue with the "
        f"same command plus --resume and {', '.join(advice) or 'a smaller --gpu-memory'}, or a lower --gpu-memory "
        "so that gsedit picks settings that fit."
    )
