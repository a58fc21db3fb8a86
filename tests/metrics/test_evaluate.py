"""`gsedit eval` on tiny sessions: every number against a hand computation from the session's PNGs."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from rich.console import Console

from gsedit.edit.config import EditConfig
from gsedit.edit.engine import Engine, write_input_turn
from gsedit.edit.session import SessionFolder, Turn
from gsedit.errors import InputFileError
from gsedit.evaluation.evaluate import evaluate_session
from gsedit.evaluation.evaluate_config import EvalConfig
from gsedit.evaluation.metrics_table import CLIP_COLUMNS, format_table
from gsedit.metrics.image import load_lpips, lpips, ssim
from gsedit.models.synthetic import SyntheticEditor
from tests.edit.fake_scene import FakeScene, fake_cameras
from tests.edit.test_loop import two_object_scene
from tests.metrics.test_clip_metrics import _reference_embeddings, hf_clip_dir  # noqa: F401 (fixture)

SIZE = 32  # the smallest size LPIPS-squeeze accepts
TURNS = [Turn("make the sphere red"), Turn("make the cube yellow")]
LABELS = {
    1: 1,
    2: 2,
}  # turn -> label id of the object it names (two_object_scene: sphere 1, cube 2)


def cameras(scene=None):
    return fake_cameras(4, SIZE)


@pytest.fixture(scope="module")
def session_dir(tmp_path_factory) -> Path:
    """Two turns of the synthetic editor on a fake labelled scene (4 views of 32x32)."""
    root = tmp_path_factory.mktemp("eval")
    source = two_object_scene(size=SIZE).save(root)
    settings = EditConfig(iters=12, edit_every=3, segmenter="labels", seed=7)
    session = SessionFolder.create(
        root / "s",
        scene_file="scene.pt",
        input_path=str(source),
        cameras="fake",
        method="edit3d",
        settings=settings,
        plugins={"editor": "synthetic"},
    )
    session.add_turns(TURNS)
    write_input_turn(session, FakeScene.load(source), cameras(), source)
    Engine(load_scene=FakeScene.load, cameras_for=cameras, editor=SyntheticEditor()).run(session)
    return root / "s"


@pytest.fixture(scope="module")
def squeeze_weights(tmp_path_factory) -> Path:
    """A random SqueezeNet-1.1 backbone (its `features`, all LPIPS reads) as a torchvision state dict."""
    import torchvision

    torch.manual_seed(0)
    features = torchvision.models.squeezenet1_1(weights=None).features.state_dict()
    path = tmp_path_factory.mktemp("lpips") / "squeezenet.pth"
    torch.save({f"features.{k}": v for k, v in features.items()}, path)
    return path


def _copy(session_dir: Path, tmp_path: Path) -> Path:
    shutil.copytree(session_dir, tmp_path / "s")
    return tmp_path / "s"


def _evaluate(folder: Path, **config) -> dict:
    return evaluate_session(
        folder, EvalConfig(**config), "cpu", load_scene=FakeScene.load, cameras_for=cameras
    )


def _pngs(folder: Path) -> np.ndarray:
    return (
        np.stack([iio.imread(p) for p in sorted(folder.glob("*.png"))]).astype(np.float64) / 255.0
    )


def _psnr(a: np.ndarray, b: np.ndarray, weight: np.ndarray, pooled: bool) -> float:
    """PSNR of the weighted pixels (squared error averaged over RGB): of the error pooled over all
    views, or the mean over views of each view's PSNR (identical views: infinite)."""
    se = ((a - b) ** 2).mean(-1)
    axes = (0, 1, 2) if pooled else (1, 2)
    mse = (se * weight).sum(axes) / weight.sum(axes)
    with np.errstate(divide="ignore"):
        return float(np.mean(10 * np.log10(1 / mse)))


def _as_json(value: float):
    """metrics.json writes an infinite PSNR (identical images) as "inf"."""
    return "inf" if value == float("inf") else pytest.approx(value, rel=1e-5)


def _iou(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean([(p & g).sum() / (p | g).sum() for p, g in zip(pred >= 0.5, gt >= 0.5)]))


