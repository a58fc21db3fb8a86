"""The web viewer: browser camera <-> Cameras, session content, turn slider, live reporter, page."""

from __future__ import annotations

import math
import shutil
import socket

import numpy as np
import pytest
import torch

from gsedit.cameras import OrbitConfig, orbit_cameras
from gsedit.edit.events import Progress
from gsedit.errors import InputFileError
from gsedit.scene.gaussian_scene import GaussianScene
from gsedit.scene.gaussians import Gaussians, rgb_to_sh0
from gsedit.scene.ply import read_ply
from gsedit.viewer.camera import (
    ViewPose,
    cameras_to_poses,
    matching_view,
    matrix_to_quat,
    pose_to_cameras,
    quat_to_matrix,
    up_direction,
    warp_between,
)
from gsedit.viewer.content import SceneState, ViewerContent
from tests.viewer.tiny_session import (
    NERF_SIZE,
    SIZE,
    TURNS,
    VIEWS,
    make_tiny_nerfacto_session,
    make_tiny_session,
)

RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)


def blobs(points, colours, radius: float = 0.03, extras=None) -> GaussianScene:
    """Round opaque Gaussians at `points` [N, 3] with `colours` [N, 3] (and `extras` name -> [N])."""
    means = torch.tensor(np.asarray(points), dtype=torch.float32)
    n = len(means)
    return GaussianScene(
        Gaussians(
            means=means,
            scales=torch.full((n, 3), math.log(radius)),
            quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
            opacities=torch.full((n,), 5.0),
            sh0=rgb_to_sh0(torch.tensor(colours, dtype=torch.float32))[:, None],
            shN=torch.zeros(n, 0, 3),
            extras={k: torch.tensor(v, dtype=torch.float32) for k, v in (extras or {}).items()},
        )
    )


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """[3, 3] camera-to-world rotation, OpenCV axes as columns: right, down, forward."""
    forward = np.subtract(target, eye) / np.linalg.norm(np.subtract(target, eye))
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(forward, right), forward], axis=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return make_tiny_session(tmp_path_factory.mktemp("viewer"))


@pytest.fixture(scope="module")
def nerfacto_session(tmp_path_factory, one_torch_thread):
    pytest.importorskip("nerfstudio", reason="the nerfacto backend needs nerfstudio (see README)")
    return make_tiny_nerfacto_session(tmp_path_factory.mktemp("nerfacto"))


# -- camera conversion ----------------------------------------------------------------------------
def test_quaternions_round_trip_including_half_turns():
    gen = np.random.default_rng(0)
    rotations = [np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1]), np.eye(3)]
    for _ in range(50):
        q, r = np.linalg.qr(gen.normal(size=(3, 3)))
        q = q * np.sign(np.diag(r))
        rotations.append(q if np.linalg.det(q) > 0 else -q)
    for R in rotations:
        quat = matrix_to_quat(R)
        assert np.isclose(np.linalg.norm(quat), 1) and quat[0] >= 0
        np.testing.assert_allclose(quat_to_matrix(quat), R, atol=1e-12)
    # a quarter turn about z: w = cos 45, z = sin 45
    np.testing.assert_allclose(
        matrix_to_quat(np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])),
        [math.sqrt(0.5), 0, 0, math.sqrt(0.5)],
        atol=1e-12,
    )


def test_known_pose_renders_the_target_centred_and_right_to_the_right():
    target = np.array([0.3, -0.2, 0.5])
    eye = target + np.array([2.0, 1.0, 0.8])
    R = look_at(eye, target)
    side = target + 0.3 * R[:, 0]  # 0.3 along the camera's right axis
    scene = blobs([target, side], [RED, BLUE])
    pose = ViewPose(matrix_to_quat(R), eye, fov_y=math.radians(40), aspect=1.5)
    camera = pose_to_cameras(pose, max_side=96)
    assert (camera.width, camera.height) == (96, 64)
    rgb = scene.render(camera).rgb[0]  # [64, 96, 3]

    def centroid(channel):
        w = rgb[..., channel] * (rgb[..., channel] > 0.5)
        ys, xs = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(96) + 0.5, indexing="ij")
        return float((w * xs).sum() / w.sum()), float((w * ys).sum() / w.sum())

    focal = 32 / math.tan(math.radians(20))
    distance = float(np.linalg.norm(eye - target))
    red_x, red_y = centroid(0)
    blue_x, blue_y = centroid(2)
    assert abs(red_x - 48) < 0.5 and abs(red_y - 32) < 0.5
    assert abs(blue_x - (48 + focal * 0.3 / distance)) < 1.0 and abs(blue_y - 32) < 0.5


