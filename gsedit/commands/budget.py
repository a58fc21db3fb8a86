"""`gsedit edit --gpu-memory`: the pre-flight memory estimate printed before any work, the editor
settings chosen to fit the budget, or a refusal naming what would fit (gsedit/edit/memory.py)."""

from __future__ import annotations

from dataclasses import fields

from gsedit.commands.progress import console
from gsedit.edit.memory import GB, Preflight, TurnShape, gb, plan, refusal
from gsedit.edit.session import Session, session_cameras

#: IP2PConfig fields that change memory, not edits (within the tolerances of
#: tests/models/test_memory_settings.py): a run's own, so --resume may change them
MEMORY_FIELDS = ("dtype", "attention", "vae_tiling", "max_batch", "offload")


def preflight(args, session: Session, plugins: dict, device, load_scene, adss: bool, ip2p_config) -> tuple[dict, Preflight | None]:
    """(the plug-in settings to build the editor with, the pre-flight) for the pending turns.

    The memory settings come from this command line (they may differ from the session's); with a
    budget (--gpu-memory, or the device's free memory on CUDA) the cheapest ones that fit are added
    and printed. Raises GseditError before any work when nothing fits. `adss`: whether the turns load
    ADSS; `ip2p_config`: the IP2PConfig of a settings dict (as sessions.py builds it).
    """
    run_settings = {name: getattr(args.ip2p, name) for name in MEMORY_FIELDS}
    plugins = dict(plugins, ip2p={**plugins["ip2p"], **run_settings})
    gpu_memory = getattr(args, "gpu_memory", None)  # commands that run sessions without the option
    budget = gpu_memory * GB if gpu_memory is not None else None
    free = None
    if device.type == "cuda":
        import torch

        free = float(torch.cuda.mem_get_info(device)[0])
        budget = free if budget is None else budget
    if budget is None:
        return plugins, None  # on CPU without --gpu-memory: no budget to keep
    shape, arch, segmenter = _turn_shape(session, plugins, load_scene, adss)
    config = ip2p_config(plugins["ip2p"])
    chosen = plan(shape, config, arch, budget, segmenter)
    console.print(
        f"memory: about {chosen.estimate.describe()} for {shape.gaussians:,} Gaussians at "
        f"{shape.width}x{shape.height}, budget {gb(budget)}"
        + (f"; chose {', '.join(chosen.chosen)}" if chosen.chosen else ""),
        highlight=False,
    )
    if not chosen.fits:
        raise refusal(shape, chosen, budget, config, arch, segmenter)
    plugins["ip2p"] = {**plugins["ip2p"], **{f.name: getattr(chosen.config, f.name) for f in fields(chosen.config)
                                            if f.name in MEMORY_FIELDS}}
    return plugins, Preflight(chosen, budget, free)


def _turn_shape(session: Session, plugins: dict, load_scene, adss: bool):
    """(TurnShape of the next turn, the editor's architecture or None, the segmenter's bytes)."""
    from gsedit.edit.memory import segmenter_bytes
    from gsedit.models.footprint import blip_large_params, editor_architecture, sam_params

    scene = load_scene(session.scene_path(session.last_finished()))
    cameras = session_cameras(session, scene)
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


