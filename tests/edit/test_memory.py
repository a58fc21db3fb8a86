"""GPU memory budgets: the estimator's parts, the settings chosen for a budget, the refusal before
any work, and out-of-memory errors in a turn turned into a resumable failure with advice."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from gsedit.edit import memory
from gsedit.edit.memory import GB, STEPS, TurnShape, estimate, plan
from gsedit.models.footprint import editor_architecture
from gsedit.models.ip2p.config import IP2PConfig

sys.path.insert(0, str(Path(__file__).parents[1] / "models"))
from tiny_ip2p import save_tiny_ip2p

SHAPE = TurnShape(gaussians=3_000_000, sh_degree=3, extras=2, views=40, width=1024, height=1024)


@pytest.fixture(scope="module")
def arch():
    return editor_architecture()


def test_parameter_counts_come_from_the_configs(tmp_path):
    """Counted on the meta device from a model folder's configs = the loaded model's parameters."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    folder = save_tiny_ip2p(tmp_path / "tiny")
    counted = editor_architecture(str(folder))
    for kind, sub, value in ((UNet2DConditionModel, "unet", counted.unet_params),
                             (AutoencoderKL, "vae", counted.vae_params), (CLIPTextModel, "text_encoder", counted.text_params)):
        model = kind.from_pretrained(folder, subfolder=sub)
        assert value == sum(p.numel() for p in model.parameters()), sub
    assert counted.source.startswith(str(folder))


def test_the_default_models_architecture_is_stable_diffusions(arch):
    """InstructPix2Pix is SD 1.5 with 8 UNet input channels: 859.5 M + 83.7 M + 123.1 M parameters
    (the figures published for SD 1.5's UNet, VAE and CLIP ViT-L/14 text encoder, plus 4 x 320 x 9)."""
    assert round(arch.unet_params / 1e6, 1) == 859.5
    assert round(arch.vae_params / 1e6, 1) == 83.7
    assert round(arch.text_params / 1e6, 1) == 123.1


def test_each_setting_lowers_what_it_should(arch):
    base = IP2PConfig(dtype="float32")
    total = lambda shape=SHAPE, **change: estimate(shape, replace(base, **change), arch).parts["editor"]
    weights = arch.unet_params + arch.vae_params + arch.text_params
    assert total(dtype="float32") - total(dtype="float16") >= 2 * weights * 0.99  # weights halve
    assert total(vae_tiling=True) < total()  # 1024 px decodes in 512 px tiles
    small = replace(SHAPE, width=512, height=512)
    assert total(small, vae_tiling=True) == total(small)  # below the tile size tiling changes nothing
    assert total(max_batch=1) < total(max_batch=4)
    assert total(offload="model") < total(offload="text_vae") < total()
    # PyTorch's fused attention never builds the tokens x tokens matrix; slicing does, per slice
    assert total(attention="sliced") >= total(attention="sdpa")


def test_plan_takes_the_cheapest_steps_in_order_and_only_what_is_needed(arch):
    base = IP2PConfig(dtype="float32")
    full = estimate(SHAPE, base, arch).total
    assert plan(SHAPE, base, arch, None).chosen == [] and plan(SHAPE, base, arch, full).chosen == []
    half = estimate(SHAPE, replace(base, dtype="float16"), arch).total
    chosen = plan(SHAPE, base, arch, half)
    assert chosen.fits and chosen.chosen == [STEPS[0][0]] and chosen.config.dtype == "float16"
    labels = [label for label, _ in STEPS]
    budget = estimate(SHAPE, replace(base, dtype="float16", vae_tiling=True, max_batch=1, offload="text_vae"),
                      arch).total
    tight = plan(SHAPE, base, arch, budget)
    assert tight.fits and tight.estimate.total <= budget and "model CPU offload" not in " ".join(tight.chosen)
    assert tight.chosen == sorted(tight.chosen, key=labels.index)  # in the documented order
    assert labels[1] not in tight.chosen  # slicing saves nothing over fused attention: passed over


def test_nothing_fits_is_refused_with_the_numbers_and_what_would(arch):
    base = IP2PConfig()
    seg = memory.segmenter_bytes(600_000_000, 900_000_000)
    shape = replace(SHAPE, segmenter="adss")
    cheapest = replace(base, dtype="float16", vae_tiling=True, max_batch=1, offload="model")
    budget = estimate(replace(shape, segmenter="none"), cheapest, arch).total + 0.5 * GB  # fits only without ADSS
    chosen = plan(shape, base, arch, budget, seg)
    assert not chosen.fits and chosen.chosen[-1] == STEPS[-1][0]
    message = str(memory.refusal(shape, chosen, budget, base, arch, seg))
    assert memory.gb(budget) in message and memory.gb(chosen.estimate.total) in message and "Nothing was run" in message
    assert "--segmenter relevance" in message and "\n" not in message
    hopeless = str(memory.refusal(shape, plan(shape, base, arch, 1 * GB, seg), 1 * GB, base, arch, seg))
    assert "--segmenter" not in hopeless and "a card with at least" in hopeless


# ------------------------------------------------------------------ out of memory inside a turn


