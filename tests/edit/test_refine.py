"""The super-resolution refine stage on tiny sessions with tiny random Real-ESRGAN weights."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from gsedit.edit.refine import RefineConfig, laplacian_variance, load_face_masks, run_refine
from gsedit.errors import GseditError, InputFileError, ModelMissingError
from gsedit.models.base import ImageSegmenter
from gsedit.models.enhance import EnhanceConfig, ImageEnhancer, load_enhancers
from tests.edit.fake_scene import FakeScene, fake_cameras
from tests.edit.test_session import engine, new_session

SIZE = 32


def _tiny_enhance():
    """tests/models/tiny_enhance.py, loaded by path (it lives in another test folder)."""
    path = Path(__file__).resolve().parents[1] / "models" / "tiny_enhance.py"
    spec = importlib.util.spec_from_file_location("tiny_enhance", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def esrgan(tmp_path_factory) -> Path:
    """A random x2 Real-ESRGAN in the official file layout."""
    return _tiny_enhance().write_tiny_realesrgan(
        tmp_path_factory.mktemp("sr") / "esrgan_x2.pth", num_up=1
    )


@pytest.fixture(scope="module")
def gaussian_session(tmp_path_factory) -> Path:
    """A labelled synthetic 3DGS scene edited for one short turn with the synthetic editor."""
    from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene
    from gsedit.edit.config import EditConfig
    from gsedit.edit.engine import Engine, write_input_turn
    from gsedit.edit.session import Turn
    from gsedit.edit.session import SessionFolder, session_cameras
    from gsedit.models.synthetic import SyntheticEditor
    from gsedit.scene.files import load_scene_file

    root = tmp_path_factory.mktemp("gs")
    cams = write_synthetic_scene(
        root / "in" / "scene.ply",
        SyntheticSceneConfig(points_per_object=150),
        n_cameras=4,
        size=SIZE,
    )
    session = SessionFolder.create(
        root / "s",
        scene_file="scene.ply",
        input_path=str(root / "in" / "scene.ply"),
        cameras=str(cams),
        method="edit3d",
        settings=EditConfig(iters=3, edit_every=3, densify=False),
        plugins={"editor": "synthetic"},
    )
    session.add_turns([Turn("make the sphere red")])
    scene = load_scene_file(root / "in" / "scene.ply", "cpu")
    write_input_turn(session, scene, session_cameras(session, scene), root / "in" / "scene.ply")
    Engine(
        load_scene=lambda p: load_scene_file(p, "cpu"),
        cameras_for=lambda s: session_cameras(session, s),
        editor=SyntheticEditor(),
    ).run(session)
    return root / "s"


def _load_ply(path):
    from gsedit.scene.files import load_scene_file

    return load_scene_file(path, "cpu")


def _read_pngs(folder: Path) -> np.ndarray:
    return np.stack([iio.imread(p) for p in sorted(folder.glob("*.png"))])


def _fake_session(folder: Path) -> Path:
    engine().run(new_session(folder))
    return folder


def _refine_fake(
    folder: Path, enhancer: ImageEnhancer, config: RefineConfig | None = None, segmenter=None
) -> Path:
    config = config or RefineConfig(iters=40)
    return run_refine(
        folder,
        config,
        "cpu",
        FakeScene.load,
        segmenter,
        enhancer=enhancer,
        cameras_for=lambda s: fake_cameras(4, 16),
    )


def test_laplacian_variance_by_hand():
    image = torch.zeros(1, 5, 5, 3)
    image[0, 2, 2] = (
        1.0  # grey impulse: luma 1; the 3x3 interior Laplacian is a '+' of 1s around -4
    )
    torch.testing.assert_close(
        laplacian_variance(image), torch.tensor([20 / 9])
    )  # mean 0, mean square 20/9
    assert laplacian_variance(torch.full((2, 6, 7, 3), 0.3)).abs().max() < 1e-7


def test_refine_fine_tunes_the_last_turn_on_super_resolved_views(
    gaussian_session, esrgan, tmp_path
):
    folder = tmp_path / "s"
    shutil.copytree(gaussian_session, folder)
    config = RefineConfig(iters=4, enhance=EnhanceConfig(realesrgan_weights=esrgan))
    out = run_refine(folder, config, "cpu", _load_ply)

    assert out == folder / "refined"
    assert {p.name for p in out.iterdir()} == {"scene.ply", "scene.labels.json", "renders", "masks"}
    renders, masks = _read_pngs(out / "renders"), _read_pngs(out / "masks")
    assert (
        renders.shape == (4, SIZE, SIZE, 3) and masks.shape == (4, SIZE, SIZE) and masks.max() == 0
    )
    assert not list(folder.glob(".*tmp"))

    record = json.loads((folder / "session.json").read_text())["refine"]
    assert record["turn"] == 1 and record["status"] == "done" and record["face_masks"] is None
    assert (
        record["seconds"] > 0 and record["peak_rss_mb"] > 0 and record["resolution"] == [SIZE, SIZE]
    )
    assert record["settings"]["iters"] == 4 and record["settings"]["enhance"][
        "realesrgan_weights"
    ] == str(esrgan)

    # the same targets, built independently from the last turn's scene
    from gsedit.edit.session import SessionFolder, session_cameras

    turn = _load_ply(folder / "turn_01" / "scene.ply")
    cams = session_cameras(SessionFolder.open(folder), turn)
    before = turn.render(cams).rgb
    targets = ImageEnhancer.from_config(config.enhance).enhance(before)
    refined = _load_ply(out / "scene.ply")
    after = refined.render(cams).rgb
    sharp = record["sharpness"]
    assert sharp["before"] == pytest.approx(float(laplacian_variance(before).mean()), rel=1e-5)
    assert sharp["targets"] == pytest.approx(float(laplacian_variance(targets).mean()), rel=1e-5)
    assert sharp["after"] == pytest.approx(float(laplacian_variance(after).mean()), rel=1e-4)
    assert np.abs(renders.astype(int) - np.round(after.numpy() * 255)).max() <= 1
    # the fine-tune moved the scene toward the super-resolved views, without densifying
    assert (after - targets).abs().mean() < (before - targets).abs().mean()
    assert len(refined) == len(turn) and refined.label_names() == turn.label_names()


def test_scale_keeps_the_high_resolution_with_rescaled_cameras(gaussian_session, esrgan, tmp_path):
    folder = tmp_path / "s"
    shutil.copytree(gaussian_session, folder)
    config = RefineConfig(iters=1, enhance=EnhanceConfig(realesrgan_weights=esrgan, scale=2.0))
    out = run_refine(folder, config, "cpu", _load_ply)
    assert _read_pngs(out / "renders").shape == (4, 2 * SIZE, 2 * SIZE, 3)
    assert _read_pngs(out / "masks").shape == (4, 2 * SIZE, 2 * SIZE)
    assert json.loads((folder / "session.json").read_text())["refine"]["resolution"] == [
        2 * SIZE,
        2 * SIZE,
    ]


def test_missing_weights_fail_before_anything_is_written(tmp_path, esrgan):
    folder = _fake_session(tmp_path / "s")
    listing = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    session_json = (folder / "session.json").read_bytes()
    configs = {
        "--sr.realesrgan-weights": EnhanceConfig(realesrgan_weights=tmp_path / "missing.pth"),
        "--sr.gfpgan-weights": EnhanceConfig(
            realesrgan_weights=esrgan, gfpgan_weights=tmp_path / "gone.pth"
        ),
    }
    for option, enhance in configs.items():
        with pytest.raises(ModelMissingError, match=option):
            run_refine(
                folder,
                RefineConfig(enhance=enhance),
                "cpu",
                FakeScene.load,
                cameras_for=lambda s: fake_cameras(4, 16),
            )
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == listing
    assert (folder / "session.json").read_bytes() == session_json


def test_refined_folder_appears_only_when_complete(tmp_path, esrgan, monkeypatch):
    folder = _fake_session(tmp_path / "s")
    sr, _ = load_enhancers(EnhanceConfig(realesrgan_weights=esrgan))
    _refine_fake(folder, ImageEnhancer(sr))
    first = {
        p.relative_to(folder): p.read_bytes()
        for p in (folder / "refined").rglob("*")
        if p.is_file()
    }
    record = json.loads((folder / "session.json").read_text())["refine"]
    (folder / ".refined.killed.tmp").mkdir()  # what kill -9 during a refine leaves behind

    from gsedit.edit import refine

    save_images = refine.save_images

    def save_then_fail(target, images, names=None):  # the disk fills up while the folder is written
        save_images(target, images, names)
        raise OSError("disk full")

    monkeypatch.setattr(refine, "save_images", save_then_fail)
    with pytest.raises(OSError, match="disk full"):
        _refine_fake(folder, ImageEnhancer(sr), RefineConfig(iters=5, seed=3))
    # the earlier refined/ is untouched, nothing half-written is left, session.json still describes it
    now = {
        p.relative_to(folder): p.read_bytes()
        for p in (folder / "refined").rglob("*")
        if p.is_file()
    }
    assert now == first
    assert not list(folder.glob(".refined*"))
    assert json.loads((folder / "session.json").read_text())["refine"] == record


class WhiteFace:
    """Stands in for spandrel's GFPGAN descriptor: 'restores' every face crop to white."""

    size_requirements = SimpleNamespace(minimum=16)

    @staticmethod
    def model(x, return_rgb, randomize_noise):
        return torch.ones_like(x), None  # GFPGAN works in [-1, 1]: 1 is white


