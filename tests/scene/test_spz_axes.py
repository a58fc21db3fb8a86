"""`.spz` files in either of the axes found today: the specification's RUB (Niantic's library,
splat-transform 2.x, splat-transform 3.x told to turn the scene) and the `.ply`'s own
(splat-transform 3.x and SuperSplat). Read in the axes under which the cameras see the scene,
they render like the `.ply` they were written from, within the `.spz` quantisation.

tests/scene/data/axes/ was written by splat-transform 3.10.2 (tools/make_spz_fixtures.py
regenerates it); splats.spz beside it by splat-transform 2.7.1 (test_splat_formats.py).
"""

from __future__ import annotations

from pathlib import Path

import gsply
import pytest
import torch

from gsedit.cameras.inria import write_inria_cameras
from gsedit.cameras.orbit import orbit_cameras
from gsedit.cli import main
from gsedit.scene.files import SceneCameras, load_scene_file, orient_spz, scene_cameras
from gsedit.scene.gaussian_scene import GaussianScene
from gsedit.scene.ply import read_ply
from gsedit.scene.splat_formats import half_turn_about_x

DATA = Path(__file__).parent / "data"
AXES = DATA / "axes"
CAMERAS = str(AXES / "cameras.json")
#: mean absolute difference of the .spz renders against the .ply's (8 views, 64 px, colours in [0, 1]):
#: measured 0.006 for both files read in their own axes, 0.215 for the 3.x file read as RUB
QUANTISED = 0.01


def oriented(name: str, cameras: str | None, axes: str = "auto"):
    path = AXES / name
    scene = load_scene_file(path, "cpu")
    cams = None if cameras is None else scene_cameras(path, cameras, None, scene.bounds())
    return orient_spz(scene, cams, path, axes)


@pytest.fixture(scope="module")
def expected():
    cams = scene_cameras(AXES / "scene.ply", CAMERAS, None, None).cameras
    return cams, GaussianScene(read_ply(AXES / "scene.ply")).render(cams).rgb


@pytest.mark.parametrize(("name", "axes", "said"), [("st3.spz", "ply", "the .ply's own axes"),
                                                    ("st3_rub.spz", "rub", "RUB axes, under which")])
def test_the_cameras_choose_the_axes_and_the_render_matches_the_ply(expected, name, axes, said):
    cams, rgb = expected
    scene, note = oriented(name, CAMERAS)
    assert said in note and name in note
    assert (scene.render(cams).rgb - rgb).abs().mean() < QUANTISED
    forced, _ = oriented(name, CAMERAS, "rub" if axes == "ply" else "ply")  # the other axes: upside down
    assert (forced.render(cams).rgb - rgb).abs().mean() > 10 * QUANTISED


def test_without_cameras_or_with_orbit_ones_an_spz_is_read_as_rub_and_said_so():
    plain = load_scene_file(AXES / "st3.spz", "cpu")
    for cameras, why in ((None, "no cameras to choose by"), ("orbit:4", "orbit cameras")):
        scene, note = oriented("st3.spz", cameras)
        assert "RUB" in note and why in note and "--spz-axes ply" in note
        assert torch.equal(scene.gaussians.means, plain.gaussians.means)
    scene, note = oriented("st3.spz", "orbit:4", "ply")
    assert "--spz-axes ply" in note
    assert (scene.gaussians.means - read_ply(AXES / "scene.ply").means).abs().max() < 2e-4


def test_a_scene_seen_alike_both_ways_is_read_as_rub_with_a_note(tmp_path):
    """splats.spz (splat-transform 2.7.1, RUB) centred on the origin, with cameras circling it: the
    half turn keeps it in every view, so the axes cannot be told apart."""
    reference = read_ply(DATA / "splats.ply")
    write_inria_cameras(orbit_cameras(8, reference.bounds(), 64, 64), tmp_path / "cameras.json")
    scene = load_scene_file(DATA / "splats.spz", "cpu")
    cams = scene_cameras(DATA / "splats.spz", str(tmp_path / "cameras.json"), None, scene.bounds())
    chosen, note = orient_spz(scene, cams, DATA / "splats.spz")
    assert "RUB" in note and "alike" in note and "--spz-axes ply" in note
    assert chosen is scene


def test_other_files_are_left_alone():
    scene = load_scene_file(AXES / "scene.ply", "cpu")
    cams = SceneCameras(orbit_cameras(2, scene.bounds(), 16, 16), None, "cams")
    assert orient_spz(scene, cams, AXES / "scene.ply", "ply") == (scene, None)


def test_render_and_info_say_which_axes(tmp_path, capsys):
    assert main(["render", str(AXES / "st3.spz"), "--out", str(tmp_path / "r"), "--cameras", CAMERAS,
                 "--device", "cpu"]) == 0
    assert "st3.spz: read in the .ply's own axes" in capsys.readouterr().out
    assert main(["info", str(AXES / "st3.spz")]) == 0
    info = capsys.readouterr().out
    assert "spz axes:" in info and "RUB" in info
    assert main(["info", str(AXES / "st3.spz"), "--spz-axes", "ply"]) == 0
    bounds = [line for line in capsys.readouterr().out.splitlines() if line.startswith("bounds min")]
    assert bounds and float(bounds[0].split()[-1].strip("[]")) > 2  # z of the scene moved to z = 3 in front of the origin


