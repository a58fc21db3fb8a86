"""Atomic file and folder writes: a reader never sees a half-written file.

The temporaries are made by `tempfile` (mode 0600 / 0700, so that no one else can open them while
they fill); once renamed into place they get the mode any file the user creates would get
(0666 / 0777 less the umask), so that a session can be shared like any other folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it (Linux's /proc), else set and restored."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:  # os.umask can only be read by setting it: keep other threads out meanwhile
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _normal_mode(path: Path, base: int) -> None:
    os.chmod(path, base & ~current_umask())


def _temporary(make, path: Path):
    """`make` (mkstemp or mkdtemp) beside `path`; a failure names `path`, not a random name."""
    try:
        return make(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        exc.filename = str(path)
        raise


@contextlib.contextmanager
def _final_names(tmp: Path, path: Path) -> Iterator[None]:
    """An OSError about the temporary (or a file in it) names the final path the user asked for."""
    try:
        yield
    except OSError as exc:
        for attr in ("filename", "filename2"):
            name = getattr(exc, attr, None)
            if isinstance(name, (str, os.PathLike)) and str(name).startswith(str(tmp)):
                setattr(exc, attr, str(path) + str(name)[len(str(tmp)):])
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary(tempfile.mkstemp, path)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with _final_names(tmp_path, path):
            yield tmp_path
            _normal_mode(tmp_path, 0o666)
            os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yields a temporary folder beside `path`; it becomes `path` only when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(_temporary(tempfile.mkdtemp, path))
    try:
        with _final_names(tmp, path):
            yield tmp
            _normal_mode(tmp, 0o777)
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
