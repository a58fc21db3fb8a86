"""The studio's costs, side by side in one run: Preview -> image, a turn in the studio vs `gsedit
edit`, and frames per second of the in-browser splats (headless Chromium, software WebGL).

    python tools/bench_studio.py                     # demo scene (12 views, 96 px), 200-step turns
    python tools/bench_studio.py --big 100000 1000000   # the splat fps of larger random scenes too
    python tools/bench_studio.py --spinning          # and `gsedit edit` with OpenMP threads spinning

Turn overhead: the same turn ("make the sphere red", the demo's settings, synthetic stand-in
editor) run by `gsedit edit` in its own process and by the studio (Run turn, with a browser
connected and the page updating its progress), alternating `--rounds` times; the figures are the
turns' own seconds in session.json. Splat fps: requestAnimationFrame callbacks per second while
the splats turn in front of the camera (so every frame is re-sorted and redrawn), counted for `--seconds`.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the `gsedit` command sets it (gsedit.cli.entrypoint)

from tests.studio.test_studio import button, free_port, type_instruction, wait_for  # noqa: E402
from tests.viewer.browser import selenium_chromium  # noqa: E402

TURN = "make the sphere red"
COUNT_FRAMES = "window.gseditFrames = 0; (function tick() { window.gseditFrames++; requestAnimationFrame(tick); })();"


def demo_options(iters: int) -> dict:
    from gsedit.data.demo import DEMO_OVERRIDES

    return {"editor": "synthetic", "iters": iters, **DEMO_OVERRIDES}


def edit_turn_seconds(scene: Path, cameras: Path, out: Path, iters: int, wait_policy: str = "PASSIVE") -> float:
    """The turn's seconds under `gsedit edit` in its own process, OpenMP threads waiting `wait_policy`."""
    from gsedit.data.demo import DEMO_OVERRIDES
    from gsedit.edit.session import SessionFolder

    flags = [f"--{k.replace('_', '-')}" if v is True else f"--{k.replace('_', '-')}={v}" for k, v in DEMO_OVERRIDES.items()]
    flags = [f.replace("--densify=False", "--no-densify") for f in flags]
    subprocess.run([sys.executable, "-m", "gsedit", "edit", str(scene), "--cameras", str(cameras), "--turn", TURN,
                    "--out", str(out), "--editor", "synthetic", "--iters", str(iters), "--device", "cpu", "--quiet",
                    *flags], check=True, cwd=ROOT, capture_output=True, env={**os.environ, "OMP_WAIT_POLICY": wait_policy})
    return SessionFolder.open(out).records[0].seconds


def studio_turn_seconds(scene: Path, cameras: Path, out: Path, iters: int, driver) -> tuple[float, float]:
    """(the turn's seconds, Preview click -> image seconds) in a studio with `driver` connected."""
    from gsedit import Session
    from gsedit.studio.app import Studio, StudioConfig

    session = Session.create(out, scene=scene, cameras=cameras, device="cpu", **demo_options(iters))
    app = Studio(session, StudioConfig(port=free_port()))
    try:
        driver.get(app.url)
        wait_for(lambda: app.server.get_clients(), "the page")
        time.sleep(2)
        type_instruction(driver, TURN)
        start = time.monotonic()
        button(driver, "Preview").click()
        wait_for(lambda: "preview in" in app.edit.status.content, "the preview")
        preview = time.monotonic() - start
        button(driver, "Run turn").click()
        wait_for(lambda: (out / "turn_01").is_dir() and "done" in app.edit.status.content, "the turn", 600)
        return session.turns[0].seconds, preview
    finally:
        app.stop()
        session.close()


