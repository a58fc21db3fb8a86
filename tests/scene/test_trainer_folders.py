"""Trainers' output folders as scenes and cameras: the right step, the scene where the cameras put it,
the same images from every trainer's frame, and mismatched frames refused before any work."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from gsedit.cli import main
from gsedit.errors import GseditError, InputFileError
from gsedit.scene.files import load_scene_file, scene_cameras
from gsedit.scene.gaussian_scene import GaussianScene
from gsedit.scene.ply import write_ply
from tests.scene.trainer_folders import (
    DECOY_STEP,
    STEP,
    make_capture,
    write_colmap_dataset,
    write_gsplat_results,
    write_inria_folder,
    write_nerfstudio_dataset,
    write_nerfstudio_run,
)

DATA_PLY = Path(__file__).parent / "data" / "splats.ply"
PNG_STEP = 1 / 255  # renders written as 8-bit PNG: equal images differ by at most one rounding step
FLOAT_TOL = 2e-4  # the same scene in another frame: float32 transforms of the Gaussians and the poses
ALPHA_CUT = 1 / 255  # the most one Gaussian at the rasterizer's alpha cut adds to a pixel


@pytest.fixture(scope="module")
def capture():
    return make_capture()


@pytest.fixture(scope="module")
def folders(tmp_path_factory, capture) -> dict[str, Path]:
    """A capture's dataset and the three trainers' outputs, laid out as the trainers run from `root`."""
    root = tmp_path_factory.mktemp("trainers")
    dataset = write_colmap_dataset(root / "data" / "garden", capture)
    write_nerfstudio_dataset(dataset, capture)
    run = write_nerfstudio_run(root / "outputs" / "garden" / "splatfacto" / "2024-05-01_120000", dataset, capture)
    return {
        "inria": write_inria_folder(root / "output" / "4f3a9c1e-0", capture),
        "nerfstudio": run,
        "gsplat": write_gsplat_results(root / "results" / "garden", dataset, capture),
        "dataset": dataset,
    }


@pytest.fixture(scope="module")
def reference(capture) -> torch.Tensor:
    """[C, H, W, 3] the capture rendered in its own COLMAP world."""
    return GaussianScene(capture.gaussians).render(capture.cameras).rgb


def render_cli(tmp_path: Path, *args) -> np.ndarray:
    out = tmp_path / "renders"
    assert main(["render", *map(str, args), "--out", str(out), "--device", "cpu"]) == 0
    return np.stack([iio.imread(p) for p in sorted((out / "rgb").glob("*.png"))]).astype(np.float32) / 255


def cube_offsets(images: np.ndarray, capture) -> list[float]:
    """Per view where the blue cube shows: pixel distance from its pixels' centroid to the projection
    of its centre through the capture's own cameras."""
    cams = capture.cameras
    centre = torch.tensor(capture.cube_centre, dtype=torch.float32)
    cam = centre @ cams.viewmats[:, :3, :3].transpose(1, 2) + cams.viewmats[:, :3, 3]  # [C, 3]
    uv = (cam[:, None, :] @ cams.Ks.transpose(1, 2))[:, 0]  # [C, 3]
    uv = (uv[:, :2] / uv[:, 2:]).numpy()
    offsets = []
    for image, target in zip(images, uv):
        blue = (image[..., 2] > 0.55) & (image[..., 0] < 0.35)
        if blue.sum() < 4:
            continue
        ys, xs = np.nonzero(blue)
        offsets.append(float(np.hypot(xs.mean() + 0.5 - target[0], ys.mean() + 0.5 - target[1])))
    return offsets


@pytest.mark.parametrize("kind", ["inria", "nerfstudio", "gsplat"])
def test_a_trainer_folder_renders_its_scene_where_its_cameras_put_it(folders, capture, reference, kind, tmp_path):
    images = render_cli(tmp_path, folders[kind])
    assert np.abs(images - reference.numpy()).max() <= PNG_STEP + 1e-6
    offsets = cube_offsets(images, capture)
    assert len(offsets) >= 4 and max(offsets) < 3.0, offsets  # the cube, 8 px wide, where it projects


