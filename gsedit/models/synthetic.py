"""The offline `synthetic` editor: a STAND-IN for InstructPix2Pix, with no weights.

It exists to exercise the edit loop and to measure its mechanisms (forgetting, drift, masks) where
no diffusion model is available. Its numbers are never edit quality. It understands instructions
of the form "make/turn/paint/colour the <object> <colour>" and recolours the object, and it
reproduces a real editor's known faults on purpose:

- spill: colour leaks into a halo around the object and, faintly, into the whole view;
- view-to-view inconsistency: every call draws its own colour and brightness jitter;
- forgetting: the edit is built from the *condition* image, so conditioning on the turn-0 images
  (Instruct-NeRF2NeRF) brings back what earlier turns changed;
- the noise level t blends the input toward the edit with strength min(1, 2t): like InstructPix2Pix,
  little noise keeps the input and from half-way noise on the edit is complete.

It "sees" objects the way a person would describe them here: by colour. `calibrate` gives it each
object's colour in the scene (from a labelled scene's renders); an object that was recoloured is
still found under its new colour. On a scene without labels it finds no named object and applies the
instruction to the whole view, and warns once.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from gsedit.errors import GseditError
from gsedit.models.base import EditOutput, ImageEditor
from gsedit.render.filters import gaussian_blur

MIN_PEAK_COVERAGE = 0.25  # below this an object's mask is noise, not the object

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.1, 0.1),
    "green": (0.1, 0.7, 0.2),
    "blue": (0.1, 0.25, 0.9),
    "yellow": (0.95, 0.85, 0.1),
    "orange": (0.95, 0.5, 0.1),
    "purple": (0.55, 0.15, 0.7),
    "pink": (0.95, 0.5, 0.7),
    "white": (0.95, 0.95, 0.95),
    "black": (0.05, 0.05, 0.05),
    "gray": (0.5, 0.5, 0.5),
    "grey": (0.5, 0.5, 0.5),
    "brown": (0.45, 0.28, 0.12),
    "cyan": (0.1, 0.8, 0.85),
}

_INSTRUCTION = re.compile(
    r"^\s*(?:please\s+)?(?:make|turn|paint|colou?r)\s+(?:the\s+|a\s+)?(?P<object>.+?)\s+"
    r"(?:into\s+|to\s+)?(?P<colour>" + "|".join(COLOURS) + r")\b",
    re.IGNORECASE,
)


def parse_instruction(instruction: str) -> tuple[str, str]:
    """'make the cube red' -> ('cube', 'red'); a clear error for anything else."""
    match = _INSTRUCTION.match(instruction)
    if not match:
        raise GseditError(
            f"The synthetic editor (an offline stand-in for InstructPix2Pix) cannot follow "
            f"'{instruction}': it only understands 'make/turn/paint the <object> <colour>' with a "
            f"colour among {', '.join(sorted(COLOURS))}. Use --editor ip2p for free-form instructions."
        )
    return match["object"].strip().lower(), match["colour"].lower()


@dataclass
class SyntheticEditorConfig:
    """Faults of the stand-in editor, on purpose (0 turns a fault off)."""

    spill_halo: float = 0.5
    """Strength of the colour leaking into a blurred halo around the object."""
    spill_radius: float = 0.06
    """Halo radius as a fraction of the image's shorter side."""
    spill_global: float = 0.12
    """Fraction of the way every pixel of the view moves toward the new colour."""
    inconsistency: float = 0.08
    """Standard deviation of the per-call colour and brightness jitter."""
    colour_tolerance: float = 0.18
    """RGB distance under which a pixel counts as the object's colour."""


