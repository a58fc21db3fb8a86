"""One writer per session folder: an OS lock (flock) on `DIR/.lock`.

The kernel drops a flock when its process ends, however it ends, so `kill -9` leaves no stale
lock. The lock file names its holder (pid, host, command, since when) so that a second writer can
say who it is waiting for. Readers (`gsedit eval`, `gsedit view`, the report) never take it.

Within one process the lock is re-entrant: `gsedit edit --refine` refines the folder it holds,
and `gsedit compare` runs ordinary sessions inside the comparison folder it holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from gsedit.errors import GseditError

LOCK_FILE = ".lock"

_held: dict[Path, list[int]] = {}  # folder -> [file descriptor, depth]
_held_guard = threading.Lock()


class SessionBusyError(GseditError):
    """Another process is writing the folder."""

    def __init__(self, folder: Path, holder: dict):
        self.folder, self.holder = folder, holder
        if holder.get("pid"):
            who = f"process {holder['pid']} on {holder.get('host', '?')}"
            if holder.get("command"):
                who += f" (`{holder['command']}`, since {holder.get('since', '?')})"
        else:
            who = "another process (it has not written its name yet)"
        stop = f"it (`kill {holder['pid']}`)" if holder.get("pid") else "it"
        super().__init__(
            f"{folder} is being written by {who}. One process writes a session at a time: wait "
            f"for it to finish, or stop {stop} and rerun this command (a stopped run keeps its "
            "finished turns and leaves no stale lock); `gsedit eval` and `gsedit view` can read "
            "the folder meanwhile."
        )


def _holder_of(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 65536).decode() or "{}")
    except (OSError, ValueError):
        return {}


def _describe_self() -> dict:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join(["gsedit", *sys.argv[1:]])[:500],
        "since": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _lock_exclusive(fd: int, tries: int = 5) -> None:
    """flock(LOCK_EX) without waiting for a writer; a few quick retries because `refuse_if_busy`
    holds a shared lock for a moment and must not make a free folder look busy."""
    for attempt in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if attempt == tries - 1:
                raise
            time.sleep(0.02)


class FolderLock:
    """The writer's lock of `folder`; `acquire` creates the folder (and only the lock file in it).

    Use as a context manager, or call `acquire` when the folder may be written (after the inputs
    were checked) and `release` at the end; `release` of a lock never acquired does nothing.
    """

    def __init__(self, folder: str | Path, reentrant: bool = True):
        """`reentrant`: this process may take it again while it holds it (a `gsedit.Session` may not:
        two session objects on one folder are two writers)."""
        self.folder = Path(folder)
        self.reentrant = reentrant
        self._key: Path | None = None

    def acquire(self) -> FolderLock:
        """Takes the lock, or raises SessionBusyError at once; removes what a killed writer left."""
        if self._key is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        key = self.folder.resolve()
        with _held_guard:
            if key in _held:
                if not self.reentrant:
                    raise SessionBusyError(self.folder, _holder_of(_held[key][0]))
                _held[key][1] += 1
                self._key = key
                return self
            fd = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)  # no O_TRUNC: the holder's name
            try:
                _lock_exclusive(fd)
            except BlockingIOError:
                holder = _holder_of(fd)
                os.close(fd)
                raise SessionBusyError(self.folder, holder) from None
            except BaseException:
                os.close(fd)
                raise
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(_describe_self()) + "\n").encode(), 0)
            _held[key] = [fd, 1]
            self._key = key
        remove_stale_temporaries(key)
        return self

    def release(self) -> None:
        if self._key is None:
            return
        with _held_guard:
            entry = _held[self._key]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[self._key]
                os.close(entry[0])  # closing drops the flock; the file stays (removing it would race)
        self._key = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def refuse_if_busy(folder: str | Path) -> None:
    """Raises SessionBusyError if another process holds `folder`'s lock; takes nothing, writes nothing.

    The command line asks this before it loads torch, so that a second writer is told at once."""
    with _held_guard:
        if Path(folder).resolve() in _held:
            return  # this process holds it (re-entrant); checked first: opening and closing the
            # lock file here would drop the held lock where flock is emulated by POSIX locks (NFS)
    try:
        fd = os.open(Path(folder) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return  # no lock file (or an unreadable one): the writer's own acquire decides
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SessionBusyError(Path(folder), _holder_of(fd)) from None
    finally:
        os.close(fd)  # also drops the shared lock this probe may have taken


@contextlib.contextmanager
def deferred_lock(folder: str | Path) -> Iterator[FolderLock]:
    """The lock of `folder`, not yet taken: the caller acquires it once its inputs are checked
    (so that bad input leaves no folder behind); released at the end of the block."""
    lock = FolderLock(folder)
    try:
        yield lock
    finally:
        lock.release()


def remove_stale_temporaries(folder: Path) -> None:
    """Removes the temporaries (`.NAME.XXXX.tmp`, see gsedit.atomic) that a killed writer left.

    Only the lock holder may: a reader cannot tell a stale temporary from one being written.
    """
    for tmp in folder.glob(".*.tmp"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