def test_every_turn_metric_equals_a_hand_computation_from_the_pngs(
    session_dir,
    tmp_path,
    squeeze_weights,
    hf_clip_dir,  # noqa: F811 (the imported fixture)
):
    folder = _copy(session_dir, tmp_path)
    # a mask that is not the ground truth, so mIoU and the unedited region are not trivial
    shifted = np.zeros((SIZE, SIZE), np.uint8)
    shifted[6:14, 2:10] = 255
    iio.imwrite(folder / "turn_02" / "masks" / "0001.png", shifted)
    metrics = _evaluate(
        folder, clip_model=str(hf_clip_dir), lpips_net="squeeze", lpips_weights=squeeze_weights
    )
    assert json.loads((folder / "metrics.json").read_text()) == metrics
    assert metrics["editor_is_stand_in"] is True and metrics["unavailable"] == []
    captions = [
        "a photo of a scene",
        "a photo of a scene, make the sphere red",
        "a photo of a scene, make the sphere red, make the cube yellow",
    ]
    assert metrics["captions"] == {str(k): c for k, c in enumerate(captions)}

    image, text = _reference_embeddings(hf_clip_dir)
    net = load_lpips("squeeze", squeeze_weights)
    session = json.loads((folder / "session.json").read_text())
    labels = torch.load(folder / "turn_00" / "scene.pt")["labels"].numpy()  # [V, H, W] the truth
    for k, row in zip((1, 2), metrics["turns"]):
        before, after = (
            _pngs(folder / f"turn_{k - 1:02d}" / "renders"),
            _pngs(folder / f"turn_{k:02d}" / "renders"),
        )
        masks = _pngs(folder / f"turn_{k:02d}" / "masks")
        unedited = 1 - masks
        assert row["turn"] == k and row["instruction"] == TURNS[k - 1].instruction
        assert row["psnr_unedited"] == _as_json(_psnr(after, before, unedited, pooled=True))
        assert row["edit_psnr"] == _as_json(_psnr(after, before, np.ones_like(masks), pooled=False))
        assert row["miou"] == pytest.approx(_iou(masks, labels == LABELS[k]), abs=1e-6)

        b, a, u = (torch.from_numpy(x).float() for x in (before, after, unedited))
        assert row["ssim_unedited"] == pytest.approx(float(ssim(a, b, u).mean()), rel=1e-5)
        assert row["lpips_unedited"] == pytest.approx(
            float(lpips(a, b, u, net=net).mean()), rel=1e-4
        )
        eb, ea, t0, t1 = image(b), image(a), text(captions[k - 1]), text(captions[k])
        delta = ea - eb
        expected = {
            "clip_text_image": (ea @ t1).mean(),
            "clip_direction": F.cosine_similarity(delta, (t1 - t0)[None]).mean(),
            "clip_direction_consistency": F.cosine_similarity(delta[:-1], delta[1:]).mean(),
            "clip_image_sim": (ea * eb).sum(-1).mean(),
            "clip_frame_sim": (ea[:-1] * ea[1:]).sum(-1).mean(),
        }
        for key, value in expected.items():
            assert row[key] == pytest.approx(float(value), abs=1e-5), key
        for key in ("seconds", "peak_rss_mb", "peak_cuda_mb"):
            assert row[key] == session["turns"][k - 1][key]
    assert metrics["turns"][1]["miou"] < 0.9  # the shifted mask of view 1 is seen
    mean = metrics["summary"]["mean"]
    assert mean["clip_direction"] == pytest.approx(
        (metrics["turns"][0]["clip_direction"] + metrics["turns"][1]["clip_direction"]) / 2
    )
    assert metrics["refined"] is None


def test_missing_models_and_labels_give_nulls_with_reasons(session_dir, tmp_path):
    folder = _copy(session_dir, tmp_path)
    metrics = evaluate_session(
        folder,
        EvalConfig(clip_model=str(tmp_path / "no_clip"), lpips_weights=tmp_path / "no_alexnet.pth"),
        "cpu",
        load_scene=lambda path: FakeScene(
            FakeScene.load(path).images
        ),  # the same views, unlabelled
        cameras_for=cameras,
    )
    for row in metrics["turns"]:
        assert all(row[k] is None for k in CLIP_COLUMNS + ["lpips_unedited", "miou"])
        assert row["psnr_unedited"] is not None and row["edit_psnr"] is not None
    reasons = {(u["metric"], u.get("turn")): u["reason"] for u in metrics["unavailable"]}
    assert "--clip-model" in reasons[("clip", None)] and "no_clip" in reasons[("clip", None)]
    assert "--lpips-weights" in reasons[("lpips", None)]
    assert "no labels" in reasons[("miou", 1)] and "no labels" in reasons[("miou", 2)]
    assert metrics["summary"]["mean"]["clip_direction"] is None


