"""Turntable and before/after videos: frame count, size, content, read back with imageio."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gsedit.errors import GseditError
from gsedit.render.images import to_uint8
from gsedit.render.video import (
    read_video,
    turntable_cameras,
    wipe,
    wipe_position,
    write_before_after,
    write_turntable,
)
from gsedit.scene.gaussian_scene import GaussianScene
from gsedit.scene.gaussians import Gaussians, rgb_to_sh0

BOUNDS = (-torch.ones(3), torch.ones(3))


def ball(colour) -> GaussianScene:
    """One big opaque Gaussian of `colour` at the origin."""
    return GaussianScene(
        Gaussians(
            means=torch.zeros(1, 3),
            scales=torch.full((1, 3), math.log(1.0)),
            quats=torch.tensor([[1.0, 0, 0, 0]]),
            opacities=torch.tensor([5.0]),
            sh0=rgb_to_sh0(torch.tensor([colour]))[:, None],
            shN=torch.zeros(1, 0, 3),
        )
    )


def test_turntable_mp4_reads_back_with_its_frames(tmp_path):
    scene = ball((0.9, 0.5, 0.1))
    path = write_turntable(scene, BOUNDS, tmp_path / "turntable.mp4", frames=7, size=33, fps=10)
    video = read_video(path)
    assert video.shape == (7, 34, 34, 3)  # 33 rounded up to even for H.264
    expected = to_uint8(scene.render(turntable_cameras(BOUNDS, 7, 33)).rgb).astype(float)
    # H.264 is lossy: the frames agree closely, not bit for bit
    assert np.abs(video.astype(float) - expected).mean() < 4
    assert not list(tmp_path.glob(".*")), "a temporary file was left behind"


def test_wipe_shows_before_left_of_the_line_and_after_right_of_it():
    before = np.zeros((4, 10, 3), np.uint8)
    after = np.full((4, 10, 3), 100, np.uint8)
    out = wipe(before, after, 0.3)
    assert (out[:, :3] == 0).all() and (out[:, 3] == 255).all() and (out[:, 4:] == 100).all()
    assert (wipe(before, after, 0.0) == after).all() and (wipe(before, after, 1.0) == before).all()
    positions = [wipe_position(i, 8) for i in range(8)]
    assert (
        positions[0] == 0
        and positions[4] == pytest.approx(1)
        and positions[2] == pytest.approx(0.5)
    )


def test_before_after_gif_wipes_between_the_two_scenes(tmp_path):
    frames = 8
    path = write_before_after(
        ball((1.0, 0, 0)), ball((0, 0, 1.0)), BOUNDS, tmp_path / "ba.gif", frames=frames, size=32
    )
    video = read_video(path).astype(int)
    assert video.shape == (frames, 32, 32, 3)
    middle = video[2]  # the divider at the centre column
    red, blue = middle[16, 13], middle[16, 19]
    assert red[0] > 150 and red[2] < 30 and blue[2] > 150 and blue[0] < 30
    assert (video[0][..., 0] < 30).all()  # frame 0: all "after" (blue), no red anywhere


def test_bad_video_arguments_are_refused(tmp_path):
    with pytest.raises(GseditError, match=r"\.mp4 or \.gif"):
        write_turntable(ball((1, 1, 1)), BOUNDS, tmp_path / "x.avi")
    with pytest.raises(GseditError, match="frames >= 1"):
        write_turntable(ball((1, 1, 1)), BOUNDS, tmp_path / "x.mp4", frames=0)
