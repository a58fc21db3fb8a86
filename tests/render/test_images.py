"""The one image/mask reader: files written by imageio, Pillow or by hand, read back vs the array."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from gsedit.errors import InputFileError
from gsedit.render.images import read_image, read_image_folder, read_image_stack, read_mask

RNG = np.random.default_rng(0)


def _png16(path: Path, array: np.ndarray) -> Path:
    """Writes `array` [H, W, 3] uint16 as a 16-bit RGB PNG (Pillow cannot write one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    h, w, _ = array.shape
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in array)  # filter 0 per row
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)  # 16 bits, truecolour
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return path


def _check(image, expected: np.ndarray, atol: float = 1e-6) -> None:
    assert image.dtype.is_floating_point and image.dtype.itemsize == 4
    assert tuple(image.shape) == expected.shape
    np.testing.assert_allclose(image.numpy(), expected, atol=atol, rtol=0)


def test_rgb_8_bit(tmp_path):
    rgb = RNG.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "a.png", rgb)
    _check(read_image(tmp_path / "a.png"), rgb / 255.0)


def test_rgb_16_bit(tmp_path):
    rgb = RNG.integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    path = _png16(tmp_path / "a.png", rgb)
    # Pillow keeps the high byte of 16-bit colour samples: right scale, 8-bit precision
    _check(read_image(path), rgb / 65535.0, atol=1 / 255)


def test_grey_8_and_16_bit_repeated(tmp_path):
    for grey, scale in (
        (RNG.integers(0, 256, (5, 4), dtype=np.uint8), 255.0),
        (RNG.integers(0, 65536, (5, 4), dtype=np.uint16), 65535.0),
    ):
        iio.imwrite(tmp_path / "g.png", grey)
        _check(read_image(tmp_path / "g.png"), np.repeat(grey[..., None] / scale, 3, axis=-1))
        _check(read_mask(tmp_path / "g.png"), grey / scale)


def test_rgba_drops_alpha(tmp_path):
    rgba = RNG.integers(0, 256, (6, 7, 4), dtype=np.uint8)
    iio.imwrite(tmp_path / "a.png", rgba)
    _check(read_image(tmp_path / "a.png"), rgba[..., :3] / 255.0)


def test_grey_alpha_drops_alpha(tmp_path):
    la = RNG.integers(0, 256, (6, 7, 2), dtype=np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "a.png")
    _check(read_mask(tmp_path / "a.png"), la[..., 0] / 255.0)


def test_palette(tmp_path):
    colours = RNG.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    palette = Image.fromarray(colours).quantize(colors=5)
    palette.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    expected = np.asarray(palette.convert("RGB")) / 255.0
    _check(read_image(tmp_path / "p.png"), expected)


def test_jpeg(tmp_path):
    y, x = np.mgrid[0:32, 0:48]
    # a smooth image: small JPEG error
    rgb = np.stack([x * 5, y * 7, (x + y) * 3], axis=-1).astype(np.uint8)
    iio.imwrite(tmp_path / "a.jpg", rgb, quality=95)
    image = read_image(tmp_path / "a.jpg").numpy()
    assert image.shape == (32, 48, 3)
    assert np.abs(image - rgb / 255.0).mean() < 2 / 255
    np.testing.assert_allclose(image, rgb / 255.0, atol=12 / 255)


def test_mask_of_colour_is_mean_of_rgb(tmp_path):
    rgba = RNG.integers(0, 256, (6, 7, 4), dtype=np.uint8)
    iio.imwrite(tmp_path / "m.png", rgba)
    _check(read_mask(tmp_path / "m.png"), rgba[..., :3].mean(-1) / 255.0)


def _text(path: Path) -> Path:
    path.write_text("not an image")
    return path


def _truncated(path: Path) -> Path:
    iio.imwrite(path, RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    "make",
    [
        lambda d: _text(d / "x.png"),
        lambda d: _truncated(d / "t.png"),
        lambda d: d / "missing.png",
    ],
    ids=["text", "truncated", "missing"],
)
@pytest.mark.parametrize("read", [read_image, read_mask])
def test_unreadable_file_names_the_path(tmp_path, make, read):
    path = make(tmp_path)
    with pytest.raises(InputFileError, match="not a readable image") as info:
        read(path)
    assert info.value.path == path and str(path) in str(info.value)
    assert "\n" not in str(info.value)  # one paragraph, not imageio's plugin list


def test_float_pixels_are_refused(tmp_path):
    iio.imwrite(tmp_path / "f.tiff", np.full((4, 4), 0.5, np.float32))
    with pytest.raises(InputFileError, match="8- or 16-bit integer pixels, got float32") as info:
        read_image(tmp_path / "f.tiff")
    assert info.value.path == tmp_path / "f.tiff"


