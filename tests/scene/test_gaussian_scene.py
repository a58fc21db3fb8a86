"""The 3DGS Scene: interface behaviour, cameras of every file format rendering alike, fitting."""

from __future__ import annotations

import torch

from gsedit.cameras import (
    load_cameras,
    orbit_cameras,
    write_colmap_model,
    write_inria_cameras,
    write_transforms_json,
)
from gsedit.data.synthetic import SyntheticSceneConfig, make_synthetic_scene
from gsedit.scene.gaussian_scene import GaussianScene


def small_scene(points: int = 120, seed: int = 0) -> GaussianScene:
    gaussians, names = make_synthetic_scene(SyntheticSceneConfig(points_per_object=points, seed=seed))
    return GaussianScene(gaussians, names)


def test_the_same_cameras_in_three_formats_render_the_same_images(tmp_path):
    scene = small_scene()
    cams = orbit_cameras(3, scene.bounds(), 40, 32)
    write_inria_cameras(cams, tmp_path / "cameras.json")
    write_transforms_json(cams, tmp_path / "transforms.json")
    write_colmap_model(cams, tmp_path / "colmap", binary=True)
    renders = [scene.render(load_cameras(str(p))).rgb
               for p in (tmp_path / "cameras.json", tmp_path / "transforms.json", tmp_path / "colmap")]
    reference = scene.render(cams).rgb
    assert reference.std() > 0.05  # the views show the scene
    for rgb in renders:
        assert torch.allclose(rgb, reference, atol=1e-4)


def test_save_load_renders_the_same_and_clone_is_independent(tmp_path):
    scene = small_scene()
    cams = orbit_cameras(2, scene.bounds(), 24, 24)
    path = scene.save(tmp_path)
    loaded = GaussianScene.load(path)
    assert loaded.label_names() == scene.label_names()
    assert torch.equal(loaded.render(cams).rgb, scene.render(cams).rgb)
    copy = scene.clone()
    copy.params["sh0"].data += 1.0
    assert not torch.equal(copy.render(cams).rgb, scene.render(cams).rgb)


def test_label_indicator_channels_cover_their_object_only():
    scene = small_scene()
    cams = orbit_cameras(2, scene.bounds(), 32, 32)
    out = scene.render(cams, channels=["label=1", "label=2", "label"])
    cube, sphere = out.channels["label=1"], out.channels["label=2"]
    assert cube.max() > 0.9 and sphere.max() > 0.9
    assert float((cube * sphere).sum()) < 0.05 * float(cube.sum())  # they barely overlap
    assert float((cube + sphere).max()) <= 1.0 + 1e-4


def test_set_channel_renders_in_the_same_pass_and_is_saved(tmp_path):
    scene = small_scene()
    cams = orbit_cameras(2, scene.bounds(), 24, 24)
    scene.set_channel("relevance", torch.ones(len(scene)))
    out = scene.render(cams, channels=["relevance"])
    assert torch.allclose(out.channels["relevance"], out.alpha, atol=1e-5)  # constant 1 renders as coverage
    assert "relevance" in GaussianScene.load(scene.save(tmp_path)).channel_names()


def test_a_training_step_moves_the_scene_toward_its_target():
    scene = small_scene()
    cams = orbit_cameras(2, scene.bounds(), 24, 24)
    target = torch.zeros(2, 24, 24, 3)
    target[..., 0] = 1.0
    optimizer = scene.optimizer(20, lr_scale=10.0, densify=False, opacity_reset=False)
    losses = [optimizer.step(cams, target) for _ in range(20)]
    optimizer.finish()
    assert losses[-1] < losses[0] * 0.9


def test_gsedit_fit_reaches_30_db_on_its_training_views(tmp_path):
    import imageio.v3 as iio
    import numpy as np
    import plyfile

    from gsedit.cli import main
    from gsedit.metrics.image import psnr

    truth = small_scene(points=100, seed=2)
    cams = orbit_cameras(4, truth.bounds(), 24, 24)
    images = truth.render(cams).rgb
    (tmp_path / "images").mkdir()
    for name, image in zip(cams.names, images):
        iio.imwrite(tmp_path / "images" / f"{name}.png", (image.numpy() * 255 + 0.5).astype(np.uint8))
    write_inria_cameras(cams, tmp_path / "cameras.json")
    # an SfM-like point cloud: the true centres, jittered, no colours
    jitter = 0.01 * torch.randn(len(truth), 3, generator=torch.Generator().manual_seed(0))
    points = (truth.gaussians.means + jitter).numpy()
    cloud = np.zeros(len(points), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    for i, axis in enumerate("xyz"):
        cloud[axis] = points[:, i]
    plyfile.PlyData([plyfile.PlyElement.describe(cloud, "vertex")]).write(str(tmp_path / "points.ply"))
    args = ["fit", str(tmp_path / "images"), "--cameras", str(tmp_path / "cameras.json"), "--init",
            str(tmp_path / "points.ply"), "--out", str(tmp_path / "fitted.ply"), "--iters", "200",
            "--lr-scale", "3", "--device", "cpu", "--quiet"]
    assert main(args) == 0
    fitted = GaussianScene.load(tmp_path / "fitted.ply")
    targets = torch.from_numpy(np.stack([iio.imread(tmp_path / "images" / f"{n}.png") for n in cams.names])) / 255
    assert psnr(fitted.render(cams).rgb, targets.float()).min() > 30