def _face_mask(top: int, left: int, side: int, size: int = 16) -> torch.Tensor:
    mask = torch.zeros(size, size)
    mask[top : top + side, left : left + side] = 1
    return mask


def test_face_masks_from_a_folder_reach_the_face_model_and_the_refined_folder(tmp_path, esrgan):
    folder = _fake_session(tmp_path / "s")
    faces = tmp_path / "faces"
    faces.mkdir()
    face0, face2 = _face_mask(3, 3, 8), _face_mask(6, 5, 8)
    iio.imwrite(faces / "0000.png", (face0.numpy() * 255).astype(np.uint8))
    # view 2's mask at twice the view's size: resized to the view
    big = face2.repeat_interleave(2, 0).repeat_interleave(2, 1)
    iio.imwrite(faces / "0002.png", (big.numpy() * 255).astype(np.uint8))
    sr, _ = load_enhancers(EnhanceConfig(realesrgan_weights=esrgan))
    enhance_cfg = EnhanceConfig(face_feather_sigma=0.5)
    config = RefineConfig(iters=60, face_masks=faces, enhance=enhance_cfg)
    out = _refine_fake(folder, ImageEnhancer(sr, WhiteFace(), enhance_cfg), config)

    masks = _read_pngs(out / "masks") / 255.0
    np.testing.assert_allclose(masks[0], face0.numpy(), atol=1 / 255)
    np.testing.assert_allclose(masks[2], face2.numpy(), atol=0.5)  # bilinear 2x downsample of a box
    assert masks[1].max() == 0 and masks[3].max() == 0
    renders = _read_pngs(out / "renders") / 255.0
    # the fake scene has converged onto the targets: white faces inside the masks, Real-ESRGAN elsewhere
    assert renders[0, 5:9, 5:9].min() > 0.97 and renders[2, 8:12, 7:11].min() > 0.97
    for view in (1, 3):
        assert (renders[view] < 0.97).any(axis=-1).mean() > 0.9
    record = json.loads((folder / "session.json").read_text())["refine"]
    assert record["face_masks"] == f"folder:{faces}"


