"""`gsedit studio` in a real browser: headless Chromium driven by Selenium over the labelled demo
scene and the synthetic stand-in editor. Assertions are on the session's files and on pixels."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gsedit.cameras.formats import load_cameras
from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene
from gsedit.scene.ply import read_ply
from gsedit.viewer.camera import ViewPose, pose_to_cameras
from tests.viewer.browser import selenium_chromium

ROOT = Path(__file__).resolve().parents[2]
SIZE = 64
SHOTS = ROOT / "tests" / "studio" / "shots"  # screenshots of the last run (docs/studio.png comes from here)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from gsedit import Session
    from gsedit.studio.app import Studio, StudioConfig

    folder = tmp_path_factory.mktemp("studio")
    scene = folder / "input" / "scene.ply"
    cameras = write_synthetic_scene(scene, SyntheticSceneConfig(points_per_object=300), n_cameras=6, size=SIZE)
    session = Session.create(folder / "session", scene=scene, cameras=cameras, editor="synthetic",
                             iters=80, edit_every=2, lr_scale=10.0, densify=False, segmenter="labels", device="cpu")
    app = Studio(session, StudioConfig(port=free_port()))
    yield app
    app.stop()
    session.close()


@pytest.fixture(scope="module")
def page(studio):
    driver = selenium_chromium(size=(1200, 1100))  # tall enough for the whole panel in the screenshots
    driver.get(studio.url)
    wait_for(lambda: studio.server.get_clients(), "the page to connect")
    time.sleep(3)  # the splats arrive and are sorted
    yield driver
    driver.quit()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def row(driver, label: str):
    """The GUI row of the widget labelled `label`."""
    from selenium.webdriver.common.by import By

    return driver.find_element(By.XPATH, f"//label[normalize-space()='{label}']/ancestor::div[contains(@class,'mantine-Flex-root')][1]")


def button(driver, label: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.XPATH, f"//button[normalize-space()='{label}']")


def type_instruction(driver, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = row(driver, "Instruction").find_element(By.TAG_NAME, "input")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(text)


def shot(driver, name: str) -> np.ndarray:
    """[H, W, 3] uint8 screenshot of the page (also saved under tests/studio/shots/)."""
    import io

    import imageio.v3 as iio

    SHOTS.mkdir(exist_ok=True)
    png = driver.get_screenshot_as_png()
    (SHOTS / f"{name}.png").write_bytes(png)
    return np.asarray(iio.imread(io.BytesIO(png)))[..., :3]


def settled(driver, name: str) -> np.ndarray:
    """A screenshot once two in a row (0.5 s apart) agree: the splats are sorted and drawn."""
    previous = shot(driver, name)
    for _ in range(20):
        time.sleep(0.5)
        current = shot(driver, name)
        if np.abs(current.astype(int) - previous).max() <= 2:
            return current
        previous = current
    return current


def object_pixels(studio, driver, label: int) -> np.ndarray:
    """[K, 2] (x, y) page pixels where the labelled object covers the browser's view."""
    client = next(iter(studio.server.get_clients().values()))
    pose = ViewPose(np.array(client.camera.wxyz), np.array(client.camera.position),
                    float(client.camera.fov), float(client.camera.aspect))
    width = driver.execute_script("return window.innerWidth")
    camera = pose_to_cameras(pose, width)
    scene = studio.session.scene()
    cover = scene.render(camera, channels=[f"label={label}"]).channels[f"label={label}"][0] > 0.95
    ys, xs = torch.nonzero(cover, as_tuple=True)
    scale = width / camera.width
    return np.stack([(xs.numpy() + 0.5) * scale, (ys.numpy() + 0.5) * scale], axis=1).astype(int)


def status(studio) -> str:
    return studio.edit.status.content


