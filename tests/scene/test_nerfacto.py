"""The nerfacto backend through the Scene interface: rays, render, train, save/load, clone,
relevance field, and a two-turn session through the Engine with an interrupt and a resume.

Needs nerfstudio; skipped without it. A tiny nerfacto is fitted once to 16x16 renders of the
synthetic Gaussian scene.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest
import torch

pytest.importorskip(
    "nerfstudio",
    reason="the nerfacto backend needs nerfstudio: pip install --no-deps nerfstudio==1.1.5 "
    "&& pip install nerfacc tensorboard",
)

from gsedit.cameras.orbit import orbit_cameras
from gsedit.data.synthetic import SyntheticSceneConfig, make_synthetic_scene
from gsedit.edit.config import EditConfig
from gsedit.edit.engine import Engine, write_input_turn
from gsedit.edit.session import Turn
from gsedit.edit.session import SessionFolder
from gsedit.errors import GseditError, InputFileError
from gsedit.models.synthetic import SyntheticEditor
from gsedit.scene.gaussian_scene import GaussianScene
from gsedit.scene.nerfacto.config import TINY
from gsedit.scene.nerfacto.field import camera_rays, pixel_grid
from gsedit.scene.nerfacto.scene import NerfactoScene, fit_nerfacto
from tests.edit.test_session import InterruptingEditor

SIZE = 16
CONFIG = replace(TINY, rays_per_batch=256)
FIT_STEPS = 60
ITERS = 8  # steps per edit turn


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def synthetic():
    """(images [4, H, W, 3], sphere masks [4, H, W], cameras, bounds) of the synthetic scene."""
    gaussians, names = make_synthetic_scene(SyntheticSceneConfig(points_per_object=400))
    cameras = orbit_cameras(4, gaussians.bounds(), SIZE, SIZE)
    sphere = next(k for k, v in names.items() if v == "sphere")
    out = GaussianScene(gaussians, names).render(cameras, channels=[f"label={sphere}"])
    return out.rgb, out.channels[f"label={sphere}"], cameras, gaussians.bounds()


@pytest.fixture(scope="module")
def fitted(synthetic):
    images, _, cameras, bounds = synthetic
    losses = []
    scene = fit_nerfacto(
        images,
        cameras,
        FIT_STEPS,
        CONFIG,
        bounds=bounds,
        on_step=lambda i, loss: losses.append(loss),
    )
    scene.fit_losses = losses
    return scene


@pytest.fixture(scope="module")
def lifted(fitted, synthetic):
    """The fitted scene with the sphere masks lifted to its relevance field."""
    scene = fitted.clone()
    scene.lift_channel("relevance", synthetic[2], synthetic[1])
    return scene


@pytest.fixture
def deterministic():
    """Bit-exact repeats: the hash grids' gradient scatter is otherwise thread-order dependent."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(previous)


def mse(a, b) -> float:
    return float(((a - b) ** 2).mean())


def test_rays_agree_with_nerfstudios_own_camera_model(fitted, synthetic):
    # nerfstudio's camera model is the reference; it needs OpenCV, which the backend itself does not
    ns_cameras = pytest.importorskip(
        "nerfstudio.cameras.cameras", reason="nerfstudio's cameras need opencv-python-headless"
    )

    cameras = synthetic[2]
    frame = fitted.frame
    c2w = cameras.camtoworlds.clone()
    c2w[:, :3, 1:3] *= -1  # OpenCV (y down, z forward) -> OpenGL (y up, z backward)
    c2w[:, :3, 3] = (c2w[:, :3, 3] - frame.centre) * frame.scale
    theirs = ns_cameras.Cameras(
        camera_to_worlds=c2w[:, :3, :4],
        fx=cameras.Ks[:, 0, 0:1],
        fy=cameras.Ks[:, 1, 1:2],
        cx=cameras.Ks[:, 0, 2:3],
        cy=cameras.Ks[:, 1, 2:3],
        width=SIZE,
        height=SIZE,
        camera_type=ns_cameras.CameraType.PERSPECTIVE,
    )
    ours = camera_rays(cameras, frame, pixel_grid(cameras))
    for i in range(len(cameras)):
        rays = theirs.generate_rays(camera_indices=i)  # [H, W]
        sl = slice(i * SIZE * SIZE, (i + 1) * SIZE * SIZE)
        assert torch.allclose(ours.directions[sl], rays.directions.reshape(-1, 3), atol=1e-5)
        assert torch.allclose(ours.origins[sl], rays.origins.reshape(-1, 3), atol=1e-5)


