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
