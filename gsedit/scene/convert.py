"""One scene in another backend: fit a 3DGS or nerfacto scene to another scene's renders.

`gsedit compare` starts both backends from the same scene this way. A labelled source stays
labelled: each label's coverage is rendered with the colours and lifted onto the new scene, so the
`labels` segmenter, the stand-in editor and the mIoU metric see the same objects in both.
"""

from __future__ import annotations

import torch

from gsedit.cameras import Cameras
from gsedit.scene.base import Scene
from gsedit.scene.convert_config import Backend, ConvertConfig


def nerfacto_preset_name(config: ConvertConfig, device: torch.device) -> str:
    if config.nerfacto_preset != "auto":
        return config.nerfacto_preset
    return "nerfacto" if torch.device(device).type == "cuda" else "tiny"


def refit_scene(source: Scene, cameras: Cameras, backend: Backend, config: ConvertConfig, on_step=None) -> Scene:
    """A `backend` scene fitted to `source`'s renders of `cameras`, on `source`'s device.

    Args:
        on_step: called with (step, loss) after every optimisation step.
    """
    names = source.label_names()
    channels = [f"label={k}" for k in sorted(names)]
    views = source.render(cameras, channels)
    if backend == "nerfacto":
        from gsedit.scene.nerfacto.config import NERFACTO_PRESETS
        from gsedit.scene.nerfacto.scene import fit_nerfacto

        preset = NERFACTO_PRESETS[nerfacto_preset_name(config, source.device)]
        target = fit_nerfacto(views.rgb, cameras, config.iters, preset, bounds=source.bounds(),
                              seed=config.seed, on_step=on_step)
    else:
        from gsedit.scene.fit import fit_scene, random_init
        from gsedit.scene.gaussian_scene import GaussianScene

        target = GaussianScene(random_init(cameras, config.points, seed=config.seed)).to(source.device)
        fit_scene(target, cameras, views.rgb, config.iters, on_step)
    if names:
        target.lift_labels(names, cameras, torch.stack([views.channels[c] for c in channels]))
    return target