class FixedSegmenter(ImageSegmenter):
    name = "fixed"

    def __init__(self, mask: torch.Tensor):
        self.mask, self.queries = mask, []

    def segment(self, images, query):
        self.queries.append(query)
        return self.mask.expand(images.shape[:3]).clone()


def test_face_masks_from_a_segmenter_and_bad_face_inputs(tmp_path, esrgan):
    folder = _fake_session(tmp_path / "s")
    sr, _ = load_enhancers(EnhanceConfig(realesrgan_weights=esrgan))
    segmenter = FixedSegmenter(_face_mask(4, 4, 6))
    out = _refine_fake(
        folder,
        ImageEnhancer(sr, WhiteFace()),
        RefineConfig(iters=2, face_query="her face"),
        segmenter,
    )
    assert segmenter.queries == ["her face"]
    masks = _read_pngs(out / "masks") / 255.0
    np.testing.assert_allclose(masks, segmenter.mask.expand(4, 16, 16).numpy(), atol=1 / 255)
    assert (
        json.loads((folder / "session.json").read_text())["refine"]["face_masks"]
        == "segmenter:fixed:her face"
    )

    with pytest.raises(GseditError, match="not both"):
        _refine_fake(
            folder, ImageEnhancer(sr, WhiteFace()), RefineConfig(face_masks=tmp_path), segmenter
        )
    with pytest.raises(GseditError, match="--sr.gfpgan-weights"):
        _refine_fake(folder, ImageEnhancer(sr), RefineConfig(), segmenter)
    with pytest.raises(GseditError, match="iters must be at least 1"):
        _refine_fake(folder, ImageEnhancer(sr), RefineConfig(iters=0))


