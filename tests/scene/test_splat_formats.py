"""Splat formats other tools write, read and rendered within their quantisation; gsedit's own writers.

The files in tests/scene/data were written by PlayCanvas splat-transform 2.7.1 (npm
@playcanvas/splat-transform) from `splats.ply` (250 Gaussians, SH degree 3, written by gsedit):

    splat-transform splats.ply splats.spz                   # SPZ v4 (its default)
    splat-transform --spz-version 3 splats.ply splats.v3.spz
    splat-transform splats.ply splats.compressed.ply
    splat-transform -g cpu splats.ply splats.sog
    splat-transform splats.splat splats.splat.ply           # its reading of gsedit's .splat

so these tests need neither node nor the network.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gsedit.cameras.orbit import orbit_cameras
from gsedit.cli import main
from gsedit.errors import InputFileError
from gsedit.scene.gaussian_scene import GaussianScene
from gsedit.scene.ply import read_ply
from gsedit.scene.splat_formats import half_turn_about_x, read_gaussians, write_gaussians

DATA = Path(__file__).parent / "data"
#: worst per-component error of what each file stores, measured against splats.ply (order-matched):
#: the formats' quantisation (see gsedit/scene/splat_formats.py)
QUANTISATION = {
    "splats.spz": {"means": 2e-4, "scales": 0.032, "quats": 2e-3, "sh0": 0.014, "shN": 0.07},
    "splats.v3.spz": {"means": 2e-4, "scales": 0.032, "quats": 2e-3, "sh0": 0.014, "shN": 0.07},
    "splats.compressed.ply": {"means": 1.5e-3, "scales": 1e-3, "quats": 1.5e-3, "sh0": 6e-3, "shN": 0.017},
    "splats.splat.ply": {"means": 1e-6, "scales": 1e-6, "quats": 0.01, "sh0": 7.5e-3, "shN": None},
}
#: PSNR of each file's render against the .ply's (4 orbit views, 64 px), a little below the measured
#: 37.7 (.spz: log scales in 1/16 steps), 49.3, 31.1 (.sog: k-means codebooks of random SH) and 26.0 dB
#: (.splat: no SH bands above 0, and this scene's are random)
MIN_PSNR = {"splats.spz": 36.5, "splats.v3.spz": 36.5, "splats.compressed.ply": 47.0, "splats.sog": 30.0,
            "splats.splat": 25.0}


@pytest.fixture(scope="module")
def reference():
    return read_ply(DATA / "splats.ply")


def matched(g, reference):
    """`reference` reordered to `g` (compressed formats reorder Gaussians): nearest centres."""
    return reference.select(torch.cdist(g.means, reference.means).argmin(dim=1))


def psnr(a, b) -> float:
    return float(-10 * torch.log10((a - b).pow(2).mean()))


@pytest.mark.parametrize("name", sorted(QUANTISATION))
def test_files_of_another_tool_hold_the_scene_within_their_quantisation(reference, name):
    g = read_gaussians(DATA / name)
    r = matched(g, reference)
    assert len(g) == len(reference) and len(set(torch.cdist(g.means, reference.means).argmin(1).tolist())) == len(g)
    tol = QUANTISATION[name]
    q, rq = (torch.nn.functional.normalize(x.quats, dim=1) for x in (g, r))
    quat_error = torch.minimum((q - rq).abs().amax(1), (q + rq).abs().amax(1)).max()  # q and -q: one rotation
    assert (g.means - r.means).abs().max() < tol["means"]
    assert (g.scales - r.scales).abs().max() < tol["scales"]
    assert quat_error < tol["quats"]
    assert (torch.sigmoid(g.opacities) - torch.sigmoid(r.opacities)).abs().max() < 1 / 255
    assert (g.sh0 - r.sh0).abs().max() < tol["sh0"]
    if tol["shN"] is None:
        assert g.sh_degree == 0
    else:  # every band, signs included: .spz's frame turn negates the coefficients odd in y + z
        assert g.sh_degree == 3 and (g.shN - r.shN).abs().max() < tol["shN"]


@pytest.mark.parametrize("name", sorted(MIN_PSNR))
def test_files_of_another_tool_render_like_the_ply(reference, name):
    cams = orbit_cameras(4, reference.bounds(), 64, 64)
    expected = GaussianScene(reference).render(cams).rgb
    got = GaussianScene.load(DATA / name).render(cams).rgb
    assert psnr(got, expected) > MIN_PSNR[name]


def test_a_compressed_ply_is_recognised_by_its_contents(tmp_path, reference):
    renamed = tmp_path / "scene.ply"
    renamed.write_bytes((DATA / "splats.compressed.ply").read_bytes())
    assert torch.equal(read_gaussians(renamed).means, read_gaussians(DATA / "splats.compressed.ply").means)


def test_gsedit_splat_file_is_what_splat_transform_reads(reference):
    """splats.splat (gsedit's writer) against splat-transform's reading of it (splats.splat.ply)."""
    ours, theirs = read_gaussians(DATA / "splats.splat"), read_ply(DATA / "splats.splat.ply")
    assert torch.equal(ours.means, theirs.means) and torch.allclose(ours.scales, theirs.scales, atol=1e-6)
    assert (torch.sigmoid(ours.opacities) - torch.sigmoid(theirs.opacities)).abs().max() < 1e-6
    assert (ours.sh0 - theirs.sh0).abs().max() < 1e-5


@pytest.mark.parametrize("suffix", [".spz", ".compressed.ply", ".splat"])
def test_written_files_read_back_within_quantisation(reference, tmp_path, suffix):
    path = tmp_path / f"scene{suffix}"
    write_gaussians(reference, path)
    g = read_gaussians(path)
    r = matched(g, reference)
    assert len(g) == len(reference) and (g.means - r.means).abs().max() < 1.5e-3
    assert (g.sh0 - r.sh0).abs().max() < 0.014
    if suffix == ".spz":  # the writer turns the frame as the reader turns it back
        assert (g.shN - r.shN).abs().max() < 0.07


def test_spz_holds_rub_coordinates(reference):
    """By the SPZ specification the file is in RUB axes: the raw file is the .ply turned about x."""
    import gsply

    raw = gsply.read_spz(DATA / "splats.spz")  # as stored, Gaussians in the .ply's order
    assert (half_turn_about_x(reference).means - torch.from_numpy(raw.means)).abs().max() < 2e-4
    assert (reference.means - torch.from_numpy(raw.means)).abs().max() > 0.5


def test_convert_re_encodes_without_a_refit(tmp_path, reference, capsys):
    out = tmp_path / "scene.spz"
    assert main(["convert", str(DATA / "splats.ply"), "--out", str(out)]) == 0
    assert "re-encoded" in capsys.readouterr().out
    g = read_gaussians(out)
    assert (g.means - matched(g, reference).means).abs().max() < 2e-4
    assert main(["convert", str(out), "--out", str(tmp_path / "back.ply")]) == 0
    assert len(read_ply(tmp_path / "back.ply")) == len(reference)


@pytest.mark.parametrize("content", [b"", b"NGSP" + b"\0" * 20, b"\x1f\x8b garbage"])
def test_broken_spz_files_are_refused_with_the_file_named(tmp_path, content):
    bad = tmp_path / "bad.spz"
    bad.write_bytes(content)
    with pytest.raises(InputFileError, match="bad.spz"):
        read_gaussians(bad)


def test_a_truncated_splat_file_is_refused(tmp_path):
    bad = tmp_path / "bad.splat"
    bad.write_bytes((DATA / "splats.splat").read_bytes()[:100])
    with pytest.raises(InputFileError, match="32-byte"):
        read_gaussians(bad)
