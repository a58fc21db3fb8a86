"""The Gaussians in a trainer's output folder (which folder is which: gsedit/cameras/trainer_folders.py).

- INRIA: `point_cloud/iteration_N/point_cloud.ply`, the highest N.
- nerfstudio splatfacto: the latest `nerfstudio_models/step-N.ckpt`; its `pipeline` state dict
  holds `gauss_params.{means, scales, quats, features_dc, features_rest, opacities}` (under the
  pipeline's `_model.` prefix): log scales, wxyz quaternions, logit opacities [N, 1], and colours
  as SH (`features_dc` is a colour logit when the model's `sh_degree` is 0, as `ns-export` knows).
- gsplat: the latest `ckpts/ckpt_STEP_rank0.pt` (its `splats`: means, scales, quats, opacities,
  sh0 [N, 1, 3], shN [N, K-1, 3], gsplat's own names; a multi-GPU run's ranks each hold a share, in
  ckpt_STEP_rankR.pt), else the latest `ply/point_cloud_STEP.ply`.

Checkpoints are read with `load_tensor_file` (weights only): tensors and plain containers only.
`write_trainer_step` writes an edited scene back as a new step in the trainer's own layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from gsedit.cameras.trainer_folders import (
    GSPLAT_CKPT,
    GSPLAT_PLY,
    INRIA_ITERATION,
    NERFSTUDIO_STEP,
    TRAINER_NAMES,
    lookup,
    numbered_files,
    pick_numbered,
    read_trainer_yaml,
    trainer_kind,
    trainer_step_file,
)
from gsedit.errors import InputFileError
from gsedit.scene.gaussians import Gaussians, rgb_to_sh0
from gsedit.torch_files import load_tensor_file, save_tensor_file

SPLATFACTO_PARAMS = ("means", "scales", "quats", "features_dc", "features_rest", "opacities")
GSPLAT_PARAMS = ("means", "scales", "quats", "opacities", "sh0", "shN")


@dataclass
class TrainerScene:
    """Where a trainer folder's Gaussians are: which trainer, which step, which file."""

    kind: str  # "inria" | "nerfstudio" | "gsplat"
    folder: Path
    step: int
    source: Path  # the .ply or checkpoint read

    def describe(self) -> str:
        return f"{TRAINER_NAMES[self.kind]}, step {self.step} ({self.source.relative_to(self.folder)})"


def find_trainer_scene(folder: str | Path, iteration: int | None = None) -> TrainerScene:
    """The scene file of a trainer folder: the highest iteration/step, or `iteration`."""
    folder = Path(folder)
    kind = trainer_kind(folder)
    if kind == "inria":
        found = numbered_files(folder / "point_cloud", INRIA_ITERATION, "point_cloud.ply")
        step, source = pick_numbered(folder / "point_cloud", found, iteration, "iteration_N/point_cloud.ply",
                                     "iteration")
    elif kind == "nerfstudio":
        found = numbered_files(folder / "nerfstudio_models", NERFSTUDIO_STEP)
        step, source = pick_numbered(folder / "nerfstudio_models", found, iteration, "step-N.ckpt checkpoint")
    elif kind == "gsplat":
        # a step's checkpoint where it has one (the trainer's own state), else its exported .ply
        found = {**numbered_files(folder / "ply", GSPLAT_PLY), **numbered_files(folder / "ckpts", GSPLAT_CKPT)}
        step, source = pick_numbered(folder, found, iteration, "ckpts/ckpt_STEP_rank0.pt or ply/point_cloud_STEP.ply")
    else:
        raise InputFileError(
            folder,
            "is a folder but not a trainer's output: expected an INRIA model folder (point_cloud/iteration_N/), "
            "a nerfstudio run folder (config.yml, nerfstudio_models/) or a gsplat results folder (cfg.yml, ckpts/).",
        )
    return TrainerScene(kind, folder, step, source)


