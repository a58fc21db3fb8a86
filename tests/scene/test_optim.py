"""gsedit's Adam is torch.optim.Adam without the torch._dynamo import: same numbers, same state."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene
from gsedit.scene.optim import Adam


def _params(seed: int) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=gen)) for shape in [(64, 3), (64, 4), (64,)]]


def _groups(params, lrs=(1.6e-4, 5e-3, 0.05)):
    return [{"params": [p], "lr": lr, "name": f"g{i}"} for i, (p, lr) in enumerate(zip(params, lrs))]


def _run(optimizer, params, steps: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen) * 10 ** torch.randint(-6, 2, (), generator=gen).item()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


@pytest.mark.parametrize(
    "options", [{"eps": 1e-15}, {"betas": (0.8, 0.99), "weight_decay": 0.01}, {"amsgrad": True}]
)
def test_adam_matches_torch_bit_for_bit(options):
    ours, theirs = _params(0), _params(0)
    a, b = Adam(_groups(ours), **options), torch.optim.Adam(_groups(theirs), **options)
    _run(a, ours, 30, seed=1)
    _run(b, theirs, 30, seed=1)
    for p, q in zip(ours, theirs):
        assert torch.equal(p, q)
        for key, value in b.state[q].items():
            assert torch.equal(a.state[p][key], value), key


def test_adam_state_moves_between_ours_and_torch():
    ours, theirs = _params(0), _params(0)
    a, b = Adam(_groups(ours), eps=1e-15), torch.optim.Adam(_groups(theirs), eps=1e-15)
    _run(a, ours, 5, seed=1)
    _run(b, theirs, 5, seed=1)
    # each continues from the other's state dict: the runs stay identical
    a_state, b_state = a.state_dict(), b.state_dict()
    a.load_state_dict(b_state)
    b.load_state_dict(a_state)
    _run(a, ours, 5, seed=2)
    _run(b, theirs, 5, seed=2)
    assert all(torch.equal(p, q) for p, q in zip(ours, theirs))
    assert a.state_dict()["param_groups"] == b.state_dict()["param_groups"]


def test_adam_imports_no_dynamo():
    code = (
        "import sys, torch\n"
        "from gsedit.scene.optim import Adam\n"
        "p = torch.nn.Parameter(torch.zeros(3))\n"
        "o = Adam([p], lr=0.1)\n"
        "p.grad = torch.ones(3)\n"
        "o.step(); o.zero_grad(); o.load_state_dict(o.state_dict())\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
    # the check can fail: torch's own Adam imports it
    result = subprocess.run([sys.executable, "-c", code.replace("Adam(", "torch.optim.Adam(")],
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"


def _imports_dynamo(*args) -> bool:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # evaluation's CLIP and LPIPS: missing, said at once
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "gsedit", *map(str, args)],
                            capture_output=True, text=True, check=False, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return "torch._dynamo" in result.stderr  # -X importtime lists every module imported, on stderr


def test_edit_fit_and_render_never_import_dynamo(tmp_path):
    """torch._dynamo costs seconds to import and none of these commands compiles anything."""
    scene = tmp_path / "scene.ply"
    cams = write_synthetic_scene(scene, SyntheticSceneConfig(points_per_object=100, seed=1), n_cameras=3, size=24)
    common = ["--device", "cpu", "--quiet"]
    assert not _imports_dynamo("render", scene, "--cameras", cams, "--out", tmp_path / "r", "--device", "cpu")
    assert not _imports_dynamo("fit", tmp_path / "r" / "rgb", "--cameras", cams, "--out", tmp_path / "fit.ply",
                               "--iters", "3", "--points", "100", *common)
    assert not _imports_dynamo("edit", scene, "--cameras", cams, "--turn", "make the sphere red",
                               "--out", tmp_path / "D", "--editor", "synthetic", "--iters", "3", *common)


def test_compare_and_demo_never_import_dynamo(tmp_path):
    """compare's nerfacto refit and turn (deterministic kernels on CPU, nerfstudio's optimisers)
    and the demo's turns, report and evaluation."""
    pytest.importorskip("nerfstudio", reason="the nerfacto backend needs nerfstudio (see README)")
    scene = tmp_path / "scene.ply"
    cams = write_synthetic_scene(scene, SyntheticSceneConfig(points_per_object=100, seed=1), n_cameras=3, size=24)
    assert not _imports_dynamo("compare", scene, "--cameras", cams, "--turn", "make the sphere red",
                               "--out", tmp_path / "cmp", "--editor", "synthetic", "--iters", "3",
                               "--refit.iters", "20", "--refit.nerfacto-preset", "tiny", "--device", "cpu", "--quiet")
    assert not _imports_dynamo("demo", "--out", tmp_path / "demo", "--iters", "10", "--size", "32", "--device", "cpu",
                               "--quiet")
