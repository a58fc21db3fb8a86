"""Regenerates tests/scene/data/axes/: .spz files written by PlayCanvas splat-transform 3.x, in
both of the axes that .spz files are found in today.

    npm install -g @playcanvas/splat-transform@3
    python tools/make_spz_fixtures.py

scene.ply is tests/scene/data/splats.ply (250 Gaussians, SH degree 3) moved off the origin, as a
COLMAP scene usually is; cameras.json is 8 orbit views of it. Then:

    splat-transform scene.ply st3.spz                     # the .ply's own axes (SuperSplat's)
    splat-transform scene.ply -r 180,0,0 st3_rub.spz      # turned to the specification's RUB axes

The tests read these files, so they need neither node nor the network.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import torch

from gsedit.cameras.inria import write_inria_cameras
from gsedit.cameras.orbit import orbit_cameras
from gsedit.scene.ply import read_ply, write_ply

DATA = Path(__file__).resolve().parents[1] / "tests" / "scene" / "data"
OFFSET = (0.3, -1.2, 3.0)  # away from the origin, so that the half turn about x moves it out of view


def main() -> None:
    tool = shutil.which("splat-transform")
    if tool is None:
        raise SystemExit("splat-transform not found: npm install -g @playcanvas/splat-transform@3")
    out = DATA / "axes"
    out.mkdir(exist_ok=True)
    g = read_ply(DATA / "splats.ply")
    g.means = g.means + torch.tensor(OFFSET)
    write_ply(g, out / "scene.ply")
    write_inria_cameras(orbit_cameras(8, g.bounds(), 64, 64), out / "cameras.json")
    version = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True)
    version = (version.stdout or version.stderr).strip()
    print(version)
    for args in (["scene.ply", "st3.spz"], ["scene.ply", "-r", "180,0,0", "st3_rub.spz"]):
        subprocess.run([tool, "-q", "-w", *args], cwd=out, check=True)
        print("wrote", out / args[-1])


if __name__ == "__main__":
    main()