def test_poses_of_cameras_give_the_same_cameras_back():
    cams = orbit_cameras(5, (torch.tensor([-1.0, -1, 0]), torch.tensor([1.0, 1, 1])), 64, 48)
    for i, pose in enumerate(cameras_to_poses(cams)):
        back = pose_to_cameras(pose, max_side=64)
        assert (back.width, back.height) == (64, 48)
        torch.testing.assert_close(back.viewmats[0], cams.viewmats[i], atol=1e-5, rtol=0)
        torch.testing.assert_close(back.Ks[0], cams.Ks[i], atol=1e-4, rtol=0)


def test_matching_view_finds_a_training_camera_only_at_its_pose():
    cams = orbit_cameras(6, (torch.zeros(3), torch.ones(3)), 32, 32)
    poses = cameras_to_poses(cams)
    assert [matching_view(cams, p) for p in poses] == list(range(6))
    moved = poses[2]
    moved = ViewPose(moved.wxyz, moved.position + 0.05, moved.fov_y, moved.aspect)
    assert matching_view(cams, moved) is None


def test_up_direction_of_an_orbit_is_its_axis():
    cams = orbit_cameras(
        8, (torch.zeros(3), torch.ones(3)), 16, 16, OrbitConfig(up=(0.0, 1.0, 0.0))
    )
    np.testing.assert_allclose(up_direction(cams), [0, 1, 0], atol=1e-6)


def test_warp_between_zoomed_cameras_is_the_affine_pixel_map():
    K = torch.tensor([[20.0, 0, 16], [0, 20, 12], [0, 0, 1]])
    ramp = (torch.arange(32, dtype=torch.float32) + 0.5).repeat(24, 1)  # [24, 32] value = x centre
    torch.testing.assert_close(warp_between(ramp, K, K, 32, 24), ramp)
    zoom = K.clone()
    zoom[:2, :2] *= 2  # twice the focal length: the centre half of the image, magnified
    out = warp_between(ramp, K, zoom, 32, 24)
    u = torch.arange(32) + 0.5
    expected = (u - 16) / 2 + 16  # source x of each destination pixel centre; bilinear is exact
    torch.testing.assert_close(out, expected.repeat(24, 1))


def test_relevance_overlay_tints_only_relevant_gaussians():
    from gsedit.viewer.frame import heat, render_frame

    grey = (0.5, 0.5, 0.5)
    scene = blobs([[-0.4, 0, 0], [0.4, 0, 0]], [grey, grey], 0.15, {"relevance": [1.0, 0.0]})
    eye = np.array([0.0, -2.0, 0.0])
    pose = ViewPose(matrix_to_quat(look_at(eye, [0, 0, 0])), eye, math.radians(50), 2.0)
    camera = pose_to_cameras(pose, 64)
    plain = render_frame(scene, camera, "none").astype(int)
    tinted = render_frame(scene, camera, "relevance").astype(int)
    np.testing.assert_array_equal(tinted[:, 32:], plain[:, 32:])  # relevance 0: untouched
    column = int(32 - 0.4 * float(camera.Ks[0, 0, 0]) / 2)  # the relevant blob's centre
    out = scene.render(camera, channels=["relevance"])
    r = out.channels["relevance"][0, 16, column]
    assert r > 0.9  # nearly opaque there
    expected = (1 - 0.75 * r) * out.rgb[0, 16, column] + 0.75 * r * heat(r)  # towards white-hot
    assert np.abs(tinted[16, column] - expected.numpy() * 255).max() <= 1
    assert render_frame(blobs([[0, 0, 0]], [grey]), camera, "relevance").any()  # no channel: plain


