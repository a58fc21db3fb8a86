"""The settings that command options name load without torch, so the CLI can parse and check its
options (and answer --help) before any model code loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: module -> the settings classes it holds
CONFIG_MODULES = {
    "gsedit.edit.config": ["EditConfig"],
    "gsedit.edit.refine_config": ["RefineConfig"],
    "gsedit.models.adss_config": ["ADSSConfig", "SamMaskConfig"],
    "gsedit.models.enhance_config": ["EnhanceConfig"],
    "gsedit.models.ip2p.config": ["IP2PConfig"],
    "gsedit.scene.fit_config": ["FitConfig"],
    "gsedit.scene.convert_config": ["ConvertConfig"],
    "gsedit.scene.nerfacto.config": ["NerfactoConfig"],
    "gsedit.evaluation.evaluate_config": ["EvalConfig"],
}

_PROBE = """
import dataclasses, importlib, sys
module = importlib.import_module(sys.argv[1])
for name in sys.argv[2:]:
    dataclasses.fields(getattr(module, name)())  # a dataclass that builds with its defaults
print(sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "nerfstudio", "diffusers"))))
"""


def _heavy_modules_after_import(module: str, names: list[str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, module, *names],
        cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""}, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("module", sorted(CONFIG_MODULES))
def test_config_module_imports_without_torch(module):
    assert _heavy_modules_after_import(module, CONFIG_MODULES[module]) == "[]"


def test_the_probe_sees_torch_where_it_is_imported():
    """The check above must be able to fail: a module that needs torch shows it."""
    assert "'torch'" in _heavy_modules_after_import("gsedit.scene.fit", ["FitConfig"])
