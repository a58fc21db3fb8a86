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


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if os.environ.get("CI", "").lower() not in ("1", "true"):
        return
    unexpected = [
        report for report in terminalreporter.stats.get("skipped", [])
        if not any(word in str(report.longrepr).lower() for word in ALLOWED_CI_SKIPS)
    ]
    for report in unexpected:
        terminalreporter.write_line(f"CI: unexpected skip of {report.nodeid}: {report.longrepr}", red=True)
    if unexpected:
        terminalreporter.write_line(f"CI: {len(unexpected)} tests skipped for a reason other than CUDA or Chromium")
        config._unexpected_ci_skips = len(unexpected)


def pytest_sessionfinish(session, exitstatus):
    if getattr(session.config, "_unexpected_ci_skips", 0) and exitstatus == 0:
        session.exitstatus = 1
