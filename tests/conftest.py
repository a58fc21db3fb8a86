"""Fixtures shared by several test folders."""

from __future__ import annotations

import os

import pytest
import torch

# Under CI, a test may skip only for want of a CUDA device or of Chromium (the optional browser
# install of .ci/run): any other skip means the README's install command left something out.
ALLOWED_CI_SKIPS = ("cuda", "chromium")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for the module: on tiny batches a second OpenMP thread costs more than it
    gives, far more on a busy 2-core machine, and nerfacto's hash-grid scatter is only
    bit-reproducible on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)



@pytest.fixture(scope="module")
def labelled_scene(tmp_path_factory):
    """(scene.ply, cameras.json): the synthetic labelled scene at 150 points per object, 4 views of 32 px."""
    from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene

    folder = tmp_path_factory.mktemp("scene")
    cams = write_synthetic_scene(folder / "scene.ply", SyntheticSceneConfig(points_per_object=150, seed=1),
                                 n_cameras=4, size=32)
    return folder / "scene.ply", cams


@pytest.fixture
def unanswering_hub(monkeypatch) -> list[str]:
    """The Hugging Face hub does not answer (no network) and HF_HUB_OFFLINE is not set; returns the
    urls gsedit.hub asked, one per request."""
    import huggingface_hub

    from gsedit import hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    asked: list[str] = []

    class Unreachable:
        def head(self, url, **kwargs):
            asked.append(url)
            raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "get_session", lambda: Unreachable())
    hub.hub_unreachable.cache_clear()
    yield asked
    hub.hub_unreachable.cache_clear()


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true")


_unexpected_skips: list = []


def pytest_runtest_logreport(report):
    _note_skip(report)


def pytest_collectreport(report):  # a module-level importorskip skips at collection
    _note_skip(report)


def _note_skip(report) -> None:
    if _in_ci() and report.skipped and not any(w in str(report.longrepr).lower() for w in ALLOWED_CI_SKIPS):
        _unexpected_skips.append(report)


def pytest_sessionfinish(session, exitstatus):
    # runs before the terminal summary, so the failure is decided here from the collected reports
    if _unexpected_skips and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    for report in _unexpected_skips:
        terminalreporter.write_line(f"CI: unexpected skip of {report.nodeid}: {report.longrepr}", red=True)
    if _unexpected_skips:
        terminalreporter.write_line(
            f"CI: {len(_unexpected_skips)} tests skipped for a reason other than CUDA or Chromium: failing"
        )
