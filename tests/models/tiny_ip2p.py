"""A tiny randomly initialised InstructPix2Pix model folder for CPU tests.

The folder has the layout of `timbrooks/instruct-pix2pix` (unet/ vae/ text_encoder/
tokenizer/ scheduler/, written by `save_pretrained`), so tests load it through the real
`IP2PEditor.from_pretrained` path. The VAE downsamples by 8 like Stable Diffusion's, so the
padding to multiples of 8 runs as it does on the real model; the scheduler folder holds an
Euler-ancestral config like the hub model's, which gsedit reads as a DDIM schedule.

Reuse: `from tiny_ip2p import save_tiny_ip2p` in tests under tests/models/, or
`python tests/models/tiny_ip2p.py OUT_DIR` to get a folder for `--ip2p.model OUT_DIR`.
"""

from __future__ import annotations

import json
import string
import sys
from pathlib import Path

import torch

MAX_TOKENS = 16  # tokenizer model_max_length; the real CLIP tokenizer has 77
TEXT_WIDTH = 32  # text encoder hidden size = UNet cross-attention width


def _write_tokenizer(folder: Path) -> int:
    """Writes a character-level CLIP BPE vocabulary (vocab.json + merges.txt); returns its size."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = string.ascii_lowercase + string.digits + ".,!?'-"
    tokens = list(symbols) + [s + "</w>" for s in symbols]
    # a few merges so the BPE model does more than split characters
    merges = [("r", "e"), ("e", "d</w>"), ("a", "t</w>")]
    tokens += [a + b for a, b in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n")
    config = {"model_max_length": MAX_TOKENS, "tokenizer_class": "CLIPTokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return len(vocab)


def save_tiny_ip2p(folder: str | Path, seed: int = 0) -> Path:
    """Writes a tiny random InstructPix2Pix model in the diffusers folder layout; returns `folder`."""
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    vocab_size = _write_tokenizer(folder / "tokenizer")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        in_channels=8,  # noisy latents + condition image latents
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 8, 8),  # three downsamplings: 8x like Stable Diffusion's VAE
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=TEXT_WIDTH,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=MAX_TOKENS,
            bos_token_id=vocab_size - 2,
            eos_token_id=vocab_size - 1,
            pad_token_id=vocab_size - 1,
        )
    )
    scheduler = EulerAncestralDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    text_encoder.save_pretrained(folder / "text_encoder")
    scheduler.save_pretrained(folder / "scheduler")
    return folder


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/models/tiny_ip2p.py OUT_DIR")
    print(save_tiny_ip2p(sys.argv[1]))
