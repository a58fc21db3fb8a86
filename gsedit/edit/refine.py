"""Edit3D's super-resolution refine stage (Sec. 3.3; ablation Sec. 4.4, Fig. 7): `gsedit refine DIR`.

Once every turn is finished, every view is rendered from the last turn's scene, super-resolved
(Real-ESRGAN on the whole view, GFPGAN blended in on feathered face masks), brought back to the
training resolution -- or kept at `enhance.scale` times it with the cameras rescaled to match, as
Edit3D fine-tunes on the high-resolution images -- and the scene is fine-tuned on those images for a
short schedule without densification. No image is edited, which is why the stage is cheap.

The result is `DIR/refined/`, laid out like a turn folder (scene file, renders/, masks/ holding the
face masks, all zero when there are none), written under a temporary name and renamed when
complete, and recorded under "refine" in session.json with its time, peak memory, settings and the
sharpness (variance of the Laplacian) of the renders before and after. Sharpness is a mechanics
check -- it shows the fine-tune moved the renders toward the sharper targets -- not a quality score.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import torch
import torch.nn.functional as F
import tyro
from torch import Tensor

from gsedit.atomic import atomic_dir
from gsedit.cameras import Cameras
from gsedit.edit.engine import MemoryMeter, save_images
from gsedit.edit.lock import FolderLock
from gsedit.edit.session import SessionFolder, session_cameras
from gsedit.errors import GseditError, InputFileError
from gsedit.models.base import ImageSegmenter
from gsedit.models.enhance import EnhanceConfig, ImageEnhancer
from gsedit.render.images import read_mask
from gsedit.scene.base import Scene

REFINED_DIR = "refined"
_MASK_SUFFIXES = (".png", ".jpg", ".jpeg")
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as OpenCV's grey conversion


@dataclass
class RefineConfig:
    """The refine stage: super-resolve every view of the last turn, then fine-tune the scene on them."""

    iters: int = 1000
    """Fine-tune steps, one random view each (Edit3D: 10k nerfacto steps in under 5 minutes)."""
    lr_scale: float = 1.0
    """Multiplies the scene's learning rates during the fine-tune."""
    densify: bool = False
    """Let the scene add and remove points during the fine-tune (off: the geometry is done)."""
    face_masks: Path | None = None
    """Folder of face masks, one image per view named like the session's renders (0000.png) or like
    the camera's image; views without a file have no face. None: the face segmenter's, if any."""
    face_query: str = "face"
    """What the face segmenter (ADSS) is asked to find when no mask folder is given."""
    seed: int = 0
    """Seed of the fine-tune's view order."""
    enhance: Annotated[EnhanceConfig, tyro.conf.arg(name="")] = field(default_factory=EnhanceConfig)
    """The super-resolution models; `scale` > 1 fine-tunes at that multiple of the training resolution."""

    def validate(self) -> None:
        problems = []
        if self.iters < 1:
            problems.append(f"iters must be at least 1, got {self.iters}")
        if not self.lr_scale > 0:
            problems.append(f"lr_scale must be > 0, got {self.lr_scale}")
        if not self.enhance.scale > 0:
            problems.append(f"scale must be > 0, got {self.enhance.scale}")
        if problems:
            raise GseditError("Invalid refine settings: " + "; ".join(problems) + ".")


def laplacian_variance(images: Tensor) -> Tensor:
    """[B] variance of the 4-neighbour Laplacian of the luma of `images` [B, H, W, 3] in [0, 1].

    The usual blur measure (higher = more high-frequency content), on interior pixels only so the
    border handling adds nothing. A mechanics check of the refine stage, not an image-quality score.
    """
    if images.ndim != 4 or images.shape[-1] != 3 or min(images.shape[1:3]) < 3:
        raise ValueError(f"images: expected [B, H, W, 3] with H, W >= 3, got {tuple(images.shape)}")
    luma = (images.double() * images.new_tensor(_LUMA, dtype=torch.float64)).sum(-1)[:, None]
    kernel = luma.new_tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    lap = F.conv2d(luma, kernel)[:, 0]  # [B, H-2, W-2]
    return lap.flatten(1).var(dim=1, unbiased=False).to(images.dtype)


# -- face masks ---------------------------------------------------------------------------------
def _fit_mask(mask: Tensor, path: Path, width: int, height: int) -> Tensor:
    """`mask` [h, w] resized to [height, width]; the aspect ratio must match."""
    h, w = mask.shape
    if (h, w) == (height, width):
        return mask
    if abs(w / h - width / height) > 0.02 * width / height:
        raise InputFileError(
            path, f"a {w}x{h} mask for {width}x{height} views: not a uniform scale."
        )
    return F.interpolate(
        mask[None, None], size=(height, width), mode="bilinear", align_corners=False
    )[0, 0]


