"""The memory pre-flight of a session's next turns (`--gpu-memory`, `Session.plan_memory`): the
estimate (gsedit/edit/memory.py), the editor settings chosen to fit the budget, or a refusal before
any work naming what would fit."""

from __future__ import annotations

from dataclasses import fields

from gsedit.edit.memory import GB, Preflight, TurnShape, gb, plan, refusal
from gsedit.edit.plugins import config_from_dict, needs_adss
from gsedit.edit.session import SessionFolder, session_cameras

#: IP2PConfig fields that change memory, not edits (within the tolerances of
#: tests/models/test_memory_settings.py): a run's own, so --resume may change them
MEMORY_FIELDS = ("dtype", "attention", "vae_tiling", "max_batch", "offload")


def memory_preflight(folder: SessionFolder, device, load_scene, run_settings: dict, gpu_memory: float | None
                     ) -> tuple[dict, Preflight | None, str | None]:
    """(the plug-in settings to build the editor with, the pre-flight, the line that reports it).

    `run_settings` are this run's values of MEMORY_FIELDS (they may differ from the session's); with a
    budget (`gpu_memory` GB, or the device's free memory on CUDA) the cheapest ones that fit are added.

    Raises:
        GseditError: before any work, when nothing fits the budget.
    """
    from gsedit.models.ip2p.config import IP2PConfig

    plugins = folder.data["plugins"]
    plugins = dict(plugins, ip2p={**plugins["ip2p"], **{k: v for k, v in run_settings.items() if k in MEMORY_FIELDS}})
    budget = gpu_memory * GB if gpu_memory is not None else None
    free = None
    if device.type == "cuda":
        import torch

        free = float(torch.cuda.mem_get_info(device)[0])
        budget = free if budget is None else budget
    if budget is None:
        return plugins, None, None  # on CPU without --gpu-memory: no budget to keep
    adss = needs_adss(folder)
    shape, arch, segmenter = _turn_shape(folder, plugins, load_scene, adss)
    config = config_from_dict(IP2PConfig, plugins["ip2p"])
    chosen = plan(shape, config, arch, budget, segmenter)
    line = (f"memory: about {chosen.estimate.describe()} for {shape.gaussians:,} Gaussians at "
            f"{shape.width}x{shape.height}, budget {gb(budget)}"
            + (f"; chose {', '.join(chosen.chosen)}" if chosen.chosen else ""))
    if not chosen.fits:
        raise refusal(shape, chosen, budget, config, arch, segmenter)
    plugins["ip2p"] = {**plugins["ip2p"], **{f.name: getattr(chosen.config, f.name) for f in fields(chosen.config)
                                            if f.name in MEMORY_FIELDS}}
    return plugins, Preflight(chosen, budget, free), line


def _turn_shape(folder: SessionFolder, plugins: dict, load_scene, adss: bool):
    """(TurnShape of the next turn, the editor's architecture or None, the segmenter's bytes)."""
    from gsedit.edit.memory import segmenter_bytes
    from gsedit.models.footprint import blip_large_params, editor_architecture, sam_params

    scene = load_scene(folder.scene_path(folder.last_finished()))
    cameras = session_cameras(folder, scene)
    gaussians = getattr(scene, "gaussians", None)
    shape = TurnShape(
        gaussians=len(gaussians) if gaussians is not None else 0,
        sh_degree=gaussians.sh_degree if gaussians is not None else 0,
        extras=2,
        views=len(cameras),
        width=cameras.width,
        height=cameras.height,
        editor=plugins["editor"],
        segmenter="adss" if adss else "none",
    )
    arch = editor_architecture(plugins["ip2p"]["model"]) if shape.editor == "ip2p" else None
    segmenter = segmenter_bytes(sam_params(plugins["adss"]["sam_model_type"]), blip_large_params()) if adss else 0.0
    return shape, arch, segmenter