def splat_fps(scene_path: Path, driver, seconds: float) -> float:
    """rAF callbacks per second while the scene's splats turn in front of the browser's camera."""
    import threading

    import viser

    from gsedit.scene.gaussian_scene import GaussianScene
    from gsedit.studio.splats import splat_arrays

    scene = GaussianScene.load(scene_path)
    lo, hi = (t.numpy() for t in scene.bounds())
    centre, radius = (lo + hi) / 2, float(np.linalg.norm(hi - lo))
    arrays = splat_arrays(scene.gaussians)
    server = viser.ViserServer(host="127.0.0.1", port=free_port(), verbose=False)
    server.scene.set_up_direction("+z")
    splats = server.scene.add_gaussian_splats("/scene", centers=(arrays.centers - centre).astype(np.float32), covariances=arrays.covariances,
                                              rgbs=arrays.rgbs, opacities=arrays.opacities)
    stop = threading.Event()

    def spin():  # the splats turn about the up axis, so every frame is re-sorted and redrawn
        angle = 0.0
        while not stop.is_set():
            splats.wxyz = (math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2))
            angle += 0.05
            time.sleep(1 / 30)

    try:
        driver.get(f"http://127.0.0.1:{server.get_port()}")
        wait_for(lambda: server.get_clients(), "the page")
        for client in server.get_clients().values():
            client.camera.position = (0.0, -1.5 * radius, 0.5 * radius)
            client.camera.look_at = (0.0, 0.0, 0.0)
        time.sleep(5 + len(scene) / 100_000)  # the splats arrive and are sorted once
        threading.Thread(target=spin, daemon=True).start()
        # frames counted by the page, read twice `seconds` apart: short calls, so a page busy for
        # seconds per frame is measured rather than timing out a script that waits for frames
        driver.set_script_timeout(300)
        driver.execute_script(COUNT_FRAMES)
        start, first = time.monotonic(), driver.execute_script("return window.gseditFrames")
        time.sleep(seconds)
        return (driver.execute_script("return window.gseditFrames") - first) / (time.monotonic() - start)
    finally:
        stop.set()
        server.stop()


def random_scene(path: Path, count: int) -> Path:
    import torch

    from gsedit.scene.gaussians import Gaussians
    from gsedit.scene.ply import write_ply

    g = torch.Generator().manual_seed(0)
    write_ply(Gaussians(means=torch.rand(count, 3, generator=g) * 2 - 1,
                        scales=torch.full((count, 3), math.log(0.01)),
                        quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(count, 1),
                        opacities=torch.zeros(count), sh0=torch.randn(count, 1, 3, generator=g) * 0.5,
                        shN=torch.zeros(count, 0, 3)), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--big", type=int, nargs="*", default=[], help="also measure splat fps of random scenes this large")
    parser.add_argument("--spinning", action="store_true", help="also time `gsedit edit` with OMP_WAIT_POLICY=ACTIVE")
    args = parser.parse_args()
    from gsedit.data.demo import write_demo_scene

    work = Path(tempfile.mkdtemp(prefix="bench_studio_"))
    scene, cameras = write_demo_scene(work)
    driver = selenium_chromium()
    try:
        edit, spinning, studio, previews = [], [], [], []
        for r in range(args.rounds):
            edit.append(edit_turn_seconds(scene, cameras, work / f"edit_{r}", args.iters))
            if args.spinning:
                spinning.append(edit_turn_seconds(scene, cameras, work / f"spin_{r}", args.iters, "ACTIVE"))
            seconds, preview = studio_turn_seconds(scene, cameras, work / f"studio_{r}", args.iters, driver)
            studio.append(seconds)
            previews.append(preview)
        import torch

        print(f"torch threads: {torch.get_num_threads()} in both (one process each); OMP_WAIT_POLICY "
              f"{os.environ['OMP_WAIT_POLICY']}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"turn of {args.iters} steps, s (session.json): gsedit edit {edit}  studio {studio}  "
              f"studio/edit (medians) {statistics.median(studio) / statistics.median(edit):.2f}x")
        if spinning:
            print(f"gsedit edit with OMP_WAIT_POLICY=ACTIVE (spinning OpenMP threads): {spinning} s")
        print(f"Preview click -> image: {[round(p, 2) for p in previews]} s")
        print(f"splat fps, demo scene (6,000 Gaussians): {splat_fps(scene, driver, args.seconds):.1f}")
        for count in args.big:
            big = random_scene(work / f"big_{count}.ply", count)
            print(f"splat fps, {count:,} Gaussians: {splat_fps(big, driver, args.seconds):.2f}")
    finally:
        driver.quit()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
