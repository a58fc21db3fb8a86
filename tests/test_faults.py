"""Sessions that survive their users: Ctrl-C and --resume, one writer per session, shareable file
modes, disk and permission faults, optimisation going non-finite, and hostile input files.

Everything goes through the command line (`gsedit.cli.main` in-process; real processes where a
signal or a second process is the point) on a tiny labelled scene with the synthetic editor.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import plyfile
import pytest
import torch

from gsedit.cli import main
from gsedit.edit.session import Turn
from gsedit.edit.session import continue_plan
from gsedit.errors import GseditError
from gsedit.models.synthetic import SyntheticEditor
from tests.edit.test_session import InterruptingEditor

pytestmark = pytest.mark.usefixtures("one_torch_thread")

A, B, C = "make the sphere red", "make the cube yellow", "make the sphere blue"
COMMON = ["--editor", "synthetic", "--segmenter", "labels", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module", autouse=True)
def umask_022_offline():
    """umask 022 (what "shareable" is checked against) and no hub look-ups (compare's metrics)."""
    previous, offline = os.umask(0o022), os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield
    os.umask(previous)
    if offline is None:
        del os.environ["HF_HUB_OFFLINE"]
    else:
        os.environ["HF_HUB_OFFLINE"] = offline


@pytest.fixture(scope="module")
def scene(labelled_scene) -> tuple[Path, Path]:
    return labelled_scene


def edit_argv(scene, out: Path, turns=(A, B), iters: int = 4, command: str = "edit") -> list[str]:
    ply, cams = scene
    return [command, str(ply), "--cameras", str(cams), *[a for t in turns for a in ("--turn", t)],
            "--out", str(out), "--iters", str(iters), *COMMON]


@pytest.fixture(scope="module")
def reference(scene, tmp_path_factory) -> Path:
    """The two-turn session run once without interruption."""
    out = tmp_path_factory.mktemp("reference") / "D"
    assert main(edit_argv(scene, out)) == 0
    return out


def turn_files(folder: Path, index: int) -> dict[str, bytes]:
    turn = folder / f"turn_{index:02d}"
    return {str(p.relative_to(turn)): p.read_bytes() for p in sorted(turn.rglob("*")) if p.is_file()}


def turns_of(folder: Path) -> list[tuple[str, str]]:
    return [(t["instruction"], t["status"]) for t in json.loads((folder / "session.json").read_text())["turns"]]


def said(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())


def assert_shareable(folder: Path) -> None:
    """Every file group/world-readable and every folder enterable, as under umask 022; no temporaries."""
    for path in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), f"{path}: {oct(mode)}"
        assert not path.name.endswith(".tmp"), path


def assert_same_turns(folder: Path, reference: Path, turns=(1, 2)) -> None:
    for k in turns:
        assert turn_files(folder, k) == turn_files(reference, k), f"turn {k} differs"


# ----------------------------------------------------------------------------- the --resume rule


def test_the_resume_rule():
    a, b, c, d = (Turn(t) for t in "abcd")
    cmd = "gsedit edit --out D"
    assert continue_plan([a, b], [1], [a, b], cmd) == ([], 1)  # the same list: finish, add nothing
    assert continue_plan([a, b], [1], [a], cmd) == ([], 1)  # a prefix of it
    assert continue_plan([a, b], [1], [a, b, c], cmd) == ([c], 1)  # longer: only the tail is new
    assert continue_plan([a, b], [1], [c], cmd) == ([c], 3)  # like none of it: appended ("add a turn later")
    assert continue_plan([a, b, c], [1, 3], [c], cmd) == ([], 3)  # that append, run again after Ctrl-C
    assert continue_plan([a, b, c], [1, 3], [c, d], cmd) == ([d], 3)
    assert continue_plan([a, b, a, b], [1, 3], [a, b, c], cmd) == ([c], 3)
    assert continue_plan([a, b], [1], [b], cmd) == ([b], 3)  # b again, as a new turn
    with pytest.raises(GseditError) as info:
        continue_plan([a, b], [1], [a, c], cmd)
    message = str(info.value)
    assert "--turn 2 ('c')" in message and "turn 2 of the session ('b')" in message
    assert "`gsedit edit --out D --resume --turn '...'`" in message and "gsedit undo" in message
    with pytest.raises(GseditError, match="--target 'the cube'"):
        continue_plan([Turn("a", target="the cube")], [1], [a], cmd)


