"""A selection of Gaussians as a turn's target or keep region, through `gsedit.Session`: the edit
stays inside (target) or outside (keep) the selected object, the selection is stored in the
session folder, `gsedit edit --resume` redoes a cancelled selection turn exactly; and the
Session's preview and delete_gaussians."""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path

import pytest
import torch

from gsedit import Session
from gsedit.cli import main
from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene
from gsedit.edit import TurnCancelled
from gsedit.edit.masks import selection_masks
from gsedit.errors import GseditError, InputFileError
from gsedit.scene.ply import read_ply

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              # the synthetic editor warns that it applies an instruction naming no object to the whole view
              pytest.mark.filterwarnings("ignore:synthetic editor")]

#: "everything" names no object of the scene: the synthetic editor recolours the whole view, so
#: whatever stays unchanged is the masks' doing
WHOLE_VIEW = "make everything red"
FAST = {"method": "edit3d", "editor": "synthetic", "segmenter": "none", "iters": 30, "edit_every": 2,
        "lr_scale": 10.0, "densify": False}
SPHERE = 2


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("scene")
    cams = write_synthetic_scene(folder / "scene.ply", SyntheticSceneConfig(points_per_object=200, seed=2),
                                 n_cameras=4, size=40)
    return folder / "scene.ply", cams


def create(scene, out: Path, **options) -> Session:
    ply, cams = scene
    return Session.create(out, scene=ply, cameras=cams, device="cpu", **{**FAST, **options})


def change_inside_outside(session: Session, index: int) -> tuple[float, float]:
    """Mean RGB change from turn index-1 to turn `index`: (on the sphere, clear of it), all views."""
    cameras = session.cameras
    first, then = session.scene(index - 1), session.scene(index)
    cover = first.render(cameras, channels=[f"label={SPHERE}"]).channels[f"label={SPHERE}"]  # [C, H, W]
    change = (then.render(cameras).rgb - first.render(cameras).rgb).abs().mean(-1)  # [C, H, W]
    inside, outside = cover > 0.95, cover < 0.01
    # clear of the sphere by a few pixels: the feathered mask's edge is allowed to blend
    outside &= torch.nn.functional.max_pool2d(cover[:, None], 9, 1, 4)[:, 0] < 0.01
    return float(change[inside].mean()), float(change[outside].mean())


def sphere_of(session: Session) -> torch.Tensor:
    return session.scene().gaussians.extras["label"] == SPHERE


def test_a_target_selection_confines_the_edit_to_the_selected_object(scene, tmp_path):
    with create(scene, tmp_path / "s") as session:
        info = session.run_turn(WHOLE_VIEW, target_selection=sphere_of(session))
        inside, outside = change_inside_outside(session, 1)
        assert info.target_selection and (session.folder / info.target_selection).is_file()
        record = json.loads((session.folder / "session.json").read_text())["turns"][0]
        assert record["target_selection"] == info.target_selection and record["keep_selection"] is None
    assert inside > 0.08, inside  # the sphere changed ...
    assert outside < 0.02, outside  # ... and nothing clear of it
    with create(scene, tmp_path / "everywhere") as session:  # the same turn without the selection
        session.run_turn(WHOLE_VIEW)
        assert change_inside_outside(session, 1)[1] > 0.05  # changes the rest too


def test_a_keep_selection_protects_the_selected_object(scene, tmp_path):
    with create(scene, tmp_path / "s") as session:
        session.run_turn(WHOLE_VIEW, keep_selection=sphere_of(session))
        inside, outside = change_inside_outside(session, 1)
    assert inside < 0.02, inside  # the sphere untouched ...
    assert outside > 0.05, outside  # ... the rest edited


def test_resume_redoes_a_cancelled_selection_turn_exactly(scene, tmp_path):
    reference, out = tmp_path / "reference", tmp_path / "s"
    with create(scene, reference) as session:
        session.run_turn(WHOLE_VIEW, target_selection=sphere_of(session))
    cancel = threading.Event()
    with create(scene, out) as session, pytest.raises(TurnCancelled):
        session.run_turn(WHOLE_VIEW, target_selection=sphere_of(session), cancel=cancel,
                         on_progress=lambda p: cancel.set() if p.step == 3 else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["edit", "--out", str(out), "--resume", "--quiet", "--device", "cpu"]) == 0
    assert (out / "turn_01" / "scene.ply").read_bytes() == (reference / "turn_01" / "scene.ply").read_bytes()


def test_a_selection_made_on_another_scene_is_refused_with_its_file(scene, tmp_path):
    with create(scene, tmp_path / "s") as session:
        wrong = torch.zeros(len(session.scene()) + 5, dtype=torch.bool)
        wrong[:3] = True
        with pytest.raises(InputFileError, match="over .* Gaussians, but the scene the turn starts from has"):
            session.run_turn(WHOLE_VIEW, keep_selection=wrong)
        with pytest.raises(GseditError, match="selection is empty"):
            session.run_turn(WHOLE_VIEW, target_selection=torch.zeros(len(session.scene()), dtype=torch.bool))


def test_selection_masks_cover_the_selected_object_in_every_view(scene, tmp_path):
    with create(scene, tmp_path / "s") as session:
        first, cameras = session.scene(), session.cameras
        masks = selection_masks(first, cameras, sphere_of(session))
    cover = first.render(cameras, channels=[f"label={SPHERE}"]).channels[f"label={SPHERE}"]
    assert masks.shape == cover.shape
    assert masks[cover > 0.95].mean() == 1 and masks[cover < 0.05].sum() == 0
    assert "selected" not in first.channel_names()  # rendered from a copy


def test_session_preview_follows_the_selection_and_writes_nothing(scene, tmp_path):
    with create(scene, tmp_path / "s") as session:
        camera = session.cameras[0:1]
        cover = session.scene().render(camera, channels=[f"label={SPHERE}"]).channels[f"label={SPHERE}"][0]
        targeted = session.preview(camera, WHOLE_VIEW, target_selection=sphere_of(session))
        kept = session.preview(camera, WHOLE_VIEW, keep_selection=sphere_of(session))
        assert sorted(p.name for p in session.folder.iterdir()) == [".lock", "session.json", "turn_00"]
    assert targeted.mask[cover > 0.95].min() == 1 and targeted.mask[cover < 0.05].max() == 0
    assert kept.mask[cover > 0.95].max() == 0 and kept.mask[cover < 0.05].min() == 1
    with Session.open(tmp_path / "s", device="cpu") as session, pytest.raises(GseditError, match="empty instruction"):
        session.preview(camera, " ")


def test_delete_gaussians_is_a_turn_of_the_session(scene, tmp_path):
    with create(scene, tmp_path / "s") as session:
        selected = sphere_of(session)
        info = session.delete_gaussians(selected)
        assert info.index == 1 and info.edits == 0 and [t.index for t in session.turns] == [1]
        written = read_ply(info.scene_path)
        assert len(written) == len(selected) - int(selected.sum()) and not (written.extras["label"] == SPHERE).any()
        with pytest.raises(GseditError, match="entries"):
            session.delete_gaussians(selected)  # made on turn 0's scene, which had more Gaussians
        assert session.undo() == 1 and session.turns == []