def _oom(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    from gsedit.data.synthetic import SyntheticSceneConfig, write_synthetic_scene

    folder = tmp_path_factory.mktemp("oom")
    cams = write_synthetic_scene(folder / "scene.ply", SyntheticSceneConfig(points_per_object=40, seed=1),
                                 n_cameras=3, size=16)
    return folder / "scene.ply", cams


def _patch_stage(monkeypatch, stage: str) -> None:
    from gsedit.models.synthetic import SyntheticEditor
    from gsedit.render import rasterize as rasterize_module

    if stage == "editor":
        monkeypatch.setattr(SyntheticEditor, "edit", _oom)
    elif stage == "render":  # the training step's render (the turn's pre-renders run without gradients)
        real = rasterize_module.rasterize
        monkeypatch.setattr(rasterize_module, "rasterize",
                            lambda *a, **k: _oom() if torch.is_grad_enabled() else real(*a, **k))
    else:  # the segmenter: the labels segmenter's masks
        from gsedit.edit import masks

        name = next(n for n in ("label_masks", "masks_from_labels") if hasattr(masks, n))
        monkeypatch.setattr(masks, name, _oom)


@pytest.mark.parametrize("stage", ["editor", "render", "segmenter"])
def test_out_of_memory_fails_the_turn_with_advice_and_resumes(labelled, tmp_path, monkeypatch, capsys, stage):
    from gsedit.cli import main
    from gsedit.edit.session import SessionFolder

    scene, cams = labelled
    out = tmp_path / "S"
    common = ["--editor", "synthetic", "--segmenter", "labels", "--device", "cpu", "--iters", "4", "--quiet"]
    first = ["edit", str(scene), "--cameras", str(cams), "--turn", "make the sphere red", "--out", str(out), *common]
    assert main(first) == 0
    second = [*first, "--turn", "make the cube blue", "--resume"]
    capsys.readouterr()
    with monkeypatch.context() as patch:
        _patch_stage(patch, stage)
        assert main(second) != 0
    message = " ".join(capsys.readouterr().err.split())
    assert f"Turn 2 ('make the cube blue') ran out of GPU memory in the {stage}" in message, message
    assert "--resume" in message and "Traceback" not in message
    assert SessionFolder.open(out).records[1].status == "failed" and (out / "turn_01" / "scene.ply").is_file()
    assert not (out / "turn_02").exists()
    # memory settings other than the session's are accepted on --resume
    assert main([*second, "--ip2p.max-batch", "1", "--ip2p.offload", "text_vae"]) == 0
    assert (out / "turn_02" / "scene.ply").is_file()


def test_a_budget_nothing_fits_is_refused_before_any_work(labelled, tmp_path, capsys):
    from gsedit.cli import main

    scene, cams = labelled
    out = tmp_path / "S"
    args = ["edit", str(scene), "--cameras", str(cams), "--turn", "make the sphere red", "--out", str(out),
            "--editor", "synthetic", "--segmenter", "labels", "--device", "cpu", "--iters", "4", "--quiet"]
    assert main([*args, "--gpu-memory", "0.000001"]) != 0
    message = " ".join(capsys.readouterr().err.split())
    assert "Nothing was run" in message and "budget is 0.0 GB" in message
    assert not (out / "turn_01").exists()
    assert main([*args, "--resume", "--gpu-memory", "1"]) == 0  # a budget that fits runs, and says so
    captured = capsys.readouterr()
    printed = " ".join((captured.out + captured.err).split())
    assert "memory: about" in printed and "budget 1.0 GB" in printed
    assert (out / "turn_01" / "scene.ply").is_file()


# ------------------------------------------------------------------ out of memory outside a turn


def test_out_of_memory_outside_a_turn_is_one_paragraph_and_the_session_resumes(labelled, tmp_path, monkeypatch,
                                                                              capsys):
    """The session's first renders (turn_00 and the originals, before any turn) and `gsedit render`:
    torch's OutOfMemoryError is a RuntimeError, which used to end in a traceback."""
    from gsedit.cli import main
    from gsedit.scene.gaussian_scene import GaussianScene

    scene, cams = labelled
    out = tmp_path / "S"
    argv = ["edit", str(scene), "--cameras", str(cams), "--turn", "make the sphere red", "--out", str(out),
            "--editor", "synthetic", "--segmenter", "labels", "--device", "cpu", "--iters", "4", "--quiet"]
    monkeypatch.setattr(GaussianScene, "render", _oom)
    assert main(argv) == 1
    assert main(["render", str(scene), "--cameras", str(cams), "--out", str(tmp_path / "r"), "--device", "cpu"]) == 1
    said = [" ".join(line.split()) for line in capsys.readouterr().err.split("error:")[1:]]
    assert len(said) == 2 and all("out of GPU memory (CUDA out of memory. Tried to allocate 2.00 GiB)" in s
                                  and "--device cpu" in s and "Traceback" not in s for s in said)
    assert "--resume` continues" in said[0] and "Rerun `gsedit render" in said[1]
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("*.png"))
    monkeypatch.undo()
    assert main([*argv, "--resume"]) == 0
    assert (out / "turn_01" / "scene.ply").is_file()
    with pytest.raises(RuntimeError, match="not memory"):  # other runtime errors stay bugs, with their traceback
        monkeypatch.setattr(GaussianScene, "render", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("not memory")))
        main(["render", str(scene), "--cameras", str(cams), "--out", str(tmp_path / "r2"), "--device", "cpu"])
