"""The command-line contract of DESIGN.md, checked from outside on files gsedit did not write."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import plyfile
import pytest

from gsedit.cli import _written_folder, main
from gsedit.data.synthetic import SyntheticSceneConfig, make_synthetic_scene, write_synthetic_scene
from gsedit.scene.gaussians import SH_C0

SIZE = 32


def small_config() -> SyntheticSceneConfig:
    return SyntheticSceneConfig(points_per_object=150, seed=1)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("labelled")
    cams = write_synthetic_scene(folder / "scene.ply", small_config(), n_cameras=4, size=SIZE)
    return folder / "scene.ply", cams


def write_foreign_scene(folder: Path) -> tuple[Path, Path]:
    """A scene and cameras as the INRIA 3DGS code writes them: SH degree 3, no labels, raw quaternions."""
    g, _ = make_synthetic_scene(small_config())
    n = len(g)
    rgb = g.sh0[:, 0, :] * SH_C0 + 0.5
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(45)] + ["opacity", "scale_0", "scale_1", "scale_2"]
    names += ["rot_0", "rot_1", "rot_2", "rot_3"]
    data = np.zeros(n, dtype=[(name, "f4") for name in names])
    for i, axis in enumerate("xyz"):
        data[axis] = g.means[:, i].numpy()
        data[f"scale_{i}"] = g.scales[:, i].numpy()
    for c in range(3):
        data[f"f_dc_{c}"] = ((rgb[:, c] - 0.5) / SH_C0).numpy()
        data[f"f_rest_{c * 15}"] = 0.01  # a little view dependence in band 1
    for i in range(4):
        data[f"rot_{i}"] = (g.quats[:, i] * 3.0).numpy()  # unnormalised, as trained files are
    data["opacity"] = g.opacities.numpy()
    path = folder / "point_cloud.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(data, "vertex")]).write(str(path))
    cams = []
    for i in range(4):
        angle = 2 * math.pi * i / 4
        centre = np.array([2.5 * math.cos(angle), 2.5 * math.sin(angle), 1.2])
        forward = -centre / np.linalg.norm(centre)
        right = np.cross(forward, [0, 0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        rotation = np.stack([right, down, forward], axis=1)  # camera-to-world, OpenCV axes
        cams.append({"id": i, "img_name": f"view{i}", "width": SIZE, "height": SIZE,
                     "position": centre.tolist(), "rotation": rotation.tolist(), "fx": 30.0, "fy": 30.0})
    cams_path = folder / "cameras.json"
    cams_path.write_text(json.dumps(cams))
    return path, cams_path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gsedit", *map(str, args)], capture_output=True, text=True, check=False)


def test_info_describes_the_scene(labelled, capsys):
    scene, _ = labelled
    assert main(["info", str(scene)]) == 0
    out = capsys.readouterr().out
    assert "backend:     3dgs" in out and "gaussians:   750" in out and "sh degree:   0" in out
    assert "extras:      label" in out and "2=sphere" in out


@pytest.fixture(scope="module")
def tiny_nerfacto(tmp_path_factory) -> Path:
    """A tiny nerfacto checkpoint with a 'relevance' channel."""
    pytest.importorskip("nerfstudio", reason="the nerfacto backend needs nerfstudio (see README)")
    import torch

    from gsedit.cameras.formats import load_cameras
    from gsedit.scene.nerfacto import NerfactoScene
    from tests.viewer.tiny_session import write_tiny_nerfacto

    path, cameras = write_tiny_nerfacto(tmp_path_factory.mktemp("nerfacto"))
    state = NerfactoScene.load(path).state()  # a short relevance fit, to keep the test fast
    scene = NerfactoScene.from_state({**state, "config": {**state["config"], "lift_steps": 2}})
    cams = load_cameras(cameras)
    scene.lift_channel("relevance", cams, torch.ones(len(cams), cams.height, cams.width))
    return scene.save_as(path)


def test_info_describes_a_nerfacto_checkpoint(tiny_nerfacto, capsys):
    from gsedit.scene.nerfacto import NerfactoScene

    assert main(["info", str(tiny_nerfacto)]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    values = {name: value.strip() for name, value in lines.items()}
    scene = NerfactoScene.load(tiny_nerfacto)
    parameters = sum(p.numel() for p in scene.network.parameters())
    lo, hi = scene.bounds()
    assert values["backend"] == "nerfacto" and values["steps trained"] == "4"
    assert values["parameters"] == f"{parameters:,}" and values["channels"] == "relevance"
    assert values["hash grid"].startswith("4 levels of 2^12 entries")  # the tiny preset
    assert values["bounds min"] == str([round(float(v), 4) for v in lo])
    assert values["bounds max"] == str([round(float(v), 4) for v in hi])
    assert "labels" not in values  # the checkpoint names no objects


def test_render_writes_one_png_per_view_and_a_sheet(labelled, tmp_path):
    import imageio.v3 as iio

    scene, cams = labelled
    assert main(["render", str(scene), "--cameras", str(cams), "--out", str(tmp_path), "--channels", "rgb,label", "--device", "cpu"]) == 0
    rgb = sorted((tmp_path / "rgb").glob("*.png"))
    assert len(rgb) == 4 and len(list((tmp_path / "label").glob("*.png"))) == 4
    image = iio.imread(rgb[0])
    assert image.shape == (SIZE, SIZE, 3) and image.std() > 5  # something was drawn
    assert (tmp_path / "rgb_sheet.png").is_file()


def test_edit_on_a_foreign_sh3_scene_writes_the_session_of_the_design(tmp_path):
    scene, cams = write_foreign_scene(tmp_path)
    out = tmp_path / "D"
    result = run_cli("edit", scene, "--cameras", cams, "--turn", "make the sphere red", "--turn",
                     "make the cube yellow", "--out", out, "--editor", "synthetic", "--device", "cpu",
                     "--iters", "6", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "stand-in" in result.stderr  # the synthetic editor is never presented as the real thing
    session = json.loads((out / "session.json").read_text())
    assert [t["status"] for t in session["turns"]] == ["done", "done"]
    assert (out / "turn_00" / "scene.ply").read_bytes() == scene.read_bytes()
    inria = [p.name for p in plyfile.PlyData.read(str(scene))["vertex"].properties]
    for k in (1, 2):
        turn = out / f"turn_{k:02d}"
        written = plyfile.PlyData.read(str(turn / "scene.ply"))["vertex"]
        names = [p.name for p in written.properties]
        assert names[: len(inria)] == inria and set(names[len(inria):]) <= {"relevance"}
        assert all(p.val_dtype in ("f4", "float32") for p in written.properties)
        assert len(list((turn / "renders").glob("*.png"))) == 4
        assert len(list((turn / "masks").glob("*.png"))) == 4
    assert (out / "report.html").is_file() and (out / "log.jsonl").is_file()


def test_resume_appends_a_turn_and_undo_drops_it(labelled, tmp_path):
    scene, cams = labelled
    out = tmp_path / "S"
    common = ["--editor", "synthetic", "--device", "cpu", "--iters", "4", "--quiet", "--segmenter", "labels"]
    assert main(["edit", str(scene), "--cameras", str(cams), "--turn", "make the sphere red", "--out", str(out), *common]) == 0
    assert main(["edit", "--out", str(out), "--resume", "--turn", "make the cube yellow", "--quiet"]) == 0
    assert (out / "turn_02" / "scene.ply").is_file()
    assert main(["undo", str(out)]) == 0
    assert not (out / "turn_02").exists() and (out / "turn_01").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "nope"], "Unknown method preset 'nope'"),
        (["--turn", "  "], "empty instruction"),
        (["--segmenter", "labels", "--target", "the dragon"], "No object of the scene is named in --target"),
        (["--turn", "give the sphere a hat"], "only understands"),
    ],
)
def test_bad_edit_input_gives_one_paragraph_and_no_traceback(labelled, tmp_path, args, message):
    scene, cams = labelled
    base = ["edit", scene, "--cameras", cams, "--out", tmp_path / "x", "--editor", "synthetic",
            "--device", "cpu", "--iters", "2", "--quiet"]
    if "--turn" not in args:
        base += ["--turn", "make the sphere red"]
    result = run_cli(*base, *args)
    assert result.returncode != 0
    assert message in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bad.ply", b"hello", "not a PLY"),
        ("bad.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nend_header\n", ""),
        ("bad.ckpt", b"hello", "not a PyTorch checkpoint (torch.load could not read it"),
        ("bad.ckpt", bytes(range(256)) * 8, "not a PyTorch checkpoint (its bytes are not a pickle of tensors"),
        ("bad.txt", b"hello", "expected a 3D Gaussian splatting .ply or a gsedit nerfacto .ckpt scene"),
    ],
)
def test_broken_scene_files_are_refused_with_the_file_named(tmp_path, name, content, message):
    bad = tmp_path / name
    bad.write_bytes(content)
    result = run_cli("info", bad)
    stderr = " ".join(result.stderr.split())
    assert result.returncode == 1 and str(bad) in stderr
    assert message in stderr and "Traceback" not in result.stderr


def test_malformed_cameras_are_refused(labelled, tmp_path):
    scene, _ = labelled
    cams = tmp_path / "cameras.json"
    cams.write_text('[{"id": 0, "width": 32}]')
    result = run_cli("render", scene, "--cameras", cams, "--out", tmp_path / "r", "--device", "cpu")
    assert result.returncode == 1 and "cameras.json" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command", ["info", "render", "edit", "undo", "demo", "fit", "segment", "refine", "eval", "view", "batch"]
)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and "usage: gsedit " + command in capsys.readouterr().out


def test_edit_interrupted_while_writing_the_input_leaves_no_session(labelled, tmp_path, monkeypatch):
    """Ctrl-C before turn_00 is complete: no session.json that could never resume; a rerun starts."""
    import gsedit.edit.start as run

    scene, cams = labelled
    out = tmp_path / "session"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "write_input_turn", interrupted)
    args = ["edit", str(scene), "--cameras", str(cams), "--turn", "make the cube red", "--editor", "synthetic",
            "--segmenter", "labels", "--iters", "2", "--out", str(out), "--quiet"]
    assert main(args) == 130
    assert not (out / "session.json").exists()
    monkeypatch.undo()
    assert main(args) == 0 and (out / "turn_01" / "scene.ply").is_file()


def test_edit_with_bad_cameras_writes_no_session(labelled, tmp_path):
    scene, _ = labelled
    broken = tmp_path / "cameras.json"
    broken.write_text("[{]")
    out = tmp_path / "session"
    assert main(["edit", str(scene), "--cameras", str(broken), "--turn", "make the cube red", "--out", str(out)]) == 1
    assert not out.exists() or not any(out.iterdir())


def test_output_into_a_closed_pipe_is_not_reported_as_a_fault():
    """`gsedit edit --help | head -1`: the reader goes away; no error paragraph, no --resume advice.

    The reader's end is closed before gsedit starts: a reader that leaves after one line races
    with the help text fitting in the pipe's buffer (then gsedit rightly exits 0)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "gsedit", "edit", "--help"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert "error" not in proc.stderr and "--resume" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "argv, folder",
    [
        (["edit", "s.ply", "--turn", "x", "--out", "A"], "A"),
        (["edit", "s.ply", "--turn", "x", "--out=A"], "A"),
        (["edit", "s.ply", "--turn", "x"], "session"),
        (["compare", "s.ply", "--turn", "x"], "compare"),
        # a repeated option: tyro (argparse) keeps the last value, so the probe must too
        (["edit", "s.ply", "--out", "A", "--turn", "x", "--out", "B"], "B"),
        (["edit", "s.ply", "--out=A", "--out", "B"], "B"),
        (["edit", "s.ply", "--out", "A", "--out=B"], "B"),
        (["undo", "A"], "A"),
        (["info", "--out", "A"], None),
    ],
)
def test_the_probed_folder_is_the_written_one(argv, folder):
    """The folder the busy-session probe checks is the one tyro will write."""
    assert _written_folder(argv) == (None if folder is None else Path(folder))
