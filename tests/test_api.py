"""`gsedit.Session`, the library's front door: create, run_turn, undo, open, close, its lock,
progress and cancellation, options checked by name; the same turns as `gsedit edit` give the same
files; the README's "Python API" example runs as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gsedit import Session
from gsedit.cli import main
from gsedit.edit import TurnCancelled
from gsedit.edit.lock import SessionBusyError
from gsedit.errors import GseditError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
A, B = "make the sphere red", "make the cube yellow"
#: small, fast turns on the labelled scene (labels masks, no densification)
FAST = {"method": "edit3d", "editor": "synthetic", "segmenter": "labels", "iters": 6, "densify": False}


@pytest.fixture(scope="module")
def scene(labelled_scene) -> tuple[Path, Path]:
    return labelled_scene


def create(scene, out: Path, **options) -> Session:
    ply, cams = scene
    return Session.create(out, scene=ply, cameras=cams, device="cpu", **{**FAST, **options})


def turn_files(folder: Path, index: int) -> dict[str, bytes]:
    turn = folder / f"turn_{index:02d}"
    return {str(p.relative_to(turn)): p.read_bytes() for p in sorted(turn.rglob("*")) if p.is_file()}


def test_create_run_undo_open_close(scene, tmp_path):
    out = tmp_path / "s"
    with create(scene, out) as session:
        assert session.folder == out and session.turns == [] and (out / "turn_00" / "scene.ply").is_file()
        first = session.run_turn(A)
        assert (first.index, first.instruction, first.target, first.keep) == (1, A, None, None)
        assert first.scene_path == out / "turn_01" / "scene.ply" and first.scene_path.is_file()
        assert first.seconds > 0 and first.edits >= 1 and first.loss == first.loss  # finite
        second = session.run_turn(B, target="the cube")
        assert (second.index, second.target) == (2, "the cube")
        assert [t.instruction for t in session.turns] == [A, B]
        cams = session.cameras
        assert len(cams) == 4
        last, input_ = session.scene().render(cams).rgb, session.scene(0).render(cams).rgb
        assert last.equal(session.scene(2).render(cams).rgb) and not last.equal(input_)
        with pytest.raises(GseditError, match="no finished turn 3"):
            session.scene(3)
        assert session.undo() == 2
        assert not (out / "turn_02").exists() and [t.index for t in session.turns] == [1]
    with pytest.raises(GseditError, match="closed"):
        session.run_turn(B)
    with Session.open(out, device="cpu") as reopened:
        assert [t.instruction for t in reopened.turns] == [A]
        assert reopened.turns[0] == first  # the same record, read back from session.json
        again = reopened.run_turn(B, target="the cube")
        assert again.index == 2 and turn_files(out, 2)


def test_a_second_writer_is_refused_in_this_process_and_another(scene, tmp_path):
    out = tmp_path / "s"
    session = create(scene, out)
    with pytest.raises(SessionBusyError, match=f"process {os.getpid()}"):
        Session.open(out)
    session.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from gsedit import Session; s = Session.open(sys.argv[1]); "
         "print('held', flush=True); sys.stdin.read()", str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SessionBusyError) as busy:
            Session.open(out)
        assert f"process {holder.pid}" in str(busy.value) and "One process writes a session at a time" in str(busy.value)
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    Session.open(out).close()  # the lock went with its process


def test_progress_reports_every_step_with_previews(scene, tmp_path):
    seen = []
    with create(scene, tmp_path / "s", edit_every=3) as session:
        info = session.run_turn(A, on_progress=seen.append, preview_every=2)
    assert [p.step for p in seen] == list(range(1, 7)) and {p.total for p in seen} == {6}
    assert {p.turn for p in seen} == {1}
    assert [p.edits for p in seen] == [1, 1, 1, 2, 2, 2]  # an edit every 3 steps, from step 0
    assert seen[-1].loss == info.loss and seen[-1].edits == info.edits
    assert [p.preview is not None for p in seen] == [False, True] * 3
    assert tuple(seen[1].preview.shape) == (32, 32, 3) and 0 <= float(seen[1].preview.min())


def test_cancel_keeps_finished_turns_leaves_no_folder_and_redo_is_exact(scene, tmp_path):
    reference = tmp_path / "reference"
    with create(scene, reference) as session:
        session.run_turn(A)
        session.run_turn(B)
    out = tmp_path / "s"
    cancel = threading.Event()

    def stop_at_step_3(p):
        if p.step == 3:
            cancel.set()

    with create(scene, out) as session:
        session.run_turn(A)
        with pytest.raises(TurnCancelled, match="step 3"):
            session.run_turn(B, on_progress=stop_at_step_3, cancel=cancel)
        assert not (out / "turn_02").exists() and not list(out.glob(".turn_02*"))
        assert [t.index for t in session.turns] == [1]
        import json

        assert json.loads((out / "session.json").read_text())["turns"][1]["status"] == "interrupted"
        cancel.clear()
        assert session.run_turn(B).index == 2
    assert turn_files(out, 2) == turn_files(reference, 2)


def test_the_editor_loads_once_per_session_object(scene, tmp_path, monkeypatch):
    from gsedit.models.synthetic import SyntheticEditor

    loads = []
    original = SyntheticEditor.__init__

    def counted(self, *args, **kwargs):
        loads.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(SyntheticEditor, "__init__", counted)
    with create(scene, tmp_path / "s") as session:
        assert loads == []  # lazily: creating a session loads no editor
        session.run_turn(A)
        session.run_turn(B)
        session.undo()
        session.run_turn(B)
    assert len(loads) == 1
    with Session.open(tmp_path / "s", device="cpu") as session:
        session.run_turn(A)
    assert len(loads) == 2


@pytest.mark.parametrize("options, message", [
    ({"iter": 5}, "unknown option 'iter' (did you mean 'iters'?)"),
    ({"iters": "many"}, "iters: expected int, got a str ('many')"),
    ({"segmenter": "sam"}, "segmenter: expected one of"),
    ({"method": "nope"}, "Unknown method preset 'nope'"),
    ({"t_min": 0.9, "t_max": 0.1}, "Invalid edit settings: need 0 <= t_min <= t_max <= 1"),
    ({"ip2p": {"stepz": 3}}, "unknown IP2PConfig options ['stepz']"),
    ({"adss": {"points": 3}}, "unknown ADSSConfig options ['points']"),
    ({"export": "gif"}, "gif"),
])
def test_bad_options_are_refused_before_anything_is_written(scene, tmp_path, options, message):
    with pytest.raises(GseditError) as info:
        create(scene, tmp_path / "s", **options)
    assert message in str(info.value)
    assert not (tmp_path / "s").exists()


def test_nested_and_flat_options_reach_the_session(scene, tmp_path):
    import json

    with create(scene, tmp_path / "s", seed=7, adss={"threshold": 0.7}, ip2p={"steps": 3}) as session:
        data = session.record.data
    assert data["settings"]["seed"] == 7 and data["settings"]["iters"] == 6
    assert data["plugins"]["ip2p"]["steps"] == 3 and data["plugins"]["adss"]["threshold"] == 0.7
    assert json.loads((tmp_path / "s" / "session.json").read_text())["method"] == "edit3d"


def test_session_and_command_line_write_the_same_turns(scene, tmp_path):
    ply, cams = scene
    cli = tmp_path / "cli"
    argv = ["edit", str(ply), "--cameras", str(cams), "--turn", A, "--turn", B, "--target", "the sphere",
            "--target", "the cube", "--out", str(cli), "--method", "edit3d", "--editor", "synthetic",
            "--segmenter", "labels", "--iters", "6", "--no-densify", "--quiet", "--device", "cpu"]
    assert main(argv) == 0
    with create(scene, tmp_path / "api") as session:
        session.run_turn(A, target="the sphere")
        session.run_turn(B, target="the cube")
    for index in (1, 2):
        assert (tmp_path / "api" / f"turn_{index:02d}" / "scene.ply").read_bytes() == \
            (cli / f"turn_{index:02d}" / "scene.ply").read_bytes()


def log_events(folder: Path) -> list[tuple[str, int]]:
    """(event, turn) of every line of DIR/log.jsonl."""
    lines = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    return [(e["event"], e.get("turn", e.get("index"))) for e in lines]


def test_a_turn_through_session_logs_what_the_command_line_logs(scene, tmp_path):
    ply, cams = scene
    cli = tmp_path / "cli"
    assert main(["edit", str(ply), "--cameras", str(cams), "--turn", A, "--out", str(cli), "--method", "edit3d",
                 "--editor", "synthetic", "--segmenter", "labels", "--iters", "6", "--no-densify", "--quiet",
                 "--device", "cpu"]) == 0
    with create(scene, tmp_path / "api") as session:
        session.run_turn(A)
    events = log_events(tmp_path / "api")
    assert events == log_events(cli)
    assert events == [("turn_started", 1), ("step", 1), ("turn_finished", 1)]  # 6 steps: the last one logged
    finished = json.loads((tmp_path / "api" / "log.jsonl").read_text().splitlines()[-1])
    assert finished["instruction"] == A and finished["status"] == "done"
    assert not (tmp_path / "api" / "report.html").exists()  # no hook, no report


def test_the_report_hook_writes_the_report_after_every_turn(scene, tmp_path):
    from gsedit.evaluation.report import report_after_turn

    written = []
    with create(scene, tmp_path / "s", after_turn=report_after_turn(on_report=written.append)) as session:
        session.run_turn(A)
        assert written == [tmp_path / "s" / "report.html"]
        session.run_turn(B)
    assert len(written) == 2 and "turn_02/" in written[-1].read_text()


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_as_written_on_the_demo_scene(tmp_path, monkeypatch):
    """`gsedit demo` writes the scene; the README's code block runs in that folder unchanged but
    for fewer iterations (200 steps per turn is a minute of CPU) and smaller images."""
    from gsedit.data.demo import write_demo_scene

    scene, cameras = write_demo_scene(tmp_path / "gsedit_demo", size=32)  # what `gsedit demo` writes first
    monkeypatch.chdir(scene.parent)
    code = readme_example()
    assert "iters=200" in code and cameras.parent == scene.parent
    exec(compile(code.replace("iters=200", "iters=4"), "README.md", "exec"), {})
    out = scene.parent / "out"
    assert (out / "turn_01" / "scene.ply").is_file() and not (out / "turn_02").exists()


def test_import_gsedit_stays_light_until_session_is_used():
    """`import gsedit` and the Session class load no torch (opening a session and undoing a turn do
    not either: tests/test_startup.py); the engine that runs turns does."""
    code = ("import sys, gsedit; assert 'torch' not in sys.modules, 'import gsedit loaded torch'; "
            "gsedit.Session, gsedit.TurnCancelled; assert 'torch' not in sys.modules, 'Session loaded torch'; "
            "import gsedit.edit.engine; assert 'torch' in sys.modules; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr
