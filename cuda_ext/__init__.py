"""gsedit's native kernels: the sources, and their build on first use.

`cpu_kernels.cpp` (C++ on ATen's thread pool) registers `torch.ops.gsedit_native.*`: tile
intersection, compositing forward and closed-form backward, multi-channel back-projection.
`backproject.cu` is the multi-channel back-projection for CUDA, which gsplat has no kernel for; it
is plain CUDA C++ (no torch headers), so that any nvcc compiles it on its own.

Nothing is built at import. `build_cpu()` compiles the C++ with torch.utils.cpp_extension into
torch's extensions folder (`TORCH_EXTENSIONS_DIR`, by default ~/.cache/torch_extensions) under a
name carrying a hash of the source, so a changed source is a new build and an unchanged one loads
in milliseconds. `gsedit.render.native` decides whether to use it and falls back otherwise.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import sys
import time
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent
CPU_SOURCE = SOURCE_DIR / "cpu_kernels.cpp"
CUDA_SOURCE = SOURCE_DIR / "backproject.cu"
# -fno-trapping-math only lets the masked pixel loops vectorise (it changes no result: FP
# exceptions are never enabled); -march=native for the widest vectors of this CPU (the build is
# per machine, and its name carries the CPU's identity). No -ffast-math: it would change numbers.
# -fopenmp: ATen's parallel_for is a header template that only runs in parallel when the
# extension itself is compiled with OpenMP (it then shares torch's libgomp and thread count).
CPU_FLAGS = ["-O3", "-fno-trapping-math", "-march=native", "-fopenmp"]


def _build_name() -> str:
    """The extension's name: a hash of the source, the flags and torch's version (the ABI built
    against) and the CPU, so that each combination builds once."""
    import torch

    key = CPU_SOURCE.read_bytes() + " ".join([*CPU_FLAGS, torch.__version__, _cpu()]).encode()
    return f"gsedit_native_{hashlib.sha256(key).hexdigest()[:12]}"


def _cpu() -> str:
    """The CPU's model and instruction-set flags (-march=native code runs only where they match)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    fields = {}
    for line in lines:
        key = line.split(":", 1)[0].strip()
        if key in ("model name", "flags"):
            fields.setdefault(key, line)
    return " ".join(fields.values()) or platform.machine()


def build_cpu() -> None:
    """Compiles (once, cached) and loads the CPU kernels as `torch.ops.gsedit_native`.

    Prints one line to stderr while a build runs. Raises whatever the build raises (no compiler,
    no ninja, a compile error).
    """
    import torch
    from filelock import FileLock  # a dependency of torch; cpp_extension locks the same file

    name = _build_name()
    build_dir = _extensions_root() / name
    build_dir.mkdir(parents=True, exist_ok=True)
    library = build_dir / f"{name}.so"
    with FileLock(str(build_dir / "lock")):  # not while another process is building it
        built = library.exists()
    if built:  # no need for cpp_extension, nor for its CUDA_HOME warning
        torch.ops.load_library(str(library))
        return
    cpp_logger = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_logger.level
    cpp_logger.setLevel(logging.ERROR)  # "No CUDA runtime is found": irrelevant to a CPU build
    try:
        from torch.utils import cpp_extension
    finally:
        cpp_logger.setLevel(level)
    message = f"gsedit: compiling the native CPU kernels once (about 15 s) into {build_dir} ..."
    print(message, end="", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        cpp_extension.load(
            name=name,
            sources=[str(CPU_SOURCE)],
            extra_cflags=CPU_FLAGS,
            extra_ldflags=["-fopenmp"],
            build_directory=str(build_dir),
            is_python_module=False,
            verbose=False,
        )
    finally:
        print(f" {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


def _extensions_root() -> Path:
    """torch's extensions folder: TORCH_EXTENSIONS_DIR, else torch's default under the cache."""
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return Path(os.environ["TORCH_EXTENSIONS_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "torch_extensions"
