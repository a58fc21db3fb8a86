"""The studio's clicks with SAM weights: point prompts on the clicked view, lifted to the Gaussians
(a tiny random SAM through the real SamPredictor; the click arrives as viser delivers it, no browser)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene
from gsedit.edit.selection import mask_selection
from tests.models.tiny_adss import patch_sam_registry, save_tiny_sam
from tests.studio.test_studio import free_port

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def click(camera, u: float, v: float):
    """A scene click of viser's shape: the client's camera and the clicked point in [0, 1] screen coordinates."""
    from gsedit.viewer.camera import cameras_to_poses

    pose = cameras_to_poses(camera)[0]
    client_camera = SimpleNamespace(wxyz=tuple(pose.wxyz), position=tuple(pose.position), fov=pose.fov_y,
                                    aspect=pose.aspect)
    return SimpleNamespace(client=SimpleNamespace(camera=client_camera), screen_pos=(u, v))


def test_clicks_with_sam_weights_are_point_prompts_lifted_to_the_gaussians(tmp_path, monkeypatch):
    from gsedit import Session
    from gsedit.studio.app import Studio, StudioConfig

    patch_sam_registry(monkeypatch, "vit_b")
    checkpoint = save_tiny_sam(tmp_path)
    scene = tmp_path / "scene.ply"
    cameras = write_synthetic_scene(scene, SyntheticSceneConfig(points_per_object=200), n_cameras=4, size=48)
    with Session.create(tmp_path / "s", scene=scene, cameras=cameras, editor="synthetic", device="cpu") as session:
        app = Studio(session, StudioConfig(port=free_port(), sam_checkpoint=checkpoint, sam_model_type="vit_b"))
        try:
            prompts = []
            predict = app.sam.predictor.predict
            monkeypatch.setattr(app.sam.predictor, "predict", lambda **kw: prompts.append(kw) or predict(**kw))
            masks = []
            segment = app.sam.segment
            monkeypatch.setattr(app.sam, "segment", lambda *a: masks.append(segment(*a)) or masks[-1])
            view = session.cameras[0:1]
            app._clicked(click(view, 0.5, 0.5))
            app._clicked(click(view, 0.1, 0.1), negative=True)
            # two clicks on one view: one prompt set, growing; SAM saw the clicked view's pixels
            assert [p["point_labels"].tolist() for p in prompts] == [[1], [1, 0]]
            camera = app._client_camera(click(view, 0, 0).client, app.config.max_side)
            assert np.allclose(prompts[1]["point_coords"], [[0.5 * camera.width, 0.5 * camera.height],
                                                            [0.1 * camera.width, 0.1 * camera.height]])
            lifted = mask_selection(session.scene().geometry(), camera, masks[-1][None].float())
            assert app.selected is not None and torch.equal(app.selected, lifted)
        finally:
            app.stop()


def test_a_missing_sam_checkpoint_is_named_before_the_studio_starts(tmp_path):
    import subprocess
    import sys

    from tests.studio.test_studio import ROOT

    scene = tmp_path / "scene.ply"
    cameras = write_synthetic_scene(scene, SyntheticSceneConfig(points_per_object=50), n_cameras=2, size=16)
    done = subprocess.run([sys.executable, "-m", "gsedit", "studio", str(scene), "--cameras", str(cameras),
                           "--out", str(tmp_path / "s"), "--editor", "synthetic", "--device", "cpu",
                           "--sam-checkpoint", str(tmp_path / "missing.pth"), "--sam-model-type", "vit_b",
                           "--port", str(free_port())], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert done.returncode != 0
    assert "missing.pth' does not exist" in done.stderr + done.stdout
    from gsedit.edit.lock import FolderLock

    FolderLock(tmp_path / "s", reentrant=False).acquire().release()  # the studio let go of the folder