@pytest.mark.parametrize("kind, step", [("inria", STEP + 1), ("nerfstudio", STEP), ("gsplat", STEP)])
def test_info_names_the_trainer_and_its_last_step(folders, kind, step, capsys):
    assert main(["info", str(folders[kind])]) == 0
    out = capsys.readouterr().out
    assert f"step {step} " in out and "6 views, 40x40, in the scene's frame" in out and "gaussians:   800" in out


@pytest.mark.parametrize("kind, step", [("inria", DECOY_STEP + 1), ("nerfstudio", DECOY_STEP), ("gsplat", DECOY_STEP)])
def test_iteration_picks_an_earlier_step(folders, capture, reference, kind, step, tmp_path):
    scene = load_scene_file(folders[kind], "cpu", iteration=step)
    cams = scene_cameras(folders[kind], None, None, scene.bounds()).cameras
    assert not torch.allclose(scene.render(cams).rgb, reference, atol=0.1)  # the decoy: the scene moved
    with pytest.raises(InputFileError, match=rf"has no (step|iteration) 12345 \(it has: .*{step}"):
        load_scene_file(folders[kind], "cpu", iteration=12345)


def test_the_same_scene_from_every_trainer_renders_the_same_images(folders, capture, reference):
    """INRIA .ply + cameras.json; ns-export splat + the dataset's transforms.json through the run's
    dataparser transform; gsplat's normalised .ply + the COLMAP model through the gsplat folder."""
    run, results = folders["nerfstudio"], folders["gsplat"]
    inputs = {
        "inria": (folders["inria"] / "point_cloud" / f"iteration_{STEP + 1}" / "point_cloud.ply",
                  str(folders["inria"] / "cameras.json"), None),
        "nerfstudio": (run / "exports" / "splat.ply", str(folders["dataset"] / "transforms.json"),
                       run / "dataparser_transforms.json"),
        "gsplat": (results / "ply" / f"point_cloud_{STEP}.ply", str(results), None),
    }
    for name, (scene_file, cameras, dataparser) in inputs.items():
        scene = load_scene_file(scene_file, "cpu")
        cams = scene_cameras(scene_file, cameras, dataparser, scene.bounds()).cameras
        error = (scene.render(cams).rgb - reference).abs()
        # float32 transforms; a Gaussian whose alpha sits at the rasterizer's 1/255 cut may drop out
        # of one pixel in one frame (its whole contribution: under 1/255), nowhere else
        assert (error > FLOAT_TOL).sum() <= 3 and error.max() < ALPHA_CUT, (name, float(error.max()))


def test_dataparser_transforms_on_the_command_line(folders, reference, tmp_path):
    run = folders["nerfstudio"]
    images = render_cli(tmp_path, run / "exports" / "splat.ply", "--cameras", folders["dataset"] / "transforms.json",
                        "--dataparser-transforms", run / "dataparser_transforms.json")
    assert np.abs(images - reference.numpy()).max() <= PNG_STEP + 1e-6


def flipped_to_opengl(cameras_json: Path, out: Path) -> Path:
    """The INRIA cameras.json with OpenGL axes (camera y and z negated): a common conversion slip."""
    entries = json.loads(cameras_json.read_text())
    for entry in entries:
        entry["rotation"] = (np.array(entry["rotation"]) * [1, -1, -1]).tolist()
    out.write_text(json.dumps(entries))
    return out


@pytest.mark.parametrize("case", ["ns export + dataset transforms.json", "gsplat ply + raw COLMAP", "OpenGL as OpenCV"])
def test_a_mismatched_frame_is_refused_before_any_turn(folders, case, tmp_path, capsys):
    run, results, inria = folders["nerfstudio"], folders["gsplat"], folders["inria"]
    scene, cameras, hint = {
        "ns export + dataset transforms.json": (run / "exports" / "splat.ply", folders["dataset"] / "transforms.json",
                                                "--dataparser-transforms RUN/dataparser_transforms.json"),
        "gsplat ply + raw COLMAP": (results / "ply" / f"point_cloud_{STEP}.ply", folders["dataset"],
                                    "give the gsplat results folder (with cfg.yml) as --cameras"),
        "OpenGL as OpenCV": (inria, flipped_to_opengl(inria / "cameras.json", tmp_path / "gl.json"),
                             "OpenGL camera-to-world poses in a transforms.json"),
    }[case]
    out = tmp_path / "session"
    code = main(["edit", str(scene), "--cameras", str(cameras), "--turn", "make the cube red", "--editor", "synthetic",
                 "--segmenter", "none", "--iters", "2", "--out", str(out), "--quiet", "--device", "cpu"])
    captured = capsys.readouterr()
    message = " ".join((captured.out + captured.err).split())
    assert code == 1 and "do not see each other" in message and hint in message
    assert str(scene) in message and str(cameras) in message
    assert not (out / "session.json").exists() and not (out / "turn_00").exists()