def test_render_gives_what_the_scene_interface_promises(fitted, synthetic):
    cameras = synthetic[2]
    out = fitted.render(cameras)
    assert (
        out.rgb.shape == (4, SIZE, SIZE, 3)
        and out.alpha.shape == (4, SIZE, SIZE)
        and out.channels == {}
    )
    assert out.rgb.dtype == torch.float32
    assert 0 <= float(out.rgb.min()) and float(out.rgb.max()) <= 1
    assert 0 <= float(out.alpha.min()) and float(out.alpha.max()) <= 1
    assert fitted.channel_names() == []
    part = fitted.render(cameras[[2, 1]])  # any sub-batch renders the same pixels
    assert torch.allclose(part.rgb, out.rgb[[2, 1]], atol=1e-5)
    with pytest.raises(KeyError, match="no 'relevance' channel"):
        fitted.render(cameras, channels=["relevance"])
    lo, hi = fitted.bounds()
    assert torch.equal(lo, synthetic[3][0]) and torch.equal(hi, synthetic[3][1])


def test_training_lowers_the_loss_on_fixed_targets(fitted, synthetic):
    images, _, cameras, bounds = synthetic
    torch.manual_seed(0)  # fit_nerfacto's seed: the same initial field
    initial = NerfactoScene.create(cameras, CONFIG, bounds)
    before, after = (
        mse(initial.render(cameras).rgb, images),
        mse(fitted.render(cameras).rgb, images),
    )
    assert after < 0.3 * before, (before, after)
    losses = fitted.fit_losses
    assert len(losses) == FIT_STEPS and fitted.steps_trained == FIT_STEPS
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])


def test_save_then_load_renders_the_same_and_training_continues_identically(
    lifted, synthetic, tmp_path, deterministic
):
    cameras = synthetic[2]
    scene = lifted.clone()
    path = scene.save(tmp_path)
    assert path == tmp_path / "scene.ckpt" and not list(tmp_path.glob(".*tmp"))
    assert scene.save_as(tmp_path / "again.ckpt").read_bytes() == path.read_bytes()  # same scene, same bytes
    loaded = NerfactoScene.load(path)
    a, b = scene.render(cameras, ["relevance"]), loaded.render(cameras, ["relevance"])
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.alpha, b.alpha)
    assert torch.equal(a.channels["relevance"], b.channels["relevance"])
    assert loaded.steps_trained == scene.steps_trained and loaded.channel_names() == ["relevance"]
    assert all(torch.equal(x, y) for x, y in zip(loaded.bounds(), scene.bounds()))
    # the proposal schedule and annealing travel with the checkpoint: a resumed run repeats exactly
    target = torch.zeros(1, SIZE, SIZE, 3)
    for s in (scene, loaded):
        torch.manual_seed(5)
        optimizer = s.optimizer(3)
        for _ in range(3):
            optimizer.step(cameras[0], target)
    assert torch.equal(scene.render(cameras[:1]).rgb, loaded.render(cameras[:1]).rgb)


