"""Start-up of the command line, side by side in one run: wall time of whole processes that answer
without running a command (`gsedit --help`, `gsedit edit --help`, an argument error, a busy-session
refusal) next to the floors they sit on (a bare interpreter, `import tyro`) and the reference a
command pays once it runs (`import torch`).

    python tools/bench_startup.py                  # 15 interleaved rounds
    python tools/bench_startup.py --rounds 30

Each round runs every case once, in a shuffled order, so load from other jobs falls on all cases
alike; the table gives the median and the spread (min-max) over rounds, and each case's median
over the import-tyro floor's.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GSEDIT = [sys.executable, "-m", "gsedit"]
HOLD_LOCK = ("import sys, time; from gsedit.edit.lock import FolderLock; FolderLock(sys.argv[1]).acquire(); "
             "print('held', flush=True); time.sleep(3600)")


def cases(folder: Path) -> dict[str, tuple[list[str], int, str]]:
    """name -> (argv, the exit code it must end with, text its output must hold)."""
    edit = ["edit", str(folder / "scene.ply"), "--cameras", "orbit:8", "--turn", "make the cube red"]
    return {
        "python -c pass (floor)": ([sys.executable, "-c", "pass"], 0, ""),
        "import tyro (floor)": ([sys.executable, "-c", "import tyro"], 0, ""),
        "gsedit --help": ([*GSEDIT, "--help"], 0, "usage: gsedit"),
        "gsedit edit --help": ([*GSEDIT, "edit", "--help"], 0, "usage: gsedit edit"),
        "argument error": ([*GSEDIT, *edit, "--bogus-option"], 2, "Unrecognized options"),
        "busy-session refusal": ([*GSEDIT, *edit, "--out", str(folder / "busy")], 1, "is being written by"),
        "import torch (reference)": ([sys.executable, "-c", "import torch"], 0, ""),
    }


def wall_seconds(argv: list[str], code: int, says: str) -> float:
    """The wall time of one run of `argv`, which must exit `code` and print `says`."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - start
    output = " ".join((done.stdout + done.stderr).split())
    if done.returncode != code or says not in output:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode} (expected {code}, saying {says!r}):\n{output}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "busy").mkdir()
        holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder / "busy")], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            assert holder.stdout.readline().strip() == "held"
            table = cases(folder)
            times: dict[str, list[float]] = {name: [] for name in table}
            for _ in range(args.rounds):
                for name in random.sample(list(table), len(table)):
                    times[name].append(wall_seconds(*table[name]))
        finally:
            holder.kill()
            holder.communicate()
    floor = statistics.median(times["import tyro (floor)"])
    print(f"wall seconds over {args.rounds} interleaved rounds (load average {os.getloadavg()[0]:.1f})")
    print(f"{'case':<28}{'median':>8}{'min':>8}{'max':>8}{'/ tyro':>8}")
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(f"{name:<28}{median:>8.3f}{min(seconds):>8.3f}{max(seconds):>8.3f}{median / floor:>7.2f}x")


if __name__ == "__main__":
    main()
