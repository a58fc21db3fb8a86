"""PyTorch files that come from users (checkpoints, weights): tensors and plain containers only.

`torch.load(weights_only=True)` everywhere: a pickled object in a downloaded checkpoint could run
code when unpickled, so gsedit refuses it and says so, instead of quoting torch's several paragraphs.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch

from gsedit.errors import InputFileError


def save_tensor_file(state: Any, path: str | Path) -> Path:
    """Writes `state` (tensors and plain containers) to `path` with torch.save, atomically, the same
    bytes for the same state: torch names the archive's root folder after the file it writes, which
    was the atomic write's randomly named temporary, so no two saves of a scene matched."""
    from gsedit.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:  # a file object: the root is "archive"
        torch.save(state, handle)
    return path


def load_tensor_file(path: str | Path, hint: str = "") -> Any:
    """The tensors and containers in `path`; InputFileError naming the file and why it is refused."""
    try:
        with warnings.catch_warnings():  # torch warns about a pickle protocol it then refuses anyway
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip, EOF and tensor errors all mean "not a tensor file"
        raise InputFileError(path, f"not a PyTorch checkpoint ({_unreadable_because(exc)}){hint}.") from exc


def _unreadable_because(exc: Exception) -> str:
    """Why torch.load(weights_only=True) refused a file, in one clause."""
    text = str(exc).strip()
    blocked = re.search(r"GLOBAL ([\w.]+)", text)
    if blocked:
        return (f"it holds pickled Python objects besides tensors ({blocked.group(1)}), which gsedit "
                "never loads: unpickling them could run code")
    unpickler = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    if unpickler:
        return f"its bytes are not a pickle of tensors: {unpickler.group(1).strip()}"
    first_line = text.splitlines()[0] if text else ""
    return f"torch.load could not read it: {type(exc).__name__}" + (f": {first_line}" if first_line else "")
