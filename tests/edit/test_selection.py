"""Selection from clicks, deleting a selection as a turn, and the one-view preview."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsedit.cameras.formats import load_cameras
from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene
from gsedit.edit.config import EditConfig
from gsedit.edit.delete import delete_instruction, delete_turn
from gsedit.edit.engine import calibrate_stand_in
from gsedit.edit.lock import FolderLock
from gsedit.edit.preview import preview_view
from gsedit.edit.selection import clicked_gaussians, grow_selection, remove_gaussians
from gsedit.edit.session import SessionFolder, Turn
from gsedit.errors import GseditError
from gsedit.models.synthetic import SyntheticEditor
from gsedit.scene.gaussian_scene import GaussianScene
from gsedit.scene.ply import read_ply

SIZE = 64


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    path = tmp_path_factory.mktemp("selection") / "scene.ply"
    cameras = write_synthetic_scene(path, SyntheticSceneConfig(points_per_object=400), n_cameras=4, size=SIZE)
    return GaussianScene.load(path), load_cameras(cameras)


def centre_of(scene, camera, label: int) -> tuple[float, float]:
    """(u, v) in [0, 1] of the middle of the labelled object's pixels in `camera`."""
    coverage = scene.render(camera, channels=[f"label={label}"]).channels[f"label={label}"][0]
    ys, xs = torch.nonzero(coverage > 0.9, as_tuple=True)
    return float(xs.float().median() + 0.5) / camera.width, float(ys.float().median() + 0.5) / camera.height


@pytest.mark.parametrize("label", [1, 2, 3])
def test_a_click_on_an_object_selects_that_object_and_nothing_else(labelled, label):
    scene, cameras = labelled
    camera = cameras[0:1]
    labels = scene.gaussians.extras["label"]
    seeds = clicked_gaussians(scene, camera, *centre_of(scene, camera, label))
    assert len(seeds) > 0 and set(labels[seeds].tolist()) == {float(label)}
    selected = grow_selection(scene.gaussians, seeds)
    assert set(labels[selected].tolist()) == {float(label)}  # the floor and other objects stay out
    assert int(selected.sum()) >= 0.95 * int((labels == label).sum())  # the whole object, not a patch


def test_a_click_on_empty_space_selects_nothing(labelled):
    scene, cameras = labelled
    assert len(clicked_gaussians(scene, cameras[0:1], 0.01, 0.01)) == 0
    assert not grow_selection(scene.gaussians, torch.zeros(0, dtype=torch.long)).any()


def test_removing_gaussians_keeps_the_others_with_their_channels(labelled):
    scene, _ = labelled
    selected = scene.gaussians.extras["label"] == 2
    out = remove_gaussians(scene, selected)
    assert len(out) == len(scene) - int(selected.sum())
    assert not (out.gaussians.extras["label"] == 2).any()
    assert out.label_names() == scene.label_names()


def test_preview_edits_one_view_as_the_turn_would_and_leaves_the_scene_alone(labelled):
    scene, cameras = labelled
    editor = SyntheticEditor()
    calibrate_stand_in(editor, [scene], cameras)
    before = scene.gaussians.clone()
    result = preview_view(scene, cameras[0:1], Turn("make the sphere red"), EditConfig(segmenter="labels"), editor)
    sphere = scene.render(cameras[0:1], channels=["label=2"]).channels["label=2"][0] > 0.9
    assert result.before.shape == result.edited.shape == (SIZE, SIZE, 3)
    assert result.side_by_side().shape == (SIZE, 3 * SIZE, 3)
    assert (result.mask[sphere] > 0.5).float().mean() > 0.9 and (result.mask[~sphere] > 0.5).float().mean() < 0.05
    red = result.edited[sphere]
    assert (red[:, 0] - red[:, 1]).mean() > 0.3  # the sphere turned red ...
    assert (result.edited[~sphere] - result.before[~sphere]).abs().mean() < 0.02  # ... and only it
    assert torch.equal(scene.gaussians.means, before.means) and scene.channel_names() == list(before.extras)