class SyntheticEditor(ImageEditor):
    name = "synthetic"
    is_stand_in = True

    def __init__(self, config: SyntheticEditorConfig | None = None):
        self.config = config or SyntheticEditorConfig()
        self.object_colours: dict[str, list[Tensor]] = {}
        self._warned: set[str] = set()

    def calibrate(self, images: Tensor, object_masks: dict[str, Tensor]) -> None:
        """Learns each object's colour: mean of `images` [C, H, W, 3] where its mask [C, H, W] is
        above 0.9 of its peak (a radiance field's soft coverage may never reach 1); objects whose
        coverage stays below MIN_PEAK_COVERAGE count as unseen."""
        for name, masks in object_masks.items():
            peak = min(1.0, float(masks.max()))
            if peak < MIN_PEAK_COVERAGE:
                continue
            inside = masks > 0.9 * peak
            self.object_colours.setdefault(name.lower(), []).append(images[inside].mean(dim=0).cpu())

    def _object_mask(self, images: Tensor, name: str) -> Tensor | None:
        """[B, H, W] soft mask of pixels showing object `name` under any colour it has had."""
        colours = self._lookup(name)
        if colours is None:
            return None
        tol = self.config.colour_tolerance
        dist = torch.stack([(images - c.to(images)).norm(dim=-1) for c in colours]).amin(dim=0)
        return (1 - dist / tol).clamp(0, 1).mul(3).clamp(max=1)

    def _lookup(self, name: str) -> list[Tensor] | None:
        if name in self.object_colours:
            return self.object_colours[name]
        for known, colours in self.object_colours.items():  # "the red cube" -> "cube"
            if known in name.split() or name in known.split():
                return colours
        return None

    def _edit_masks(self, images: Tensor, instruction: str) -> tuple[Tensor, Tensor]:
        """([B, H, W], [3]) where the instruction applies, and the new colour."""
        name, colour = parse_instruction(instruction)
        masks = self._object_mask(images, name)
        if masks is None:
            if name not in self._warned:
                warnings.warn(
                    f"synthetic editor: no object named '{name}' in this scene (it knows "
                    f"{sorted(self.object_colours) or 'none: the scene has no labels'}); "
                    f"applying '{instruction}' to the whole view",
                    stacklevel=2,
                )
                self._warned.add(name)
            masks = torch.ones(images.shape[:3], device=images.device)
        return masks, torch.tensor(COLOURS[colour], device=images.device)

    def _recolour(self, images: Tensor, masks: Tensor, colour: Tensor) -> Tensor:
        """Shading-preserving recolour of `images` [B, H, W, 3] with spill around `masks` [B, H, W]."""
        c = self.config
        sigma = c.spill_radius * min(images.shape[1:3])
        halo = (gaussian_blur(masks, sigma) * 2.5).clamp(max=1) if c.spill_halo > 0 and sigma > 0 else masks
        weight = torch.maximum(masks, c.spill_halo * halo)
        weight = weight + (1 - weight) * c.spill_global
        shade = images.mean(dim=-1, keepdim=True) / images.mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
        recoloured = (colour * shade.clamp(0.6, 1.4)).clamp(0, 1)
        return images + weight[..., None] * (recoloured - images)

    def edit(self, images, conditions, instruction, noise_levels, generator=None, regions=None) -> EditOutput:
        masks, colour = self._edit_masks(conditions, instruction)
        b = images.shape[0]
        jitter = torch.randn(b, 1, 1, 3, generator=generator).to(images) * self.config.inconsistency
        brightness = 1 + torch.randn(b, 1, 1, 1, generator=generator).to(images) * self.config.inconsistency
        edited = (self._recolour(conditions, masks, colour) + jitter * masks[..., None]) * brightness
        strength = (2 * noise_levels.to(images)).clamp(max=1).reshape(b, 1, 1, 1)
        out = ((1 - strength) * images + strength * edited).clamp(0, 1)
        if regions is not None:
            keep = regions.to(images)[..., None]
            out = keep * out + (1 - keep) * images
        self._remember(instruction)
        return EditOutput(images=out, relevance=self._relevance(conditions, masks, colour))

    def _remember(self, instruction: str) -> None:
        """After an edit the object may show its new colour: keep finding it under that one too."""
        name, colour = parse_instruction(instruction)
        colours = self._lookup(name)
        new = torch.tensor(COLOURS[colour])
        if colours is not None and not any(torch.allclose(new, c) for c in colours):
            colours.append(new)

    def _relevance(self, images: Tensor, masks: Tensor, colour: Tensor) -> Tensor:
        change = (self._recolour(images, masks, colour) - images).norm(dim=-1)
        return change / change.amax(dim=(1, 2), keepdim=True).clamp_min(1e-6)

    def relevance(self, images, instruction, generator=None) -> Tensor:
        """[B, H, W] where the editor would change `images`: its own colour change, normalised."""
        masks, colour = self._edit_masks(images, instruction)
        return self._relevance(images, masks, colour)
