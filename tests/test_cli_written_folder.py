"""cli._written_folder: the folder the busy-session probe checks is the one tyro will write."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsedit.cli import _written_folder


@pytest.mark.parametrize(
    "argv, folder",
    [
        (["edit", "s.ply", "--turn", "x", "--out", "A"], "A"),
        (["edit", "s.ply", "--turn", "x", "--out=A"], "A"),
        (["edit", "s.ply", "--turn", "x"], "session"),
        (["compare", "s.ply", "--turn", "x"], "compare"),
        # a repeated option: tyro (argparse) keeps the last value, so the probe must too
        (["edit", "s.ply", "--out", "A", "--turn", "x", "--out", "B"], "B"),
        (["edit", "s.ply", "--out=A", "--out", "B"], "B"),
        (["edit", "s.ply", "--out", "A", "--out=B"], "B"),
        (["undo", "A"], "A"),
        (["info", "--out", "A"], None),
    ],
)
def test_the_probed_folder_is_the_written_one(argv, folder):
    assert _written_folder(argv) == (None if folder is None else Path(folder))
