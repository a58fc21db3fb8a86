"""INRIA 3DGS .ply reading/writing and the labels sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import plyfile
import pytest
import torch

from gsedit.errors import InputFileError
from gsedit.scene.gaussians import Gaussians, num_sh_bases
from gsedit.scene.labels import labels_path, read_labels, write_labels
from gsedit.scene.ply import read_ply, write_ply

FIELDS = ("means", "scales", "quats", "opacities", "sh0", "shN")


def random_bits(gen: torch.Generator, *shape: int) -> torch.Tensor:
    """float32 values from random bit patterns (all exponents, denormals, -0.0), NaN/inf replaced."""
    bits = torch.randint(-(2**31), 2**31, shape, generator=gen, dtype=torch.int64).to(torch.int32)
    values = bits.view(torch.float32)
    return torch.where(torch.isfinite(values), values, torch.full_like(values, -0.0))


def random_scene(n: int, sh_degree: int, extras=(), normals=False, seed=0) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    k = num_sh_bases(sh_degree)
    return Gaussians(
        means=random_bits(gen, n, 3),
        scales=random_bits(gen, n, 3),
        quats=random_bits(gen, n, 4),
        opacities=random_bits(gen, n),
        sh0=random_bits(gen, n, 1, 3),
        shN=random_bits(gen, n, k - 1, 3),
        extras={name: random_bits(gen, n) for name in extras},
        normals=random_bits(gen, n, 3) if normals else None,
    )


def assert_bits_equal(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype == torch.float32
    assert a.shape == b.shape
    assert torch.equal(a.view(torch.int32), b.view(torch.int32))  # -0.0 and 0.0 differ here


def assert_same_scene(a: Gaussians, b: Gaussians) -> None:
    for name in FIELDS:
        assert_bits_equal(getattr(a, name), getattr(b, name))
    assert sorted(a.extras) == sorted(b.extras)
    for name in a.extras:
        assert_bits_equal(a.extras[name], b.extras[name])


def inria_attribute_names(num_dc: int, num_rest: int) -> list[str]:
    """The property list as the INRIA gaussian-splatting code builds it before saving a ply."""
    names = ["x", "y", "z", "nx", "ny", "nz"]
    names += [f"f_dc_{i}" for i in range(num_dc)]
    names += [f"f_rest_{i}" for i in range(num_rest)]
    names.append("opacity")
    names += [f"scale_{i}" for i in range(3)]
    names += [f"rot_{i}" for i in range(4)]
    return names


def write_with_plyfile(path: Path, columns: dict[str, np.ndarray], byte_order="=", text=False):
    """A foreign .ply: one vertex element with `columns` in the given order and dtypes."""
    n = len(next(iter(columns.values())))
    records = np.empty(n, dtype=[(name, col.dtype.str) for name, col in columns.items()])
    for name, col in columns.items():
        records[name] = col
    element = plyfile.PlyElement.describe(records, "vertex")
    plyfile.PlyData([element], text=text, byte_order=byte_order).write(str(path))


def gaussian_columns(n: int, num_rest: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    names = [n_ for n_ in inria_attribute_names(3, num_rest) if n_ not in ("nx", "ny", "nz")]
    return {name: rng.standard_normal(n).astype(np.float32) for name in names}


# ------------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("ascii", [False, True])
@pytest.mark.parametrize("extras", [(), ("relevance", "label")])
@pytest.mark.parametrize("sh_degree", [0, 1, 2, 3])
def test_round_trip_is_bit_exact(tmp_path, sh_degree, extras, ascii):
    scene = random_scene(40, sh_degree, extras, seed=sh_degree)
    first, second = tmp_path / "a.ply", tmp_path / "b.ply"

    write_ply(scene, first, ascii=ascii)
    loaded = read_ply(first)
    assert_same_scene(scene, loaded)
    assert loaded.sh_degree == sh_degree
    assert loaded.normals is not None and torch.equal(loaded.normals, torch.zeros(40, 3))

    write_ply(loaded, second, ascii=ascii)  # read -> write -> read
    assert_same_scene(loaded, read_ply(second))
    assert first.read_bytes() == second.read_bytes()


def test_normals_and_trainable_parameters_survive(tmp_path):
    scene = random_scene(10, 2, normals=True).map(lambda t: t.clone().requires_grad_(True))
    write_ply(scene, tmp_path / "s.ply")
    loaded = read_ply(tmp_path / "s.ply")
    assert_bits_equal(loaded.normals, scene.normals.detach())
    assert_bits_equal(loaded.shN, scene.shN.detach())


def test_inria_written_file_reads_field_by_field(tmp_path):
    # Written the way the INRIA code saves a trained model: SH degree 3, features_dc [N, 1, 3] and
    # features_rest [N, 15, 3] transposed to channel-major and flattened, normals zero, raw quats.
    n = 6
    xyz = np.arange(n * 3, dtype=np.float32).reshape(n, 3) * 0.5
    features_dc = np.arange(n * 3, dtype=np.float32).reshape(n, 1, 3) + 100
    gaussian, coef, channel = np.meshgrid(np.arange(n), np.arange(15), np.arange(3), indexing="ij")
    features_rest = (1000 * gaussian + 10 * coef + channel).astype(np.float32)  # [N, 15, 3]
    opacities = np.linspace(-3, 3, n, dtype=np.float32)[:, None]
    scale = np.log(np.linspace(0.01, 1, n * 3, dtype=np.float32)).reshape(n, 3)
    rotation = np.array([[2.0, 0.5, -1.0, 3.0]] * n, dtype=np.float32)  # not normalised
    f_dc = features_dc.transpose(0, 2, 1).reshape(n, -1)
    f_rest = features_rest.transpose(0, 2, 1).reshape(n, -1)
    names = inria_attribute_names(f_dc.shape[1], f_rest.shape[1])
    attributes = np.concatenate(
        [xyz, np.zeros_like(xyz), f_dc, f_rest, opacities, scale, rotation], axis=1
    )
    elements = np.empty(n, dtype=[(name, "f4") for name in names])
    elements[:] = list(map(tuple, attributes))
    path = tmp_path / "point_cloud.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(elements, "vertex")]).write(str(path))

    scene = read_ply(path)

    assert len(scene) == n and scene.sh_degree == 3 and scene.extras == {}
    assert torch.equal(scene.means, torch.from_numpy(xyz))
    assert torch.equal(scene.normals, torch.zeros(n, 3))
    assert torch.equal(scene.sh0, torch.from_numpy(features_dc))
    # f_rest_{15c + k} holds coefficient k+1 of channel c
    assert scene.shN[4, 7, 2].item() == 4072.0 == elements[4][f"f_rest_{15 * 2 + 7}"]
    assert torch.equal(scene.shN, torch.from_numpy(features_rest))
    assert torch.equal(scene.opacities, torch.from_numpy(opacities[:, 0]))
    assert torch.equal(scene.scales, torch.from_numpy(scale))
    assert torch.equal(scene.quats, torch.from_numpy(rotation))


def test_extras_in_any_order_big_endian_and_ascii(tmp_path):
    columns = gaussian_columns(5, num_rest=9)
    columns["label"] = np.array([0, 1, 2, 1, 0], dtype=np.int32)
    columns["confidence"] = np.array([0.5, 0.25, 1, 2, 4], dtype=np.float64)
    names = list(columns)
    shuffled = {
        name: columns[name]
        for name in [names[i] for i in np.random.default_rng(0).permutation(len(names))]
    }

    for byte_order, text in [(">", False), ("<", False), ("=", True)]:
        path = tmp_path / f"foreign_{text}_{byte_order}.ply"
        write_with_plyfile(path, shuffled, byte_order=byte_order, text=text)
        scene = read_ply(path)
        assert scene.normals is None and scene.sh_degree == 1
        assert set(scene.extras) == {"label", "confidence"}
        assert scene.extras["label"].tolist() == [0.0, 1.0, 2.0, 1.0, 0.0]
        assert scene.extras["label"].dtype == torch.float32
        assert scene.extras["confidence"].tolist() == [0.5, 0.25, 1, 2, 4]
        assert scene.opacities.tolist() == columns["opacity"].tolist()
        assert scene.quats[:, 3].tolist() == columns["rot_3"].tolist()
        assert scene.shN[:, 2, 1].tolist() == columns["f_rest_5"].tolist()  # green, coefficient 3


@pytest.mark.parametrize("ascii", [False, True])
def test_written_layout_is_inria_with_extras_after(tmp_path, ascii):
    scene = random_scene(3, 3, extras=("relevance", "label", "a_first"))
    path = tmp_path / "s.ply"
    write_ply(scene, path, ascii=ascii)

    ply = plyfile.PlyData.read(str(path))
    assert [e.name for e in ply.elements] == ["vertex"]
    props = ply["vertex"].properties
    expected = inria_attribute_names(3, 45) + ["a_first", "label", "relevance"]
    assert [p.name for p in props] == expected
    assert all(type(p) is plyfile.PlyProperty and p.val_dtype == "f4" for p in props)
    header = path.read_bytes().split(b"end_header")[0]
    assert b"format ascii 1.0" in header if ascii else b"format binary_little_endian 1.0" in header
    assert all((ply["vertex"][name] == 0).all() for name in ("nx", "ny", "nz"))
    assert ply["vertex"]["f_rest_16"][1] == scene.shN[1, 1, 1].item()  # channel-major


def test_write_rejects_extras_named_like_inria_properties(tmp_path):
    scene = random_scene(2, 0, extras=("f_rest_3",))
    with pytest.raises(ValueError, match="f_rest_3"):
        write_ply(scene, tmp_path / "s.ply")


def test_finite_rows_with_overflowing_sums_are_accepted(tmp_path):
    columns = gaussian_columns(4, num_rest=9)
    for i in range(9):
        columns[f"f_rest_{i}"][:] = 3e38  # finite, but the row sum overflows to inf
    write_with_plyfile(tmp_path / "big.ply", columns)
    assert read_ply(tmp_path / "big.ply").shN.max().item() == np.float32(3e38)


# ------------------------------------------------------------------------------------ bad input


def _bad_files(tmp: Path) -> dict[str, tuple[Path, list[str]]]:
    """name -> (file, fragments its InputFileError message must contain)."""
    cases = {}

    cases["missing"] = (tmp / "nope.ply", ["not found"])

    png = tmp / "image.ply"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    cases["not_ply"] = (png, ["not a PLY file"])

    good = tmp / "good.ply"
    write_ply(random_scene(50, 1), good)
    truncated = tmp / "truncated.ply"
    truncated.write_bytes(good.read_bytes()[:-100])
    cases["truncated"] = (truncated, ["truncated or corrupt"])

    header = tmp / "header.ply"
    header.write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty float\xff x\n"
    )
    cases["bad_header"] = (header, ["malformed PLY header"])

    faces = tmp / "faces.ply"
    face = np.array([([0, 1, 2],)], dtype=[("vertex_indices", "O")])
    plyfile.PlyData([plyfile.PlyElement.describe(face, "face")]).write(str(faces))
    cases["no_vertex"] = (faces, ["no 'vertex' element", "face"])

    empty = tmp / "empty.ply"
    write_with_plyfile(empty, {name: col[:0] for name, col in gaussian_columns(1).items()})
    cases["zero"] = (empty, ["no Gaussians"])

    cloud = tmp / "cloud.ply"
    rng = np.random.default_rng(0)
    pts = {c: rng.standard_normal(8).astype(np.float32) for c in "xyz"}
    pts |= {c: rng.integers(0, 255, 8).astype(np.uint8) for c in ("red", "green", "blue")}
    write_with_plyfile(cloud, pts)
    cases["point_cloud"] = (cloud, ["point cloud", "not a 3DGS scene", "gsedit fit"])

    partial = tmp / "partial.ply"
    columns = gaussian_columns(3)
    del columns["opacity"], columns["rot_2"]
    write_with_plyfile(partial, columns)
    cases["missing_props"] = (partial, ["missing", "opacity", "rot_2"])

    rest = tmp / "rest.ply"
    columns = gaussian_columns(3, num_rest=10)
    write_with_plyfile(rest, columns)
    cases["rest_count"] = (rest, ["10 f_rest", "0, 9, 24 or 45"])

    normals = tmp / "normals.ply"
    write_with_plyfile(normals, gaussian_columns(3) | {"nx": np.zeros(3, np.float32)})
    cases["partial_normals"] = (normals, ["nx"])

    stray = tmp / "stray.ply"
    write_with_plyfile(stray, gaussian_columns(3) | {"scale_3": np.zeros(3, np.float32)})
    cases["stray"] = (stray, ["scale_3"])

    nan = tmp / "nan.ply"
    columns = gaussian_columns(6, num_rest=9)
    columns["x"][[1, 4]] = np.nan
    columns["opacity"][1] = np.inf
    columns["f_rest_7"][5] = -np.inf
    write_with_plyfile(nan, columns)
    cases["nonfinite"] = (
        nan,
        ["NaN or infinite", "x/y/z in 2 Gaussians", "opacity in 1", "f_rest_* in 1", "3 of 6"],
    )
    return cases


BAD_CASES = ["missing", "not_ply", "truncated", "bad_header", "no_vertex", "zero", "point_cloud",
             "missing_props", "rest_count", "partial_normals", "stray", "nonfinite"]  # fmt: skip


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_raises_input_file_error_naming_the_file(tmp_path, case):
    path, fragments = _bad_files(tmp_path)[case]
    with pytest.raises(InputFileError) as info:
        read_ply(path)
    message = str(info.value)
    assert str(path) in message and info.value.path == path
    for fragment in fragments:
        assert fragment in message


def test_nonfinite_loads_when_allowed(tmp_path):
    path, _ = _bad_files(tmp_path)["nonfinite"]
    scene = read_ply(path, allow_nonfinite=True)
    assert torch.isnan(scene.means[[1, 4], 0]).all() and scene.opacities[1] == float("inf")
    assert scene.shN[5, 1, 2] == float("-inf")  # f_rest_7 = blue coefficient 2


def test_interrupted_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "scene.ply"
    write_ply(random_scene(20, 1), path)
    before = path.read_bytes()

    def write_half_then_fail(self, stream):
        Path(stream).write_bytes(b"ply\nformat binary_little_endian 1.0\n")
        raise OSError("disk full")

    monkeypatch.setattr(plyfile.PlyData, "write", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_ply(random_scene(20, 2, seed=5), path)

    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["scene.ply"]


# ---------------------------------------------------------------------------------------- labels


def test_labels_sidecar_round_trip(tmp_path):
    ply = tmp_path / "scene.ply"
    assert labels_path(ply) == tmp_path / "scene.labels.json"
    assert read_labels(ply) == {}

    write_labels(ply, {2: "sphere", 0: "background", 1: "cube"})
    assert json.loads(labels_path(ply).read_text()) == {
        "0": "background",
        "1": "cube",
        "2": "sphere",
    }
    assert list(labels_path(ply).read_text().split('"')[1::4]) == ["0", "1", "2"]  # ids in order
    assert read_labels(ply) == {0: "background", 1: "cube", 2: "sphere"}
    assert [p.name for p in tmp_path.iterdir()] == ["scene.labels.json"]


@pytest.mark.parametrize(
    "text",
    ["{not json", '["background", "cube"]', '{"a": "cube"}', '{"01": "cube"}', '{"1": 3}'],
)
def test_malformed_labels_sidecar(tmp_path, text):
    ply = tmp_path / "scene.ply"
    labels_path(ply).write_text(text)
    with pytest.raises(InputFileError) as info:
        read_labels(ply)
    assert str(labels_path(ply)) in str(info.value)
    assert "integer ids to names" in str(info.value)