def test_face_mask_folder_errors(tmp_path):
    cams = fake_cameras(2, 16)
    with pytest.raises(InputFileError, match="not found"):
        load_face_masks(tmp_path / "nowhere", cams)
    iio.imwrite(tmp_path / "face_of_nobody.png", np.zeros((16, 16), np.uint8))
    with pytest.raises(InputFileError, match="no face mask for any of the 2 views"):
        load_face_masks(tmp_path, cams)
    iio.imwrite(tmp_path / "0001.png", np.zeros((16, 24), np.uint8))
    with pytest.raises(InputFileError, match="24x16 mask for 16x16 views"):
        load_face_masks(tmp_path, cams)


def test_a_session_without_finished_turns_has_nothing_to_refine(tmp_path, esrgan):
    folder = tmp_path / "s"
    new_session(folder)
    sr, _ = load_enhancers(EnhanceConfig(realesrgan_weights=esrgan))
    with pytest.raises(GseditError, match="no finished turn to refine"):
        _refine_fake(folder, ImageEnhancer(sr))


@pytest.mark.slow
def test_a_random_gfpgan_restores_the_faces_of_a_real_session(gaussian_session, esrgan, tmp_path):
    """The official GFPGAN layout (86 M random parameters) through the whole stage: ~10 s on CPU."""
    folder = tmp_path / "s"
    shutil.copytree(gaussian_session, folder)
    gfpgan = _tiny_enhance().write_random_gfpgan(tmp_path / "gfpgan.pth")
    faces = tmp_path / "faces"
    faces.mkdir()
    face = _face_mask(8, 10, 12, size=SIZE)
    iio.imwrite(faces / "0000.png", (face.numpy() * 255).astype(np.uint8))
    config = RefineConfig(
        iters=1,
        face_masks=faces,
        enhance=EnhanceConfig(realesrgan_weights=esrgan, gfpgan_weights=gfpgan),
    )
    out = run_refine(folder, config, "cpu", _load_ply)

    masks = _read_pngs(out / "masks") / 255.0
    np.testing.assert_allclose(masks[0], face.numpy(), atol=1 / 255)
    assert masks[1:].max() == 0
    record = json.loads((folder / "session.json").read_text())["refine"]
    assert record["face_masks"] == f"folder:{faces}"
    # the restored face changed the targets: they are not Real-ESRGAN's alone
    from gsedit.edit.session import SessionFolder, session_cameras

    turn = _load_ply(folder / "turn_01" / "scene.ply")
    before = turn.render(session_cameras(SessionFolder.open(folder), turn)).rgb
    sr_only = ImageEnhancer.from_config(EnhanceConfig(realesrgan_weights=esrgan)).enhance(before)
    assert record["sharpness"]["targets"] != pytest.approx(
        float(laplacian_variance(sr_only).mean()), rel=1e-3
    )
