"""`gsedit demo`: the offline first run ends with its metrics in the report, never downloading."""

from __future__ import annotations

import json
import os
import re

from gsedit.cli import main


def test_the_demo_report_shows_its_metrics_and_says_the_editor_is_a_stand_in(tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--iters", "4", "--size", "24", "--quiet"]) == 0

    metrics = json.loads((out / "session" / "metrics.json").read_text())
    assert metrics["editor_is_stand_in"] is True
    rows = {row["turn"]: row for row in metrics["turns"]}
    assert sorted(rows) == [1, 2]
    for row in rows.values():
        assert row["psnr_unedited"] > 25  # the stand-in edits only its target: the rest stays put
        assert 0.5 < row["miou"] <= 1.0
    # no weights here: CLIP is reported unavailable, not invented, and nothing was downloaded
    assert {entry["metric"] for entry in metrics["unavailable"]} >= {"clip"}

    html = (out / "session" / "report.html").read_text()
    assert "No metrics yet" not in html and "id='stand-in'" in html
    table = re.search(r"<table id='metrics'>(.*?)</table>", html, re.S).group(1)
    cells = re.findall(r"<td class='num'>([^<]*)</td>", table)
    shown = [float(c) for c in cells if re.fullmatch(r"-?[0-9.]+", c)]
    for row in rows.values():  # the numbers themselves, not placeholders
        assert any(abs(v - row["psnr_unedited"]) < 0.01 for v in shown)
    assert "HF_HUB_OFFLINE" not in os.environ  # the demo restored the environment


def test_the_demo_scene_stands_upright_along_minus_y_and_its_orbit_renders_upright(tmp_path):
    """The .ply convention (y down) that splat viewers assume: the floor is the plane y = 0, the
    objects stand on it towards -y, and the demo's orbit cameras see them above the floor."""
    import torch

    from gsedit.cameras.formats import load_cameras
    from gsedit.data.synthetic import make_synthetic_scene, write_synthetic_scene
    from gsedit.scene.gaussian_scene import GaussianScene

    gaussians, names = make_synthetic_scene()
    label = gaussians.extras["label"]
    floor = gaussians.means[label == 0]
    objects = gaussians.means[label > 0]
    assert names[0] == "floor" and floor[:, 1].abs().max() < 1e-6  # the floor's normal is the y axis
    assert objects[:, 1].max() < 1e-3 and objects[:, 1].min() < -0.6  # they rise from it along -y
    for name, height in (("cube", 0.6), ("sphere", 0.64), ("cylinder", 0.7)):
        top = gaussians.means[label == next(k for k, v in names.items() if v == name)][:, 1].min()
        assert abs(float(top) + height) < 0.02, name

    cameras_path = write_synthetic_scene(tmp_path / "scene.ply", n_cameras=6, size=48)
    cams = load_cameras(str(cameras_path))
    image_down = cams.camtoworlds[:, :3, 1]  # [C, 3] each camera's y axis (image down) in the world
    assert (image_down[:, 1] > 0.8).all()  # the world's y (down) is down in every image
    out = GaussianScene(gaussians).render(cams, ["label"])
    rows = torch.arange(48.0)[None, :, None].expand(len(cams), 48, 48)
    solid = out.alpha > 0.5
    is_object, is_floor = solid & (out.channels["label"] > 0.5), solid & (out.channels["label"] < 0.5)
    for view in range(len(cams)):  # objects stand above the floor in every image: smaller rows
        assert is_object[view].any() and is_floor[view].any()
        assert rows[view][is_object[view]].mean() < rows[view][is_floor[view]].mean() - 3
        assert rows[view][is_object[view]].min() < rows[view][is_floor[view]].min()