def test_the_same_command_line_plus_resume_adds_nothing_and_appends_only_new_turns(scene, reference, tmp_path,
                                                                                  capsys, monkeypatch):
    from gsedit.edit import api as sessions

    out = tmp_path / "D"
    shutil.copytree(reference, out)
    argv = edit_argv(scene, out)
    with monkeypatch.context() as patch:  # nothing to do: no editor is loaded (IP2P's weights may be gone)
        patch.setattr(sessions, "build_editor", lambda *a: pytest.fail("the editor was built for no turn"))
        assert main([*argv, "--resume"]) == 0 and turns_of(out) == [(A, "done"), (B, "done")]
    assert "nothing to do" in said(capsys)
    assert main([*edit_argv(scene, out, (A, B, C)), "--resume"]) == 0  # a longer list: its tail
    assert turns_of(out) == [(A, "done"), (B, "done"), (C, "done")]
    assert main(["edit", "--out", str(out), "--resume", "--turn", A, "--quiet"]) == 0  # prefix
    assert len(turns_of(out)) == 3
    before = (out / "session.json").read_bytes()
    assert main([*edit_argv(scene, out, (A, C)), "--resume"]) == 1  # differs at turn 2: refused
    assert "--turn 2 ('make the sphere blue') differs from turn 2 of the session" in said(capsys)
    assert (out / "session.json").read_bytes() == before
    other = tmp_path / "other_scene.ply"
    shutil.copy(scene[0], other)
    assert main([*edit_argv((other, scene[1]), out), "--resume"]) == 1
    assert "is a session of" in said(capsys)
    assert_same_turns(out, reference)


# ----------------------------------------------------------------------------- Ctrl-C and --resume


def _interrupt_save_images(monkeypatch, at: int):
    from gsedit.edit import engine

    calls = {"n": 0}
    save = engine.save_images

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at:
            raise KeyboardInterrupt
        return save(*args, **kwargs)

    monkeypatch.setattr(engine, "save_images", interrupted)


def _interrupt_report(monkeypatch):
    from gsedit.evaluation import report

    def interrupted(session):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_report", interrupted)


def _interrupt_editor(monkeypatch, at: int):
    from gsedit.edit import api as sessions

    monkeypatch.setattr(sessions, "build_editor", lambda plugins, device: InterruptingEditor(at))


@pytest.mark.parametrize(
    "where, interrupt, kept",
    [
        ("in turn 1's edit", lambda mp: _interrupt_editor(mp, 1), 0),
        ("in turn 2's edit", lambda mp: _interrupt_editor(mp, 2), 1),
        ("while turn 2's masks are written", lambda mp: _interrupt_save_images(mp, 5), 1),
        ("while the report after turn 1 is written", _interrupt_report, 1),
    ],
)
def test_ctrl_c_then_the_same_command_plus_resume_gives_the_planned_turns(scene, reference, tmp_path, monkeypatch,
                                                                        capsys, where, interrupt, kept):
    out = tmp_path / "D"
    argv = edit_argv(scene, out)
    interrupt(monkeypatch)
    assert main(argv) == 130, where
    message = said(capsys)
    assert f"`{shlex.join(['gsedit', *argv, '--resume'])}` continues" in message
    assert [k for k in (1, 2) if (out / f"turn_{k:02d}").exists()] == list(range(1, kept + 1))
    assert_same_turns(out, reference, range(1, kept + 1))
    monkeypatch.undo()
    assert main([*argv, "--resume"]) == 0
    assert turns_of(out) == [(A, "done"), (B, "done")]
    assert_same_turns(out, reference)
    assert_shareable(out)


