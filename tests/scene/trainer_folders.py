"""Trainers' output folders built the way each trainer writes them, around one labelled scene.

The scene lives in an arbitrary "COLMAP" world (tilted, offset, scaled), as a real capture does.
Each trainer then holds it in its own frame, exactly as its code does:

- INRIA (gaussian-splatting `train.py`): the COLMAP world itself; `point_cloud/iteration_N/
  point_cloud.ply`, `cameras.json` (scene/dataset_readers + utils/camera_utils.camera_to_JSON),
  `cfg_args` (the argparse Namespace's repr).
- nerfstudio (`ns-process-data` + `ns-train splatfacto`): the dataset's transforms.json holds
  OpenGL poses in the saved frame `applied_transform @ COLMAP`; the run works in
  `scale * transform @ COLMAP` (dataparser_transforms.json); config.yml is a YAML dump with Python
  tags; checkpoints `nerfstudio_models/step-{step:09d}.ckpt` hold the pipeline state dict
  (`_model.gauss_params.*`); `ns-export gaussian-splat` writes the INRIA layout in the run's frame.
- gsplat (`simple_trainer.py`): `yaml.dump(vars(cfg))` as cfg.yml, `ckpts/ckpt_{step}_rank0.pt`
  = {"step", "splats": state dict}, `ply/point_cloud_{step}.ply`, all in the frame of
  `normalize_world_space` over the COLMAP model at `data_dir`, trained at `data_factor`.

Every folder also holds a decoy at an earlier step (the scene shifted), so loading the wrong
step shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from gsedit.cameras.camera import Cameras
from gsedit.cameras.checks import as_numpy, rigid_inverse
from gsedit.cameras.colmap import write_colmap_model
from gsedit.cameras.inria import write_inria_cameras
from gsedit.cameras.nerfstudio import write_transforms_json
from gsedit.cameras.orbit import orbit_cameras
from gsedit.cameras.trainer_folders import LEGACY_COLMAP_APPLIED, gsplat_normalization
from gsedit.data.synthetic import SyntheticSceneConfig, make_synthetic_scene
from gsedit.scene.gaussians import Gaussians
from gsedit.scene.ply import write_ply
from gsedit.viewer.camera import matrix_to_quat

SIZE = 40  # training views' side in pixels
FACTOR = 2  # gsplat's data_factor: the COLMAP images are twice that
STEP, DECOY_STEP = 29999, 6999
CUBE = 1  # label of the synthetic cube


def similarity(rotation_axis, angle: float, translation, scale: float) -> np.ndarray:
    """[4, 4] scale * R(axis, angle) with a translation."""
    axis = np.asarray(rotation_axis, dtype=np.float64)
    axis /= np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    R = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
    T = np.eye(4)
    T[:3, :3] = scale * R
    T[:3, 3] = translation
    return T


#: where the synthetic scene sits in the capture's COLMAP world
COLMAP_WORLD = similarity([0.3, -1.0, 0.4], 0.9, [4.0, -2.5, 1.5], 2.5)


def move_gaussians(g: Gaussians, T: np.ndarray) -> Gaussians:
    """The Gaussians under the similarity T [4, 4] (isotropic scale): what a trainer in that frame holds."""
    scale = float(np.linalg.norm(T[:3, 0]))
    R = T[:3, :3] / scale
    q = torch.tensor(matrix_to_quat(R), dtype=torch.float32)
    w1, v1 = q[0], q[1:]
    w2, v2 = g.quats[:, :1], g.quats[:, 1:]  # q_R * q: rotate every Gaussian's frame by R
    quats = torch.cat([w1 * w2 - (v2 @ v1)[:, None], w1 * v2 + w2 * v1 + torch.cross(v1.expand_as(v2), v2, dim=1)], 1)
    means = g.means.double() @ torch.from_numpy(T[:3, :3]).T + torch.from_numpy(T[:3, 3])
    return Gaussians(means=means.float(), scales=g.scales + float(np.log(scale)), quats=quats,
                     opacities=g.opacities.clone(), sh0=g.sh0.clone(), shN=g.shN.clone(),
                     extras={k: v.clone() for k, v in g.extras.items()})


def move_cameras(cams: Cameras, T: np.ndarray) -> Cameras:
    """The same views in the frame T [4, 4] maps the world to (rotations kept unit)."""
    camtoworlds, _ = as_numpy(cams)
    moved = T @ camtoworlds
    moved[:, :3, :3] /= np.linalg.norm(T[:3, 0])
    return Cameras(torch.from_numpy(rigid_inverse(moved)).float(), cams.Ks.clone(), cams.width, cams.height,
                   list(cams.names))


@dataclass
class Capture:
    """One labelled scene and its training views, in the COLMAP world."""

    gaussians: Gaussians
    cameras: Cameras  # at the training size
    labels: dict[int, str]
    cube_centre: np.ndarray  # [3] in the COLMAP world
    points: np.ndarray = field(default=None)  # [P, 3] COLMAP's sparse points

    def shifted(self) -> Gaussians:
        """The decoy: the scene moved sideways by a third of its size."""
        g = self.gaussians.clone()
        g.means += torch.tensor([1.5, 0.0, 0.0])
        return g


def make_capture(views: int = 6) -> Capture:
    config = SyntheticSceneConfig(points_per_object=160, sh_degree=1, seed=2)
    g, labels = make_synthetic_scene(config)
    cams = orbit_cameras(views, g.bounds(), SIZE, SIZE)
    cube = next(o for o in config.objects if o.name == labels[CUBE]).center
    world = move_gaussians(g, COLMAP_WORLD)
    cube_world = COLMAP_WORLD[:3, :3] @ np.array(cube) + COLMAP_WORLD[:3, 3]
    points = world.means[::7].double().numpy()  # SfM points: a sample of the surfaces
    return Capture(world, move_cameras(cams, COLMAP_WORLD), labels, cube_world, points)


# -- INRIA ---------------------------------------------------------------------------------------
def write_inria_folder(folder: Path, capture: Capture) -> Path:
    write_ply(capture.shifted(), folder / "point_cloud" / f"iteration_{DECOY_STEP + 1}" / "point_cloud.ply")
    write_ply(capture.gaussians, folder / "point_cloud" / f"iteration_{STEP + 1}" / "point_cloud.ply")
    write_inria_cameras(capture.cameras, folder / "cameras.json")
    (folder / "cfg_args").write_text(
        f"Namespace(data_device='cuda', eval=False, images='images', model_path='{folder}', resolution=-1, "
        "sh_degree=3, source_path='/data/scene', white_background=False)"
    )
    return folder


# -- COLMAP dataset (gsplat's input) -----------------------------------------------------------------
def write_colmap_dataset(root: Path, capture: Capture) -> Path:
    """root/sparse/0 at FACTOR times the training size, with points3D; root/images/."""
    full = capture.cameras.resized(SIZE * FACTOR, SIZE * FACTOR)
    model = root / "sparse" / "0"
    write_colmap_model(full, model)
    lines = [f"{i + 1} {x!r} {y!r} {z!r} 128 128 128 0.5" for i, (x, y, z) in enumerate(capture.points.tolist())]
    (model / "points3D.txt").write_text("# POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[]\n" + "\n".join(lines) + "\n")
    (root / "images").mkdir(parents=True, exist_ok=True)
    return root


# -- gsplat --------------------------------------------------------------------------------------
@dataclass
class DefaultStrategy:
    """Stands in for gsplat's strategy dataclass, which cfg.yml dumps as a Python-tagged object."""

    prune_opa: float = 0.005
    refine_every: int = 100


