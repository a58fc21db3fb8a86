"""`gsedit batch --address auto` against a real Ray head started by `ray start` (loopback only),
and what a failed connection says."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gsedit.cli import main
from gsedit.batch.jobs import load_jobs
from gsedit.batch.run import cluster_error, run_jobs
from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene
from gsedit.errors import GseditError

START_TIMEOUT = 60  # seconds for the head to come up on a busy machine
JOBS = {
    "defaults": {"editor": "synthetic", "device": "cpu", "method": "edit3d", "segmenter": "labels", "iters": 4,
                 "densify": False, "cameras": "cameras.json", "scene": "scene.ply"},
    "jobs": [{"turns": ["make the cube red"], "out": "out/cube"},
             {"turns": ["make the sphere blue"], "out": "out/sphere"}],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(monkeypatch):
    """A head started as README says for one machine; stopped by its own process group (not
    `ray stop`, which would stop every Ray instance of this user on the machine)."""
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray is None:
        pytest.fail("the ray command is missing: gsedit's Ray dependency installs it")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    from ray._private.utils import get_ray_address_file

    address_file = Path(get_ray_address_file(None))  # `ray start` writes the head's address there
    before = address_file.read_bytes() if address_file.is_file() else None
    head = subprocess.Popen(
        [ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(free_port()), "--num-cpus", "2",
         "--include-dashboard", "false", "--disable-usage-stats", "--block"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        deadline, seen = time.monotonic() + START_TIMEOUT, []
        while not any("Ray runtime started" in line for line in seen):
            line = head.stdout.readline()
            if not line or time.monotonic() > deadline:
                pytest.fail("ray start --head did not start:\n" + "".join(seen[-20:]))
            seen.append(line)
        yield
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        for _ in range(20):  # the head's daemons leave shortly after `ray start --block`
            try:
                os.killpg(head.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        else:
            os.killpg(head.pid, signal.SIGKILL)
        # a stopped head's address left behind would make a later ray.init() join nothing
        if before is None:
            address_file.unlink(missing_ok=True)
        else:
            address_file.write_bytes(before)


def test_two_jobs_run_on_a_head_started_with_ray_start(ray_head, tmp_path, capsys):
    write_synthetic_scene(tmp_path / "scene.ply", SyntheticSceneConfig(points_per_object=150, seed=1),
                          n_cameras=4, size=32)
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump(JOBS))
    assert main(["batch", str(tmp_path / "jobs.yaml"), "--address", "auto", "--quiet"]) == 0
    assert capsys.readouterr().err.count("done") == 2
    for name, instruction in (("cube", "make the cube red"), ("sphere", "make the sphere blue")):
        folder = tmp_path / "out" / name
        turns = json.loads((folder / "session.json").read_text())["turns"]
        assert [(t["instruction"], t["status"]) for t in turns] == [(instruction, "done")]
        assert (folder / "turn_01" / "scene.ply").stat().st_size > 0


def test_a_failed_connection_names_the_cluster_and_the_likely_causes(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    reason = "Failed to connect to Ray cluster at 192.0.2.2:6399."

    def refuse(**kwargs):
        raise ConnectionError(reason)  # what ray.init raises: an OSError, once reported as "a file: ..."

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    write_synthetic_scene(tmp_path / "scene.ply", SyntheticSceneConfig(points_per_object=20), n_cameras=2, size=16)
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump(JOBS))
    with pytest.raises(GseditError) as raised:
        run_jobs(load_jobs(tmp_path / "jobs.yaml"), "127.0.0.1:6399", quiet=True)
    message = str(raised.value)
    assert message == cluster_error("127.0.0.1:6399", ray.__version__, reason)
    assert "Ray cluster at 127.0.0.1:6399 (Ray rewrote 127.0.0.1:6399 to 192.0.2.2:6399)" in message
    for cause in ("--node-ip-address 127.0.0.1", "token authentication", "RAY_AUTH_TOKEN", ray.__version__):
        assert cause in message
    assert "a file" not in message
    assert main(["batch", str(tmp_path / "jobs.yaml"), "--address", "127.0.0.1:6399"]) == 1
