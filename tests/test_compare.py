"""`gsedit compare` from the command line: both backends from one scene, an interrupted refit
resumed without redoing the finished 3DGS session, grids, tables, appended turns, bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

pytest.importorskip("nerfstudio", reason="the nerfacto backend needs nerfstudio (see README)")

from gsedit.cli import main
from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene

SIZE = 24
ITERS = 6
TURNS = ["make the sphere red", "make the cube yellow"]
FAST = ["--editor", "synthetic", "--iters", str(ITERS), "--edit-every", "3", "--segmenter", "labels",
        "--no-densify", "--refit.iters", "40", "--refit.nerfacto-preset", "tiny", "--device", "cpu",
        "--quiet"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", autouse=True)
def offline():
    """No model downloads: CLIP and LPIPS are reported unavailable."""
    patch = pytest.MonkeyPatch()
    patch.setenv("HF_HUB_OFFLINE", "1")
    yield
    patch.undo()


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("input")
    cameras = write_synthetic_scene(folder / "scene.ply", SyntheticSceneConfig(points_per_object=200),
                                    n_cameras=4, size=SIZE)
    return folder / "scene.ply", cameras


def squashed(capsys) -> str:
    """What the command printed (rich wraps long lines), as one line."""
    captured = capsys.readouterr()
    return " ".join((captured.out + captured.err).split())


def compare(*args) -> int:
    return main(["compare", *map(str, args)])


@pytest.fixture(scope="module")
def finished(scene, tmp_path_factory):
    """A comparison whose nerfacto refit was interrupted at step 5, then resumed.

    Returns (out folder, modification times of the 3DGS session's files before the resume).
    """
    from gsedit.scene.nerfacto import scene as nerfacto

    ply, cameras = scene
    out = tmp_path_factory.mktemp("compare") / "run"
    original = nerfacto.fit_nerfacto

    def interrupted(*args, on_step=None, **kwargs):
        def step(index, loss):
            if index == 5:
                raise KeyboardInterrupt
            on_step(index, loss)

        return original(*args, on_step=step, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(nerfacto, "fit_nerfacto", interrupted)
    try:
        assert compare(ply, "--cameras", cameras, *[arg for t in TURNS for arg in ("--turn", t)],
                       "--out", out, *FAST) == 130
    finally:
        patch.undo()
    assert (out / "3dgs" / "turn_02" / "scene.ply").is_file()
    assert not (out / "refit" / "nerfacto").exists() or not any((out / "refit" / "nerfacto").iterdir())
    before = {p: p.stat().st_mtime_ns for p in (out / "3dgs").rglob("*") if p.is_file()}
    assert compare("--out", out, "--resume", "--quiet") == 0
    return out, before


def test_both_backends_edit_the_same_scene(finished, scene):
    out, _ = finished
    ply, _ = scene
    assert (out / "3dgs" / "turn_00" / "scene.ply").read_bytes() == ply.read_bytes()
    for index in (1, 2):
        assert (out / "3dgs" / f"turn_{index:02d}" / "scene.ply").is_file()
        assert (out / "nerfacto" / f"turn_{index:02d}" / "scene.ckpt").is_file()
    nerf_input = json.loads((out / "nerfacto" / "session.json").read_text())["input"]
    assert Path(nerf_input) == (out / "refit" / "nerfacto" / "scene.ckpt").resolve()

    from gsedit.scene.nerfacto.scene import NerfactoScene

    labels = json.loads(ply.with_suffix(".labels.json").read_text())
    refit = NerfactoScene.load(out / "refit" / "nerfacto" / "scene.ckpt")
    assert refit.label_names() == {int(k): v for k, v in labels.items()}


def test_resume_did_not_redo_the_finished_backend(finished):
    _, before = finished
    after = {p: p.stat().st_mtime_ns for p in before if p.exists()}
    unchanged = [p for p in before if p.suffix in (".ply", ".png") and after.get(p) == before[p]]
    assert len(unchanged) == len([p for p in before if p.suffix in (".ply", ".png")])


def test_compare_json_has_a_row_per_turn_and_backend(finished):
    out, _ = finished
    plan = json.loads((out / "compare.json").read_text())
    rows = {(r["turn"], r["backend"]): r for r in plan["results"]["rows"]}
    assert set(rows) == {(t, b) for t in (1, 2) for b in ("3dgs", "nerfacto")}
    for (turn, backend), row in rows.items():
        session = json.loads((out / backend / "session.json").read_text())
        record = session["turns"][turn - 1]
        assert row["seconds"] == record["seconds"] > 0
        assert math.isclose(row["seconds_per_iter"], record["seconds"] / ITERS)
        assert row["peak_rss_mb"] == record["peak_rss_mb"] > 0
        assert row["psnr_unedited"] is not None and row["miou"] is not None
        assert row["clip_text_image"] is None  # no CLIP weights here: reported, never invented
    assert {u["metric"] for u in plan["results"]["unavailable"]} >= {"clip"}
    refit = plan["refits"]["nerfacto"]
    assert refit["iters"] == 40 and refit["nerfacto_preset"] == "tiny" and refit["psnr_to_input"] > 12
    assert plan["results"]["editor_is_stand_in"] is True


def test_grids_show_before_and_after_of_each_backend(finished):
    from gsedit.edit.session import SessionFolder
    from gsedit.evaluation.report import shown_views

    out, _ = finished
    views = shown_views(SessionFolder.open(out / "3dgs"), 4)
    assert len(views) == 4
    factor = math.ceil(128 / SIZE)
    cell = SIZE * factor
    grid = iio.imread(out / "grids" / "turn_02.png")
    assert grid.shape == (4 * cell, 110 + 4 * cell, 3)
    rows = [("3dgs", 1), ("3dgs", 2), ("nerfacto", 1), ("nerfacto", 2)]
    for r, (backend, turn) in enumerate(rows):
        render = iio.imread(out / backend / f"turn_{turn:02d}" / "renders" / views[2])
        enlarged = np.repeat(np.repeat(render, factor, 0), factor, 1)
        assert np.array_equal(grid[r * cell:(r + 1) * cell, 110 + 2 * cell:110 + 3 * cell], enlarged)


def test_html_links_resolve(finished):
    import re

    out, _ = finished
    page = (out / "compare.html").read_text()
    links = re.findall(r"(?:src|href)='([^']+)'", page)
    assert "grids/turn_01.png" in links and "nerfacto/report.html" in links
    assert all((out / link).is_file() for link in links)
    assert "stand-in" in page and "not edit quality" in page and page.count("<tr>") == 1 + 1 + 1 + 4  # refit, turns tables


def test_resume_appends_a_turn_to_both_backends(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished[0], out)
    refit = out / "refit" / "nerfacto" / "scene.ckpt"
    stamp = refit.stat().st_mtime_ns
    assert compare("--out", out, "--resume", "--turn", "make the sphere blue", "--quiet") == 0
    for backend in ("3dgs", "nerfacto"):
        session = json.loads((out / backend / "session.json").read_text())
        assert [t["instruction"] for t in session["turns"]] == [*TURNS, "make the sphere blue"]
        assert session["settings"]["iters"] == ITERS  # the plan's settings, not this run's defaults
    assert refit.stat().st_mtime_ns == stamp
    assert (out / "grids" / "turn_03.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backends", "3dgs,mesh"], "give distinct names from 3dgs, nerfacto"),
        (["--backends", "3dgs,3dgs"], "give distinct names"),
        (["--turn", "  "], "empty instruction"),
        (["--views", "0"], "--views must be at least 1"),
        (["--refit.iters", "0"], "--refit.iters and --refit.points must be at least 1"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(scene, tmp_path, capsys, args, message):
    ply, cameras = scene
    out = tmp_path / "run"
    extra = [] if "--turn" in args else ["--turn", "make the sphere red"]
    assert compare(ply, "--cameras", cameras, *extra, "--out", out, *FAST, *args) == 1  # args win over FAST
    assert message in squashed(capsys)
    assert not (out / "3dgs").exists()


def test_an_existing_comparison_is_not_overwritten(finished, scene, capsys):
    ply, cameras = scene
    out, _ = finished
    stamp = (out / "compare.json").read_bytes()
    assert compare(ply, "--cameras", cameras, "--turn", "x red", "--out", out, *FAST) == 1
    assert "already holds a comparison" in squashed(capsys)
    assert (out / "compare.json").read_bytes() == stamp


def test_resume_needs_a_comparison(tmp_path, capsys):
    assert compare("--out", tmp_path, "--resume", "--quiet") == 1
    assert "holds no comparison" in squashed(capsys)


def test_convert_turns_an_edited_nerf_into_a_standard_ply(finished, scene, tmp_path, capsys):
    from plyfile import PlyData

    out, _ = finished
    ply, cameras = scene
    edited = out / "nerfacto" / "turn_02" / "scene.ckpt"
    target = tmp_path / "edited.ply"
    assert main(["convert", str(edited), "--cameras", str(cameras), "--out", str(target),
                 "--refit.iters", "30", "--refit.points", "800", "--quiet"]) == 0
    assert "dB to the input's renders" in squashed(capsys)
    names = [p.name for p in PlyData.read(str(target))["vertex"].properties]
    assert names[:3] == ["x", "y", "z"] and "f_dc_0" in names and "rot_3" in names and "label" in names
    labels = json.loads(ply.with_suffix(".labels.json").read_text())
    assert json.loads(target.with_suffix(".labels.json").read_text()) == labels
    # 3DGS to 3DGS is a re-encoding (another splat format, or a trainer folder's scene as a .ply), no refit
    assert main(["convert", str(ply), "--cameras", str(cameras), "--out", str(tmp_path / "x.ply")]) == 0
    assert "re-encoded" in squashed(capsys)
    assert main(["convert", str(edited), "--out", str(tmp_path / "x.ckpt")]) == 1
    assert "already a nerfacto scene" in squashed(capsys)


def test_chromium_shows_the_comparison_page(finished):
    """compare.html in headless Chromium: both grids decode at their full size, both tables render."""
    import html
    import re

    from tests.test_report_browser import CHECK_SCRIPT
    from tests.viewer.browser import dump_dom

    out, _ = finished
    check = out / "compare_check.html"
    check.write_text((out / "compare.html").read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    found = re.search(r'<pre id="gsedit-check">(.*?)</pre>', dump_dom(check.as_uri()), re.DOTALL)
    assert found, "the check script did not run"
    status = json.loads(html.unescape(found.group(1)))
    cell = SIZE * math.ceil(128 / SIZE)
    assert [i["width"] for i in status["images"]] == [110 + 4 * cell] * 2
    assert [t["rows"] for t in status["tables"]] == [1 + 1, 1 + 4]  # refits, turns x backends


def test_a_broken_input_leaves_the_folder_usable(scene, tmp_path, capsys):
    ply, cameras = scene
    out = tmp_path / "run"
    assert compare(tmp_path / "typo.ply", "--cameras", cameras, "--turn", "make the sphere red", "--out", out, *FAST) == 1
    assert "typo.ply" in squashed(capsys) and not (out / "compare.json").exists()
    broken = tmp_path / "cameras.json"
    broken.write_text("{")
    assert compare(ply, "--cameras", broken, "--turn", "make the sphere red", "--out", out, *FAST) == 1
    assert not (out / "compare.json").exists()


def test_an_orbit_is_made_once_around_the_input(scene, tmp_path):
    """Rebuilt around a 3DGS refit's wider bounds, orbit:N would circle other views."""
    from gsedit.cameras.formats import load_cameras
    from gsedit.edit.lock import FolderLock
    from gsedit.evaluation.compare import checked_cameras
    from gsedit.scene.ply import read_ply

    ply, _ = scene
    with FolderLock(tmp_path) as lock:
        spec, axes = checked_cameras(ply, "orbit:5@40x30", tmp_path, lock)
    assert spec == str((tmp_path / "cameras.json").resolve()) and axes is None  # not an .spz
    written, orbit = load_cameras(spec), load_cameras("orbit:5@40x30", bounds=read_ply(ply).bounds())
    assert torch.allclose(written.camtoworlds, orbit.camtoworlds, atol=1e-5)
    assert torch.allclose(written.Ks, orbit.Ks, atol=1e-4)


def test_keep_on_a_labelled_nerfacto_uses_its_labels(finished, scene, tmp_path):
    """--keep needs no ADSS when the scene has labels, also when they live inside a .ckpt."""
    out, _ = finished
    _, cameras = scene
    ckpt = out / "refit" / "nerfacto" / "scene.ckpt"
    assert main(["edit", str(ckpt), "--cameras", str(cameras), "--turn", "make the sphere red", "--keep", "cube",
                 "--editor", "synthetic", "--segmenter", "labels", "--iters", "2", "--out", str(tmp_path / "s"),
                 "--quiet"]) == 0
    assert (tmp_path / "s" / "turn_01" / "scene.ckpt").is_file()
