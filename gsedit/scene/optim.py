"""`torch.optim.Adam` without torch.compile's import: the same class, the same numbers.

Every method of `torch.optim.Optimizer` that takes parameters or state (`add_param_group`,
`zero_grad`, `state_dict`, `load_state_dict`, and `Adam.step` through its grad-mode wrapper) is
wrapped so that torch.compile does not trace into it, and the wrapper imports `torch._dynamo` on its
first call: 3.4 s of a 17 s CPU edit on the 2-core machine, for a feature gsedit never uses.
`Adam` here calls the undecorated torch functions themselves (`functools.wraps` keeps them as
`__wrapped__`), so the update, the state layout (gsplat's strategies and nerfstudio's checkpoints
read it) and the foreach/fused choice on CUDA are torch's own; `tests/scene/test_optim.py` checks
the numbers against `torch.optim.Adam` bit for bit and that no `torch._dynamo` gets imported.
"""

from __future__ import annotations

import inspect

import torch


def _eager(method):
    """The torch function under its wrappers (torch.compile's, and the profiler hook torch puts
    around `step` once an optimiser of the class exists)."""
    return inspect.unwrap(method)


class Adam(torch.optim.Adam):
    """`torch.optim.Adam` (same arguments, state and numbers) that never imports `torch._dynamo`."""

    add_param_group = _eager(torch.optim.Optimizer.add_param_group)
    zero_grad = _eager(torch.optim.Optimizer.zero_grad)
    state_dict = _eager(torch.optim.Optimizer.state_dict)
    load_state_dict = _eager(torch.optim.Optimizer.load_state_dict)

    def step(self, closure=None):
        """One Adam update, as `torch.optim.Adam.step` (whose wrapper sets this grad mode too)."""
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return _eager(torch.optim.Adam.step)(self, closure)
