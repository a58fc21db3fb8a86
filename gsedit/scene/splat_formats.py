"""Splat files besides the INRIA `.ply`: Niantic `.spz`, SuperSplat/PlayCanvas `.compressed.ply`
and `.sog`, antimatter15 `.splat`; read wherever a scene is read, written by `--export` and
`gsedit convert`.

`.spz`, `.compressed.ply` and `.sog` are decoded (and `.spz`, `.compressed.ply` encoded) by the
`gsply` package; `.splat` (32 bytes per Gaussian: position and linear scale as float32, RGBA and
a wxyz quaternion as bytes, no higher SH bands) is simple enough to do here. Every format but
`.spz` shares the `.ply` convention (x right, y down, z forward: COLMAP's, RDF). An `.spz` file
holds RUB coordinates by its specification (what Niantic's library, its spz-convert and PDAL
write), so reading and writing it in "rub" axes turn the scene half a turn about x: y and z
negate, and so do the SH coefficients odd in y + z. PlayCanvas splat-transform 3.x (and so
SuperSplat) writes and reads `.spz` in the `.ply`'s own axes instead (the spz library's
"unspecified" mode): "ply" axes, no turn. scene/files.py picks the axes of a file by its cameras.

Quantisation (what a round trip costs): `.spz` positions 1/4096 of a unit (12 fractional bits),
log scales 1/16, colours and opacities 1/255, SH 1/128 or coarser; `.compressed.ply` positions
and scales in 11/10/11 bits of each 256-Gaussian chunk's range, colours 8 bits, SH 8 bits;
`.splat` colours and opacity 8 bits, quaternions 8 bits per component, no SH beyond degree 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from gsedit.errors import InputFileError
from gsedit.scene.gaussians import SH_C0, Gaussians

#: formats by the name ending that selects them; ".ply" is the INRIA layout (scene/ply.py)
SpzAxes = Literal["rub", "ply"]
FORMATS = {".compressed.ply": "compressed.ply", ".spz": "spz", ".sog": "sog", ".splat": "splat", ".ply": "ply"}
WRITABLE = ("ply", "spz", "compressed.ply", "splat")
#: sign of each higher-order SH coefficient (gsplat's order within a band, m = -l..l) under the
#: half turn about x between the .ply and .spz frames: the sign of the basis function's parity
#: in y times its parity in z
RDF_TO_RUB_SH = [-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1]
SPLAT_RECORD = np.dtype([("means", "<f4", 3), ("scales", "<f4", 3), ("rgba", "u1", 4), ("quats", "u1", 4)])


def splat_format(path: str | Path) -> str | None:
    """'ply', 'compressed.ply', 'spz', 'sog' or 'splat' from the file name; None for others."""
    name = Path(path).name.lower()
    for ending, fmt in FORMATS.items():
        if name.endswith(ending):
            return fmt
    return None


def file_format(path: str | Path) -> str | None:
    """The format of the file at `path`: its name's, except that a `.ply` holding PlayCanvas chunks
    is a compressed one whatever its name."""
    fmt = splat_format(path)
    return "compressed.ply" if fmt == "ply" and _is_compressed_ply(Path(path)) else fmt


def parse_formats(text: str, flag: str = "--export") -> list[str]:
    """'spz,splat' -> ['spz', 'splat']; unknown names are an error naming `flag`."""
    from gsedit.errors import GseditError

    names = [name.strip().lower().lstrip(".") for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in WRITABLE]
    if unknown:
        raise GseditError(f"{flag} {text!r}: gsedit writes {', '.join(WRITABLE)}; unknown: {', '.join(unknown)}.")
    return list(dict.fromkeys(names))


# -- read ----------------------------------------------------------------------------------------
def read_gaussians(path: str | Path, spz_axes: SpzAxes = "rub") -> Gaussians:
    """The Gaussians of a splat file of any format above, in the `.ply` frame.

    A `.ply` holding PlayCanvas chunks is read as a compressed one whatever its name.

    Args:
        spz_axes: the axes an `.spz` file holds: "rub" (its specification) or "ply" (splat-transform's).
    """
    path = Path(path)
    fmt = file_format(path)
    if fmt == "ply":
        from gsedit.scene.ply import read_ply

        return read_ply(path)
    if not path.is_file():
        raise InputFileError(path, f"file not found; expected a {fmt} splat file.")
    if fmt == "splat":
        return _read_splat(path)
    return _read_with_gsply(path, fmt, spz_axes)


def _is_compressed_ply(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return False  # read_ply names the problem
    return head.startswith(b"ply") and b"element chunk" in head and b"packed_position" in head


def _read_with_gsply(path: Path, fmt: str, spz_axes: SpzAxes) -> Gaussians:
    gsply = _gsply()
    try:
        if fmt == "spz":
            data = gsply.read_spz(path)
        elif fmt == "sog":
            from gsply.sog_reader import sogread

            data = sogread(path)
        else:
            data = gsply.plyread(path)
    except ImportError as e:  # .sog's WebP images need imagecodecs (gsply's [sogs] extra)
        from gsedit.errors import MissingPackageError

        raise MissingPackageError(f"Reading {path}", "imagecodecs", str(e)) from None
    except Exception as e:  # gsply reports broken files with ValueError, struct.error, zlib.error...
        raise InputFileError(path, f"is not a readable {fmt} splat file ({type(e).__name__}: {e}).") from e
    if data is None or len(data.means) == 0:
        raise InputFileError(path, f"holds no Gaussians (or is not a {fmt} file).")
    n = len(data.means)
    shN = np.asarray(data.shN if data.shN is not None else np.zeros((n, 0, 3)), np.float32).reshape(n, -1, 3)
    gaussians = Gaussians(
        means=_tensor(data.means), scales=_tensor(data.scales), quats=_tensor(data.quats),
        opacities=_tensor(data.opacities).reshape(n), sh0=_tensor(data.sh0).reshape(n, 1, 3), shN=_tensor(shN),
    )
    if fmt == "spz" and spz_axes == "rub":
        gaussians = half_turn_about_x(gaussians)
    if gaussians.nonfinite_fields():
        raise InputFileError(path, f"decodes to NaN or infinite values in {', '.join(gaussians.nonfinite_fields())}.")
    return gaussians


def _read_splat(path: Path) -> Gaussians:
    raw = path.read_bytes()
    if not raw or len(raw) % SPLAT_RECORD.itemsize:
        raise InputFileError(path, f"is {len(raw)} bytes, not a whole number of 32-byte .splat records.")
    records = np.frombuffer(raw, SPLAT_RECORD)
    rgba = records["rgba"].astype(np.float32) / 255  # [N, 4]
    alpha = np.clip(rgba[:, 3], 0.5 / 255, 1 - 0.5 / 255)  # 0 and 255 have no finite logit
    gaussians = Gaussians(
        means=_tensor(records["means"]),
        scales=_tensor(np.log(np.maximum(records["scales"], 1e-12))),
        quats=_tensor((records["quats"].astype(np.float32) - 128) / 128),
        opacities=_tensor(np.log(alpha / (1 - alpha))),
        sh0=_tensor((rgba[:, None, :3] - 0.5) / SH_C0),
        shN=torch.zeros(len(records), 0, 3),
    )
    if gaussians.nonfinite_fields():
        raise InputFileError(path, f"holds NaN or infinite values in {', '.join(gaussians.nonfinite_fields())}.")
    return gaussians


# -- write ---------------------------------------------------------------------------------------
def write_gaussians(gaussians: Gaussians, path: str | Path, spz_axes: SpzAxes = "rub") -> None:
    """Writes `gaussians` (the `.ply` frame) in the format the name of `path` says, atomically.

    Extra channels (relevance, labels) exist only in the `.ply` layout; the others drop them.

    Args:
        spz_axes: the axes an `.spz` file gets: "rub" (its specification, Niantic's viewers) or
            "ply" (what SuperSplat and splat-transform 3.x read).
    """
    from gsedit.atomic import atomic_path

    path = Path(path)
    fmt = splat_format(path)
    if fmt not in WRITABLE:
        raise InputFileError(path, f"gsedit writes {', '.join('.' + f for f in WRITABLE)} splat files, not this one.")
    gaussians = gaussians.to("cpu")
    if fmt == "ply":
        from gsedit.scene.ply import write_ply

        write_ply(gaussians, path)
        return
    with atomic_path(path) as tmp:
        if fmt == "splat":
            tmp.write_bytes(_splat_bytes(gaussians))
            return
        gsply = _gsply()
        # gsply picks the compressed writer from the name ending, so the temporary file gets one
        named = tmp.with_name(tmp.name + ".compressed.ply") if fmt == "compressed.ply" else tmp
        source = half_turn_about_x(gaussians) if fmt == "spz" and spz_axes == "rub" else gaussians
        data = _gsdata(gsply, source)
        if fmt == "spz":
            gsply.write_spz(named, data)
        else:
            gsply.plywrite(named, data, compressed=True)
        named.replace(tmp)


def _splat_bytes(g: Gaussians) -> bytes:
    n = len(g)
    records = np.zeros(n, SPLAT_RECORD)
    records["means"] = g.means.numpy()
    records["scales"] = g.scales.exp().numpy()
    rgb = (g.sh0.reshape(n, 3) * SH_C0 + 0.5).clamp(0, 1)
    alpha = torch.sigmoid(g.opacities)[:, None]
    records["rgba"] = (torch.cat([rgb, alpha], dim=1) * 255).round().numpy().astype(np.uint8)
    quats = torch.nn.functional.normalize(g.quats, dim=1)
    records["quats"] = (quats * 128 + 128).round().clamp(0, 255).numpy().astype(np.uint8)
    return records.tobytes()


def _gsdata(gsply, g: Gaussians):
    n = len(g)
    return gsply.GSData.from_arrays(
        means=g.means.numpy(), scales=g.scales.numpy(),
        quats=torch.nn.functional.normalize(g.quats, dim=1).numpy(), opacities=g.opacities.numpy(),
        sh0=g.sh0.reshape(n, 3).numpy(), shN=g.shN.numpy() if g.shN.shape[1] else None, format="ply",
    )


# -- shared --------------------------------------------------------------------------------------
def half_turn_about_x(g: Gaussians) -> Gaussians:
    """The Gaussians turned 180 degrees about x (y, z negated): the .ply <-> .spz frame change,
    its own inverse. Quaternions (wxyz) conjugate by the turn: w, x kept, y, z negated."""
    flip = torch.tensor([1.0, -1.0, -1.0])
    signs = torch.tensor(RDF_TO_RUB_SH[: g.shN.shape[1]])[None, :, None]
    return Gaussians(
        means=g.means * flip, scales=g.scales.clone(), quats=g.quats * torch.tensor([1.0, 1.0, -1.0, -1.0]),
        opacities=g.opacities.clone(), sh0=g.sh0.clone(), shN=g.shN * signs,
        extras={k: v.clone() for k, v in g.extras.items()}, normals=None if g.normals is None else g.normals * flip,
    )


def _tensor(array) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _gsply():
    try:
        import gsply
    except ImportError as e:
        from gsedit.errors import MissingPackageError

        raise MissingPackageError("Reading or writing .spz, .compressed.ply and .sog files", "gsply", str(e)) from None
    return gsply