def gsplat_frame(capture: Capture) -> np.ndarray:
    """[4, 4] COLMAP world -> gsplat's normalised frame, as its Parser computes it."""
    camtoworlds, _ = as_numpy(capture.cameras)
    return gsplat_normalization(camtoworlds, capture.points.astype(np.float32))


def write_gsplat_results(results: Path, data_dir: Path, capture: Capture) -> Path:
    """results/ as simple_trainer.py leaves it (run from results/.., cfg.yml names data_dir from there)."""
    T = gsplat_frame(capture)
    cfg = {"data_dir": str(data_dir.relative_to(results.parents[1])), "data_factor": FACTOR,
           "result_dir": str(results), "normalize_world_space": True, "sh_degree": 3,
           "ply_steps": [STEP + 1], "save_ply": True, "steps_scaler": 1.0,
           "strategy": DefaultStrategy(), "near_plane": 0.01, "camera_model": "pinhole"}
    results.mkdir(parents=True, exist_ok=True)
    (results / "cfg.yml").write_text(yaml.dump(cfg))
    for step, g in ((DECOY_STEP, capture.shifted()), (STEP, capture.gaussians)):
        moved = move_gaussians(g, T)
        splats = {"means": moved.means, "scales": moved.scales, "quats": moved.quats, "opacities": moved.opacities,
                  "sh0": moved.sh0, "shN": moved.shN}
        (results / "ckpts").mkdir(exist_ok=True)
        torch.save({"step": step, "splats": splats}, results / "ckpts" / f"ckpt_{step}_rank0.pt")
    exported = move_gaussians(capture.gaussians, T)
    exported.extras = {}
    write_ply(exported, results / "ply" / f"point_cloud_{STEP}.ply")
    return results


# -- nerfstudio ----------------------------------------------------------------------------------
def applied_transform() -> np.ndarray:
    """ns-process-data's COLMAP -> saved frame (written into transforms.json as applied_transform)."""
    A = np.eye(4)
    A[:3, :] = LEGACY_COLMAP_APPLIED
    return A