# -- what the viewer shows ------------------------------------------------------------------------
def test_session_content_lists_turns_with_their_scenes_masks_and_cameras(session):
    content = ViewerContent.from_session(session.folder)
    assert content.labels == ["turn 0: input"] + [f"turn {i}: {t}" for i, t in enumerate(TURNS, 1)]
    means = content.scene(2, before=True).gaussians.means
    torch.testing.assert_close(means, read_ply(session.scene_path(1)).means)
    torch.testing.assert_close(
        content.scene(0, before=True).gaussians.means, read_ply(session.scene_path(0)).means
    )
    assert len(content.cameras) == VIEWS
    assert content.masks(0) is None  # the input has no mask
    assert content.masks(1).shape == (VIEWS, SIZE, SIZE)
    assert content.renders(2).shape == (VIEWS, SIZE, SIZE, 3)


def test_refined_scene_is_the_last_state(session, tmp_path):
    copy = tmp_path / "s"
    shutil.copytree(session.folder, copy)
    (copy / "refined").mkdir()
    shutil.copy(copy / "turn_02" / "scene.ply", copy / "refined" / "scene.ply")
    content = ViewerContent.from_session(copy)
    assert (
        content.labels[-1] == "refined"
        and content.states[-1].before == copy / "turn_02" / "scene.ply"
    )


def test_single_ply_and_bad_paths(session, tmp_path):
    content = ViewerContent.from_path(session.scene_path(2))
    assert content.labels == ["scene.ply"] and content.cameras is None
    (tmp_path / "x.txt").write_text("no")
    with pytest.raises(InputFileError, match="x.txt"):
        ViewerContent.from_path(tmp_path / "x.txt")
    with pytest.raises(InputFileError, match="missing.ply"):
        ViewerContent.from_path(tmp_path / "missing.ply")


def test_nerfacto_session_content_lists_turns_and_loads_their_checkpoints(nerfacto_session):
    from gsedit.scene.nerfacto.scene import NerfactoScene

    content = ViewerContent.from_session(nerfacto_session.folder)
    assert content.labels == ["turn 0: input"] + [f"turn {i}: {t}" for i, t in enumerate(TURNS, 1)]
    scenes = [content.scene(i) for i in range(3)]
    assert all(isinstance(s, NerfactoScene) for s in scenes)
    iters = nerfacto_session.settings.iters
    assert [s.steps_trained - scenes[0].steps_trained for s in scenes] == [0, iters, 2 * iters]
    assert content.scene(2, before=True) is scenes[1]
    assert len(content.cameras) == VIEWS  # the session's cameras.json, framed by the checkpoint
    assert content.masks(1).shape == (VIEWS, NERF_SIZE, NERF_SIZE)
    assert content.renders(2).shape == (VIEWS, NERF_SIZE, NERF_SIZE, 3)


def test_single_checkpoint_renders_frames_like_the_scene_itself(nerfacto_session, tmp_path):
    from gsedit.render.images import to_uint8
    from gsedit.scene.nerfacto.scene import NerfactoScene
    from gsedit.viewer.frame import render_frame

    path = nerfacto_session.scene_path(2)
    content = ViewerContent.from_path(path)
    assert content.labels == ["scene.ckpt"] and content.cameras is None
    pose = cameras_to_poses(ViewerContent.from_session(nerfacto_session.folder).cameras)[1]
    camera = pose_to_cameras(ViewPose(pose.wxyz, pose.position, pose.fov_y, 1.5), 24)
    frame = render_frame(content.scene(0), camera)
    assert frame.shape == (16, 24, 3) and frame.dtype == np.uint8
    reference = to_uint8(NerfactoScene.load(path).render(camera).rgb[0])
    np.testing.assert_array_equal(frame, reference)
    (tmp_path / "bad.ckpt").write_bytes(b"hello")
    with pytest.raises(InputFileError, match="bad.ckpt: not a PyTorch checkpoint"):
        ViewerContent.from_path(tmp_path / "bad.ckpt")
    with pytest.raises(InputFileError, match="missing.ckpt: not found"):
        ViewerContent.from_path(tmp_path / "missing.ckpt")


