"""`gsedit batch`: JOBS.yaml validation, and tiny jobs on a local two-CPU Ray instance."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from gsedit.batch.jobs import load_jobs
from gsedit.batch.run import run_jobs
from gsedit.commands.batch import run_batch
from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene
from gsedit.errors import INSTALL_COMMAND, GseditError, InputFileError

# short CPU turns: labels masks (no relevance field), 4 steps, no densification
DEFAULTS = {
    "editor": "synthetic",
    "device": "cpu",
    "method": "edit3d",
    "segmenter": "labels",
    "iters": 4,
    "densify": False,
}


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("batch")
    write_synthetic_scene(
        folder / "scene.ply",
        SyntheticSceneConfig(points_per_object=150, seed=1),
        n_cameras=4,
        size=32,
    )
    (folder / "broken.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 9\n")
    return folder


def write_jobs(folder: Path, jobs: list[dict], name: str = "jobs.yaml", **top) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({"defaults": DEFAULTS, "jobs": jobs, **top}))
    return path


def three_jobs(c_turns: list[str]) -> list[dict]:
    return [
        {
            "scene": "scene.ply",
            "cameras": "cameras.json",
            "turns": ["make the cube red"],
            "out": "out/a",
        },
        {
            "scene": "broken.ply",
            "cameras": "cameras.json",
            "turns": ["make the cube red"],
            "out": "out/b",
        },
        {
            "scene": "scene.ply",
            "cameras": "orbit:4@32x32",
            "turns": c_turns,
            "out": "out/c",
            "name": "sphere",
        },
    ]


def records(folder: Path) -> list[dict]:
    return json.loads((folder / "session.json").read_text())["turns"]


def test_jobs_run_fail_alone_skip_and_resume(local_ray, scenes, capsys):
    out = scenes / "out"
    jobs = write_jobs(scenes, three_jobs(["make the sphere yellow"]))
    first = run_jobs(load_jobs(jobs), quiet=True)
    assert [(r.name, r.status, r.turns_done, r.turns_total) for r in first] == [
        ("a", "done", 1, 1),
        ("b", "failed", 0, 1),
        ("sphere", "done", 1, 1),
    ]
    assert "broken.ply" in first[1].error and first[0].error is None
    assert not (out / "b").exists()  # a bad scene fails before any folder is written
    for job in ("a", "c"):
        assert (out / job / "turn_01" / "scene.ply").is_file()
        assert [t["status"] for t in records(out / job)] == ["done"]
        assert (out / job / "report.html").is_file() and (out / job / "log.jsonl").is_file()
    assert records(out / "a")[0]["instruction"] == "make the cube red"
    stamp = (out / "a" / "turn_01" / "scene.ply").stat().st_mtime_ns

    # rerun: finished jobs are skipped, untouched; the failure is reported again; exit code 1
    assert run_batch(jobs, quiet=True) == 1
    summary = capsys.readouterr().err
    assert summary.count("skipped") == 2 and "failed" in summary
    assert f"b: {first[1].error}" in summary  # the error in full, with the file's path
    assert (out / "a" / "turn_01" / "scene.ply").stat().st_mtime_ns == stamp

    # job a interrupted in turn 1 (its folder never renamed); job c gets a second turn
    shutil.rmtree(out / "a" / "turn_01")
    (out / "a" / ".turn_01.x.tmp").mkdir()
    session = json.loads((out / "a" / "session.json").read_text())
    session["turns"][0]["status"] = "interrupted"
    (out / "a" / "session.json").write_text(json.dumps(session))
    stamp_c = (out / "c" / "turn_01" / "scene.ply").stat().st_mtime_ns
    jobs = write_jobs(scenes, three_jobs(["make the sphere yellow", "make the cube red"]))
    third = run_jobs(load_jobs(jobs), quiet=True)
    assert [(r.status, r.turns_done, r.turns_total) for r in third] == [
        ("done", 1, 1),
        ("failed", 0, 1),
        ("done", 2, 2),
    ]
    assert (out / "a" / "turn_01" / "scene.ply").is_file() and not (
        out / "a" / ".turn_01.x.tmp"
    ).exists()
    assert [t["instruction"] for t in records(out / "c")] == [
        "make the sphere yellow",
        "make the cube red",
    ]
    assert (out / "c" / "turn_01" / "scene.ply").stat().st_mtime_ns == stamp_c  # turn 1 kept

    # a job whose folder holds a session with other instructions fails and leaves it alone
    before = (out / "c" / "session.json").read_text()
    other = write_jobs(
        scenes,
        [
            {
                "scene": "scene.ply",
                "cameras": "cameras.json",
                "turns": ["make the cylinder blue"],
                "out": "out/c",
            }
        ],
        "other.yaml",
    )
    [result] = run_jobs(load_jobs(other), quiet=True)
    assert result.status == "failed" and "make the sphere yellow" in result.error
    assert (out / "c" / "session.json").read_text() == before


# ----------------------------------------------------------------------------- validation


GOOD = {"scene": "s.ply", "cameras": "orbit:4", "turns": ["make the cube red"], "out": "o"}


@pytest.mark.parametrize(
    "jobs, top, expected",
    [
        ([{**GOOD, "iter": 5}], {}, "jobs[0]: unknown option 'iter' (did you mean 'iters'?)"),
        (
            [GOOD, {**GOOD, "out": "p", "turns": []}],
            {},
            "jobs[1]: turns: expected a non-empty list",
        ),
        (
            [GOOD, {k: v for k, v in GOOD.items() if k != "cameras"} | {"out": "p"}],
            {},
            "jobs[1]: missing cameras",
        ),
        ([{**GOOD, "iters": "many"}], {}, "jobs[0]: iters: expected int, got a str ('many')"),
        ([{**GOOD, "segmenter": "sam"}], {}, "jobs[0]: segmenter: expected one of"),
        ([{**GOOD, "method": "nope"}], {}, "jobs[0]: Unknown method preset 'nope'"),
        ([{**GOOD, "t_min": 0.9, "t_max": 0.1}], {}, "jobs[0]: Invalid edit settings"),
        ([{**GOOD, "target": ["a", "b"]}], {}, "jobs[0]: --target was given 2 times for 1 turns"),
        ([{**GOOD, "ip2p": {"stepz": 3}}], {}, "jobs[0]: unknown IP2PConfig options ['stepz']"),
        (
            [{**GOOD, "sam_masks": {"points_per_side": 1.5}}],
            {},
            "jobs[0]: points_per_side: expected int",
        ),
        ([GOOD, dict(GOOD)], {}, "jobs[0] and jobs[1] both write to"),
        ([GOOD], {"num_cpus": 0}, "need num_cpus > 0"),
        ([GOOD], {"workers": 3}, "unknown top-level keys ['workers']"),
        ([], {}, "`jobs:` must be a non-empty list"),
        (["scene.ply"], {}, "jobs[0]: expected a mapping of options, found a str"),
    ],
)
def test_validation_names_file_and_job(tmp_path, jobs, top, expected):
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump({"jobs": jobs, **top}))
    with pytest.raises(InputFileError) as info:
        load_jobs(path)
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)


def test_defaults_merge_and_paths(tmp_path):
    path = tmp_path / "jobs.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "num_cpus": 2,
                "defaults": {
                    "scene": "s.ply",
                    "cameras": "cams.json",
                    "iters": 7,
                    "sam-checkpoint": "sam.pth",
                    "ip2p": {"steps": 5, "model": "m"},
                },
                "jobs": [
                    {**GOOD, "scene": "/abs/t.ply", "ip2p": {"steps": 9}, "keep": "the face"},
                    {
                        "turns": ["make the sphere red", "make it blue"],
                        "out": "q",
                        "target": ["the sphere"] * 2,
                    },
                ],
            }
        )
    )
    plan = load_jobs(path)
    a, b = (job.edit for job in plan.jobs)
    assert plan.resources.num_cpus == 2 and plan.jobs[0].threads == 2
    assert (a.scene, a.cameras, a.out) == (Path("/abs/t.ply"), "orbit:4", tmp_path / "o")
    assert (a.ip2p.steps, a.ip2p.model, a.keep) == (9, "m", ["the face"])  # nested options merge
    assert (b.scene, b.cameras) == (tmp_path / "s.ply", str(tmp_path / "cams.json"))
    assert (
        a.settings.iters == b.settings.iters == 7 and b.adss.sam_checkpoint == tmp_path / "sam.pth"
    )
    assert a.settings.segmenter == "relevance"  # the gsedit preset's, under the job's overrides
    assert [j.name for j in plan.jobs] == ["o", "q"]


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(InputFileError, match="no such jobs file"):
        load_jobs(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("jobs: [unclosed\n")
    with pytest.raises(InputFileError, match="not valid YAML"):
        load_jobs(tmp_path / "bad.yaml")


def test_without_ray_says_how_to_install(tmp_path, monkeypatch):
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump({"jobs": [GOOD]}))
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(GseditError, match="gsedit batch needs Ray") as caught:
        run_jobs(load_jobs(path))
    assert INSTALL_COMMAND in str(caught.value)
