"""Image files: rendering a scene's channels to PNGs (with a contact sheet per channel), and the one
reader of image and mask files every part of gsedit uses."""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gsedit.atomic import atomic_path
from gsedit.cameras import Cameras
from gsedit.errors import GseditError, InputFileError

# distinct colours for label ids (tab10-like)
PALETTE = torch.tensor(
    [
        [0.12, 0.47, 0.71], [1.0, 0.5, 0.05], [0.17, 0.63, 0.17], [0.84, 0.15, 0.16], [0.58, 0.4, 0.74],
        [0.55, 0.34, 0.29], [0.89, 0.47, 0.76], [0.5, 0.5, 0.5], [0.74, 0.74, 0.13], [0.09, 0.75, 0.81],
    ]
)


def to_uint8(images: Tensor) -> np.ndarray:
    """[..., 3] or [...] floats in [0, 1] -> uint8 array."""
    return (images.detach().clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


# -- writing ------------------------------------------------------------------------------------
#: longest side of a contact sheet's tiles
SHEET_TILE_SIDE = 256

#: pixels `render_channel_images` renders at a time: 4 views of 512 x 512
RENDER_CHUNK_PIXELS = 1 << 20


def _encode_png(array: np.ndarray) -> bytes:
    """The PNG file of a uint8 [H, W] or [H, W, C] image (Pillow's default compression)."""
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", array, extension=".png")


def _write_file(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_png(path: Path, array: np.ndarray) -> None:
    """Writes a uint8 [H, W] or [H, W, C] image as a PNG, atomically: a reader never sees half a file."""
    _write_file(path, _encode_png(array))


class PngWriter:
    """Writes PNGs encoded on a thread pool, in the order they were given, each atomically.

    Pillow's zlib compression releases the GIL, so encodes run beside the caller: `gsedit render`
    queues each chunk of views as it renders, and where a core is free (rendering keeps both of the
    2-core machine busy) they encode while the next chunk renders.
    Files are written by the calling thread, in order, as soon as their encode and all before it
    are done; a failed write (a full disk) or an exception in the `with` block stops there and
    leaves exactly the images before it, whole.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1))
        self._pending: deque[tuple[Path, Future]] = deque()

    def add(self, path: Path, array: np.ndarray) -> None:
        """Queues uint8 [H, W] or [H, W, C] `array` for `path`, and writes what is ready."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._pending.append((path, self._pool.submit(_encode_png, array)))
        while self._pending and self._pending[0][1].done():
            self._write_next()

    def _write_next(self) -> None:
        path, encoded = self._pending.popleft()
        _write_file(path, encoded.result())

    def __enter__(self) -> PngWriter:
        return self

    def __exit__(self, error_type, *_) -> None:
        try:
            while error_type is None and self._pending:
                self._write_next()
        finally:
            self._pool.shutdown(cancel_futures=True)  # after a failure: no encoding of images never written


def save_images(folder: Path, images: Tensor, names: list[str] | None = None) -> None:
    """Writes [C, H, W, 3] or [C, H, W] images in [0, 1] as NAME.png (NNNN.png by default) into `folder`
    (see `PngWriter`: encoded in parallel, written in order, each atomically)."""
    folder.mkdir(parents=True, exist_ok=True)
    with PngWriter() as writer:
        for i, array in enumerate(to_uint8(images)):
            writer.add(folder / f"{names[i] if names else f'{i:04d}'}.png", array)


# -- reading ------------------------------------------------------------------------------------
def _decode(path: Path) -> np.ndarray:
    """[H, W] (grey) or [H, W, 3] float32 in [0, 1] of an 8/16-bit image file; alpha dropped.

    Palette images arrive as RGB (imageio expands them). 16-bit colour PNGs arrive with 8 bits of
    precision: Pillow, imageio's PNG backend, keeps the high byte of each sample.
    """
    import imageio.v3 as iio

    try:
        array = np.asarray(iio.imread(path))
    except Exception as err:  # imageio and Pillow raise many types (OSError, SyntaxError, ...)
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputFileError(
            path, f"not a readable image: damaged, missing or not an image file ({reason})."
        ) from err
    if array.ndim == 3 and array.shape[-1] in (1, 2):  # grey, grey + alpha
        array = array[..., 0]
    elif array.ndim == 3 and array.shape[-1] in (3, 4):  # RGB, RGBA
        array = array[..., :3]
    elif array.ndim != 2:  # a multi-frame file, or a foreign channel layout
        raise InputFileError(
            path, f"expected one grey, RGB or RGBA image, got an array of shape {array.shape}."
        )
    if array.dtype == np.bool_:  # 1-bit images
        return array.astype(np.float32)
    if array.dtype not in (np.uint8, np.uint16):
        raise InputFileError(path, f"expected 8- or 16-bit integer pixels, got {array.dtype}.")
    return array.astype(np.float32) / float(np.iinfo(array.dtype).max)


def read_image(path: str | Path) -> Tensor:
    """[H, W, 3] float32 image in [0, 1] of an 8/16-bit grey, RGB(A) or palette file (grey repeated).

    Raises InputFileError naming the file when it is unreadable, not an image or not 8/16-bit.
    """
    array = _decode(Path(path))
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return torch.from_numpy(array)


def read_mask(path: str | Path) -> Tensor:
    """[H, W] float32 mask in [0, 1] of an image file: grey as is, colour as the mean of RGB."""
    array = _decode(Path(path))
    return torch.from_numpy(array.mean(-1, dtype=np.float32) if array.ndim == 3 else array)


def read_image_stack(
    paths: list[Path], folder: str | Path, read: Callable[[Path], Tensor] = read_image
) -> Tensor:
    """[V, H, W, 3] images (or [V, H, W] with `read=read_mask`) of `paths` (not empty), of one size.

    `folder` is the place named when the sizes differ. The stack is filled in place, so the peak
    memory is the stack and one image.
    """
    first = read(paths[0])
    stack = first.new_empty((len(paths), *first.shape))
    stack[0] = first
    for i, path in enumerate(paths[1:], start=1):
        image = read(path)
        if image.shape != first.shape:
            raise InputFileError(
                folder,
                f"images of different sizes: {paths[0].name} is {_size(first)}, {path.name} is "
                f"{_size(image)}; one size is needed.",
            )
        stack[i] = image
    return stack


def read_image_folder(
    folder: str | Path, pattern: str = "*.png", read: Callable[[Path], Tensor] = read_image
) -> tuple[list[str], Tensor]:
    """(file names, [V, H, W, 3] images) of the files in `folder` matching `pattern`, sorted by name.

    With `read=read_mask` the images are [V, H, W] masks. All files must have one size.
    """
    folder = Path(folder)
    paths = sorted(folder.glob(pattern))
    if not paths:
        raise InputFileError(folder, f"no images matching {pattern} in this folder.")
    return [p.name for p in paths], read_image_stack(paths, folder, read)


def _size(image: Tensor) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


def shrink(images: np.ndarray, longest_side: int) -> np.ndarray:
    """[C, H // f, W // f(, 3)] uint8 block means of [C, H, W(, 3)] `images`, by the smallest whole
    factor f that brings the longer side to `longest_side` or less (rows and columns past the last
    whole block are dropped)."""
    factor = -(-max(images.shape[1:3]) // longest_side)
    if factor <= 1:
        return images
    c, h, w = images.shape[0], images.shape[1] // factor, images.shape[2] // factor
    blocks = images[:, : h * factor, : w * factor].reshape(c, h, factor, w, factor, *images.shape[3:])
    return (blocks.mean(axis=(2, 4), dtype=np.float32) + 0.5).astype(np.uint8)


def contact_sheet(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    """[C, H, W(, 3)] uint8 -> one grid image of the images shrunk to tiles of at most
    `SHEET_TILE_SIDE` pixels (the sheet is an overview: at full size it took as long to encode as
    all the views it shows)."""
    images = shrink(images, SHEET_TILE_SIDE)
    count = images.shape[0]
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    h, w = images.shape[1:3]
    sheet = np.zeros((rows * h, columns * w, *images.shape[3:]), dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = image
    return sheet


def label_colours(scene, cameras: Cameras) -> Tensor:
    """[C, H, W, 3] each pixel coloured by its dominant label, faded by coverage."""
    check_channel(scene, "label")
    names = scene.label_names()
    channels = [f"label={k}" for k in sorted(names)]
    out = scene.render(cameras, channels=channels)
    stack = torch.stack([out.channels[c] for c in channels], dim=-1)  # [C, H, W, L]
    coverage, index = stack.max(dim=-1)
    ids = torch.tensor(sorted(names), device=index.device)[index]
    return PALETTE.to(index.device)[ids % len(PALETTE)] * coverage[..., None].clamp(0, 1)


def render_channel(scene, cameras: Cameras, channel: str) -> Tensor:
    """[C, H, W, 3] or [C, H, W] display image of one channel."""
    if channel == "rgb":
        return scene.render(cameras).rgb
    if channel == "alpha":
        return scene.render(cameras).alpha
    if channel == "label":
        return label_colours(scene, cameras)
    check_channel(scene, channel)
    return scene.render(cameras, channels=[channel]).channels[channel]


def check_channel(scene, channel: str) -> None:
    """Raises GseditError naming the channels there are when `scene` cannot render `channel`."""
    if channel == "label" and not scene.label_names():
        raise GseditError("the scene has no labels sidecar (SCENE.labels.json) to render the 'label' channel")
    if channel not in ("rgb", "alpha", "label") and channel not in scene.channel_names():
        raise GseditError(
            f"the scene has no '{channel}' channel; it has rgb, alpha"
            + "".join(f", {c}" for c in scene.channel_names())
        )


def render_channel_images(scene, cameras: Cameras, channels: list[str], out: Path) -> int:
    """Writes out/CHANNEL/NAME.png for every camera and out/CHANNEL_sheet.png; returns the count.

    Views render in chunks of about `RENDER_CHUNK_PIXELS` while the chunk before encodes.
    """
    stems = [Path(name).stem for name in cameras.names]
    chunk = max(1, RENDER_CHUNK_PIXELS // (cameras.width * cameras.height))
    for channel in channels:
        check_channel(scene, channel)
    with PngWriter() as writer:
        for channel in channels:
            arrays = []
            for start in range(0, len(cameras), chunk):
                arrays.append(to_uint8(render_channel(scene, cameras[start : start + chunk], channel)))
                for i, array in enumerate(arrays[-1], start):
                    writer.add(Path(out) / channel / f"{stems[i]}.png", array)
            writer.add(Path(out) / f"{channel}_sheet.png", contact_sheet(np.concatenate(arrays)))
    return len(stems) * len(channels)