# -- the server (viser) ---------------------------------------------------------------------------
def _two_colour_content(tmp_path) -> ViewerContent:
    points = [[0.0, 0.0, 0.0], [0.05, 0.0, 0.0]]
    red, blue = tmp_path / "red.ply", tmp_path / "blue.ply"
    blobs(points, [RED, RED], radius=0.2).save_as(red)
    blobs(points, [BLUE, BLUE], radius=0.2).save_as(blue)
    states = [
        SceneState("turn 0: input", red),
        SceneState("turn 1: make it blue", blue, before=red),
    ]
    return ViewerContent(states, "cpu", "colours")


def _mean_colour(frame: np.ndarray) -> np.ndarray:
    return frame.reshape(-1, 3).mean(axis=0)


def _dominant(frame: np.ndarray) -> int:
    """The channel holding (nearly) all of the frame's colour."""
    colour = _mean_colour(frame)
    assert colour.max() > 3 and np.sort(colour)[-2] < 0.05 * colour.max(), colour
    return int(colour.argmax())


def test_turn_slider_and_before_toggle_switch_scenes(tmp_path):
    pytest.importorskip("viser")
    from gsedit.viewer.server import Viewer, ViewerConfig

    viewer = Viewer("cpu", ViewerConfig(port=free_port(), max_side=48))
    try:
        viewer.show(_two_colour_content(tmp_path))
        assert viewer.index == 1  # opens on the last state
        eye = np.array([0.0, -1.5, 0.3])
        pose = ViewPose(matrix_to_quat(look_at(eye, [0, 0, 0])), eye, math.radians(50), 1.0)
        colours = {}
        for key in [(1, False), (1, True), (0, False)]:
            viewer.select(*key)
            colours[key] = _dominant(viewer.render_view(pose))
        assert colours == {(1, False): 2, (1, True): 0, (0, False): 0}
    finally:
        viewer.stop()


def test_mask_overlay_lines_up_at_a_training_camera(session):
    pytest.importorskip("viser")
    from gsedit.viewer.server import run_viewer

    viewer = run_viewer(session.folder, port=free_port(), max_side=48)
    try:
        content = viewer.content
        pose = cameras_to_poses(content.cameras)[1]
        pose = ViewPose(pose.wxyz, pose.position, pose.fov_y, aspect=1.5)  # a wider browser
        viewer.select(1, overlay="none")
        plain = viewer.render_view(pose).astype(float)
        viewer.select(1, overlay="mask")
        tinted = viewer.render_view(pose).astype(float)
        camera = pose_to_cameras(pose, 48)
        mask = warp_between(
            content.masks(1)[1], content.cameras.Ks[1], camera.Ks[0], 48, 32
        ).numpy()
        changed = np.abs(tinted - plain).max(axis=-1) > 2
        assert mask.max() > 0.9 and changed.any()
        assert not changed[mask < 0.01].any()  # the tint is only where the turn's mask is
        away = ViewPose(pose.wxyz, pose.position + 0.3, pose.fov_y, 1.5)
        viewer.select(1, overlay="none")
        plain_away = viewer.render_view(away)
        viewer.select(1, overlay="mask")
        np.testing.assert_array_equal(viewer.render_view(away), plain_away)  # no training view here
    finally:
        viewer.stop()


