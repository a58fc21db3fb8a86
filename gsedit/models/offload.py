"""Keeping a network in CPU memory between its calls (IP2PConfig.offload): it visits the device
for each call and goes back, so only the networks in use occupy device memory."""

from __future__ import annotations

from contextlib import contextmanager

import torch

OFFLOADED = {"none": (), "text_vae": ("text_encoder", "vae"), "model": ("unet", "text_encoder", "vae")}


@contextmanager
def on_device(module: torch.nn.Module, device: torch.device, offloaded: bool):
    """`module` on `device` for the block; back on the CPU after it when `offloaded`."""
    if not offloaded:
        yield module
        return
    module.to(device)
    try:
        yield module
    finally:
        module.to("cpu")
