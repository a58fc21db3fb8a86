"""The HTML report of a real tiny session: its content, its links, and how headless Chromium shows it."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from gsedit.evaluation.report import write_report, write_turn_videos
from gsedit.edit.session import SessionFolder
from gsedit.scene.gaussian_scene import GaussianScene
from tests.viewer.browser import dump_dom, screenshot
from tests.viewer.tiny_session import SIZE, TURNS, VIEWS, make_tiny_session

VIDEO_FRAMES = 6
VIDEO_SIZE = 32
# the layout `gsedit eval` writes (gsedit/evaluation/evaluate.py), trimmed to a few columns
METRICS = {
    "editor_is_stand_in": True,
    "turns": [
        {"turn": 1, "instruction": TURNS[0], "psnr_unedited": 31.5, "lpips_unedited": None},
        {"turn": 2, "instruction": TURNS[1], "psnr_unedited": "inf", "lpips_unedited": None},
    ],
    "refined": {"turn": "refined", "instruction": TURNS[1], "psnr_unedited": 29.75},
    "unavailable": [{"metric": "lpips", "columns": ["lpips_unedited"], "reason": "no weights"}],
}

# Appended to a copy of the report: once the page and its media have loaded, it writes what the
# browser made of every <img>, <video> and <table> into the DOM, which --dump-dom returns.
CHECK_SCRIPT = """
<script>
window.addEventListener('load', async () => {
  const videos = [...document.querySelectorAll('video')];
  await Promise.all(videos.map(v => v.readyState >= 1 ? null : new Promise(done => {
    v.addEventListener('loadedmetadata', done); v.addEventListener('error', done);
  })));
  const images = [...document.images];
  const status = {
    images: images.map(i => ({src: i.getAttribute('src'), width: i.naturalWidth})),
    videos: videos.map(v => ({src: v.getAttribute('src'), width: v.videoWidth, height: v.videoHeight,
                              error: v.error ? v.error.code : null})),
    tables: [...document.querySelectorAll('table')].map(t => ({id: t.id, rows: t.rows.length})),
  };
  const out = document.createElement('pre');
  out.id = 'gsedit-check';
  out.textContent = JSON.stringify(status);
  document.body.appendChild(out);
});
</script>
"""


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> SessionFolder:
    session = make_tiny_session(tmp_path_factory.mktemp("report"))
    (session.folder / "metrics.json").write_text(json.dumps(METRICS))
    for index in range(3):
        write_turn_videos(session, index, lambda p: GaussianScene.load(p), VIDEO_FRAMES, VIDEO_SIZE)
    write_report(session)
    return session


def _report(session: SessionFolder) -> str:
    return (session.folder / "report.html").read_text()


def test_report_holds_instructions_numbers_and_warning(session):
    page = _report(session)
    for instruction in TURNS:
        assert f"<td>{instruction}</td>" in page
    assert "id='stand-in'" in page  # synthetic editor: the warning must be there
    # the metrics table has every value of metrics.json, formatted, in its row
    # one row per turn and the refined row; null shows as a dash, "inf" as infinity
    assert f"<td>1</td><td>{TURNS[0]}</td><td class='num'>31.5</td><td class='num'>—</td>" in page
    assert f"<td>2</td><td>{TURNS[1]}</td><td class='num'>∞</td><td class='num'>—</td>" in page
    assert "<td>refined</td>" in page and "<td class='num'>29.75</td>" in page
    assert "<b>lpips</b>: no weights" in page
    seconds = session.records[0].seconds
    assert f"<td class='num'>{seconds:.4g}</td>" in page


def test_every_link_is_relative_and_exists(session):
    page = _report(session)
    targets = re.findall(r"(?:src|href)='([^']*)'|(?:src|href)=\"([^\"]*)\"", page)
    paths = [html.unescape(a or b) for a, b in targets]
    # 3 rows x 4 views x 2 turns of images, 3 plys, 3 turntables + 2 wipes
    assert len(paths) == 3 * VIEWS * 2 + 3 + 5
    for rel in paths:
        assert not Path(rel).is_absolute() and ":" not in rel, rel
        assert (session.folder / rel).is_file(), rel


def test_report_without_metrics_or_videos_says_so(session, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(session.folder, copy)
    (copy / "metrics.json").unlink()
    for video in copy.glob("turn_*/renders/*.mp4"):
        video.unlink()
    page = write_report(SessionFolder.open(copy)).read_text()
    assert "gsedit eval DIR" in page and "<video" not in page


def test_broken_metrics_file_is_named(session, tmp_path):
    from gsedit.errors import InputFileError

    copy = tmp_path / "copy"
    shutil.copytree(session.folder, copy)
    (copy / "metrics.json").write_text("{not json")
    with pytest.raises(InputFileError, match="metrics.json"):
        write_report(SessionFolder.open(copy))


def test_chromium_loads_every_image_video_and_table(session):
    check = session.folder / "report_check.html"
    check.write_text(_report(session).replace("</body>", CHECK_SCRIPT + "</body>"))
    dom = dump_dom(check.as_uri(), budget_ms=10000)
    found = re.search(r'<pre id="gsedit-check">(.*?)</pre>', dom, re.DOTALL)
    assert found, "the check script did not run: " + dom[-500:]
    status = json.loads(html.unescape(found.group(1)))
    broken = [i["src"] for i in status["images"] if i["width"] == 0]
    assert len(status["images"]) == 3 * VIEWS * 2 and not broken, broken
    assert {i["width"] for i in status["images"]} == {SIZE}
    assert len(status["videos"]) == 5
    for video in status["videos"]:  # decoded by the browser: H.264 in yuv420p plays
        assert (video["width"], video["height"], video["error"]) == (
            VIDEO_SIZE,
            VIDEO_SIZE,
            None,
        ), video
    tables = {t["id"]: t["rows"] for t in status["tables"]}
    assert tables["turns"] == 1 + 3 and tables["metrics"] == 1 + 3


def test_screenshot_shows_the_page(session, tmp_path):
    image = screenshot(
        (session.folder / "report.html").as_uri(),
        tmp_path / "report.png",
        size=(1000, 1400),
        budget_ms=3000,
    )
    # a blank page is one colour; the report has text, tables and renders
    assert image.shape == (1400, 1000, 3)
    assert image.reshape(-1, 3).std(axis=0).min() > 20
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 100