def _load_tiny_enhance():
    path = Path(__file__).resolve().parents[1] / "models" / "tiny_enhance.py"
    spec = importlib.util.spec_from_file_location("tiny_enhance", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_refined_row_scores_the_refined_renders_in_place_of_the_last_turn(session_dir, tmp_path):
    from gsedit.edit.refine import run_refine
    from gsedit.edit.refine_config import RefineConfig
    from gsedit.models.enhance_config import EnhanceConfig

    folder = _copy(session_dir, tmp_path)
    weights = _load_tiny_enhance().write_tiny_realesrgan(tmp_path / "esrgan.pth", num_up=1)
    config = RefineConfig(iters=8, enhance=EnhanceConfig(realesrgan_weights=weights))
    run_refine(folder, config, "cpu", FakeScene.load, cameras_for=cameras)
    metrics = _evaluate(folder, clip_model=str(tmp_path / "no_clip"))
    row = metrics["refined"]
    before, refined = _pngs(folder / "turn_01" / "renders"), _pngs(folder / "refined" / "renders")
    unedited = 1 - _pngs(folder / "turn_02" / "masks")
    assert row["turn"] == "refined" and row["instruction"] == TURNS[1].instruction
    assert row["psnr_unedited"] == _as_json(_psnr(refined, before, unedited, pooled=True))
    assert row["edit_psnr"] == _as_json(
        _psnr(refined, before, np.ones_like(unedited), pooled=False)
    )
    record = json.loads((folder / "session.json").read_text())["refine"]
    assert row["seconds"] == record["seconds"] and row["miou"] is None
    assert (row["sharpness_before"], row["sharpness_after"]) == (
        record["sharpness"]["before"],
        record["sharpness"]["after"],
    )

    SessionFolder.open(folder).undo()  # refined/ now belongs to a turn that is gone
    metrics = _evaluate(folder, clip_model=str(tmp_path / "no_clip"))
    assert metrics["refined"] is None and [r["turn"] for r in metrics["turns"]] == [1]
    stale = [u for u in metrics["unavailable"] if u["metric"] == "refined"]
    assert "made from turn 2" in stale[0]["reason"] and "gsedit refine" in stale[0]["reason"]


def test_captions_file_and_its_errors(session_dir, tmp_path):
    folder = _copy(session_dir, tmp_path)
    captions = {
        "0": "two squares",
        "1": "a red square and a blue one",
        "2": "a red and a yellow square",
    }
    (tmp_path / "captions.json").write_text(json.dumps(captions))
    metrics = _evaluate(
        folder, clip_model=str(tmp_path / "no_clip"), captions=tmp_path / "captions.json"
    )
    assert metrics["captions"] == captions
    (tmp_path / "short.json").write_text(json.dumps(["two squares", "a red square"]))
    with pytest.raises(InputFileError, match="expected 3 captions"):
        _evaluate(folder, clip_model=str(tmp_path / "no_clip"), captions=tmp_path / "short.json")


def _table_text(metrics: dict) -> str:
    console = Console(record=True, width=250)
    console.print(format_table(metrics))
    return console.export_text()


def test_table_warns_about_stand_ins_and_writes_identical_views_as_infinite(session_dir, tmp_path):
    folder = _copy(session_dir, tmp_path)
    text = _table_text(_evaluate(folder, clip_model=str(tmp_path / "no_clip")))
    assert (
        "stand-in" in text and "NOT edit quality" in text and "not available (clip, lpips" in text
    )

    # a session edited by a real editor, whose turn 1 changed nothing
    data = json.loads((folder / "session.json").read_text())
    data["plugins"]["editor"] = "ip2p"
    (folder / "session.json").write_text(json.dumps(data))
    shutil.rmtree(folder / "turn_01" / "renders")
    shutil.copytree(folder / "turn_00" / "renders", folder / "turn_01" / "renders")
    metrics = _evaluate(folder, clip_model=str(tmp_path / "no_clip"))
    assert metrics["editor_is_stand_in"] is False
    assert (
        metrics["turns"][0]["edit_psnr"] == "inf" and metrics["turns"][0]["psnr_unedited"] == "inf"
    )
    text = _table_text(metrics)
    assert "stand-in" not in text and "∞" in text