def test_edit_a_trainer_folder_in_its_frame_with_exports(folders, capture, reference, tmp_path):
    """gsedit edit RUN: the run's cameras by default, turn_00 the run's Gaussians as a .ply in the run's
    frame, every turn also as .spz and .splat beside scene.ply."""
    out = tmp_path / "session"
    assert main(["edit", str(folders["nerfstudio"]), "--turn", "make the cube red", "--editor", "synthetic",
                 "--segmenter", "none", "--iters", "2", "--out", str(out), "--quiet", "--device", "cpu",
                 "--export", "spz,splat"]) == 0
    turn0 = GaussianScene.load(out / "turn_00" / "scene.ply")
    checkpoint = load_scene_file(folders["nerfstudio"], "cpu")
    assert torch.equal(turn0.gaussians.means, checkpoint.gaussians.means)  # the run's frame, unchanged
    renders = np.stack([iio.imread(p) for p in sorted((out / "turn_00" / "renders").glob("*.png"))]) / 255
    assert np.abs(renders - reference.numpy()).max() <= PNG_STEP + 1e-6
    for turn in ("turn_00", "turn_01"):
        ply = GaussianScene.load(out / turn / "scene.ply").gaussians
        for fmt in ("spz", "splat"):
            other = GaussianScene.load(out / turn / f"scene.{fmt}").gaussians
            assert len(other) == len(ply) and (other.means - ply.means).abs().max() < 1e-3
    session = json.loads((out / "session.json").read_text())
    assert session["cameras"] == str(folders["nerfstudio"].resolve())
    # the same command with --resume: no turn to run, the formats asked for now are added to every turn
    assert main(["edit", "--out", str(out), "--resume", "--turn", "make the cube red", "--quiet", "--device", "cpu",
                 "--export", "compressed.ply"]) == 0
    assert all((out / turn / "scene.compressed.ply").is_file() for turn in ("turn_00", "turn_01"))


def test_dataparser_cameras_are_kept_in_the_session(folders, reference, tmp_path):
    run = folders["nerfstudio"]
    out = tmp_path / "session"
    assert main(["edit", str(run / "exports" / "splat.ply"), "--cameras", str(folders["dataset"] / "transforms.json"),
                 "--dataparser-transforms", str(run / "dataparser_transforms.json"), "--turn", "make the cube red",
                 "--editor", "synthetic", "--segmenter", "none", "--iters", "2", "--out", str(out), "--quiet",
                 "--device", "cpu"]) == 0
    session = json.loads((out / "session.json").read_text())
    assert session["cameras"] == str((out / "transforms.json").resolve())
    renders = np.stack([iio.imread(p) for p in sorted((out / "turn_00" / "renders").glob("*.png"))]) / 255
    assert np.abs(renders - reference.numpy()).max() <= PNG_STEP + 1e-6