def test_compare_resumes_after_ctrl_c(scene, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "cmp"
    argv = [*edit_argv(scene, out, command="compare"), "--backends", "3dgs"]
    _interrupt_editor(monkeypatch, 2)
    assert main(argv) == 130
    assert "compare" in said(capsys) and (out / "3dgs" / "turn_01").is_dir()
    monkeypatch.undo()
    assert main([*argv, "--resume"]) == 0
    assert [t["instruction"] for t in json.loads((out / "compare.json").read_text())["turns"]] == [A, B]
    assert turns_of(out / "3dgs") == [(A, "done"), (B, "done")]
    assert_same_turns(out / "3dgs", reference)  # the same scene, settings and seeds as `gsedit edit`
    assert main([*argv, "--resume"]) == 0 and len(turns_of(out / "3dgs")) == 2
    changed = [*edit_argv(scene, out, (A, C), command="compare"), "--backends", "3dgs", "--resume"]
    assert main(changed) == 1 and "--turn 2 ('make the sphere blue') differs from turn 2" in said(capsys)
    assert len(json.loads((out / "compare.json").read_text())["turns"]) == 2
    assert_shareable(out)


@pytest.fixture(scope="module")
def esrgan(tmp_path_factory) -> Path:
    from tests.models.tiny_enhance import write_tiny_realesrgan

    return write_tiny_realesrgan(tmp_path_factory.mktemp("sr") / "esrgan_x2.pth", num_up=1)


def test_refine_interrupted_leaves_the_session_as_it_was(reference, esrgan, tmp_path, monkeypatch, capsys):
    from gsedit.edit import refine

    out = tmp_path / "D"
    shutil.copytree(reference, out)
    before = (out / "session.json").read_bytes()
    argv = ["refine", str(out), "--sr.realesrgan-weights", str(esrgan), "--sr.iters", "3", "--device", "cpu",
            "--quiet"]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(refine, "save_images", interrupted)
    assert main(argv) == 130
    assert f"Rerun `{shlex.join(['gsedit', *argv])}` to finish." in said(capsys)
    assert (out / "session.json").read_bytes() == before and not (out / "refined").exists()
    monkeypatch.undo()
    assert main(argv) == 0 and (out / "refined" / "scene.ply").is_file()
    assert json.loads((out / "session.json").read_text())["refine"]["status"] == "done"
    assert_same_turns(out, reference)
    assert_shareable(out)


def test_fit_interrupted_writes_nothing_and_a_rerun_fits(scene, tmp_path, monkeypatch, capsys):
    from gsedit.scene.fit import GaussianOptimizer

    ply, cams = scene
    assert main(["render", str(ply), "--cameras", str(cams), "--out", str(tmp_path / "r"), "--device", "cpu"]) == 0
    out = tmp_path / "fit" / "scene.ply"
    argv = ["fit", str(tmp_path / "r" / "rgb"), "--cameras", str(cams), "--out", str(out), "--iters", "6",
            "--points", "300", "--device", "cpu", "--quiet"]
    step = GaussianOptimizer.step
    calls = {"n": 0}

    def interrupted(self, *args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return step(self, *args)

    monkeypatch.setattr(GaussianOptimizer, "step", interrupted)
    assert main(argv) == 130
    assert not out.parent.exists() or not any(out.parent.iterdir())
    monkeypatch.undo()
    capsys.readouterr()
    assert main(argv) == 0 and len(plyfile.PlyData.read(str(out))["vertex"]) > 0
    assert_shareable(out.parent)


# ----------------------------------------------------------------------------- real signals, two processes


def _start(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "gsedit", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"gsedit ended early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("gsedit did not get there in time")
        time.sleep(0.05)


def _running(out: Path, index: int):
    def check() -> bool:
        try:
            records = json.loads((out / "session.json").read_text())["turns"]
        except (OSError, ValueError, KeyError):
            return False
        return len(records) >= index and records[index - 1]["status"] == "running"

    return check


def test_a_second_writer_is_refused_at_once_and_sigint_keeps_turn_1(scene, tmp_path, capsys):
    from gsedit.viewer.content import ViewerContent

    out = tmp_path / "D"
    argv = edit_argv(scene, out, iters=300)
    proc = _start(argv)
    try:
        _wait_for(lambda: _running(out, 2)() and list(out.glob(".turn_02.*.tmp")), proc)
        kept = {name: (out / name).read_bytes() for name in ("session.json", ".lock")}
        turn1 = turn_files(out, 1)

        start = time.monotonic()
        assert main([*argv, "--resume"]) == 1  # the up-arrow in a second terminal
        seconds = time.monotonic() - start
        message = said(capsys)
        assert seconds < 2, seconds
        assert f"{out} is being written by process {proc.pid}" in message and "gsedit edit" in message
        assert {name: (out / name).read_bytes() for name in kept} == kept and turn_files(out, 1) == turn1
        for command in (["undo", str(out)], ["refine", str(out), "--device", "cpu", "--quiet"]):
            assert main(command) == 1 and f"process {proc.pid}" in said(capsys)
        # a new process is told before it loads torch (its start-up alone would take seconds)
        probe = ("import sys; from gsedit.cli import main; code = main(sys.argv[1:]); "
                 "print(code, 'torch' in sys.modules)")
        second = subprocess.run([sys.executable, "-c", probe, *argv, "--resume"], capture_output=True, text=True,
                                timeout=120)
        assert second.stdout.split() == ["1", "False"], second.stdout + second.stderr
        assert f"process {proc.pid}" in " ".join(second.stderr.split())
        assert len(ViewerContent.from_session(out).states) == 2  # a reader: turns 0 and 1
        assert list(out.glob(".turn_02.*.tmp"))  # the writer's temporary is left alone
        assert _running(out, 2)()

        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "--resume` continues" in " ".join(stderr.split())
    assert turns_of(out) == [(A, "done"), (B, "interrupted")] and not (out / "turn_02").exists()
    assert main([*argv, "--resume"]) == 0
    assert turns_of(out) == [(A, "done"), (B, "done")] and turn_files(out, 1) == turn1
    assert_shareable(out)


def test_eval_and_view_read_a_half_finished_session(reference, tmp_path):
    """What a reader sees while turn 3 runs: its record 'running', its folder still a temporary."""
    from gsedit.viewer.content import ViewerContent

    out = tmp_path / "D"
    shutil.copytree(reference, out)
    data = json.loads((out / "session.json").read_text())
    data["turns"].append({**data["turns"][-1], "index": 3, "instruction": C, "status": "running"})
    (out / "session.json").write_text(json.dumps(data))
    partial = out / ".turn_03.x1y2.tmp"
    partial.mkdir()
    (partial / "scene.ply").write_bytes((out / "turn_02" / "scene.ply").read_bytes()[:1000])
    assert main(["eval", str(out), "--device", "cpu"]) == 0
    assert [t["turn"] for t in json.loads((out / "metrics.json").read_text())["turns"]] == [1, 2]
    assert [s.label for s in ViewerContent.from_session(out).states] == ["turn 0: input", f"turn 1: {A}",
                                                                          f"turn 2: {B}"]
    assert partial.is_dir()  # only the writer may remove it


def test_every_writer_spelling_is_refused_before_torch_loads(scene, tmp_path):
    """--out DIR, --out=DIR, compare's default folder, undo's and refine's positional DIR."""
    holder_code = ("import sys, time; from gsedit.edit.lock import FolderLock; "
                   "locks = [FolderLock(f).acquire() for f in sys.argv[1:]]; print('held', flush=True); "
                   "time.sleep(120)")
    probe = ("import sys; from gsedit.cli import main; code = main(sys.argv[1:]); "
             "print(code, 'torch' in sys.modules)")
    out = tmp_path / "D"
    holder = subprocess.Popen([sys.executable, "-c", holder_code, str(out), "compare"], stdout=subprocess.PIPE,
                              text=True, cwd=tmp_path)
    try:
        assert holder.stdout.readline().strip() == "held"
        equals = edit_argv(scene, out)
        at = equals.index("--out")
        equals[at:at + 2] = [f"--out={out}"]
        default_compare = edit_argv(scene, out, command="compare")
        at = default_compare.index("--out")
        del default_compare[at:at + 2]
        for argv in (edit_argv(scene, out), equals, default_compare, ["undo", str(out)],
                     ["refine", str(out), "--device", "cpu"]):
            told = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True,
                                  timeout=120, cwd=tmp_path)
            assert told.stdout.split() == ["1", "False"], (argv, told.stdout + told.stderr)
            assert f"process {holder.pid}" in " ".join(told.stderr.split()), argv
    finally:
        holder.kill()
        holder.communicate(timeout=60)


def test_kill_9_leaves_no_stale_lock(scene, tmp_path):
    from gsedit.edit.lock import FolderLock

    out = tmp_path / "D"
    proc = _start(edit_argv(scene, out, iters=300))
    try:
        _wait_for(lambda: _running(out, 1)() and list(out.glob(".turn_01.*.tmp")), proc)
    finally:
        proc.kill()  # SIGKILL: no handler runs
        proc.communicate(timeout=60)
    assert list(out.glob(".turn_01.*.tmp"))
    start = time.monotonic()
    with FolderLock(out):
        assert time.monotonic() - start < 1
        assert not list(out.glob(".*.tmp"))  # the next writer clears what the killed one left


# ----------------------------------------------------------------------------- the machine fails


def _failing_ply_write(monkeypatch, code: int, at: int):
    """The `at`-th .ply write fails with OSError `code`, naming the (temporary) file it wrote."""
    from gsedit.scene import ply

    write, calls = ply.write_ply, {"n": 0}

    def failing(gaussians, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at:
            raise OSError(code, os.strerror(code), str(path))
        return write(gaussians, path, *args, **kwargs)

    monkeypatch.setattr(ply, "write_ply", failing)


@pytest.mark.parametrize(
    "code, cause",
    [(errno.ENOSPC, "the disk is full"), (errno.EACCES, "permission denied"),
     (errno.EROFS, "the file system is read-only")],
)
def test_a_failed_write_names_the_file_marks_the_turn_and_resumes(scene, reference, tmp_path, monkeypatch, capsys,
                                                                code, cause):
    out = tmp_path / "D"
    argv = edit_argv(scene, out)
    _failing_ply_write(monkeypatch, code, at=2)  # turn 2's scene.ply
    assert main(argv) == 1
    message = said(capsys)
    assert f"{out / 'turn_02' / 'scene.ply'}: {cause} ({os.strerror(code)})" in message
    assert f"`{shlex.join(['gsedit', *argv, '--resume'])}` continues" in message
    assert turns_of(out) == [(A, "done"), (B, "failed")] and not (out / "turn_02").exists()
    assert_same_turns(out, reference, [1])
    monkeypatch.undo()  # the cause is gone
    assert main([*argv, "--resume"]) == 0
    assert turns_of(out) == [(A, "done"), (B, "done")]
    assert_same_turns(out, reference)


def test_render_on_a_full_disk_leaves_only_whole_images(scene, tmp_path, monkeypatch, capsys):
    """The 3rd PNG's write fails half-way: the two before it are whole, no half file or temporary
    is left, and the rerun writes them all."""
    from gsedit.render.images import read_image

    ply, cams = scene
    out = tmp_path / "r"
    argv = ["render", str(ply), "--cameras", str(cams), "--out", str(out), "--device", "cpu"]
    write_bytes, calls = Path.write_bytes, {"n": 0}

    def filling(path, data):  # the PNGs are encoded in memory, then written to a temporary
        calls["n"] += path.suffix == ".tmp"
        if path.suffix == ".tmp" and calls["n"] == 3:
            write_bytes(path, b"\x89PNG\r\n")  # what a full disk leaves: the start of a file
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return write_bytes(path, data)

    monkeypatch.setattr(Path, "write_bytes", filling)
    assert main(argv) == 1
    message = said(capsys)
    assert "the disk is full" in message and str(out / "rgb") in message and ".tmp" not in message
    written = sorted((out / "rgb").iterdir())
    assert len(written) == 2 and all(read_image(f).shape[-1] == 3 for f in written)
    monkeypatch.undo()
    assert main(argv) == 0
    assert len(list((out / "rgb").iterdir())) == len(json.loads(Path(cams).read_text()))
    assert_shareable(out)


def test_an_output_folder_that_cannot_be_made(scene, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "locked" / "D"
    mkdir = Path.mkdir

    def refused(self, *args, **kwargs):
        if self == out:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refused)
    argv = edit_argv(scene, out)
    assert main(argv) == 1
    message = said(capsys)
    assert f"{out}: permission denied" in message and "make the folder writable" in message
    assert not out.exists()
    monkeypatch.undo()
    assert main([*argv, "--resume"]) == 0  # the suggested command starts the session once it can
    assert_same_turns(out, reference)


def test_optimisation_going_nan_stops_the_turn_and_writes_no_nan_ply(scene, reference, tmp_path, monkeypatch,
                                                                     capsys):
    from gsedit.edit import api as sessions
    from gsedit.scene.ply import read_ply

    class NaNEditor(SyntheticEditor):
        """Returns NaN images for turn 2's instruction."""

        def edit(self, images, conditions, instruction, *args, **kwargs):
            out = super().edit(images, conditions, instruction, *args, **kwargs)
            return dataclasses.replace(out, images=torch.full_like(out.images, math.nan)) if instruction == B else out

    monkeypatch.setattr(sessions, "build_editor", lambda plugins, device: NaNEditor())
    out = tmp_path / "D"
    argv = edit_argv(scene, out, iters=12)
    assert main(argv) == 1
    message = said(capsys)
    assert f"Turn 2 ('{B}') stopped: the optimisation went non-finite at step" in message
    assert "the loss is nan" in message and "Nothing of it was written" in message
    assert turns_of(out) == [(A, "done"), (B, "failed")] and not (out / "turn_02").exists()
    for path in out.rglob("*.ply"):
        read_ply(path)  # refuses NaN
    monkeypatch.undo()
    assert main([*argv, "--resume"]) == 0 and turns_of(out)[1] == (B, "done")


def test_a_nan_parameter_stops_the_trainers(scene):
    from gsedit.cameras.formats import load_cameras
    from gsedit.scene.base import NonFiniteError
    from gsedit.scene.fit import fit_scene
    from gsedit.scene.gaussian_scene import GaussianScene

    ply, cams = scene
    cameras = load_cameras(cams)
    loaded = GaussianScene.load(ply)
    optimizer = loaded.optimizer(10)
    with torch.no_grad():
        loaded.params["means"][7] = math.nan
    with pytest.raises(NonFiniteError, match="parameter 'means' holds NaN or inf in 3 of"):
        optimizer.finish()  # the last check before any save
    images = torch.full((len(cameras), cameras.height, cameras.width, 3), math.nan)
    with pytest.raises(NonFiniteError, match="at step 1: the loss is nan"):
        fit_scene(GaussianScene.load(ply), cameras, images, 5)


def test_a_nan_stops_the_nerfacto_trainer(scene):
    from gsedit.cameras.formats import load_cameras
    from gsedit.scene.base import NonFiniteError
    from gsedit.scene.nerfacto.config import NERFACTO_PRESETS
    from gsedit.scene.nerfacto.scene import NerfactoScene

    cameras = load_cameras(scene[1])
    field = NerfactoScene.create(cameras, NERFACTO_PRESETS["tiny"])
    optimizer = field.optimizer(4)
    targets = torch.rand(len(cameras), cameras.height, cameras.width, 3)
    optimizer.step(cameras, targets)
    with pytest.raises(NonFiniteError, match="at step 2: the loss is nan"):
        optimizer.step(cameras, torch.full_like(targets, math.nan))
    with torch.no_grad():
        next(field.network.field.parameters()).view(-1)[0] = math.inf
    with pytest.raises(NonFiniteError, match="parameter 'field."):
        optimizer.finish()


# ----------------------------------------------------------------------------- hostile input

PROPERTIES = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
              "rot_0", "rot_1", "rot_2", "rot_3"]


def _ply(path: Path, n: int = 20, edit=None) -> Path:
    data = np.zeros(n, dtype=[(name, "<f4") for name in PROPERTIES])
    data["rot_0"] = 1
    data["scale_0"] = data["scale_1"] = data["scale_2"] = -3
    if edit:
        edit(data)
    plyfile.PlyData([plyfile.PlyElement.describe(data, "vertex")]).write(str(path))
    return path


def _header(count: int) -> bytes:
    return (b"ply\nformat binary_little_endian 1.0\n" + f"element vertex {count}\n".encode()
            + b"".join(f"property float {n}\n".encode() for n in PROPERTIES) + b"end_header\n")


def _hostile_scene(kind: str, folder: Path) -> tuple[Path, str]:
    path = folder / f"{kind}.ply"
    if kind == "billions":
        path.write_bytes(_header(3_000_000_000) + bytes(200))
        return path, "the header claims 3,000,000,000 vertex entries"
    if kind == "truncated":
        path.write_bytes(_ply(path, 100).read_bytes()[:-300])
        return path, "truncated or corrupt"
    if kind == "nan_quaternion":
        return _ply(path, edit=lambda d: d["rot_2"].__setitem__(3, np.nan)), "rot_* in 1 Gaussians"
    if kind == "zero_quaternion":
        return _ply(path, edit=lambda d: d["rot_0"].__setitem__(slice(0, 2), 0)), "2 of 20 Gaussians whose rotation"
    if kind == "nan_position":
        return _ply(path, edit=lambda d: d["x"].__setitem__(0, np.inf)), "x/y/z in 1 Gaussians"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["billions", "truncated", "nan_quaternion", "zero_quaternion", "nan_position"])
def test_hostile_scene_files_are_refused_at_once(kind, tmp_path, capsys):
    path, expected = _hostile_scene(kind, tmp_path)
    start = time.monotonic()
    assert main(["info", str(path)]) == 1
    assert time.monotonic() - start < 3
    message = said(capsys)
    assert message.startswith(f"error: {path}: ") and expected in message, message


def _camera_entry(**changes) -> dict:
    entry = {"id": 0, "img_name": "view0", "width": 32, "height": 32, "position": [0.0, -3.0, 0.5],
             "rotation": [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], "fx": 30.0, "fy": 30.0}
    return {**entry, **changes}


def _colmap_fisheye(folder: Path) -> Path:
    model = folder / "sparse" / "0"
    model.mkdir(parents=True)
    (model / "cameras.txt").write_text("1 OPENCV_FISHEYE 32 32 30 30 16 16 0.1 0 0 0\n")
    (model / "images.txt").write_text("1 1 0 0 0 0 0 3 1 view0.png\n\n")
    return folder


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("huge", "image size 100000x100000 is beyond the largest gsedit accepts (16384 px a side)"),
        ("zero_focal", "'fx' must be positive, found 0"),
        ("negative_focal", "'fy' must be positive, found -30"),
        ("not_a_rotation", "'rotation' is not a rotation"),
        ("nan_position", "'position' has non-finite values"),
        ("fisheye", "uses camera model OPENCV_FISHEYE"),
        ("huge_orbit", "an orbit has at most 10000 views of at most 16384 px a side"),
    ],
)
def test_hostile_cameras_are_refused_at_once(kind, expected, scene, tmp_path, capsys):
    cams = tmp_path / "cameras.json"
    entries = {
        "huge": _camera_entry(width=100000, height=100000),
        "zero_focal": _camera_entry(fx=0),
        "negative_focal": _camera_entry(fy=-30),
        "not_a_rotation": _camera_entry(rotation=[[2.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),
        "nan_position": _camera_entry(position=[math.nan, 0.0, 0.0]),
    }
    if kind in entries:
        cams.write_text(json.dumps([entries[kind]]))  # json writes NaN as the token NaN
    spec = {"fisheye": lambda: str(_colmap_fisheye(tmp_path / "colmap")),
            "huge_orbit": lambda: "orbit:4@100000x100000"}.get(kind, lambda: str(cams))()
    start = time.monotonic()
    assert main(["render", str(scene[0]), "--cameras", spec, "--out", str(tmp_path / "r"), "--device", "cpu"]) == 1
    assert time.monotonic() - start < 3
    message = said(capsys)
    assert "error:" in message and expected in message, message
    assert not (tmp_path / "r").exists()


def test_a_megabyte_instruction_is_refused_before_anything_is_written(scene, tmp_path, capsys):
    out = tmp_path / "D"
    huge = "make the cube red " * 58255  # ~1 MB
    start = time.monotonic()
    assert main(edit_argv(scene, out, turns=(huge,))) == 1
    assert time.monotonic() - start < 3
    assert f"--turn 1 is {len(huge):,} characters long" in said(capsys) and not out.exists()


class _Planted:
    """A pickle that, if unpickled, creates the file `marker` (harmless stand-in for running code)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_a_malicious_checkpoint_never_runs(scene, tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "scene.ckpt"
    torch.save({"config": {}, "state": _Planted(marker)}, evil)
    for argv in (["info", str(evil)],
                 ["edit", str(evil), "--cameras", str(scene[1]), "--turn", A, "--out", str(tmp_path / "D"), *COMMON]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        message = " ".join(err.split())
        assert f"{evil}: not a PyTorch checkpoint (it holds pickled Python objects besides tensors" in message
        assert "unpickling them could run code" in message and not marker.exists()
        assert len([line for line in err.splitlines() if line.strip()]) <= 2  # one paragraph (+ a note)
    torch.load(evil, weights_only=False)  # what an unsafe loader would have done: the file is live
    assert marker.exists()


def test_atomic_writes_follow_the_umask(tmp_path):
    from gsedit.atomic import atomic_dir, atomic_path

    for mask, file_mode, dir_mode in ((0o022, 0o644, 0o755), (0o027, 0o640, 0o750), (0o077, 0o600, 0o700)):
        previous = os.umask(mask)
        try:
            with atomic_path(tmp_path / f"f{mask:o}.json") as tmp:
                tmp.write_text("{}")
            with atomic_dir(tmp_path / f"d{mask:o}") as tmp:
                (tmp / "x").write_text("1")
        finally:
            os.umask(previous)
        assert stat.S_IMODE((tmp_path / f"f{mask:o}.json").stat().st_mode) == file_mode
        assert stat.S_IMODE((tmp_path / f"d{mask:o}").stat().st_mode) == dir_mode