def dataparser_transform(capture: Capture) -> tuple[np.ndarray, float]:
    """(transform [4, 4] original -> run frame, scale) as nerfstudio's dataparser saves them:
    orient ("up"), centre the poses ("poses"), scale the largest position coordinate to 1."""
    saved = move_cameras(capture.cameras, applied_transform())
    centres = saved.centers.double().numpy()
    orient = similarity([1.0, 0.2, 0.0], 0.4, [0.0, 0.0, 0.0], 1.0)
    orient[:3, 3] = -orient[:3, :3] @ centres.mean(axis=0)
    scale = 1.0 / np.abs(centres @ orient[:3, :3].T + orient[:3, 3]).max()
    return orient @ applied_transform(), float(scale)


def write_nerfstudio_dataset(root: Path, capture: Capture) -> Path:
    """root/transforms.json: OpenGL poses in the saved frame, with its applied_transform."""
    path = root / "transforms.json"
    write_transforms_json(move_cameras(capture.cameras, applied_transform()), path)
    data = json.loads(path.read_text())
    data["applied_transform"] = applied_transform()[:3].tolist()
    path.write_text(json.dumps(data))
    return path


def nerfstudio_config(data: Path, experiment: str) -> str:
    """config.yml as ns-train dumps its TrainerConfig (Python tags included)."""
    parts = "\n".join(f"      - {p}" for p in data.parts)
    return f"""!!python/object:nerfstudio.engine.trainer.TrainerConfig
_target: !!python/name:nerfstudio.engine.trainer.Trainer ''
data: null
experiment_name: {experiment}
method_name: splatfacto
output_dir: !!python/object/apply:pathlib.PosixPath
- outputs
pipeline: !!python/object:nerfstudio.pipelines.base_pipeline.VanillaPipelineConfig
  _target: !!python/name:nerfstudio.pipelines.base_pipeline.VanillaPipeline ''
  datamanager: !!python/object:nerfstudio.data.datamanagers.full_images_datamanager.FullImageDatamanagerConfig
    _target: !!python/name:nerfstudio.data.datamanagers.full_images_datamanager.FullImageDatamanager ''
    data: null
    dataparser: !!python/object:nerfstudio.data.dataparsers.nerfstudio_dataparser.NerfstudioDataParserConfig
      _target: !!python/name:nerfstudio.data.dataparsers.nerfstudio_dataparser.Nerfstudio ''
      auto_scale_poses: true
      center_method: poses
      data: !!python/object/apply:pathlib.PosixPath
{parts}
      orientation_method: up
      scale_factor: 1.0
  model: !!python/object:nerfstudio.models.splatfacto.SplatfactoModelConfig
    _target: !!python/name:nerfstudio.models.splatfacto.SplatfactoModel ''
    sh_degree: 3
    background_color: random
timestamp: 2024-05-01_120000
"""


def write_nerfstudio_run(run: Path, dataset: Path, capture: Capture) -> Path:
    """run/ as ns-train writes it (config.yml naming `dataset` relative to run's grand-grandparent),
    plus run/exports/splat.ply as `ns-export gaussian-splat` writes it."""
    transform, scale = dataparser_transform(capture)
    S = np.diag([scale, scale, scale, 1.0]) @ transform
    run.mkdir(parents=True, exist_ok=True)
    base = run.parents[3]  # ns-train ran from here: outputs/EXPERIMENT/splatfacto/TIMESTAMP
    (run / "config.yml").write_text(nerfstudio_config(dataset.relative_to(base), run.parents[1].name))
    (run / "dataparser_transforms.json").write_text(
        json.dumps({"transform": transform[:3].tolist(), "scale": scale}, indent=4))
    models = run / "nerfstudio_models"
    models.mkdir(exist_ok=True)
    for step, g in ((DECOY_STEP, capture.shifted()), (STEP, capture.gaussians)):
        moved = move_gaussians(g, S)
        n = len(moved)
        pipeline = {"_model.gauss_params.means": moved.means, "_model.gauss_params.scales": moved.scales,
                    "_model.gauss_params.quats": moved.quats, "_model.gauss_params.features_dc": moved.sh0.reshape(n, 3),
                    "_model.gauss_params.features_rest": moved.shN, "_model.gauss_params.opacities": moved.opacities[:, None],
                    "datamanager.train_camera_optimizer.pose_adjustment": torch.zeros(6, 6)}
        torch.save({"step": step, "pipeline": pipeline, "optimizers": {"means": {"state": {}, "param_groups": []}},
                    "scalers": {}}, models / f"step-{step:09d}.ckpt")
    exported = move_gaussians(capture.gaussians, S)
    exported.extras = {}
    write_ply(exported, run / "exports" / "splat.ply")
    return run