@pytest.mark.parametrize("axes", ["rub", "ply"])
def test_convert_writes_the_axes_asked_for(tmp_path, axes):
    out = tmp_path / "scene.spz"
    assert main(["convert", str(AXES / "scene.ply"), "--out", str(out), "--spz-axes", axes]) == 0
    reference = read_ply(AXES / "scene.ply")
    stored = torch.from_numpy(gsply.read_spz(out).means)  # as stored, in the .ply's order
    wanted = reference if axes == "ply" else half_turn_about_x(reference)
    assert (stored - wanted.means).abs().max() < 2e-4
    if axes == "ply":  # what splat-transform 3.x (SuperSplat) writes from the same .ply
        assert (stored - torch.from_numpy(gsply.read_spz(AXES / "st3.spz").means)).abs().max() < 2e-4


def test_convert_reads_an_spz_in_the_axes_its_cameras_choose(tmp_path):
    out = tmp_path / "back.ply"
    assert main(["convert", str(AXES / "st3.spz"), "--out", str(out), "--cameras", CAMERAS]) == 0
    assert (read_ply(out).means - read_ply(AXES / "scene.ply").means).abs().max() < 2e-4


class _Refitted(Exception):
    """Stops a refit at its start, with the scene it was given."""


@pytest.fixture
def refit_source(monkeypatch):
    """The source scene the next refit gets (the refit itself is not run)."""
    from gsedit.scene import convert

    def capture(source, *args, **kwargs):
        raise _Refitted(source)

    monkeypatch.setattr(convert, "refit_scene", capture)
    return _Refitted


def test_convert_refits_an_spz_in_the_axes_the_cameras_see(refit_source, tmp_path, capsys):
    """`gsedit convert st3.spz --out scene.ckpt` used to refit nerfacto on the file read as RUB:
    upside down to its cameras, so the refit learnt empty views."""
    reference = read_ply(AXES / "scene.ply").means
    with pytest.raises(refit_source) as caught:
        main(["convert", str(AXES / "st3.spz"), "--cameras", CAMERAS, "--out", str(tmp_path / "scene.ckpt"),
              "--device", "cpu", "--quiet"])
    assert (caught.value.args[0].gaussians.means - reference).abs().max() < 2e-4
    with pytest.raises(refit_source) as caught:
        main(["convert", str(AXES / "st3.spz"), "--cameras", CAMERAS, "--out", str(tmp_path / "scene.ckpt"),
              "--device", "cpu", "--quiet", "--spz-axes", "rub"])
    assert (caught.value.args[0].gaussians.means - reference).abs().max() > 0.1


def test_compare_refits_an_spz_and_edits_it_in_the_same_axes(refit_source, tmp_path):
    """The plan records the axes chosen once; the refit and every backend's session read the file so."""
    from gsedit.edit.lock import FolderLock
    from gsedit.edit.options import SessionOptions
    from gsedit.evaluation.compare import checked_cameras, planned_options, scene_for
    from gsedit.scene.convert_config import ConvertConfig

    with FolderLock(tmp_path) as lock:
        spec, axes = checked_cameras(AXES / "st3.spz", CAMERAS, tmp_path, lock)
    assert axes == "ply"
    plan = {"scene": str(AXES / "st3.spz"), "cameras": spec, "spz_axes": axes, "max_side": None, "refits": {},
            "settings": {"iters": 10}, "method": "gsedit", "editor": "synthetic", "plugins": {"ip2p": {}, "adss": {}}}
    with pytest.raises(refit_source) as caught:
        scene_for("nerfacto", plan, tmp_path, "cpu", ConvertConfig())
    assert (caught.value.args[0].gaussians.means - read_ply(AXES / "scene.ply").means).abs().max() < 2e-4
    assert planned_options(SessionOptions(), plan).spz_axes == "ply"


@pytest.mark.parametrize("axes", ["rub", "ply"])
def test_edit_exports_each_turn_as_spz_in_the_axes_asked_for(tmp_path, axes):
    """`gsedit edit --export spz --spz-axes ply` writes what SuperSplat reads upright."""
    out = tmp_path / "S"
    assert main(["edit", str(AXES / "scene.ply"), "--cameras", CAMERAS, "--turn", "make it red", "--out", str(out),
                 "--editor", "synthetic", "--segmenter", "none", "--iters", "2", "--device", "cpu", "--quiet",
                 "--export", "spz", "--spz-axes", axes]) == 0
    turn = read_ply(out / "turn_01" / "scene.ply")
    stored = torch.from_numpy(gsply.read_spz(out / "turn_01" / "scene.spz").means)
    wanted = turn if axes == "ply" else half_turn_about_x(turn)
    assert (stored - wanted.means).abs().max() < 2e-4
