"""What the command line says when the machine fails a command: a full disk, a folder it may not
write, a read-only file system, Ctrl-C. One paragraph: the file, the cause, the way out, and the
command that continues once the cause is gone (every gsedit write is atomic, so nothing already
written is lost and nothing half-written is left)."""

from __future__ import annotations

import errno
import os
import shlex
import signal
import sys
from collections.abc import Callable

from rich.markup import escape

from gsedit.commands.progress import console
from gsedit.errors import GseditError

#: errno -> (what happened, what to do about it)
_CAUSES = {
    errno.ENOSPC: ("the disk is full", "free some space on it or choose another --out"),
    errno.EDQUOT: ("the disk quota is used up", "free some space or choose another --out"),
    errno.EACCES: ("permission denied", "make the folder writable for you or choose another --out"),
    errno.EPERM: ("operation not permitted", "make the folder writable for you or choose another --out"),
    errno.EROFS: ("the file system is read-only", "choose an --out on a writable file system"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.EMFILE: ("too many open files", "raise the limit (`ulimit -n`)"),
}
#: commands whose output is a session (or a comparison of sessions) that --resume continues
_RESUMABLE = ("edit", "compare")


def continue_command(argv: list[str]) -> str:
    """The command line that continues `argv` after a failure or Ctrl-C (README, "Resuming")."""
    if argv[:1] and argv[0] in _RESUMABLE and "--resume" not in argv:
        argv = [*argv, "--resume"]
    return shlex.join(["gsedit", *argv])


def aftermath(argv: list[str]) -> str:
    """What is kept and how to go on, for the command of `argv`."""
    command = continue_command(argv)
    if argv[:1] and argv[0] in _RESUMABLE:
        return f"Finished turns are kept (the unfinished one is marked in session.json); `{command}` continues."
    if argv[:1] == ["batch"]:
        return f"Finished turns of every job are kept; `{command}` continues the unfinished jobs."
    return f"Rerun `{command}` to finish."


def os_error_message(exc: OSError) -> str:
    """'FILE: cause (strerror): what to do.' for an OSError raised anywhere in a command."""
    cause, cure = _CAUSES.get(exc.errno, (None, None))
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    where = " -> ".join(names) if names else "a file"
    detail = exc.strerror or str(exc)
    if cause is None:
        return f"{where}: {detail}."
    return f"{where}: {cause} ({detail}): {cure}."


def run_reporting_errors(run: Callable[[], None], argv: list[str], debug: bool) -> int:
    """Runs a command; its errors become one paragraph on the console and an exit status
    (no traceback unless --debug)."""
    try:
        run()
    except GseditError as exc:
        if debug:
            raise
        # escaped: a message may quote "[dev]" or "[/]", which rich would take for markup
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        if debug:
            raise
        console.print(f"[bold yellow]interrupted[/]: {escape(aftermath(argv))}", highlight=False, soft_wrap=True)
        return 130
    except BrokenPipeError:  # the reader of our output went away (`gsedit ... | head`): not a fault
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 128 + signal.SIGPIPE
    except (OSError, MemoryError, RuntimeError) as exc:  # torch.OutOfMemoryError is a RuntimeError
        if debug or not (isinstance(exc, (OSError, MemoryError)) or _gpu_out_of_memory(exc)):
            raise
        console.print(f"[bold red]error:[/] {escape(_fault_message(exc))} {escape(aftermath(argv))} "
                      "(--debug shows the traceback)", highlight=False, soft_wrap=True)
        return 1
    return 0


def _gpu_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is torch's out-of-memory error (torch is not imported to find out)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, torch.OutOfMemoryError)


def _fault_message(exc: OSError | MemoryError | RuntimeError) -> str:
    """One sentence on a fault outside a turn (a turn's own out-of-memory error says more)."""
    if isinstance(exc, OSError):
        return os_error_message(exc)
    if isinstance(exc, MemoryError):
        return f"out of memory ({exc})."
    first_line = (str(exc).strip().splitlines() or ["out of memory"])[0]
    return (f"out of GPU memory ({first_line}). Free the GPU of other jobs, or lower what this command "
            "holds at once (--max-side, --gpu-memory, --ip2p.max-batch where it takes them), or run it "
            "with --device cpu.")