def test_a_new_optimisation_continues_adams_moments(fitted, synthetic):
    """Fine-tuning a converged field on its own renders barely moves it; a fresh Adam (the first
    steps move every parameter by ~the learning rate) wrecks it, which is why the moments travel."""
    cameras = synthetic[2]
    own = fitted.render(cameras).rgb
    assert set(fitted.optimizer_state) == {"fields", "proposal_networks"}
    drifts = {}
    for carried in (True, False):
        scene = fitted.clone()
        if not carried:
            scene.optimizer_state = {}
        torch.manual_seed(1)
        optimizer = scene.optimizer(4)
        for i in range(4):
            optimizer.step(cameras[i], own[i : i + 1])
        drifts[carried] = mse(scene.render(cameras).rgb, own)
    assert drifts[True] < 0.5 * drifts[False], drifts  # measured 0.36x here, 0.1x on a converged fit


def test_training_repeats_bit_for_bit_with_several_threads(fitted, synthetic):
    """Resumed sessions must repeat exactly: the threaded hash-grid scatter may not reorder sums."""
    cameras, images = synthetic[2], synthetic[0]
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        renders = []
        for _ in range(2):
            scene = fitted.clone()
            torch.manual_seed(3)
            optimizer = scene.optimizer(6)
            for i in range(6):
                optimizer.step(cameras[i % 4], images[i % 4 : i % 4 + 1])
            renders.append(scene.render(cameras).rgb)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(*renders)


def test_clone_is_independent(fitted, synthetic):
    cameras = synthetic[2]
    before = fitted.render(cameras[:1]).rgb
    copy = fitted.clone()
    optimizer = copy.optimizer(5)
    red = torch.tensor([1.0, 0.0, 0.0]).expand(1, SIZE, SIZE, 3)
    for _ in range(5):
        optimizer.step(cameras[0], red)
    assert torch.equal(fitted.render(cameras[:1]).rgb, before)
    assert mse(copy.render(cameras[:1]).rgb, red) < mse(before, red)
    assert fitted.steps_trained == FIT_STEPS and copy.steps_trained == FIT_STEPS + 5


def test_lift_channel_fits_the_maps_along_the_geometry_without_moving_it(fitted, lifted, synthetic):
    _, masks, cameras, _ = synthetic
    geometry, after = fitted.network.state_dict(), lifted.network.state_dict()
    assert all(
        torch.equal(after[k], v) for k, v in geometry.items()
    )  # only the new head was trained
    assert lifted.channel_names() == ["relevance"] and fitted.channel_names() == []
    field = lifted.render(cameras, ["relevance"]).channels["relevance"]
    assert field.shape == masks.shape and float(field.min()) >= 0 and float(field.max()) <= 1
    assert float((field - masks).abs().mean()) < 0.08
    inside, truth = field > 0.5, masks > 0.5
    assert float((inside & truth).sum() / (inside | truth).sum()) > 0.6
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        lifted.clone().lift_channel("relevance", cameras, masks[:, :8])


def test_channels_lifted_together_each_fit_their_own_maps(fitted, synthetic):
    """lift_channels shares each step's ray samples between the heads (a labelled refit lifts one
    per label); each head still fits its own maps, and the geometry does not move."""
    _, masks, cameras, _ = synthetic
    scene = fitted.clone()
    scene.lift_channels({"inside": masks, "outside": 1 - masks}, cameras)
    assert scene.channel_names() == ["inside", "outside"]
    assert all(torch.equal(scene.network.state_dict()[k], v) for k, v in fitted.network.state_dict().items())
    fields = scene.render(cameras, ["inside", "outside"]).channels
    alpha = scene.render(cameras).alpha
    assert float((fields["inside"] - masks).abs().mean()) < 0.08
    assert float((fields["outside"] - (1 - masks) * alpha).abs().mean()) < 0.08  # outside the content: no weight


