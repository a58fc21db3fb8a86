"""INRIA 3DGS `.ply` reading and writing (the layout of the original gaussian-splatting code).

Layout: one `vertex` element with `x y z nx ny nz f_dc_0..2 f_rest_0..f_rest_{3(K-1)-1} opacity
scale_0..2 rot_0..3`, all float32, where K = (degree+1)^2. `f_rest` is channel-major: the K-1
higher-order coefficients of red, then those of green, then those of blue. Opacities are logits,
scales are logs, quaternions are wxyz and stored unnormalised. Any further scalar property
(`relevance`, `label`, or one a foreign tool wrote) is an extra channel, written after the INRIA
properties in sorted-name order so that tools which only know the INRIA layout still read the file.

Binary files are memory-mapped and copied once into the output tensors; writing builds one
[N, P] float32 table and hands it to plyfile as a structured view, so neither direction holds
more than one extra copy of the scene.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
from numpy.lib.recfunctions import structured_to_unstructured
from plyfile import (
    PlyData,
    PlyElement,
    PlyElementParseError,
    PlyListProperty,
    PlyParseError,
)
from torch import Tensor

from gsedit.atomic import atomic_path
from gsedit.errors import InputFileError
from gsedit.scene.gaussians import Gaussians, num_sh_bases

POSITION = ["x", "y", "z"]
NORMAL = ["nx", "ny", "nz"]
SH_DC = ["f_dc_0", "f_dc_1", "f_dc_2"]
OPACITY = "opacity"
SCALE = ["scale_0", "scale_1", "scale_2"]
ROTATION = ["rot_0", "rot_1", "rot_2", "rot_3"]
# Properties only a Gaussian scene has: a vertex element with none of them is a point cloud or mesh.
GAUSSIAN_ONLY = [*SH_DC, OPACITY, *SCALE, *ROTATION]
# Numbered INRIA families: a property of one of these beyond the expected set breaks the layout.
_NUMBERED = re.compile(r"(f_dc|f_rest|scale|rot)_(\d+)")
_VALID_REST_COUNTS = {3 * (num_sh_bases(d) - 1): d for d in range(4)}  # {0: 0, 9: 1, 24: 2, 45: 3}


def rest_names(num_rest: int) -> list[str]:
    return [f"f_rest_{i}" for i in range(num_rest)]


def inria_property_names(sh_degree: int) -> list[str]:
    """The vertex properties of an INRIA 3DGS file of SH degree `sh_degree`, in file order."""
    num_rest = 3 * (num_sh_bases(sh_degree) - 1)
    return [*POSITION, *NORMAL, *SH_DC, *rest_names(num_rest), OPACITY, *SCALE, *ROTATION]


# ----------------------------------------------------------------------------------------- read


def read_ply(path: str | Path, allow_nonfinite: bool = False) -> Gaussians:
    """Reads an INRIA 3DGS `.ply` (binary little/big-endian or ASCII, SH degree 0-3).

    Every value is returned as float32 exactly as stored: quaternions are not normalised, opacities
    stay logits, scales stay logs. Normals are kept when the file has them. Scalar vertex
    properties outside the INRIA layout become `extras` channels under their own names.

    Args:
        path: the `.ply` file.
        allow_nonfinite: load values that are NaN or inf instead of refusing the file.

    Raises:
        InputFileError: the file is missing, not a PLY, truncated (or its header claims more data
            than it holds), not a 3DGS scene (e.g. a point cloud), misses Gaussian properties, has
            an invalid f_rest count, or holds NaN/inf or all-zero quaternions.
    """
    path = Path(path)
    vertex = _read_vertex_element(path)
    # list properties (mesh-style) cannot be per-Gaussian channels
    names = [p.name for p in vertex.properties if not isinstance(p, PlyListProperty)]
    num_rest = _check_layout(path, names)
    gaussians = _to_gaussians(vertex.data, names, num_rest)
    if not allow_nonfinite:
        _check_finite(path, gaussians)
        _check_rotations(path, gaussians)
    return gaussians


def _read_vertex_element(path: Path) -> PlyElement:
    """The `vertex` element of `path`, memory-mapped when the file is binary."""
    if not path.exists():
        raise InputFileError(path, "file not found; expected an INRIA 3DGS .ply scene.")
    if not path.is_file():
        raise InputFileError(path, "is a folder, not a .ply file; expected an INRIA 3DGS .ply.")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise InputFileError(path, f"cannot be read ({e.strerror}).") from e
    if not magic.startswith(b"ply"):
        raise InputFileError(
            path,
            f"is not a PLY file: a PLY file starts with the line 'ply', this one starts with "
            f"{magic!r}. Expected an INRIA 3DGS .ply scene.",
        )
    _check_claimed_size(path)
    try:
        ply = PlyData.read(str(path), mmap="c")
    except PlyElementParseError as e:
        raise InputFileError(
            path, f"the data after the header is truncated or corrupt (plyfile: {e})."
        ) from e
    except (PlyParseError, UnicodeDecodeError, ValueError) as e:
        # plyfile reports a non-ASCII header as UnicodeDecodeError and a negative count as ValueError.
        raise InputFileError(path, f"has a malformed PLY header (plyfile: {e}).") from e
    if "vertex" not in ply:
        found = ", ".join(e.name for e in ply.elements) or "none"
        raise InputFileError(
            path,
            f"has no 'vertex' element (elements found: {found}); a 3DGS scene stores one "
            f"Gaussian per vertex.",
        )
    vertex = ply["vertex"]
    if vertex.count == 0:
        raise InputFileError(path, "has no Gaussians: its 'vertex' element is empty.")
    return vertex


_TYPE_BYTES = {
    **dict.fromkeys(("char", "uchar", "int8", "uint8"), 1),
    **dict.fromkeys(("short", "ushort", "int16", "uint16"), 2),
    **dict.fromkeys(("int", "uint", "int32", "uint32", "float", "float32"), 4),
    **dict.fromkeys(("double", "float64"), 8),
}
MAX_HEADER_BYTES = 1 << 20  # a header lists a few hundred properties at most


def _check_claimed_size(path: Path) -> None:
    """Refuses a header whose element counts need more bytes than the file has, before any array
    is sized from them (a forged or truncated header could claim billions of Gaussians)."""
    with path.open("rb") as f:
        head = f.read(MAX_HEADER_BYTES)
    end = head.find(b"end_header")
    if end < 0:
        return  # plyfile names what is wrong with the header
    binary, needed, count, counts = True, 0, 0, []
    for line in head[:end].decode("ascii", errors="replace").splitlines():
        words = line.split()
        if words[:1] == ["format"]:
            binary = words[1:2] != ["ascii"]
        elif words[:1] == ["element"] and len(words) == 3 and words[2].isdigit():
            count = int(words[2])
            counts.append(f"{count:,} {words[1]}")
        elif words[:1] == ["property"] and len(words) >= 3:
            # a list takes at least its count; an ASCII value at least a digit and a separator
            size = _TYPE_BYTES.get(words[2] if words[1] == "list" else words[1], 1)
            needed += count * (size if binary else 2)
    available = path.stat().st_size - end
    if needed > available:
        raise InputFileError(
            path,
            f"the data after the header is truncated or corrupt: the header claims "
            f"{' and '.join(counts)} entries (at least {needed:,} bytes), but the file holds only "
            f"{available:,} bytes after it.",
        )


def _check_layout(path: Path, names: list[str]) -> int:
    """Checks that the scalar vertex properties `names` hold a 3DGS scene; returns the f_rest count."""
    present = set(names)
    if not present & set(GAUSSIAN_ONLY):
        raise InputFileError(
            path,
            f"is a point cloud or mesh (vertex properties: {', '.join(names)}), not a 3DGS "
            f"scene: it has none of the Gaussian properties {', '.join(GAUSSIAN_ONLY)}. Fit a "
            f"Gaussian scene to your images first, e.g. `gsedit fit IMAGES_DIR --cameras CAMS "
            f"--out scene.ply`, and edit that.",
        )
    missing = [n for n in [*POSITION, *GAUSSIAN_ONLY] if n not in present]
    if missing:
        raise InputFileError(
            path,
            f"is missing the 3DGS properties {', '.join(missing)}; an INRIA 3DGS .ply has "
            f"{', '.join(inria_property_names(0))} plus f_rest_* for SH degree > 0.",
        )
    partial_normals = [n for n in NORMAL if n in present]
    if partial_normals and len(partial_normals) < 3:
        raise InputFileError(
            path,
            f"has only some of the normal properties ({', '.join(partial_normals)}); expected "
            f"all of nx, ny, nz or none.",
        )
    num_rest = sum(n.startswith("f_rest_") for n in names)
    if num_rest not in _VALID_REST_COUNTS or not set(rest_names(num_rest)) <= present:
        raise InputFileError(
            path,
            f"has {num_rest} f_rest properties; a 3DGS scene of SH degree 0, 1, 2 or 3 has 0, "
            f"9, 24 or 45 of them, numbered from f_rest_0.",
        )
    expected = set(inria_property_names(_VALID_REST_COUNTS[num_rest]))
    stray = [n for n in names if _NUMBERED.fullmatch(n) and n not in expected]
    if stray:
        raise InputFileError(
            path,
            f"does not follow the INRIA 3DGS layout: unexpected properties {', '.join(stray)} "
            f"(a 3DGS scene has f_dc_0..2, scale_0..2 and rot_0..3).",
        )
    return num_rest


def _to_gaussians(vertex: np.ndarray, names: list[str], num_rest: int) -> Gaussians:
    """Copies the structured vertex array `vertex` [N] into float32 tensors (one copy in all)."""
    n = len(vertex)
    k1 = num_rest // 3  # K-1 higher-order coefficients per colour channel
    inria = set(inria_property_names(_VALID_REST_COUNTS[num_rest]))
    # f_rest is channel-major in the file ([N, 3, K-1]); gsplat wants [N, K-1, 3].
    rest = _columns(vertex, rest_names(num_rest)).reshape(n, 3, k1).transpose(0, 2, 1)
    return Gaussians(
        means=_float32_copy(_columns(vertex, POSITION)),
        scales=_float32_copy(_columns(vertex, SCALE)),
        quats=_float32_copy(_columns(vertex, ROTATION)),
        opacities=_float32_copy(vertex[OPACITY]),
        sh0=_float32_copy(_columns(vertex, SH_DC).reshape(n, 1, 3)),
        shN=_float32_copy(rest),
        extras={name: _float32_copy(vertex[name]) for name in names if name not in inria},
        normals=_float32_copy(_columns(vertex, NORMAL)) if NORMAL[0] in names else None,
    )


def _columns(vertex: np.ndarray, names: list[str]) -> np.ndarray:
    """[N, len(names)] array of the named fields: a view when they share one dtype."""
    if not names:
        return np.empty((len(vertex), 0), dtype=np.float32)
    return structured_to_unstructured(vertex[names])


def _float32_copy(array: np.ndarray) -> Tensor:
    """A contiguous float32 tensor copied from `array` (converting byte order/type on the way)."""
    out = np.empty(array.shape, dtype=np.float32)
    out[...] = array
    return torch.from_numpy(out)


def _check_finite(path: Path, gaussians: Gaussians) -> None:
    """Raises InputFileError naming the properties with NaN/inf and how many Gaussians hold them."""
    fields = {
        "x/y/z": gaussians.means,
        "f_dc_*": gaussians.sh0,
        "f_rest_*": gaussians.shN,
        OPACITY: gaussians.opacities,
        "scale_*": gaussians.scales,
        "rot_*": gaussians.quats,
        **gaussians.extras,
    }
    n = len(gaussians)
    bad_rows = torch.zeros(n, dtype=torch.bool)
    counts = {}
    for label, values in fields.items():
        bad = _nonfinite_rows(values.reshape(n, -1))
        if bad.any():
            counts[label] = int(bad.sum())
            bad_rows |= bad
    if counts:
        per_field = ", ".join(f"{label} in {c} Gaussians" for label, c in counts.items())
        raise InputFileError(
            path,
            f"holds NaN or infinite values ({per_field}; {int(bad_rows.sum())} of {n} Gaussians "
            f"in all). Expected finite values; repair the file or drop those Gaussians "
            f"(read_ply(..., allow_nonfinite=True) loads it as is).",
        )


def _check_rotations(path: Path, gaussians: Gaussians) -> None:
    """A zero quaternion is no rotation (normalising it gives NaN): refuse the file, naming how many."""
    zero = (gaussians.quats == 0).all(dim=1)
    if zero.any():
        raise InputFileError(
            path,
            f"holds {int(zero.sum()):,} of {len(gaussians):,} Gaussians whose rotation rot_0..3 is "
            f"all zeros, which is no rotation; expected quaternions of non-zero length (any length: "
            f"gsedit normalises them). Repair the file or drop those Gaussians.",
        )


def _nonfinite_rows(values: Tensor) -> Tensor:
    """[N] bool: rows of `values` [N, D] holding a NaN or inf."""
    # A row sum is non-finite whenever the row is, so only rows whose sum is non-finite need the
    # exact (memory-hungry, [N, D] bool) test; an overflowing sum of finite values is re-checked.
    suspect = ~torch.isfinite(values.sum(dim=1))
    rows = torch.nonzero(suspect).squeeze(1)
    suspect[rows] = ~torch.isfinite(values[rows]).all(dim=1)
    return suspect


# ---------------------------------------------------------------------------------------- write


def write_ply(gaussians: Gaussians, path: str | Path, ascii: bool = False) -> None:
    """Writes `gaussians` in the INRIA 3DGS layout, extras after it in sorted-name order.

    All properties are float32; binary little-endian by default, ASCII with `ascii=True` (slow for
    millions of Gaussians). Normals are written as zeros when absent. The file appears atomically:
    a reader never sees a half-written file and a failed write leaves any previous file untouched.
    """
    names, table = _vertex_table(gaussians)
    # [N] records viewing the table's rows (no copy); plyfile converts to little-endian if needed
    vertex = table.numpy().view(np.dtype([(name, np.float32) for name in names]))[:, 0]
    ply = PlyData([PlyElement.describe(vertex, "vertex")], text=ascii, byte_order="<")
    with atomic_path(path) as tmp:
        ply.write(str(tmp))


def _vertex_table(gaussians: Gaussians) -> tuple[list[str], Tensor]:
    """(property names, [N, P] float32 CPU table) of `gaussians` in INRIA order, extras last."""
    extras = sorted(gaussians.extras)
    inria = inria_property_names(gaussians.sh_degree)
    reserved = [name for name in extras if name in inria or _NUMBERED.fullmatch(name)]
    if reserved:
        raise ValueError(f"extra channels {reserved} clash with INRIA 3DGS property names")
    n = len(gaussians)
    table = torch.empty(n, len(inria) + len(extras), dtype=torch.float32)
    blocks = [
        gaussians.means,
        gaussians.normals if gaussians.normals is not None else torch.zeros(n, 3),
        gaussians.sh0.reshape(n, 3),
        # channel-major f_rest: the K-1 red coefficients, then green, then blue
        *(gaussians.shN[:, :, c] for c in range(3)),
        gaussians.opacities,
        gaussians.scales,
        gaussians.quats,
        *(gaussians.extras[name] for name in extras),
    ]
    start = 0
    for block in blocks:
        width = math.prod(block.shape[1:])
        # copy_ moves device and dtype on the way, into the strided column slice: no temporaries
        table[:, start : start + width].copy_(block.detach().reshape(n, width))
        start += width
    return inria + extras, table
