"""The README's set-up is what CI runs, and every install hint gsedit prints quotes the README."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from gsedit.errors import INSTALL_COMMAND

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _setup_block() -> list[str]:
    """The command lines of the first bash block under the README's "## Set up"."""
    section = README.split("## Set up", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_the_readme_sets_up_with_two_commands_the_first_of_which_is_the_install_command():
    assert _setup_block() == [INSTALL_COMMAND, "python -m pytest"]


def test_ci_runs_exactly_the_readme_commands():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in ci_lines if line.startswith("python -m ")]
    install, test = _setup_block()
    assert commands == [f"{install} || exit 1", test]


def _string_constants(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_every_install_hint_in_the_package_stands_in_the_readme_word_for_word():
    hints = [
        (path.relative_to(ROOT), text)
        for path in sorted((ROOT / "gsedit").rglob("*.py"))
        for text in _string_constants(path)
        if "pip install" in text
    ]
    assert len(hints) >= 2  # the install command and the optional xformers line
    for where, text in hints:
        commands = re.findall(r"`([^`]*pip install[^`]*)`", text) or [text]
        for command in commands:
            assert command in README, f"{where}: {command!r} is not in README.md"


def test_a_missing_nerfstudio_is_explained_with_the_install_command(tmp_path):
    """Without nerfstudio, a .ckpt scene says which package is missing and quotes the install line."""
    ckpt = tmp_path / "scene.ckpt"
    ckpt.write_bytes(b"not a checkpoint")
    code = (
        "import sys; sys.modules['nerfstudio'] = None\n"  # import fails as if it were not installed
        "from gsedit.cli import main\n"
        f"sys.exit(main(['info', {str(ckpt)!r}]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    out = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, out
    assert "Traceback" not in out
    assert "The nerfacto backend needs nerfstudio" in out and INSTALL_COMMAND in out
