"""The edit loop on a fake in-memory Scene: conditioning, targets, fusion, masks, forgetting."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from gsedit.edit.config import EditConfig, load_preset
from gsedit.edit.engine import calibrate_stand_in
from gsedit.edit.fusion import feather, fuse, gaussian_blur
from gsedit.edit.loop import _edit_order, run_turn
from gsedit.edit.masks import find_label
from gsedit.edit.session import Turn
from gsedit.errors import GseditError
from gsedit.models.base import EditOutput, ImageEditor
from gsedit.models.synthetic import SyntheticEditor, SyntheticEditorConfig
from tests.edit.fake_scene import FakeScene, fake_cameras

GREEN, BLUE, GREY = (0.2, 0.75, 0.25), (0.15, 0.35, 0.85), (0.5, 0.5, 0.5)


def two_object_scene(views: int = 4, size: int = 16) -> FakeScene:
    """Grey background, a green 'sphere' square on the left and a blue 'cube' square on the right."""
    images = torch.tensor(GREY).repeat(views, size, size, 1)
    labels = torch.zeros(views, size, size)
    images[:, 4:12, 1:7] = torch.tensor(GREEN)
    labels[:, 4:12, 1:7] = 1
    images[:, 4:12, 9:15] = torch.tensor(BLUE)
    labels[:, 4:12, 9:15] = 2
    return FakeScene(images, labels, {0: "background", 1: "sphere", 2: "cube"})


class RecordingEditor(ImageEditor):
    """Paints everything one colour (a maximal spill) and records what it was given."""

    name = "recording"

    def __init__(self, colour=(1.0, 0.0, 0.0)):
        self.colour = torch.tensor(colour)
        self.calls = []

    def edit(self, images, conditions, instruction, noise_levels, generator=None, regions=None):
        self.calls.append({"images": images.clone(), "conditions": conditions.clone(), "regions": regions})
        return EditOutput(self.colour.expand_as(images).clone())

    def relevance(self, images, instruction, generator=None):
        maps = torch.zeros(images.shape[:3])
        maps[:, :, : images.shape[2] // 2] = 1.0  # the left half is relevant
        return maps


def quiet_synthetic() -> SyntheticEditor:
    return SyntheticEditor(SyntheticEditorConfig(spill_halo=0, spill_global=0, inconsistency=0))


def test_edit3d_conditions_on_prerenders_and_keeps_the_outside_exactly():
    scene = two_object_scene()
    cams = fake_cameras(4, 16)
    before = scene.images.clone()
    editor = RecordingEditor()
    config = EditConfig(iters=40, edit_every=1, segmenter="labels", feather=0.0, t_min=1, t_max=1)
    run_turn(scene, cams, Turn("make the sphere red"), config, editor, originals=before * 0)
    # every condition image is a pre-render of its view, not the (zero) originals
    assert all(c["conditions"].abs().sum() > 0 for c in editor.calls)
    outside = scene.labels != 1
    assert torch.equal(scene.images[outside], before[outside])  # fusion: not one pixel drifted
    inside = scene.labels == 1
    assert torch.allclose(scene.images[inside], torch.tensor([1.0, 0.0, 0.0]).expand(int(inside.sum()), 3), atol=2e-2)


def test_in2n_conditions_on_originals_and_spills():
    scene = two_object_scene()
    cams = fake_cameras(4, 16)
    originals = scene.images.clone() * 0.5
    editor = RecordingEditor()
    config, _ = load_preset("in2n")
    config = replace(config, iters=30, edit_every=1)
    run_turn(scene, cams, Turn("make the sphere red"), config, editor, originals=originals)
    for call in editor.calls:
        assert torch.allclose(call["conditions"], originals[: len(call["conditions"])])
    background = scene.labels == 0
    assert (scene.images[background] - torch.tensor(GREY)).abs().max() > 0.3  # unmasked: the spill lands


def test_relevance_guided_editing_passes_binary_lifted_masks():
    scene = two_object_scene()
    cams = fake_cameras(4, 16)
    editor = RecordingEditor()
    config = EditConfig(iters=8, edit_every=2, segmenter="relevance", relevance_guided=True)
    run_turn(scene, cams, Turn("make the sphere red"), config, editor, originals=scene.images.clone())
    assert "relevance" in scene.extra  # the field was lifted into the scene
    for call in editor.calls:
        regions = call["regions"]
        assert regions is not None and set(regions.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(regions[:, :, :8], torch.ones_like(regions[:, :, :8]))
        assert torch.equal(regions[:, :, 8:], torch.zeros_like(regions[:, :, 8:]))


def run_two_turns(preset: str) -> FakeScene:
    scene = two_object_scene()
    cams = fake_cameras(4, 16)
    originals = scene.images.clone()
    editor = quiet_synthetic()
    config, _ = load_preset(preset)
    config = replace(config, iters=60, edit_every=1, t_min=1.0, t_max=1.0, feather=0.0,
                     segmenter="labels" if config.segmenter != "none" else "none")
    for instruction in ["make the sphere red", "make the cube yellow"]:
        calibrate_stand_in(editor, [FakeScene(originals, scene.labels, scene.names), scene], cams)
        run_turn(scene, cams, Turn(instruction), config, editor, originals)
    return scene


def test_in2n_forgets_the_first_turn_and_edit3d_does_not():
    red = torch.tensor([0.85, 0.1, 0.1])
    for preset, forgets in [("in2n", True), ("edit3d", False)]:
        scene = run_two_turns(preset)
        sphere = scene.images[scene.labels == 1].mean(dim=0)
        cube = scene.images[scene.labels == 2].mean(dim=0)
        assert cube[0] > 0.7 and cube[1] > 0.6 and cube[2] < 0.3, (preset, cube)  # turn 2 happened
        distance_to_red = float((sphere - red).norm())
        assert (distance_to_red > 0.3) == forgets, (preset, sphere)


def test_feathered_mask_is_soft_at_the_edge_and_exact_far_from_it():
    masks = torch.zeros(1, 40, 40)
    masks[:, 10:30, 10:30] = 1
    soft = feather(masks, sigma=2.0)
    assert soft.min() >= 0 and soft.max() <= 1
    assert torch.allclose(soft[:, 16:24, 16:24], torch.ones(1, 8, 8), atol=1e-6)
    assert torch.allclose(soft[:, :3, :], torch.zeros(1, 3, 40), atol=1e-6)
    edge = soft[0, 20, 8:13]
    assert (edge[1:] > edge[:-1]).all() and 0.3 < float(soft[0, 20, 10]) < 0.7
    assert torch.allclose(soft, soft.flip(-1), atol=1e-6)  # symmetric mask stays symmetric


def test_gaussian_blur_preserves_constants_and_mass():
    x = torch.full((2, 9, 11), 0.7)
    assert torch.allclose(gaussian_blur(x, 1.5), x, atol=1e-6)
    impulse = torch.zeros(1, 31, 31)
    impulse[0, 15, 15] = 1
    assert abs(float(gaussian_blur(impulse, 2.0).sum()) - 1) < 1e-5


def test_fuse_matches_the_formula():
    edited, pre = torch.rand(2, 5, 6, 3), torch.rand(2, 5, 6, 3)
    m = torch.rand(2, 5, 6)
    expected = edited * m[..., None] + pre * (1 - m[..., None])
    assert torch.allclose(fuse(edited, pre, m), expected)


def test_edit_order_visits_every_view_before_repeating():
    take = _edit_order(5, torch.Generator().manual_seed(3))
    first = [take(1)[0] for _ in range(5)]
    assert sorted(first) == [0, 1, 2, 3, 4]
    assert len(set(take(3))) == 3


def test_find_label_takes_whole_words_and_the_first_mention():
    names = {0: "background", 1: "cube", 2: "sphere", 3: "red cube"}
    assert find_label(names, "make the sphere like the cube", "x") == 2
    assert find_label(names, "paint the red cube blue", "x") == 3
    with pytest.raises(GseditError, match="cube, red cube, sphere"):
        find_label(names, "make the cubes blue", "--target")


def test_bad_settings_are_refused():
    with pytest.raises(GseditError, match="t_min"):
        EditConfig(t_min=0.9, t_max=0.1).validate()
    with pytest.raises(GseditError, match="Unknown method preset 'nope'"):
        load_preset("nope")


def test_the_loop_imports_no_gaussian_or_rasterizer_code():
    code = (
        "import sys, gsedit.edit.loop, gsedit.edit.engine, gsedit.edit.session;"
        "rasterizer=('gsedit.render.rasterize','gsedit.render.torch_rasterizer','gsedit.render.native',"
        "'gsedit.render.gsplat_backend','gsedit.render.projection');"
        "bad=[m for m in sys.modules if m.startswith(('gsplat','gsedit.scene.gaussian','nerfstudio', *rasterizer))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lifted_masks_agree_across_views_where_per_view_masks_do_not():
    scene = two_object_scene()
    cams = fake_cameras(4, 16)
    editor = RecordingEditor()
    noisy = scene.labels.clone()
    noisy[1, 0:3, 0:3] = 1  # one view's labels claim a stray corner
    scene.labels = noisy
    config = EditConfig(iters=2, edit_every=1, segmenter="labels", lift_masks=True)
    result = run_turn(scene, cams, Turn("make the sphere red"), config, editor, originals=scene.images.clone())
    assert "mask" in scene.extra
    binary = (result.masks > 0.99).float()
    assert torch.equal(binary[0], binary[1]) and torch.equal(binary[1], binary[3])  # the fake lift averages views
    assert binary[1, 0, 0] == 0  # the single view's stray corner is outvoted
