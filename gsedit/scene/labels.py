"""The label-name sidecar of a labelled scene: `scene.ply` -> `scene.labels.json`.

A labelled scene stores a float `label` property per Gaussian in its `.ply`; the sidecar names the
label values: `{"0": "background", "1": "cube", ...}` (JSON object keys are strings).
"""

from __future__ import annotations

import json
from pathlib import Path

from gsedit.atomic import write_json
from gsedit.errors import InputFileError


def labels_path(ply_path: str | Path) -> Path:
    """The sidecar of `ply_path`: `scene.ply` -> `scene.labels.json`."""
    return Path(ply_path).with_suffix(".labels.json")


def read_labels(ply_path: str | Path) -> dict[int, str]:
    """Label id -> name from the sidecar of `ply_path`; {} when the scene has no sidecar.

    Raises:
        InputFileError: the sidecar is not a JSON object of integer-string keys to string names.
    """
    path = labels_path(ply_path)
    if not path.exists():
        return {}
    expected = 'expected a JSON object of integer ids to names, e.g. {"0": "background"}'
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputFileError(path, f"is not valid JSON ({e}); {expected}.") from e
    if not isinstance(data, dict):
        raise InputFileError(path, f"holds a JSON {type(data).__name__}; {expected}.")
    bad = {k: v for k, v in data.items() if not (_is_int_string(k) and isinstance(v, str))}
    if bad:
        shown = ", ".join(f"{k!r}: {v!r}" for k, v in list(bad.items())[:5])
        raise InputFileError(path, f"has entries that are not id -> name ({shown}); {expected}.")
    return {int(k): v for k, v in data.items()}


def write_labels(ply_path: str | Path, names: dict[int, str]) -> None:
    """Writes the sidecar of `ply_path` atomically, ids in increasing order."""
    bad = {k: v for k, v in names.items() if not (isinstance(k, int) and isinstance(v, str))}
    if bad:
        raise ValueError(f"label names must map int ids to str names, got {bad}")
    write_json(labels_path(ply_path), {str(k): names[k] for k in sorted(names)})


def _is_int_string(key: str) -> bool:
    """True for the canonical decimal form of an integer ("3", "-1"; not "03", " 3", "3.0")."""
    try:
        return str(int(key)) == key
    except ValueError:
        return False