def test_viewer_of_a_nerfacto_session_renders_at_the_nerfacto_frame_size(nerfacto_session):
    pytest.importorskip("viser")
    from gsedit.viewer.server import DEFAULT_MAX_SIDE, run_viewer

    viewer = run_viewer(nerfacto_session.folder, port=free_port())
    try:
        side = DEFAULT_MAX_SIDE["nerfacto", "cpu"]
        assert viewer.max_side == side < DEFAULT_MAX_SIDE["3dgs", "cpu"]
        pose = cameras_to_poses(viewer.content.cameras)[0]  # a training camera: masks line up
        frames = {}
        for overlay in ("none", "mask"):
            viewer.select(2, overlay=overlay)
            frames[overlay] = viewer.render_view(pose)
        assert frames["none"].shape == (side, side, 3) and frames["none"].std() > 1  # a picture
        tinted = np.abs(frames["mask"].astype(int) - frames["none"]).max(axis=-1) > 2
        assert tinted.mean() > 0.9  # segmenter "none": the turn's mask is the whole view
    finally:
        viewer.stop()


class Recorder:
    def __init__(self):
        self.calls = []

    def turn_started(self, record, total_steps):
        self.calls.append(("started", record.index, total_steps))

    def step(self, progress):
        self.calls.append(("step", progress.step))

    def turn_finished(self, record):
        self.calls.append(("finished", record.index))


def test_live_viewer_shows_the_training_scene_every_few_steps():
    pytest.importorskip("viser")
    from gsedit.edit.session import TurnRecord
    from gsedit.viewer.live import LiveViewer

    forward = Recorder()
    live = LiveViewer.start("cpu", port=free_port(), max_side=32, forward=forward, refresh_every=5)
    try:
        scene = blobs([[0.0, 0.0, 0.0]], [RED], radius=0.3)
        cams = orbit_cameras(3, (-torch.ones(3), torch.ones(3)), 32, 32)
        live.attach(scene, cams)
        pose = cameras_to_poses(cams)[0]
        record = TurnRecord(1, "make it blue")
        live.turn_started(record, 10)
        with torch.no_grad():  # what training does: the engine changes the parameters in place
            scene.params["sh0"].copy_(rgb_to_sh0(torch.tensor(BLUE))[None, None])
        live.step(Progress(3, 10, 1, 0.5))
        assert _dominant(live.viewer.render_view(pose)) == 0  # still the last snapshot: red
        live.step(Progress(5, 10, 1, 0.25))
        assert _dominant(live.viewer.render_view(pose)) == 2  # refreshed at step 5: blue
        live.viewer.select(0, before=True)
        assert _dominant(live.viewer.render_view(pose)) == 0  # the turn's start
        assert "step 5/10" in live.content.labels[0]
        live.turn_finished(record)
        assert forward.calls == [("started", 1, 10), ("step", 3), ("step", 5), ("finished", 1)]
    finally:
        live.stop()


def test_chromium_shows_the_rendered_scene_in_the_viewer_page(session, tmp_path):
    pytest.importorskip("viser")
    from gsedit.viewer.server import run_viewer
    from tests.viewer.browser import chromium, screenshot_when

    chromium()  # skips with the install command when there is no browser
    viewer = run_viewer(session.folder, port=free_port(), max_side=128)
    viewer.select(2, overlay="mask")
    try:  # the screenshot waits for the first frame the viewer sends to this page
        image = screenshot_when(
            viewer.url, tmp_path / "viewer.png", lambda: len(viewer.frame_seconds) > 0
        )
    finally:
        viewer.stop()
    # the page opened at training camera 0 and its pose came back through the browser intact,
    # so the turn's mask is laid over the render there
    assert viewer.training_view(viewer.last_pose) == 0
    problem = _scene_missing(image[150:650, 100:600].astype(int))
    assert problem is None, problem


def _scene_missing(view: np.ndarray) -> str | None:
    """Why `view` (left of the GUI panel) is not the render of training view 0, or None."""
    if view.reshape(-1, 3).std(axis=0).min() <= 15:
        return "the viewer page is blank"
    r, g, b = view[..., 0], view[..., 1], view[..., 2]
    if ((b > r + 60) & (b > g + 30)).mean() <= 0.01:
        return "no blue cube in the screenshot"
    if ((g > r + 60) & (g > b + 30)).mean() <= 0.01:
        return "no green sphere in the screenshot"
    return None