def test_preview_with_relevance_masks_does_not_add_a_channel_to_the_scene(labelled):
    scene, cameras = labelled
    channels = scene.channel_names()
    editor = SyntheticEditor()
    calibrate_stand_in(editor, [scene], cameras)
    result = preview_view(scene, cameras[1:2], Turn("make the cube yellow"), EditConfig(segmenter="relevance"), editor)
    assert result.mask.max() == 1 and scene.channel_names() == channels


def test_deleting_a_selection_writes_a_normal_turn(tmp_path):
    from tests.viewer.tiny_session import make_tiny_session

    folder = make_tiny_session(tmp_path, iters=2).folder
    session = SessionFolder.open(folder)
    last = session.last_finished()
    scene = GaussianScene.load(session.scene_path(last))
    cameras = load_cameras(session.data["cameras"])
    selected = scene.gaussians.extras["label"] == 1
    with FolderLock(folder):
        record = delete_turn(session, scene, selected, cameras)
        with pytest.raises(GseditError, match="nothing is selected"):
            delete_turn(session, scene, torch.zeros(len(scene), dtype=torch.bool), cameras)
    assert record.index == last + 1 and record.instruction == delete_instruction(int(selected.sum()))
    reopened = SessionFolder.open(folder)
    assert reopened.last_finished() == last + 1 and reopened.records[-1].status == "done"
    written = read_ply(reopened.scene_path(last + 1))
    assert len(written) == len(scene) - int(selected.sum()) and not (written.extras["label"] == 1).any()
    assert len(list((reopened.turn_dir(last + 1) / "masks").glob("*.png"))) == len(cameras)
    assert reopened.undo() == last + 1 and reopened.last_finished() == last


def test_sam_point_prompts_on_the_clicked_view_are_lifted_to_the_gaussians(labelled, tmp_path, monkeypatch):
    """The real SamPredictor path with a tiny random SAM (its mask is arbitrary, its handling is not)."""
    from gsedit.edit.selection import mask_selection, sam_selection
    from gsedit.models.sam_points import SamPointSegmenter
    from tests.models.tiny_adss import patch_sam_registry, save_tiny_sam

    patch_sam_registry(monkeypatch, "vit_b")
    segmenter = SamPointSegmenter.from_checkpoint(save_tiny_sam(tmp_path), "vit_b", torch.device("cpu"))
    prompts = []
    predict = segmenter.predictor.predict
    monkeypatch.setattr(segmenter.predictor, "predict", lambda **kw: prompts.append(kw) or predict(**kw))
    scene, cameras = labelled
    camera = cameras[0:1]
    u, v = centre_of(scene, camera, 2)
    points = torch.tensor([[u * SIZE, v * SIZE], [2.0, 2.0]])
    selected, mask = sam_selection(scene, camera, points, torch.tensor([True, False]), segmenter)
    assert prompts[0]["point_labels"].tolist() == [1, 0]
    assert prompts[0]["point_coords"].tolist() == points.tolist()
    assert mask.shape == (SIZE, SIZE) and mask.dtype == torch.bool
    assert selected.shape == (len(scene),)
    assert torch.equal(selected, mask_selection(scene.geometry(), camera, mask[None].float()))
    # a mask the tiny SAM is made to return is lifted to exactly the Gaussians under it
    sphere = scene.render(camera, channels=["label=2"]).channels["label=2"][0] > 0.5
    monkeypatch.setattr(segmenter.predictor, "predict",
                        lambda **kw: (sphere[None].numpy(), np.array([1.0]), None))
    selected, _ = sam_selection(scene, camera, points[:1], torch.tensor([True]), segmenter)
    labels = scene.gaussians.extras["label"]
    sphere_share = float((labels[selected] == 2).float().mean())
    assert int((selected & (labels == 2)).sum()) >= 0.9 * int((labels == 2).sum()) and not (labels[selected] == 1).any()
    assert sphere_share > 0.7  # one view's mask also takes what it hides (the floor behind the sphere)
