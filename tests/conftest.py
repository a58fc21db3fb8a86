"""Fixtures shared by several test folders."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for the module: on tiny batches a second OpenMP thread costs more than it
    gives, far more on a busy 2-core machine, and nerfacto's hash-grid scatter is only
    bit-reproducible on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