def test_compare_maps_the_cameras_once_for_every_backend(folders, reference, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the metrics' CLIP model: unavailable at once, not after a timeout
    run = folders["nerfstudio"]
    out = tmp_path / "cmp"
    assert main(["compare", str(run / "exports" / "splat.ply"), "--cameras", str(folders["dataset"] / "transforms.json"),
                 "--dataparser-transforms", str(run / "dataparser_transforms.json"), "--backends", "3dgs",
                 "--turn", "make the cube red", "--editor", "synthetic", "--segmenter", "none", "--iters", "2",
                 "--views", "2", "--out", str(out), "--quiet", "--device", "cpu", "--export", "spz"]) == 0
    plan = json.loads((out / "compare.json").read_text())
    assert (out / "3dgs" / "turn_01" / "scene.spz").is_file()
    assert plan["cameras"] == str((out / "transforms.json").resolve())
    renders = np.stack([iio.imread(p) for p in sorted((out / "3dgs" / "turn_00" / "renders").glob("*.png"))]) / 255
    assert np.abs(renders - reference.numpy()).max() <= PNG_STEP + 1e-6  # mapped once, not twice


def test_the_viewer_shows_a_trainer_folder(folders):
    from gsedit.viewer.content import ViewerContent

    content = ViewerContent.from_path(folders["gsplat"])
    assert len(content.scene(0)) == 800


def test_no_frame_check_goes_ahead(folders, tmp_path):
    run = folders["nerfstudio"]
    args = ["render", str(run / "exports" / "splat.ply"), "--cameras", str(folders["dataset"] / "transforms.json"),
            "--out", str(tmp_path / "r"), "--device", "cpu"]
    assert main(args) == 1 and not (tmp_path / "r").exists()
    assert main([*args, "--no-frame-check"]) == 0 and len(list((tmp_path / "r" / "rgb").glob("*.png"))) == 6


def test_an_edited_scene_goes_back_into_the_nerfstudio_run_as_its_latest_step(folders, tmp_path):
    import shutil

    run = tmp_path / "outputs" / "garden" / "splatfacto" / "ts"
    shutil.copytree(folders["nerfstudio"], run)
    edited = load_scene_file(run, "cpu").gaussians
    edited.sh0[:, 0, 0] += 1.0  # a visible edit
    write_ply(edited, tmp_path / "edited.ply")
    target = run / "nerfstudio_models" / f"step-{STEP + 1:09d}.ckpt"
    assert main(["convert", str(tmp_path / "edited.ply"), "--out", str(target)]) == 0
    state = torch.load(target, weights_only=True)
    assert state["step"] == STEP + 1 and "datamanager.train_camera_optimizer.pose_adjustment" in state["pipeline"]
    assert state["pipeline"]["_model.gauss_params.opacities"].shape == (800, 1)
    reloaded = load_scene_file(run, "cpu")  # what ns-viewer loads too: the latest step
    assert torch.equal(reloaded.gaussians.sh0, edited.sh0) and torch.equal(reloaded.gaussians.means, edited.means)


@pytest.mark.parametrize("kind, name, step", [
    ("nerfstudio", f"nerfstudio_models/step-{DECOY_STEP:09d}.ckpt", DECOY_STEP),
    ("gsplat", f"ckpts/ckpt_{DECOY_STEP}_rank0.pt", DECOY_STEP),
    ("gsplat", f"ply/point_cloud_{STEP}.ply", STEP),
    ("inria", f"point_cloud/iteration_{DECOY_STEP + 1}/point_cloud.ply", DECOY_STEP + 1),
])
def test_one_step_of_a_folder_is_that_step_with_the_folder_cameras(folders, kind, name, step):
    checkpoint = folders[kind] / name
    scene = load_scene_file(checkpoint, "cpu")
    assert torch.equal(scene.gaussians.means, load_scene_file(folders[kind], "cpu", step).gaussians.means)
    cams = scene_cameras(checkpoint, None, None, scene.bounds())
    assert cams.spec == str(folders[kind]) and len(cams.cameras) == 6


def test_a_folder_cameras_are_not_mapped_twice(folders):
    run = folders["nerfstudio"]
    with pytest.raises(GseditError, match="in the scene's frame already"):
        scene_cameras(run, None, run / "dataparser_transforms.json", None)


def test_a_batch_job_on_a_trainer_folder_needs_no_cameras(folders, tmp_path):
    import yaml

    from gsedit.batch.jobs import load_jobs

    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(yaml.safe_dump({"jobs": [
        {"scene": str(folders["gsplat"]), "turns": ["make the cube red"], "out": "a", "export": "spz"},
        {"scene": "exports/splat.ply", "turns": ["make the cube red"], "out": "b"},
    ]}))
    with pytest.raises(InputFileError, match=r"jobs\[1\]: missing cameras .*unless the scene is a trainer"):
        load_jobs(jobs)
    jobs.write_text(yaml.safe_dump({"jobs": [
        {"scene": str(folders["gsplat"]), "turns": ["make the cube red"], "out": "a", "export": "spz"}]}))
    (job,) = load_jobs(jobs).jobs
    assert job.edit.cameras is None and job.edit.export == "spz" and job.edit.scene == folders["gsplat"]


class _Payload:
    """A pickled object that would run code on load (weights_only refuses it)."""

    def __reduce__(self):
        return (print, ("this ran",))


def test_a_checkpoint_that_is_no_tensors_is_refused_unrun(folders, tmp_path, capsys):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(folders["gsplat"], results)
    torch.save({"step": STEP + 1, "splats": _Payload()}, results / "ckpts" / f"ckpt_{STEP + 1}_rank0.pt")
    with pytest.raises(InputFileError, match=r"not a PyTorch checkpoint \(it holds pickled Python objects besides "
                                             r"tensors \((builtins\.)?print\)"):
        load_scene_file(results, "cpu")
    assert "this ran" not in capsys.readouterr().out
    torch.save({"step": STEP + 1, "splats": {"means": torch.zeros(3, 3)}}, results / "ckpts" / f"ckpt_{STEP + 1}_rank0.pt")
    with pytest.raises(InputFileError, match="lacks scales, quats, opacities, sh0, shN"):
        load_scene_file(results, "cpu")


def test_a_multi_gpu_gsplat_step_is_every_rank_share(folders, tmp_path):
    """simple_trainer on N GPUs saves ckpt_STEP_rankR.pt, each with its share of the Gaussians."""
    import shutil

    results = tmp_path / "results"
    shutil.copytree(folders["gsplat"], results)
    whole = torch.load(results / "ckpts" / f"ckpt_{STEP}_rank0.pt", weights_only=True)
    for rank in range(2):
        share = {k: v[rank::2] for k, v in whole["splats"].items()}
        torch.save({"step": STEP + 1, "splats": share}, results / "ckpts" / f"ckpt_{STEP + 1}_rank{rank}.pt")
    means = load_scene_file(results, "cpu").gaussians.means
    assert torch.equal(means, torch.cat([whole["splats"]["means"][0::2], whole["splats"]["means"][1::2]]))


def test_iteration_on_a_scene_file_is_refused(folders):
    with pytest.raises(GseditError, match="--iteration 7000 picks a step of a trainer's output folder"):
        load_scene_file(DATA_PLY, "cpu", iteration=7000)


@pytest.mark.parametrize("kind, name", [("inria", f"point_cloud/iteration_{STEP + 2}/point_cloud.ply"),
                                        ("gsplat", f"ckpts/ckpt_{STEP + 1}_rank0.pt"),
                                        ("gsplat", f"ply/point_cloud_{STEP + 1}.ply")])
def test_an_edited_scene_goes_back_into_its_folder_in_the_trainer_layout(folders, kind, name, tmp_path):
    import shutil

    from plyfile import PlyData

    from gsedit.scene.ply import inria_property_names

    folder = tmp_path / kind
    shutil.copytree(folders[kind], folder)
    edited = load_scene_file(folder, "cpu").gaussians
    edited.sh0[:, 0, 0] += 1.0
    edited.extras["relevance"] = torch.rand(len(edited))  # gsedit's own channel, unknown to the trainer
    write_ply(edited, tmp_path / "edited.ply")
    assert main(["convert", str(tmp_path / "edited.ply"), "--out", str(folder / name)]) == 0
    if name.endswith(".ply"):  # exactly the properties the trainer writes
        names = [p.name for p in PlyData.read(str(folder / name))["vertex"].properties]
        assert names == inria_property_names(edited.sh_degree)
    else:
        assert set(torch.load(folder / name, weights_only=True)["splats"]) == {"means", "scales", "quats", "opacities",
                                                                                "sh0", "shN"}
    assert torch.equal(load_scene_file(folder, "cpu").gaussians.sh0, edited.sh0)  # the latest step now
