"""Writes randomly initialised Real-ESRGAN and GFPGAN weight files in the official layouts.

The Real-ESRGAN file uses the key names of the official release (basicsr's RRDBNet: `conv_first`,
`body.N.rdbK.convM`, `conv_body`, `conv_upK`, `conv_hr`, `conv_last`, wrapped in `params_ema`),
shrunk to a few features and one block. spandrel builds GFPGAN at its one fixed size (512 px
faces, 86 M parameters), so that file cannot be shrunk; it is written in float16 to halve it.
"""

from __future__ import annotations

from pathlib import Path

import torch

_GROWTH = 32  # RRDB growth channels: fixed in the official model and in spandrel


def _conv(
    gen: torch.Generator, c_out: int, c_in: int, gain: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    weight = torch.randn(c_out, c_in, 3, 3, generator=gen) * gain / (9 * c_in) ** 0.5
    return weight, torch.randn(c_out, generator=gen) * 0.05


def write_tiny_realesrgan(
    path: Path,
    num_feat: int = 8,
    num_block: int = 1,
    num_up: int = 1,
    unshuffle: int = 1,
    seed: int = 0,
) -> Path:
    """Writes a random RRDBNet with scale 2**num_up / unshuffle (as RealESRGAN_x2plus unshuffles by 2)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}

    def put(name: str, c_out: int, c_in: int, gain: float = 1.0) -> None:
        state[f"{name}.weight"], state[f"{name}.bias"] = _conv(gen, c_out, c_in, gain)

    put("conv_first", num_feat, 3 * unshuffle**2)
    for b in range(num_block):
        for r in (1, 2, 3):
            for k in range(1, 6):
                c_out = num_feat if k == 5 else _GROWTH
                put(f"body.{b}.rdb{r}.conv{k}", c_out, num_feat + (k - 1) * _GROWTH, gain=0.5)
    put("conv_body", num_feat, num_feat)
    for k in range(1, num_up + 1):
        put(f"conv_up{k}", num_feat, num_feat)
    put("conv_hr", num_feat, num_feat)
    put("conv_last", 3, num_feat)
    state["conv_last.bias"] = (
        state["conv_last.bias"] + 0.5
    )  # keep outputs inside [0, 1], not clamped flat
    torch.save({"params_ema": state}, path)
    return path


def write_random_gfpgan(path: Path, seed: int = 0) -> Path:
    """Writes a random GFPGANv1Clean (the GFPGANv1.3/1.4 architecture) in float16."""
    from spandrel.architectures.GFPGAN import GFPGAN

    torch.manual_seed(seed)
    model = GFPGAN(
        out_size=512,
        num_style_feat=512,
        channel_multiplier=2,
        decoder_load_path=None,
        fix_decoder=False,
        num_mlp=8,
        input_is_latent=True,
        different_w=True,
        narrow=1,
        sft_half=True,
    )
    torch.save({"params_ema": {k: v.half() for k, v in model.state_dict().items()}}, path)
    return path
