"""`gsedit segment`: segment image files with a text query and write masks and overlays."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from gsedit.errors import InputFileError
from gsedit.models.base import ImageSegmenter
from gsedit.render.images import read_image, to_uint8, write_png

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Overlay colour (red) and its weight over the image inside the mask.
OVERLAY_RGB = (1.0, 0.0, 0.0)
OVERLAY_ALPHA = 0.5


def list_images(inputs: list[Path]) -> list[Path]:
    """The image files among `inputs`: files as given, folders by their sorted PNG/JPEG files."""
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputFileError(
                    path, f"no images ({', '.join(IMAGE_SUFFIXES)}) in this folder"
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputFileError(path, "no such file or folder")
    stems = [p.stem for p in files]
    for path in files:
        if stems.count(path.stem) > 1:
            raise InputFileError(path, "another input has the same name; outputs would clash")
    return files


def overlay(image: Tensor, mask: Tensor) -> Tensor:
    """[H, W, 3] `image` [H, W, 3] tinted with OVERLAY_RGB where `mask` [H, W] is 1."""
    colour = torch.tensor(OVERLAY_RGB, dtype=image.dtype, device=image.device)
    weight = OVERLAY_ALPHA * mask[..., None]  # [H, W, 1]
    return image * (1 - weight) + colour * weight


def segment_paths(
    inputs: list[Path], query: str, keep: bool, out_dir: Path, segmenter: ImageSegmenter
) -> list[Path]:
    """Segments every image in `inputs` and writes NAME_mask.png and NAME_overlay.png.

    With `keep`, the written mask is the inverse of the query's region: the part of the
    image an additive edit may change. Returns the mask paths, in input order.
    """
    mask_paths = []
    for path in list_images(inputs):
        image = read_image(path)  # [H, W, 3]
        mask = segmenter.segment(image[None], query)[0].cpu()  # [H, W]
        if keep:
            mask = 1.0 - mask
        mask_path = out_dir / f"{path.stem}_mask.png"
        write_png(mask_path, to_uint8(mask))
        write_png(out_dir / f"{path.stem}_overlay.png", to_uint8(overlay(image, mask)))
        mask_paths.append(mask_path)
    return mask_paths
