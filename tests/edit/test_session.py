"""Sessions on the fake Scene: folder layout, atomic turns, interrupt + resume, kill -9, undo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gsedit.edit.config import EditConfig
from gsedit.edit.engine import Engine, write_input_turn
from gsedit.edit.session import Turn
from gsedit.edit.session import SessionFolder
from gsedit.errors import GseditError
from gsedit.models.synthetic import SyntheticEditor
from tests.edit.fake_scene import FakeScene, fake_cameras
from tests.edit.test_loop import two_object_scene

TURNS = [Turn("make the sphere red"), Turn("make the cube yellow")]


class InterruptingEditor(SyntheticEditor):
    """The synthetic editor, interrupted (Ctrl-C) on its n-th call."""

    def __init__(self, interrupt_at: int | None):
        super().__init__()
        self.calls, self.interrupt_at = 0, interrupt_at

    def edit(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return super().edit(*args, **kwargs)


def new_session(folder: Path, turns=TURNS, iters: int = 12) -> SessionFolder:
    source = folder.parent / f"{folder.name}_input.pt"
    if not source.exists():
        two_object_scene().save(folder.parent).rename(source)
    settings = EditConfig(iters=iters, edit_every=3, segmenter="labels", seed=7)
    session = SessionFolder.create(folder, scene_file="scene.pt", input_path=str(source), cameras="fake",
                             method="edit3d", settings=settings, plugins={"editor": "synthetic"})
    session.add_turns(list(turns))
    scene = FakeScene.load(source)
    write_input_turn(session, scene, fake_cameras(4, 16), source)
    return session


def engine(editor=None) -> Engine:
    return Engine(load_scene=FakeScene.load, cameras_for=lambda s: fake_cameras(4, 16),
                  editor=editor or SyntheticEditor())


def test_a_session_has_the_layout_of_the_design(tmp_path):
    session = new_session(tmp_path / "s")
    finished = engine().run(session)
    assert [r.index for r in finished] == [1, 2]
    data = json.loads((tmp_path / "s" / "session.json").read_text())
    assert [t["status"] for t in data["turns"]] == ["done", "done"]
    assert data["settings"]["iters"] == 12 and "torch" in data["versions"]
    for t in data["turns"]:
        assert t["seconds"] > 0 and t["peak_rss_mb"] > 0 and t["edits"] == 4
    for k in (0, 1, 2):
        d = tmp_path / "s" / f"turn_{k:02d}"
        assert (d / "scene.pt").is_file()
        assert len(list((d / "renders").glob("*.png"))) == 4
    assert len(list((tmp_path / "s" / "turn_01" / "masks").glob("*.png"))) == 4
    assert not list((tmp_path / "s").glob(".*tmp"))


def test_interrupt_keeps_finished_turns_and_resume_gives_the_same_files(tmp_path):
    reference = new_session(tmp_path / "ref")
    engine().run(reference)

    session = new_session(tmp_path / "cut")
    with pytest.raises(KeyboardInterrupt):
        engine(InterruptingEditor(interrupt_at=6)).run(session)  # 4 edits in turn 1, stops in turn 2
    folder = tmp_path / "cut"
    assert (folder / "turn_01" / "scene.pt").exists()
    assert not (folder / "turn_02").exists() and not list(folder.glob(".turn_*"))
    statuses = [t["status"] for t in json.loads((folder / "session.json").read_text())["turns"]]
    assert statuses == ["done", "interrupted"]

    resumed = SessionFolder.open(folder)
    assert [r.index for r in resumed.pending()] == [2]
    engine().run(resumed)
    for k in (1, 2):
        a = FakeScene.load(tmp_path / "ref" / f"turn_{k:02d}" / "scene.pt").images
        b = FakeScene.load(folder / f"turn_{k:02d}" / "scene.pt").images
        assert torch.equal(a, b)
        for png in (tmp_path / "ref" / f"turn_{k:02d}" / "renders").glob("*.png"):
            assert png.read_bytes() == (folder / f"turn_{k:02d}" / "renders" / png.name).read_bytes()


def test_a_killed_run_leaves_a_temporary_that_the_next_writer_removes(tmp_path):
    session = new_session(tmp_path / "s")
    engine().run(session)
    # what kill -9 during turn 3 leaves: a half-written temporary and a 'running' record
    session.add_turns([Turn("make the sphere blue")])
    data = session.data
    data["turns"][2]["status"] = "running"
    session.save()
    stale = tmp_path / "s" / ".turn_03.abc.tmp"
    stale.mkdir()
    (stale / "scene.pt").write_bytes(b"half")
    reopened = SessionFolder.open(tmp_path / "s")
    assert stale.exists()  # a reader (eval, view) cannot tell it from one being written
    assert [r.index for r in reopened.pending()] == [3]
    engine().run(reopened)  # the writer holds the lock: no one else is writing, so it is stale
    assert not stale.exists()
    assert reopened.last_finished() == 3


def test_undo_drops_the_last_turn_and_a_new_turn_continues_from_the_one_before(tmp_path):
    session = new_session(tmp_path / "s")
    engine().run(session)
    turn1 = FakeScene.load(tmp_path / "s" / "turn_01" / "scene.pt").images
    assert SessionFolder.open(tmp_path / "s").undo() == 2
    session = SessionFolder.open(tmp_path / "s")
    assert not (tmp_path / "s" / "turn_02").exists()
    assert session.last_finished() == 1 and len(session.records) == 1
    assert session.data["undone"][0]["instruction"] == "make the cube yellow"
    session.add_turns([Turn("make the cube red")])
    seen = []
    eng = engine()
    load = eng.load_scene
    eng.load_scene = lambda p: seen.append(Path(p).parent.name) or load(p)
    eng.run(session)
    assert "turn_01" in seen  # the new turn started from turn 1's scene
    assert torch.equal(FakeScene.load(tmp_path / "s" / "turn_01" / "scene.pt").images, turn1)
    assert SessionFolder.open(tmp_path / "s").undo() == 2
    assert SessionFolder.open(tmp_path / "s").undo() == 1
    with pytest.raises(GseditError, match="no finished turn"):
        SessionFolder.open(tmp_path / "s").undo()


def test_session_errors_name_the_file(tmp_path):
    with pytest.raises(GseditError, match="no session here"):
        SessionFolder.open(tmp_path)
    (tmp_path / "session.json").write_text("{not json")
    with pytest.raises(GseditError, match="not valid JSON"):
        SessionFolder.open(tmp_path)
    session = new_session(tmp_path / "s")
    with pytest.raises(GseditError, match="already holds a session"):
        new_session(tmp_path / "s")
    with pytest.raises(GseditError, match="empty instruction"):
        session.add_turns([Turn("   ")])
