"""InstructPix2Pix editor on a tiny random model loaded through the real `from_pretrained` path."""

import shutil
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from tiny_ip2p import save_tiny_ip2p

from gsedit.errors import GseditError, InputFileError, ModelMissingError
from gsedit.models.ip2p.config import IP2PConfig
from gsedit.models.ip2p.denoise import DenoiseStep, denoise, latent_region, start_indices
from gsedit.models.ip2p.editor import IP2PEditor, resolve_dtype
from gsedit.models.ip2p.relevance import binarize, relevance_from_eps, relevance_map

INSTRUCTION = "make it red"
H, W = 37, 50  # not multiples of 8: padded for the VAE, cropped back


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_ip2p(tmp_path_factory.mktemp("ip2p") / "tiny")


@pytest.fixture(scope="module")
def editor(model_dir):
    # 10 steps instead of 20 keep the file fast; the schedule logic is the same
    return IP2PEditor.from_pretrained(IP2PConfig(model=str(model_dir), steps=10), "cpu")


@pytest.fixture
def images():
    gen = torch.Generator().manual_seed(7)
    return torch.rand(2, H, W, 3, generator=gen), torch.rand(2, H, W, 3, generator=gen)


def _seed(n: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(n)


def _pad_pixels(images: torch.Tensor) -> torch.Tensor:
    """[B, H, W, 3] in [0, 1] -> [B, 3, 40, 56] in [-1, 1], edge padded (by hand, for references)."""
    x = images.permute(0, 3, 1, 2)
    return F.pad(x, (0, 56 - W, 0, 40 - H), mode="replicate") * 2 - 1


def _record_unet(editor, monkeypatch):
    """Wraps the UNet's forward to record (inputs, timestep, text states, outputs) per call."""
    calls = []
    forward = editor.unet.forward

    def recording(sample, timestep, encoder_hidden_states, **kwargs):
        out = forward(sample, timestep, encoder_hidden_states=encoder_hidden_states, **kwargs)
        calls.append(
            (sample.clone(), int(timestep), encoder_hidden_states.clone(), out.sample.clone())
        )
        return out

    monkeypatch.setattr(editor.unet, "forward", recording)
    return calls


def test_edit_shapes_range_and_odd_sizes(editor, images):
    renders, conditions = images
    out = editor.edit(renders, conditions, INSTRUCTION, torch.tensor([0.6, 0.9]), _seed())
    assert out.images.shape == (2, H, W, 3) and out.images.dtype == torch.float32
    assert float(out.images.min()) >= 0 and float(out.images.max()) <= 1
    assert out.relevance.shape == (2, H, W)
    assert float(out.relevance.min()) >= 0 and float(out.relevance.max()) <= 1
    assert float(out.relevance.max()) > 0.5  # normalised per view, not all zero
    assert float((out.images - renders).abs().mean()) > 0.01  # the random model did change them


def test_edit_is_deterministic_for_a_seed(editor, images):
    renders, conditions = images
    levels = torch.tensor([0.5, 0.8])
    a = editor.edit(renders, conditions, INSTRUCTION, levels, _seed(3))
    b = editor.edit(renders, conditions, INSTRUCTION, levels, _seed(3))
    c = editor.edit(renders, conditions, INSTRUCTION, levels, _seed(4))
    assert torch.equal(a.images, b.images) and torch.equal(a.relevance, b.relevance)
    assert not torch.allclose(a.images, c.images)


def test_guidance_and_conditioning_match_hand_computation(editor, images, monkeypatch):
    renders, conditions = images
    calls = _record_unet(editor, monkeypatch)
    steps: list[DenoiseStep] = []
    monkeypatch.setattr(editor, "on_step", steps.append)
    editor.edit(renders, conditions, INSTRUCTION, torch.tensor([0.3, 0.3]), _seed())
    assert len(calls) == len(steps) > 0  # 2 views x 3 branches fit one UNet call per step

    # condition latents: VAE posterior mode of the conditions, unscaled, as InstructPix2Pix
    cond = editor.vae.encode(_pad_pixels(conditions)).latent_dist.mode()  # [2, 4, 5, 7]
    tokens = editor.tokenizer(
        [INSTRUCTION, ""], padding="max_length", max_length=editor.tokenizer.model_max_length,
        return_tensors="pt",
    ).input_ids  # fmt: skip
    text, empty = editor.text_encoder(tokens)[0]
    s_img, s_txt = editor.config.image_guidance, editor.config.text_guidance
    for (sample, timestep, states, out), step in zip(calls, steps):
        assert timestep == step.timestep
        noisy = sample[:, :4]
        assert torch.equal(noisy[:2], noisy[2:4]) and torch.equal(noisy[:2], noisy[4:])
        torch.testing.assert_close(sample[:4, 4:], torch.cat([cond, cond]), atol=1e-5, rtol=1e-5)
        assert torch.equal(sample[4:, 4:], torch.zeros_like(cond))
        torch.testing.assert_close(states[:2], text.expand(2, -1, -1))
        torch.testing.assert_close(states[2:], empty.expand(4, -1, -1))
        full, image, uncond = out[:2], out[2:4], out[4:]
        expected = uncond + s_img * (image - uncond) + s_txt * (full - image)
        torch.testing.assert_close(step.eps, expected, atol=1e-5, rtol=1e-5)


def test_noise_level_picks_the_start_step():
    timesteps = torch.tensor([999, 946, 894, 841, 789, 736, 684, 631, 578, 526,
                              473, 421, 368, 315, 263, 210, 158, 105, 53, 0])  # fmt: skip
    levels = torch.tensor([1.0, 0.5, 0.8, 0.02, 0.0])
    # T = t * 1000 -> nearest: 999, 526 (|26| < |27|), 789, 0 (|20| < |33|), none
    assert start_indices(levels, timesteps, 1000).tolist() == [0, 9, 4, 19, 20]


def test_views_join_the_schedule_at_their_level(editor, images, monkeypatch):
    renders, conditions = images
    steps: list[DenoiseStep] = []
    monkeypatch.setattr(editor, "on_step", steps.append)
    out = editor.edit(renders, conditions, INSTRUCTION, torch.tensor([0.5, 0.0]), _seed())
    schedule = editor.timesteps.tolist()
    # level 0.5 starts at the timestep nearest 500 and runs the rest of the schedule
    start = min(range(len(schedule)), key=lambda i: abs(schedule[i] - 500))
    assert [s.timestep for s in steps] == schedule[start:]
    assert all(s.views.tolist() == [0] for s in steps)  # level 0: no step at all
    # a view at level 0 comes back as the VAE reconstruction of its input
    z = editor.vae.encode(_pad_pixels(renders[1:])).latent_dist.mode()
    recon = (editor.vae.decode(z).sample / 2 + 0.5).clamp(0, 1)[:, :, :H, :W].permute(0, 2, 3, 1)
    torch.testing.assert_close(out.images[1:], recon, atol=1e-5, rtol=1e-5)
    assert torch.equal(out.relevance[1], torch.zeros(H, W))


def test_denoise_keeps_outside_latents_equal_to_the_noised_input():
    gen = _seed(1)
    clean, noise = torch.randn(2, 4, 3, 5, generator=gen), torch.randn(2, 4, 3, 5, generator=gen)
    region = torch.rand(2, 1, 3, 5, generator=gen) > 0.5
    timesteps = torch.tensor([900, 700, 500, 300, 100])
    alphas_cumprod = torch.linspace(0.999, 0.01, 1000)

    def predict(z, timestep, views):  # a fake, view- and time-dependent noise predictor
        base = 0.3 * z + timestep / 1000 + views[:, None, None, None]
        return base + 0.1, base - 0.2, base * 0.5

    steps: list[DenoiseStep] = []
    out, _ = denoise(clean, noise, torch.tensor([0, 2]), timesteps, alphas_cumprod, predict,
                     (1.5, 7.5), region, steps.append)  # fmt: skip
    assert [s.views.tolist() for s in steps] == [[0], [0], [0, 1], [0, 1], [0, 1]]
    alphas = alphas_cumprod[timesteps]
    state = {}  # view -> latents before the step, by hand
    for i, step in enumerate(steps):
        a, a_next = alphas[i], alphas[i + 1] if i + 1 < len(timesteps) else torch.tensor(1.0)
        for row, v in enumerate(step.views.tolist()):
            z = state.get(v, a.sqrt() * clean[v] + (1 - a).sqrt() * noise[v])
            eps = step.eps[row]
            ddim = a_next.sqrt() * (z - (1 - a).sqrt() * eps) / a.sqrt() + (1 - a_next).sqrt() * eps
            keep = a_next.sqrt() * clean[v] + (1 - a_next).sqrt() * noise[v]
            outside = ~region[v].expand_as(z)
            torch.testing.assert_close(step.latents[row][outside], keep[outside], rtol=0, atol=1e-6)
            torch.testing.assert_close(
                step.latents[row][~outside], ddim[~outside], rtol=1e-5, atol=1e-5
            )
            state[v] = step.latents[row]
    # after the last step the outside is the clean input latents, bit for bit
    outside = ~region.expand_as(clean)
    assert torch.equal(out[outside], clean[outside])
    assert not torch.allclose(out[~outside], clean[~outside])


def test_latent_region_marks_every_patch_a_pixel_touches():
    mask = torch.zeros(1, 16, 24)
    mask[0, 9, 3] = 1  # patch (1, 0)
    mask[0, 0, 23] = 1  # patch (0, 2)
    expected = torch.zeros(1, 1, 2, 3, dtype=torch.bool)
    expected[0, 0, 1, 0] = expected[0, 0, 0, 2] = True
    assert torch.equal(latent_region(mask, 8), expected)


def test_region_edit_keeps_the_outside(editor, images, monkeypatch):
    renders, conditions = images
    regions = torch.full((2, H, W), 0.3)  # soft map, binarised at relevance_threshold 0.5
    regions[:, 8:24, 16:40] = 0.6  # exactly latent patches (1..2, 2..4)
    steps: list[DenoiseStep] = []
    monkeypatch.setattr(editor, "on_step", steps.append)
    out = editor.edit(renders, conditions, INSTRUCTION, torch.tensor([0.7, 0.9]), _seed(), regions)
    inside = regions > 0.5
    assert torch.equal(out.images[~inside], renders[~inside])
    assert float((out.images[inside] - renders[inside]).abs().mean()) > 0.01
    # latents outside the region end as the clean (scaled) input latents
    scale = editor.vae.config.scaling_factor
    clean = editor.vae.encode(_pad_pixels(renders)).latent_dist.mode() * scale  # [2, 4, 5, 7]
    final = steps[-1].latents
    keep = torch.ones_like(clean, dtype=torch.bool)
    keep[:, :, 1:3, 2:5] = False
    torch.testing.assert_close(final[keep], clean[keep], rtol=0, atol=1e-5)
    assert not torch.allclose(final[~keep], clean[~keep], atol=1e-3)


def test_relevance_matches_recorded_unet_outputs(model_dir, editor, images, monkeypatch):
    renders, _ = images
    calls = _record_unet(editor, monkeypatch)
    maps = editor.relevance(renders, INSTRUCTION, _seed(2))
    assert maps.shape == (2, H, W)
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1
    assert binarize(maps, editor.config.relevance_threshold).shape == renders.shape[:3]
    samples = editor.config.relevance_samples
    assert len(calls) == samples  # one UNet call of (text, no text) rows per noise sample
    assert all(timestep == 800 for _, timestep, _, _ in calls)  # t_rel = 0.8
    raw = sum(relevance_from_eps(out[:2], out[2:]) for *_, out in calls) / samples
    torch.testing.assert_close(maps, relevance_map(raw, 1.5, (40, 56))[:, :H, :W])
    assert torch.equal(maps, editor.relevance(renders, INSTRUCTION, _seed(2)))


def test_sliced_attention_gives_the_same_edit(model_dir, editor, images):
    renders, conditions = images
    sliced = IP2PEditor.from_pretrained(replace(editor.config, attention="sliced"), "cpu")
    levels = torch.tensor([0.6, 0.9])
    a = editor.edit(renders, conditions, INSTRUCTION, levels, _seed())
    b = sliced.edit(renders, conditions, INSTRUCTION, levels, _seed())
    torch.testing.assert_close(a.images, b.images, atol=1e-4, rtol=0)


def test_missing_model_offline_raises_model_missing(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model_id = "gsedit-tests/no-such-ip2p-model"
    with pytest.raises(ModelMissingError) as err:
        IP2PEditor.from_pretrained(IP2PConfig(model=model_id), "cpu")
    assert model_id in str(err.value) and "--ip2p.model" in str(err.value)


def test_missing_model_while_the_hub_does_not_answer_is_said_at_once(unanswering_hub, model_dir):
    """No 27 s of retries per file: the cache is read, the message says why, and a local folder
    never asks the hub."""
    from gsedit import hub

    model_id = "gsedit-tests/no-such-ip2p-model"
    with pytest.raises(ModelMissingError, match="did not answer .*; from the local cache: ") as err:
        IP2PEditor.from_pretrained(IP2PConfig(model=model_id), "cpu")
    assert model_id in str(err.value) and len(unanswering_hub) == 1
    hub.hub_unreachable.cache_clear()  # the next probe would be a new request
    IP2PEditor.from_pretrained(IP2PConfig(model=str(model_dir)), "cpu")
    assert len(unanswering_hub) == 1


def test_incomplete_local_folder_is_an_input_error(model_dir, tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(InputFileError, match="vae/, text_encoder/, tokenizer/, scheduler/ missing"):
        IP2PEditor.from_pretrained(IP2PConfig(model=str(tmp_path)), "cpu")
    broken = shutil.copytree(model_dir, tmp_path / "broken")
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(InputFileError, match="cannot load unet/") as err:
        IP2PEditor.from_pretrained(IP2PConfig(model=str(broken)), "cpu")
    assert str(broken) in str(err.value)
    with pytest.raises(GseditError, match="IP2PConfig.model"):
        IP2PEditor.from_pretrained(IP2PConfig(model=" "), "cpu")


def test_text_to_image_unet_is_rejected(editor):
    from diffusers import DDIMScheduler, UNet2DConditionModel

    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        norm_num_groups=8,
    )  # fmt: skip
    with pytest.raises(ValueError, match="takes 4 input channels"):
        IP2PEditor(unet, editor.vae, editor.text_encoder, editor.tokenizer, DDIMScheduler())


def test_settings_and_inputs_are_validated(editor, images):
    from diffusers import DDIMScheduler

    parts = (editor.unet, editor.vae, editor.text_encoder, editor.tokenizer, DDIMScheduler())
    with pytest.raises(GseditError, match="IP2PConfig.steps"):
        IP2PEditor(*parts, replace(editor.config, steps=0))
    with pytest.raises(GseditError, match="IP2PConfig.relevance_threshold"):
        IP2PEditor(*parts, replace(editor.config, relevance_threshold=1.5))
    if not torch.cuda.is_available():
        with pytest.raises(GseditError, match="xformers"):
            IP2PEditor(*parts, replace(editor.config, attention="xformers"))
    renders, conditions = images
    with pytest.raises(ValueError, match="`conditions` must have the shape"):
        editor.edit(renders, conditions[:, :-1], INSTRUCTION, torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="`noise_levels` must lie in"):
        editor.edit(renders, conditions, INSTRUCTION, torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match=r"`images` must lie in \[0, 1\]"):
        editor.edit(renders * 3, conditions, INSTRUCTION, torch.tensor([0.5, 0.5]))
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