def test_folder_sorted_and_stacked(tmp_path):
    greys = [RNG.integers(0, 65536, (5, 4), dtype=np.uint16) for _ in range(3)]
    for name, grey in zip(["b.png", "a.png", "c.png"], greys):
        iio.imwrite(tmp_path / name, grey)
    iio.imwrite(tmp_path / "skip.jpg", np.zeros((9, 9, 3), np.uint8))
    names, images = read_image_folder(tmp_path, "*.png")
    assert names == ["a.png", "b.png", "c.png"]
    expected = np.stack([greys[1], greys[0], greys[2]]) / 65535.0  # [V, H, W]
    _check(images, np.repeat(expected[..., None], 3, axis=-1))
    names, masks = read_image_folder(tmp_path, "*.png", read=read_mask)
    _check(masks, expected)


def test_folder_errors(tmp_path):
    with pytest.raises(InputFileError, match=r"no images matching \*\.png") as info:
        read_image_folder(tmp_path, "*.png")
    assert info.value.path == tmp_path
    iio.imwrite(tmp_path / "a.png", np.zeros((4, 6, 3), np.uint8))
    iio.imwrite(tmp_path / "b.png", np.zeros((5, 6), np.uint8))
    with pytest.raises(InputFileError, match="different sizes: a.png is 6x4, b.png is 6x5"):
        read_image_folder(tmp_path)
    with pytest.raises(InputFileError, match="different sizes") as info:
        read_image_stack([tmp_path / "b.png", tmp_path / "a.png"], tmp_path, read_mask)
    assert info.value.path == tmp_path


def test_save_images_writes_the_pngs_imageio_writes(tmp_path):
    """Encoded on a thread pool, written in order: the same files as one imageio call per image."""
    import torch

    from gsedit.render.images import save_images, to_uint8

    gen = torch.Generator().manual_seed(0)
    images = torch.rand(7, 20, 30, 3, generator=gen)
    save_images(tmp_path / "rgb", images, [f"view{i}" for i in range(7)])
    save_images(tmp_path / "grey", images[..., 0])
    for i, array in enumerate(to_uint8(images)):
        iio.imwrite(tmp_path / "ref.png", array)
        assert (tmp_path / "rgb" / f"view{i}.png").read_bytes() == (tmp_path / "ref.png").read_bytes()
        assert np.array_equal(iio.imread(tmp_path / "grey" / f"{i:04d}.png"), array[..., 0])
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        ["rgb", "grey", "ref.png"] + [f"view{i}.png" for i in range(7)] + [f"{i:04d}.png" for i in range(7)]
    )


def test_shrink_takes_block_means_by_a_whole_factor():
    from gsedit.render.images import shrink

    images = RNG.integers(0, 256, size=(2, 9, 13, 3), dtype=np.uint8)
    assert shrink(images, 13) is images
    small = shrink(images, 6)  # factor 3: 9 x 13 -> 3 x 4, the 13th column dropped
    assert small.shape == (2, 3, 4, 3)
    expected = images[:, :9, :12].reshape(2, 3, 3, 4, 3, 3).astype(np.float64).mean(axis=(2, 4))
    assert np.array_equal(small, np.floor(expected + 0.5).astype(np.uint8))


def test_chunked_render_writes_the_files_of_one_render(tmp_path, monkeypatch):
    """Rendering in chunks while the last ones encode: the PNGs of one render of every view, in
    every channel, and a sheet of the shrunk views."""
    from gsedit.cameras.formats import load_cameras
    from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene
    from gsedit.render import images as module
    from gsedit.scene.gaussian_scene import GaussianScene

    cams_file = write_synthetic_scene(tmp_path / "s" / "scene.ply", SyntheticSceneConfig(points_per_object=60),
                                      n_cameras=5, size=24)
    scene = GaussianScene.load(tmp_path / "s" / "scene.ply")
    cameras = load_cameras(cams_file)
    monkeypatch.setattr(module, "RENDER_CHUNK_PIXELS", 2 * 24 * 24)  # chunks of 2, 2 and 1 views
    monkeypatch.setattr(module, "SHEET_TILE_SIDE", 12)
    assert module.render_channel_images(scene, cameras, ["rgb", "label"], tmp_path / "out") == 10
    for channel in ("rgb", "label"):
        whole = module.render_channel(scene, cameras, channel)
        module.save_images(tmp_path / "ref" / channel, whole, [Path(n).stem for n in cameras.names])
        for ref in sorted((tmp_path / "ref" / channel).iterdir()):
            assert (tmp_path / "out" / channel / ref.name).read_bytes() == ref.read_bytes()
        sheet = iio.imread(tmp_path / "out" / f"{channel}_sheet.png")
        assert np.array_equal(sheet, module.contact_sheet(module.to_uint8(whole)))
        assert sheet.shape[:2] == (2 * 12, 3 * 12)  # 5 views of 24 px as 12 px tiles, 3 columns