def test_preview_run_undo_select_delete_in_the_browser(studio, page):
    folder = studio.session.folder
    before = settled(page, "0_input")
    sphere = object_pixels(studio, page, 2)
    sphere = sphere[sphere[:, 0] < 0.6 * before.shape[1]]  # left of the GUI panel
    assert len(sphere) > 50
    background = before[10:60, 10:60].reshape(-1, 3)
    green = before[sphere[:, 1], sphere[:, 0]].astype(float).mean(0)
    assert green[1] > green[0] + 60  # the demo's sphere is green in the browser's own splats

    # an empty instruction is refused in the page, the server keeps running
    type_instruction(page, " ")
    button(page, "Run turn").click()
    wait_for(lambda: "error" in status(studio), "the empty-instruction error")
    assert not (folder / "turn_01").exists()

    # Preview: before | edited | mask, nothing written
    type_instruction(page, "make the sphere red")
    started = time.monotonic()
    button(page, "Preview").click()
    wait_for(lambda: "preview in" in status(studio), "the preview")
    preview_seconds = time.monotonic() - started
    from selenium.webdriver.common.by import By

    image = page.find_element(By.XPATH, "//img[@alt='before | edited | mask' or contains(@src,'blob:') or contains(@src,'data:')]")
    wait_for(lambda: image.is_displayed() and image.size["width"] > 30, "the preview image")
    import io

    import imageio.v3 as iio

    picture = np.asarray(iio.imread(io.BytesIO(image.screenshot_as_png)))[..., :3].astype(float)
    third = picture.shape[1] // 3
    assert np.abs(picture[:, :third] - picture[:, third : 2 * third]).mean() > 1  # the edit shows
    assert not (folder / "turn_01").exists()
    print(f"Preview -> image: {preview_seconds:.2f} s")

    # Run turn: turn_01/scene.ply written, the browser's scene turns red where the sphere is
    button(page, "Run turn").click()
    time.sleep(0.3)
    button(page, "Run turn").click()  # a second one while the first runs is refused in the page
    wait_for(lambda: "refused" in status(studio) or (folder / "turn_01").exists(), "the refusal")
    wait_for(lambda: (folder / "turn_01" / "scene.ply").is_file() and "done" in status(studio), "turn 1", 120)
    after = settled(page, "1_turn")
    red = after[sphere[:, 1], sphere[:, 0]].astype(float).mean(0)
    assert red[0] > green[0] + 15 and red[1] < green[1] - 25, (green, red)  # the green sphere reddens
    assert np.abs(after[10:60, 10:60].reshape(-1, 3).astype(int) - background).mean() < 3

    # Undo: the folder and the red sphere go
    button(page, "Undo").click()
    wait_for(lambda: not (folder / "turn_01").exists(), "the undo")
    undone = settled(page, "2_undone")
    again = undone[sphere[:, 1], sphere[:, 0]].astype(float).mean(0)
    assert np.abs(again - green).max() < 15

    # a click on the cube selects the cube: its pixels turn to the selection tint, the rest stays
    from selenium.webdriver.common.action_chains import ActionChains

    cube = object_pixels(studio, page, 1)
    cube = cube[cube[:, 0] < 0.6 * before.shape[1]]
    x, y = np.median(cube, axis=0).astype(int)
    body = page.find_element(By.TAG_NAME, "canvas")
    ActionChains(page).move_to_element_with_offset(body, int(x - body.size["width"] / 2),
                                                   int(y - body.size["height"] / 2)).click().perform()
    wait_for(lambda: studio.selected is not None and bool(studio.selected.any()), "the selection")
    selected = studio.selected.clone()
    labels = studio.session.scene().gaussians.extras["label"]
    assert set(labels[selected].tolist()) == {1.0} and int(selected.sum()) > 0.9 * int((labels == 1).sum())
    tinted = settled(page, "3_selected")
    cube_before = undone[cube[:, 1], cube[:, 0]].astype(float).mean(0)
    cube_now = tinted[cube[:, 1], cube[:, 0]].astype(float).mean(0)
    assert cube_now[1] > cube_before[1] + 40  # blue -> cyan: the overlay covers the cube ...
    same = tinted[sphere[:, 1], sphere[:, 0]].astype(float).mean(0)
    assert np.abs(same - again).max() < 10  # ... and not the sphere
    assert np.abs(tinted[10:60, 10:60].reshape(-1, 3).astype(int) - background).mean() < 3  # nor the background

    # Use selection as target: Preview edits only where the cube shows (the labels segmenter alone
    # finds no object in "everything"); its mask third covers the cube's share of the view
    studio.selection.use.value = "target"
    type_instruction(page, "make everything red")
    button(page, "Preview").click()
    wait_for(lambda: "preview in" in status(studio) or "error" in status(studio), "the targeted preview")
    assert "preview in" in status(studio), status(studio)
    client = next(iter(studio.server.get_clients().values()))
    view = studio._client_camera(client, 64)
    cover = studio.session.scene().render(view, channels=["label=1"]).channels["label=1"][0]
    time.sleep(0.5)  # the new image reaches the page
    image = max((i for i in page.find_elements(By.TAG_NAME, "img") if i.is_displayed()), key=lambda i: i.size["width"])
    picture = np.asarray(iio.imread(io.BytesIO(image.screenshot_as_png)))[..., :3].astype(float)
    third = picture.shape[1] // 3
    mask_share = float((picture[:, 2 * third :].mean(-1) > 127).mean())
    assert abs(mask_share - float((cover > 0.5).float().mean())) < 0.05, mask_share
    settled(page, "5_target_preview")  # docs/studio.png
    studio.selection.use.value = "none"

    # Delete selection: a normal turn whose .ply lacks exactly those Gaussians
    count = len(studio.session.scene())
    button(page, "Delete selection").click()
    wait_for(lambda: (folder / "turn_01" / "scene.ply").is_file() and "deleted" in status(studio), "the delete turn")
    written = read_ply(folder / "turn_01" / "scene.ply")
    assert len(written) == count - int(selected.sum()) and not (written.extras["label"] == 1).any()
    gone = settled(page, "4_deleted")
    assert np.abs(gone[cube[:, 1], cube[:, 0]].astype(float).mean(0) - cube_before).max() > 30

    # Cancel: the running turn stops, no turn folder is left, the finished turns stay
    type_instruction(page, "make the sphere red")
    button(page, "Run turn").click()
    wait_for(lambda: "step" in status(studio), "the turn to start")
    button(page, "Cancel").click()
    wait_for(lambda: "cancelled" in status(studio), "the cancellation")
    assert not (folder / "turn_02").exists() and (folder / "turn_01" / "scene.ply").is_file()


def test_a_second_studio_on_the_folder_is_refused(studio):
    folder = studio.session.folder
    done = subprocess.run([sys.executable, "-m", "gsedit", "studio", str(folder), "--port", str(free_port())],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode != 0
    assert "is being written by process" in done.stderr + done.stdout


def test_a_non_loopback_host_is_refused_without_allow_remote(studio, tmp_path):
    done = subprocess.run([sys.executable, "-m", "gsedit", "studio", str(tmp_path / "none"), "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode != 0 and "--allow-remote" in done.stderr + done.stdout
