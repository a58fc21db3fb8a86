"""The shared random-view loop: which views it trains, in which order, and what it calls when."""

from __future__ import annotations

import torch

from gsedit.scene.base import SceneOptimizer
from gsedit.scene.random_views import optimize_on_random_views
from tests.edit.fake_scene import fake_cameras, view_ids


class RecordingOptimizer(SceneOptimizer):
    """Returns the viewed target's value as the loss and logs every call."""

    def __init__(self, log: list):
        self.log = log

    def step(self, cameras, targets) -> float:
        self.log.append(("step", view_ids(cameras), float(targets.mean())))
        return float(targets.mean())

    def finish(self) -> None:
        self.log.append(("finish",))


def test_views_follow_the_generator_and_targets_rewritten_before_a_step_are_used():
    cameras = fake_cameras(5)
    targets = torch.arange(5.0)[:, None, None, None].expand(5, 8, 8, 3).clone()  # view i: all i
    log = []

    def before(step):
        log.append(("before", step))
        if step == 3:
            targets.mul_(10)  # as the edit loop's dataset update does, in place

    def on_step(done, loss):
        log.append(("done", done, loss))

    loss = optimize_on_random_views(RecordingOptimizer(log), cameras, targets, 6,
                                    torch.Generator().manual_seed(4), before, on_step)

    reference = torch.Generator().manual_seed(4)
    views = [int(torch.randint(5, (1,), generator=reference)) for _ in range(6)]
    values = [v * (10 if step >= 3 else 1) for step, v in enumerate(views)]
    expected = []
    for step, (view, value) in enumerate(zip(views, values)):
        expected += [("before", step), ("step", [view], value), ("done", step + 1, value)]
    assert log == expected + [("finish",)]
    assert loss == values[-1]


def test_no_steps_still_finishes_and_reports_no_loss():
    log = []
    loss = optimize_on_random_views(RecordingOptimizer(log), fake_cameras(2), torch.zeros(2, 8, 8, 3), 0,
                                    torch.Generator())
    assert log == [("finish",)] and loss != loss  # NaN
