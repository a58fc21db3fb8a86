"""The command line answers --help and argument errors without loading torch or the other heavy
libraries: they load only when a command runs (issue 24; `python tools/bench_startup.py` times it).
A busy-session refusal is checked the same way in tests/test_faults.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: libraries a command may need but --help must not load
HEAVY = ("torch", "numpy", "scipy", "diffusers", "transformers", "viser", "ray", "nerfstudio", "gsplat", "PIL")
SUBCOMMANDS = ["info", "render", "edit", "compare", "fit", "convert", "undo", "view", "studio", "batch",
               "segment", "refine", "eval", "demo"]

#: runs `gsedit.cli.main` on each argv in turn in one process and prints, as JSON, the heavy
#: libraries loaded after each (the first non-empty entry names the argv that loaded them)
_PROBE = """
import json, sys
from gsedit.cli import main
heavy, argvs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
loaded = []
for argv in argvs:
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    loaded.append([code, sorted(m for m in heavy if m in sys.modules)])
print(json.dumps(loaded))
"""


def heavy_after(argvs: list[list[str]]) -> list[list]:
    """[exit code, heavy libraries loaded so far] after each argv, run in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(HEAVY), json.dumps(argvs)], cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "", "COLUMNS": "100"}, capture_output=True, check=False,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_and_argument_errors_load_no_heavy_library():
    argvs = [["--help"], ["edit", "--help"], ["edit", "scene.ply", "--bogus-option"], ["render", "scene.ply"],
             *([name, "--help"] for name in SUBCOMMANDS)]
    results = heavy_after(argvs)
    assert [r[0] for r in results[:4]] == [0, 0, 2, 2]  # help answers; an unknown option, a missing --out
    assert {tuple(argv): loaded for argv, (_, loaded) in zip(argvs, results) if loaded} == {}


def test_the_probe_sees_torch_once_a_command_runs(tmp_path):
    """The check above must be able to fail: running a command (here on a missing file) loads torch."""
    (_, loaded), = heavy_after([["render", str(tmp_path / "missing.ply"), "--out", str(tmp_path / "r")]])
    assert "torch" in loaded


def test_undo_loads_no_heavy_library(tmp_path):
    """Dropping a turn is file work: `gsedit.Session` opens a session without torch (1.9 s -> 0.2 s)."""
    from gsedit.cli import main
    from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene

    cams = write_synthetic_scene(tmp_path / "scene.ply", SyntheticSceneConfig(points_per_object=20), n_cameras=2,
                                 size=16)
    out = tmp_path / "S"
    assert main(["edit", str(tmp_path / "scene.ply"), "--cameras", str(cams), "--turn", "make the sphere red",
                 "--out", str(out), "--editor", "synthetic", "--iters", "1", "--device", "cpu", "--quiet"]) == 0
    assert heavy_after([["undo", str(out)]]) == [[0, []]]
    assert not (out / "turn_01").exists()


#: ends through exit_without_teardown after an atexit handler, a long piped stdout and torch
_EXIT = """
import atexit, sys, threading, time, torch
from gsedit.cli import exit_without_teardown
atexit.register(lambda: print("atexit ran", file=sys.stderr))
class Module:  # finalised only when the interpreter tears its modules down
    def __del__(self):
        print("torn down", file=sys.stderr)
held = Module()
if sys.argv[1] == "thread":  # a writer still running: the ordinary exit waits for it
    threading.Thread(target=lambda: (time.sleep(0.5), print("writer done", file=sys.stderr))).start()
print("x" * 200_000)
exit_without_teardown(3)
"""


def test_exit_without_teardown_flushes_runs_atexit_and_waits_for_threads():
    """The 0.3 s of torch's module teardown is skipped, nothing the process had to do is."""
    for case in ("alone", "thread"):
        done = subprocess.run([sys.executable, "-c", _EXIT, case], check=False, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 3
        assert done.stdout == "x" * 200_000 + "\n"
        assert "atexit ran" in done.stderr
        assert ("writer done" in done.stderr) == (case == "thread")
        assert ("torn down" in done.stderr) == (case == "thread")


def test_a_profiled_command_still_writes_its_profile(tmp_path):
    """cProfile writes its file after the command returns: the fast exit must not skip that."""
    profile = tmp_path / "info.prof"
    scene = tmp_path / "scene.ply"
    code = ("from pathlib import Path; from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene; "
            f"write_synthetic_scene(Path({str(scene)!r}), SyntheticSceneConfig(points_per_object=20))")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""}, check=True)
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "gsedit", "info", str(scene)],
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""}, capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert profile.stat().st_size > 0