def read_trainer_gaussians(found: TrainerScene) -> Gaussians:
    """The Gaussians of `found`, in the frame the trainer worked in."""
    if found.source.suffix == ".ply":
        from gsedit.scene.splat_formats import read_gaussians

        return read_gaussians(found.source)
    try:
        if found.kind == "nerfstudio":
            return _splatfacto_gaussians(found, _load_checkpoint(found.source))
        return _gsplat_gaussians(found.source)
    except ValueError as e:  # Gaussians' shape checks
        raise InputFileError(found.source, f"holds Gaussian tensors of inconsistent shapes ({e}).") from e


def _load_checkpoint(path: Path) -> dict:
    state = load_tensor_file(path)
    if not isinstance(state, dict):
        raise InputFileError(path, f"should hold a dict, found {type(state).__name__}.")
    return state


def _params(path: Path, table, names: tuple[str, ...], prefix_hint: str) -> dict[str, torch.Tensor]:
    """`names` from the state dict `table`, whose keys end in `prefix_hint + name`."""
    if not isinstance(table, dict):
        raise InputFileError(path, f"has no {prefix_hint}* tensors.")
    key = next((k for k in table if isinstance(k, str) and k.endswith(prefix_hint + names[0])), None)
    if key is None:
        raise InputFileError(path, f"has no {prefix_hint}{names[0]} tensor: not a Gaussian splatting checkpoint.")
    prefix = key[: -len(names[0])]
    missing = [n for n in names if prefix + n not in table]
    if missing:
        raise InputFileError(path, f"lacks {', '.join(prefix + n for n in missing)}.")
    return {n: table[prefix + n].detach().float() for n in names}


def _splatfacto_gaussians(found: TrainerScene, state: dict) -> Gaussians:
    p = _params(found.source, state.get("pipeline"), SPLATFACTO_PARAMS, "gauss_params.")
    n = len(p["means"])
    config = read_trainer_yaml(found.folder / "config.yml")
    sh_degree = lookup(config, "pipeline", "model", "sh_degree")
    dc = p["features_dc"].reshape(n, 1, 3)
    if sh_degree == 0:  # splatfacto then learns colour logits, not SH
        dc = rgb_to_sh0(torch.sigmoid(dc))
    return _checked(found.source, Gaussians(
        means=p["means"], scales=p["scales"], quats=p["quats"], opacities=p["opacities"].reshape(n),
        sh0=dc, shN=p["features_rest"].reshape(n, -1, 3),
    ))


def _gsplat_gaussians(rank0: Path) -> Gaussians:
    """A step's Gaussians: a multi-GPU run keeps a share of them per rank (ckpt_STEP_rankR.pt), which
    gsplat's viewer concatenates, so every rank's share is read, in rank order."""
    step = GSPLAT_CKPT.fullmatch(rank0.name).group(1)
    rank_file = re.compile(rf"ckpt_{step}_rank(\d+)\.pt")
    ranks = sorted((int(m.group(1)), p) for p in rank0.parent.iterdir() if (m := rank_file.fullmatch(p.name)))
    shares = []
    for _, path in ranks:
        splats = _load_checkpoint(path).get("splats")
        if isinstance(splats, dict) and "sh0" not in splats and "colors" in splats:
            raise InputFileError(path, "was trained with appearance optimisation (app_opt: colours from a network); "
                                       "use its exported ply/point_cloud_STEP.ply instead.")
        shares.append(_params(path, splats, GSPLAT_PARAMS, ""))
    p = {name: torch.cat([share[name] for share in shares]) for name in GSPLAT_PARAMS}
    n = len(p["means"])
    return _checked(rank0, Gaussians(
        means=p["means"], scales=p["scales"], quats=p["quats"], opacities=p["opacities"].reshape(n),
        sh0=p["sh0"].reshape(n, 1, 3), shN=p["shN"].reshape(n, -1, 3),
    ))


