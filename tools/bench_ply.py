"""Times writing and reading an INRIA 3DGS .ply of a random scene and measures peak memory growth.

    python tools/bench_ply.py --n 3000000 --sh-degree 3

Peak RSS growth is VmHWM after a phase minus VmRSS before it, with VmHWM reset through
/proc/self/clear_refs (Linux only). For reading it includes the pages of the memory-mapped file
(page cache, counted in RSS while mapped) besides the tensors.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from gsedit.scene.gaussians import Gaussians, num_sh_bases
from gsedit.scene.ply import read_ply, write_ply


def random_gaussians(n: int, sh_degree: int, extras: list[str], seed: int = 0) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    k = num_sh_bases(sh_degree)
    return Gaussians(
        means=torch.randn(n, 3, generator=gen),
        scales=torch.randn(n, 3, generator=gen) - 4.0,
        quats=torch.randn(n, 4, generator=gen),
        opacities=torch.randn(n, generator=gen),
        sh0=torch.randn(n, 1, 3, generator=gen),
        shN=0.1 * torch.randn(n, k - 1, 3, generator=gen),
        extras={name: torch.rand(n, generator=gen) for name in extras},
    )


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def measure(fn):
    """(result, seconds, peak RSS growth in MiB) of calling `fn`."""
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    return result, seconds, (_status_kib("VmHWM") - before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3_000_000, help="number of Gaussians")
    parser.add_argument("--sh-degree", type=int, default=3, choices=range(4))
    parser.add_argument(
        "--extras", default="relevance,label", help="comma-separated extra channels"
    )
    parser.add_argument("--ascii", action="store_true", help="ASCII instead of binary (slow)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="folder for the file (default: temp)"
    )
    args = parser.parse_args()

    extras = [e for e in args.extras.split(",") if e]
    scene = random_gaussians(args.n, args.sh_degree, extras)
    floats = 14 + 3 * num_sh_bases(args.sh_degree) + len(extras)  # per Gaussian, normals included
    print(
        f"{args.n} Gaussians, SH degree {args.sh_degree}, extras {extras}: "
        f"{args.n * floats * 4 / 2**20:.0f} MiB of float32 in the file"
    )

    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = Path(folder) / "scene.ply"
        _, seconds, growth = measure(lambda: write_ply(scene, path, ascii=args.ascii))
        print(
            f"write: {seconds:.2f} s, peak RSS growth {growth:.0f} MiB, "
            f"file {path.stat().st_size / 2**20:.0f} MiB"
        )
        loaded, seconds, growth = measure(lambda: read_ply(path))
        print(f"read:  {seconds:.2f} s, peak RSS growth {growth:.0f} MiB")

    same = all(
        torch.equal(getattr(scene, f), getattr(loaded, f))
        for f in ("means", "scales", "quats", "opacities", "sh0", "shN")
    ) and all(torch.equal(scene.extras[e], loaded.extras[e]) for e in extras)
    print(f"round trip bit-exact: {same}")


if __name__ == "__main__":
    main()