def test_load_and_fit_reject_bad_input(tmp_path, synthetic):
    with pytest.raises(InputFileError, match="not found"):
        NerfactoScene.load(tmp_path / "missing.ckpt")
    (tmp_path / "text.ckpt").write_text("hello")
    with pytest.raises(InputFileError, match="not a PyTorch checkpoint"):
        NerfactoScene.load(tmp_path / "text.ckpt")
    torch.save({"format": "splatfacto"}, tmp_path / "other.ckpt")
    with pytest.raises(InputFileError, match="not a gsedit nerfacto checkpoint"):
        NerfactoScene.load(tmp_path / "other.ckpt")
    images, _, cameras, _ = synthetic
    with pytest.raises(GseditError, match=r"images must be \[C, H, W, 3\]"):
        fit_nerfacto(images[:, :8], cameras, 1, CONFIG)


def start_session(folder, source, cameras) -> SessionFolder:
    settings = EditConfig(
        iters=ITERS, edit_every=2, segmenter="relevance", relevance_guided=True, seed=3
    )
    session = SessionFolder.create(
        folder,
        scene_file=NerfactoScene.filename,
        input_path=str(source),
        cameras="test",
        method="wys",
        settings=settings,
        plugins={"editor": "synthetic"},
    )
    session.add_turns([Turn("make the scene red"), Turn("make the scene blue")])
    write_input_turn(session, NerfactoScene.load(source), cameras, source)
    return session


@pytest.mark.filterwarnings(
    "ignore:synthetic editor"
)  # an unlabelled scene: the stand-in edits whole views
def test_two_turn_session_on_nerfacto_runs_and_resumes_to_the_same_scene(
    fitted, synthetic, tmp_path, deterministic
):
    cameras = synthetic[2]
    source = tmp_path / "input.ckpt"
    # the fitted field with a shorter relevance fit, to keep the test fast
    state = fitted.state()
    NerfactoScene.from_state(
        {**state, "config": {**asdict(fitted.config), "lift_steps": 8}}
    ).save_as(source)

    def engine(editor=None) -> Engine:
        return Engine(
            load_scene=NerfactoScene.load,
            cameras_for=lambda s: cameras.to(s.device),
            editor=editor or SyntheticEditor(),
        )

    reference = start_session(tmp_path / "ref", source, cameras)
    assert [r.index for r in engine().run(reference)] == [1, 2]
    turns = [
        NerfactoScene.load(tmp_path / "ref" / f"turn_{k:02d}" / "scene.ckpt") for k in (0, 1, 2)
    ]
    assert [t.channel_names() for t in turns] == [[], ["relevance"], ["relevance"]]
    assert [t.steps_trained for t in turns] == [FIT_STEPS, FIT_STEPS + ITERS, FIT_STEPS + 2 * ITERS]
    red = [
        float(t.render(cameras).rgb[..., 0].mean() - t.render(cameras).rgb[..., 2].mean())
        for t in turns
    ]
    assert (
        red[1] > red[0] + 0.005 and red[2] < red[1] - 0.02
    )  # turn 1 reddened the views, turn 2 blued them
    assert len(list((tmp_path / "ref" / "turn_02" / "renders").glob("*.png"))) == 4

    cut = start_session(tmp_path / "cut", source, cameras)
    with pytest.raises(KeyboardInterrupt):
        engine(InterruptingEditor(interrupt_at=6)).run(cut)  # 4 edits in turn 1, stops in turn 2
    statuses = [
        t["status"] for t in json.loads((tmp_path / "cut" / "session.json").read_text())["turns"]
    ]
    assert statuses == ["done", "interrupted"] and not (tmp_path / "cut" / "turn_02").exists()
    resumed = SessionFolder.open(tmp_path / "cut")
    assert [r.index for r in engine().run(resumed)] == [2]
    for k in (1, 2):
        a = NerfactoScene.load(tmp_path / "ref" / f"turn_{k:02d}" / "scene.ckpt").render(
            cameras, ["relevance"]
        )
        b = NerfactoScene.load(tmp_path / "cut" / f"turn_{k:02d}" / "scene.ckpt").render(
            cameras, ["relevance"]
        )
        assert torch.equal(a.rgb, b.rgb) and torch.equal(
            a.channels["relevance"], b.channels["relevance"]
        )