def trainer_step_target(path: str | Path) -> str | None:
    """The trainer ('inria', 'nerfstudio', 'gsplat') whose folder `path` names a new or existing step
    file of (RUN/nerfstudio_models/step-N.ckpt, RESULTS/ckpts/ckpt_N_rank0.pt,
    RESULTS/ply/point_cloud_N.ply, MODEL/point_cloud/iteration_N/point_cloud.ply); None otherwise."""
    found = trainer_step_file(path)
    return None if found is None else trainer_kind(found[0])


def write_trainer_step(gaussians: Gaussians, path: str | Path) -> Path:
    """Writes `gaussians` (in the trainer's frame) as the step file `path` of its trainer folder, in
    the trainer's own layout, so that its viewer, which loads the latest step, shows them: an INRIA
    or gsplat .ply without gsedit's extra channels, a gsplat checkpoint's `splats`, a splatfacto
    checkpoint (`write_splatfacto_checkpoint`)."""
    from dataclasses import replace

    from gsedit.scene.ply import write_ply

    path = Path(path)
    kind = trainer_step_target(path)
    if kind == "nerfstudio":
        return write_splatfacto_checkpoint(gaussians, path)
    plain = replace(gaussians.to("cpu"), extras={})
    if path.suffix == ".ply":
        write_ply(plain, path)
        return path
    step = int(GSPLAT_CKPT.fullmatch(path.name).group(1))
    splats = {name: getattr(plain, name).detach().clone() for name in GSPLAT_PARAMS}
    return save_tensor_file({"step": step, "splats": splats}, path)


def write_splatfacto_checkpoint(gaussians: Gaussians, path: str | Path) -> Path:
    """Writes `gaussians` (in the run's frame) as the run's checkpoint `path` (a new step-N.ckpt), so
    that `ns-viewer --load-config RUN/config.yml`, which loads the latest step, shows them.

    The pipeline state of the run's latest checkpoint is kept with its Gaussians replaced; optimiser
    state is left out (it has the old Gaussian count), so resuming training starts the optimisers afresh.
    """
    from gsedit.scene.gaussians import num_sh_bases, sh0_to_rgb

    path = Path(path)
    run = path.parent.parent
    latest = find_trainer_scene(run)
    state = _load_checkpoint(latest.source)
    pipeline = dict(state.get("pipeline", {}))
    _params(latest.source, pipeline, SPLATFACTO_PARAMS, "gauss_params.")  # a splatfacto state to build on
    prefix = next(k for k in pipeline if isinstance(k, str) and k.endswith("gauss_params.means"))[: -len("means")]
    sh_degree = lookup(read_trainer_yaml(run / "config.yml"), "pipeline", "model", "sh_degree")
    sh_degree = 3 if sh_degree is None else int(sh_degree)
    g = gaussians.to("cpu")
    n = len(g)
    dc = g.sh0.reshape(n, 3)
    if sh_degree == 0:  # splatfacto's colour logits
        dc = torch.logit(sh0_to_rgb(dc).clamp(1e-4, 1 - 1e-4))
    rest = torch.zeros(n, num_sh_bases(sh_degree) - 1, 3)
    k = min(rest.shape[1], g.shN.shape[1])
    rest[:, :k] = g.shN[:, :k]
    params = {"means": g.means, "scales": g.scales, "quats": g.quats, "features_dc": dc, "features_rest": rest,
              "opacities": g.opacities[:, None]}
    pipeline.update({prefix + name: value.detach().clone().float() for name, value in params.items()})
    step = int(NERFSTUDIO_STEP.fullmatch(path.name).group(1))
    return save_tensor_file({"step": step, "pipeline": pipeline, "optimizers": {}, "scalers": state.get("scalers", {})},
                            path)


def _checked(path: Path, gaussians: Gaussians) -> Gaussians:
    bad = gaussians.nonfinite_fields()
    if bad:
        raise InputFileError(path, f"holds NaN or infinite values in {', '.join(bad)}.")
    return gaussians