def load_face_masks(folder: Path, cameras: Cameras) -> Tensor:
    """[C, H, W] face masks of the views of `cameras` from `folder` (zeros where a view has no file).

    View i's file is `NNNN.png` (i zero-padded, as the session writes renders and masks) or the stem
    of its camera's image name with any image suffix; other sizes of the same aspect are resized.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(folder, "face mask folder not found.")
    files = {p.stem: p for p in folder.iterdir() if p.suffix.lower() in _MASK_SUFFIXES}
    masks = torch.zeros(len(cameras), cameras.height, cameras.width)
    found = 0
    for i, name in enumerate(cameras.names):
        path = files.get(f"{i:04d}") or files.get(Path(name).stem)
        if path is not None:
            masks[i] = _fit_mask(read_mask(path), path, cameras.width, cameras.height)
            found += 1
    if found == 0:
        raise InputFileError(
            folder,
            f"no face mask for any of the {len(cameras)} views: name them like the renders "
            f"(0000.png ...) or like the camera images (e.g. {Path(cameras.names[0]).stem}.png).",
        )
    return masks.clamp(0, 1)


def face_masks_for(
    renders: Tensor, cameras: Cameras, config: RefineConfig, segmenter: ImageSegmenter | None
) -> tuple[Tensor | None, str | None]:
    """([C, H, W] face masks or None, where they came from) for the views `renders` [C, H, W, 3]."""
    if config.face_masks is not None:
        masks = load_face_masks(config.face_masks, cameras).to(renders.device)
        return masks, f"folder:{config.face_masks}"
    if segmenter is not None:
        masks = segmenter.segment(renders, config.face_query).to(renders.device, torch.float32)
        return masks.clamp(0, 1), f"segmenter:{segmenter.name}:{config.face_query}"
    return None, None


# -- the stage ----------------------------------------------------------------------------------
def _fine_tune(
    scene: Scene,
    cameras: Cameras,
    targets: Tensor,
    config: RefineConfig,
    on_step: Callable[[int, float], None] | None,
) -> float:
    """Fits `scene` to `targets` [C, H, W, 3] on random views; returns the last loss."""
    torch.manual_seed(config.seed)  # densification, when on, draws from the global generator
    generator = torch.Generator().manual_seed(config.seed)
    trainer = scene.trainer(
        config.iters, lr_scale=config.lr_scale, densify=config.densify, opacity_reset=False
    )
    loss = float("nan")
    for step in range(config.iters):
        view = int(torch.randint(len(cameras), (1,), generator=generator))
        loss = trainer.step(cameras[view], targets[view : view + 1])
        if on_step is not None:
            on_step(step + 1, loss)
    trainer.finish()
    return loss


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def _check_faces_usable(
    config: RefineConfig, segmenter: ImageSegmenter | None, enhancer: ImageEnhancer
) -> None:
    if config.face_masks is not None and segmenter is not None:
        raise GseditError(
            "Give face masks either as a folder (--sr.face-masks) or by a face segmenter, not both."
        )
    if (config.face_masks is not None or segmenter is not None) and enhancer.face_model is None:
        raise GseditError(
            "Face masks were asked for but no face model is loaded: pass the GFPGAN weights with "
            "--sr.gfpgan-weights PATH (or drop the face masks to refine with Real-ESRGAN only)."
        )


@dataclass
class RefineResult:
    """What refining a scene produced, at the fine-tune resolution [C, H, W(, 3)]."""

    cameras: Cameras  # the cameras the scene was fine-tuned with (training resolution x scale)
    before: Tensor  # [C, H, W, 3] renders before the fine-tune
    targets: Tensor  # [C, H, W, 3] the super-resolved views
    after: Tensor  # [C, H, W, 3] renders after the fine-tune
    face_masks: Tensor  # [C, H, W] the face masks given to GFPGAN (zeros: none)
    face_source: str | None  # where the face masks came from
    loss: float  # last fine-tune loss


def refine_scene(
    scene: Scene,
    cameras: Cameras,
    config: RefineConfig,
    enhancer: ImageEnhancer,
    segmenter: ImageSegmenter | None = None,
    meter: MemoryMeter | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> RefineResult:
    """Super-resolves every view of `cameras` and fine-tunes `scene` on them, in place."""
    renders = scene.render(cameras).rgb  # [C, H, W, 3]
    faces, face_source = face_masks_for(renders, cameras, config, segmenter)
    targets = enhancer.enhance(renders, faces).to(renders)  # [C, sH, sW, 3]
    train_cameras = cameras.resized(targets.shape[2], targets.shape[1])
    before = renders if targets.shape == renders.shape else scene.render(train_cameras).rgb
    meter = meter or MemoryMeter()
    if meter.device is None:
        meter.start(scene.device)
    loss = _fine_tune(scene, train_cameras, targets, config, on_step)
    masks = torch.zeros(renders.shape[:3], device=renders.device) if faces is None else faces
    masks = F.interpolate(
        masks[:, None], size=targets.shape[1:3], mode="bilinear", align_corners=False
    )[:, 0]
    after = scene.render(train_cameras).rgb
    return RefineResult(train_cameras, before, targets, after, masks, face_source, loss)


def _record(
    result: RefineResult, turn: int, config: RefineConfig, seconds: float, meter: MemoryMeter
) -> dict:
    """The "refine" entry of session.json."""
    peak_rss, peak_cuda = meter.peaks_mb()
    return {
        "turn": turn,
        "status": "done",
        "seconds": round(seconds, 3),
        "peak_rss_mb": peak_rss,
        "peak_cuda_mb": peak_cuda,
        "loss": result.loss,
        "resolution": [result.cameras.width, result.cameras.height],
        "face_masks": result.face_source,
        "settings": _jsonable(dataclasses.asdict(config)),
        "sharpness": {
            "measure": "variance of the Laplacian of the luma, mean over views; "
            "a mechanics check, not quality",
            "before": _mean(laplacian_variance(result.before)),
            "targets": _mean(laplacian_variance(result.targets)),
            "after": _mean(laplacian_variance(result.after)),
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def run_refine(
    session_folder: Path,
    config: RefineConfig,
    device: str | torch.device,
    load_scene: Callable[[Path], Scene],
    segmenter: ImageSegmenter | None = None,
    *,
    enhancer: ImageEnhancer | None = None,
    cameras_for: Callable[[Scene], Cameras] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> Path:
    """Refines the last finished turn of a session and writes `DIR/refined/`; returns that folder.

    Args:
        session_folder: the session (`gsedit edit --out DIR`).
        config: the refine settings; its `enhance` weights are loaded unless `enhancer` is given.
        device: where the enhancers run.
        load_scene: reads a turn's scene file (on the device the fine-tune runs on).
        segmenter: finds faces (asked `config.face_query`) when no face mask folder is given.
        enhancer: an already built enhancer (tests, or a caller that holds one).
        cameras_for: the session's cameras at training resolution for a scene
            (default: from session.json, as `gsedit edit` made them).
        on_step: called with (step, loss) after every fine-tune step.

    Raises:
        ModelMissingError: an enhancer weights file is missing (before anything is computed or written).
        GseditError: no finished turn, bad settings, or face masks without a face model.
    """
    config.validate()
    SessionFolder.open(session_folder)  # "no session here" before the lock would create the folder
    with FolderLock(session_folder):  # also removes what a killed refine left
        return _refine_locked(SessionFolder.open(session_folder), config, device, load_scene, segmenter,
                              enhancer, cameras_for, on_step)


def _refine_locked(session: SessionFolder, config, device, load_scene, segmenter, enhancer, cameras_for, on_step
                   ) -> Path:
    last = session.last_finished()
    if last == 0:
        raise GseditError(
            f"{session.folder} has no finished turn to refine: run `gsedit edit` first."
        )
    enhancer = enhancer or ImageEnhancer.from_config(config.enhance, device)
    _check_faces_usable(config, segmenter, enhancer)

    scene = load_scene(session.scene_path(last))
    cameras = (cameras_for or (lambda s: session_cameras(session, s)))(scene)
    meter = MemoryMeter()
    meter.start(scene.device)
    start = time.perf_counter()
    result = refine_scene(scene, cameras, config, enhancer, segmenter, meter, on_step)
    folder = session.folder / REFINED_DIR
    with atomic_dir(folder) as tmp:
        scene.save(tmp)
        save_images(tmp / "renders", result.after)
        save_images(tmp / "masks", result.face_masks)
    session.data["refine"] = _record(result, last, config, time.perf_counter() - start, meter)
    session.save()
    return folder


def _mean(values: Tensor) -> float:
    return float(values.double().mean())
