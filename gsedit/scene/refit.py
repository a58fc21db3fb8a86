"""A scene refitted in another backend (3DGS <-> nerfacto) to its own renders, with what it cost
and how close it came (`gsedit convert`, `gsedit compare`, tools/bench_backends.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def refit(scene_file: str | Path, cameras_spec: str, max_side: int | None, backend: str, path: Path, device, config,
          on_step: Callable[[int, float], None] | None = None, on_start: Callable | None = None,
          session_iters: int | None = None, spz_axes: str = "auto") -> dict:
    """Fits `backend` to the renders of `scene_file` from the cameras of `cameras_spec` (at most
    `max_side` px) until it stops improving, writes it to `path`; returns its file, steps, why it
    stopped, seconds, peak memory and PSNR to the input's renders.

    Args:
        config: a scene.convert.ConvertConfig (its docstring has the stopping rule).
        on_step: called with (step, loss).
        on_start: called with the scene.convert.RefitStop (views, check interval, step cap)
            before the fit starts.
        session_iters: the --iters of the sessions the refit starts (its step cap scales with them).
        spz_axes: the axes of an .spz `scene_file` ("rub", "ply", or "auto": chosen by the cameras,
            as scene.files.choose_spz_axes); the entry's `spz_axes` and `spz_axes_note` say which.
    """
    from gsedit.cameras.formats import training_cameras
    from gsedit.memory import MemoryMeter
    from gsedit.scene.convert import RefitStop, nerfacto_preset_name, pooled_psnr, refit_scene
    from gsedit.scene.files import choose_spz_axes, file_format, load_scene_file, orient_spz, scene_cameras
    from gsedit.scene.nerfacto.config import NERFACTO_PRESETS

    source = load_scene_file(scene_file, device)
    choosing = spz_axes == "auto" and file_format(scene_file) == "spz"
    chooser = scene_cameras(scene_file, cameras_spec, None, source.bounds()) if choosing else None
    chosen_axes, axes_note = choose_spz_axes(source, chooser, scene_file, spz_axes)
    source = orient_spz(source, None, scene_file, chosen_axes or "rub")[0]
    cameras = training_cameras(cameras_spec, source, max_side)
    preset = nerfacto_preset_name(config, source.device) if backend == "nerfacto" else None
    stop = RefitStop.for_refit(config, cameras, preset and NERFACTO_PRESETS[preset].rays_per_batch, session_iters)
    if on_start is not None:
        on_start(stop)
    meter = MemoryMeter()
    meter.start(source.device)
    start = time.perf_counter()
    try:
        scene = refit_scene(source, cameras, backend, config, on_step=on_step, stop=stop)
        seconds = time.perf_counter() - start
        scene.save_as(path)
        agreement = pooled_psnr(scene.render(cameras).rgb, source.render(cameras).rgb)
    finally:
        rss, cuda = meter.peaks_mb()  # also stops the sampling thread when the refit fails
    return {
        "file": str(path),
        "iters": config.iters,
        **stop.record(),
        "nerfacto_preset": preset,
        "seconds": round(seconds, 3),
        "peak_rss_mb": rss,
        "peak_cuda_mb": cuda,
        "psnr_to_input": agreement,
        **({"spz_axes": chosen_axes, "spz_axes_note": axes_note} if chosen_axes else {}),
    }

