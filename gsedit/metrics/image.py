"""Full-reference image metrics, optionally restricted to a mask: PSNR, SSIM, LPIPS, Edit PSNR.

Images are `[B, H, W, 3]` float tensors in [0, 1]; masks are `[B, H, W]` weights in [0, 1]
(a binary mask selects pixels, a soft one weights them). Every metric returns one value per
image, `[B]`; a mask with no weight gives NaN for that image, so callers average with
`torch.nanmean` and can tell "no pixels" from a score.

SSIM is the one in `gsedit.render.filters`, which the 3DGS loss also uses.

LPIPS needs ImageNet weights for its backbone (AlexNet, VGG16 or SqueezeNet from torchvision);
its linear heads ship inside torchmetrics. The backbone file is read from the torch hub cache
or a given path; when it is absent and downloading is off or fails, `load_lpips` raises
ModelMissingError and no score is made up.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from gsedit.errors import GseditError, MissingPackageError, ModelMissingError
from gsedit.hub import hub_offline
from gsedit.metrics import LpipsNet
from gsedit.render.filters import check_images, ssim, weighted_mean
from gsedit.torch_files import load_tensor_file

if TYPE_CHECKING:
    from torch import nn

__all__ = ["LpipsNet", "edit_psnr", "load_lpips", "lpips", "lpips_backbone_file", "psnr", "ssim"]

#: torchvision builder and the url of its ImageNet V1 weights (those LPIPS was trained on) per LPIPS
#: backbone; written out because importing torchvision to read them imports torch._dynamo (seconds);
#: tests/metrics/test_image_metrics.py checks them against torchvision's weights enums
_BACKBONES = {
    "alex": ("alexnet", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
    "vgg": ("vgg16", "https://download.pytorch.org/models/vgg16-397923af.pth"),
    "squeeze": ("squeezenet1_1", "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth"),
}


def psnr(a: Tensor, b: Tensor, mask: Tensor | None = None, data_range: float = 1.0) -> Tensor:
    """[B] PSNR in dB of `a` against `b` ([B, H, W, 3]), over the pixels `mask` [B, H, W] weights.

    The mean squared error runs over the three channels of the weighted pixels:
    `mse = sum(m * (a - b)^2) / (3 * sum(m))`, `psnr = 10 log10(data_range^2 / mse)`; identical
    images give +inf, an empty mask NaN.
    """
    check_images(a, b, mask)
    squared_error = (a.double() - b.double()).pow(2).mean(dim=-1)  # [B, H, W]
    mse = weighted_mean(squared_error, mask)
    return (10.0 * torch.log10(data_range**2 / mse)).to(a.dtype)


def edit_psnr(renders_before: Tensor, renders_after: Tensor) -> Tensor:
    """Watch Your Steps' "Edit PSNR" (Sec. 5, Metrics; Table 1): scalar mean over views of the PSNR
    between each view rendered from the edited scene and the same view from the input scene.

    Args:
        renders_before: [V, H, W, 3] views of the input scene.
        renders_after: [V, H, W, 3] the same views of the edited scene.
    """
    return psnr(renders_after, renders_before).mean()


def _import_torchmetrics_lpips():
    try:
        from torchmetrics.functional.image import lpips as tm_lpips
    except ImportError as e:
        raise MissingPackageError("LPIPS", "torchmetrics", str(e)) from e
    return tm_lpips


def lpips_backbone_file(net: LpipsNet) -> tuple[str, Path]:
    """(download url, torch hub cache path) of the torchvision ImageNet weights the `net` backbone uses."""
    _, url = _BACKBONES[net]
    return url, Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _resolve_backbone_weights(net: LpipsNet, backbone_weights: str | Path | None) -> Path:
    url, cached = lpips_backbone_file(net)
    option = "--lpips-weights"
    if backbone_weights is not None:
        path = Path(backbone_weights)
        if not path.is_file():
            raise ModelMissingError(
                "LPIPS backbone", str(path), option, detail=f"no such file; it holds {url}", hub=False
            )
        return path
    if cached.is_file():
        return cached
    detail = f"torchvision ImageNet weights, not on the Hugging Face hub: put {url} at {cached}"
    if hub_offline():
        raise ModelMissingError(
            "LPIPS backbone", cached.name, option, detail=detail + "; HF_HUB_OFFLINE is set", hub=False
        )
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(cached), progress=False)
    except (OSError, RuntimeError, ValueError) as e:  # urllib errors are OSErrors
        raise ModelMissingError(
            "LPIPS backbone", cached.name, option, detail=f"{detail}; download failed: {e}", hub=False
        ) from e
    return cached


def _remap_backbone(net_module: nn.Module, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The torchvision state dict `state` renamed to the keys of torchmetrics' LPIPS backbone `net_module`.

    torchmetrics cuts `model.features` into slices at the layers LPIPS compares and keeps each
    layer's index as its name inside the slice (`slice2.3.weight`, `slices.1.3.squeeze.weight`):
    the last numeric key part followed by a name is the index into `features`.

    Raises:
        KeyError: `state` lacks a layer the backbone needs.
    """
    remapped = {}
    for key in net_module.state_dict():
        match = re.match(r"^.*\.(\d+)\.([A-Za-z_].*)$", key)
        if match is None:
            raise KeyError(f"unexpected LPIPS backbone key {key}")
        remapped[key] = state[f"features.{match.group(1)}.{match.group(2)}"]
    return remapped


@functools.lru_cache(maxsize=4)
def load_lpips(
    net: LpipsNet = "alex",
    backbone_weights: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Loads torchmetrics' LPIPS network with its shipped linear heads and the ImageNet backbone.

    Args:
        net: backbone, "alex" (the LPIPS default), "vgg" or "squeeze".
        backbone_weights: a torchvision state-dict file of the backbone; None looks in the torch
            hub cache (`$TORCH_HOME/hub/checkpoints`) and downloads there unless HF_HUB_OFFLINE is set.
        device: where the network runs.

    Raises:
        ModelMissingError: the backbone weights are neither given nor cached and cannot be downloaded.
    """
    if net not in _BACKBONES:
        raise ValueError(f"net: expected one of {sorted(_BACKBONES)}, got {net!r}")
    path = _resolve_backbone_weights(net, backbone_weights)  # first: torchmetrics imports torch._dynamo
    tm_lpips = _import_torchmetrics_lpips()
    # pnet_rand builds the backbone without torchvision's own (downloading) weight loader
    module = tm_lpips._LPIPS(pretrained=True, net=net, pnet_rand=True, eval_mode=True)
    state = load_tensor_file(path, f"; LPIPS-{net} needs torchvision's {_BACKBONES[net][0]} weights")
    try:
        module.net.load_state_dict(_remap_backbone(module.net, state), strict=True)
    except (RuntimeError, KeyError, IndexError, AttributeError, TypeError) as e:  # TypeError: a list, not a dict
        raise GseditError(
            f"{path}: not the torchvision {_BACKBONES[net][0]} weights LPIPS-{net} needs ({e})"
        ) from e
    return module.to(device).requires_grad_(False)


def lpips(
    a: Tensor, b: Tensor, mask: Tensor | None = None, net: LpipsNet | nn.Module = "alex"
) -> Tensor:
    """[B] LPIPS distance of `a` against `b` ([B, H, W, 3] in [0, 1]), lower is closer.

    Without a mask this is the standard LPIPS (per layer: unit-normalised features, squared
    difference, learned channel weights, spatial mean; summed over layers). With a mask, each
    layer's spatial mean is taken over the mask area-resampled to that layer's resolution, so a
    mask of ones gives the standard value.

    Args:
        net: a backbone name (loaded with `load_lpips` on the images' device) or a loaded network.
    """
    check_images(a, b, mask)
    tm_lpips = _import_torchmetrics_lpips()
    module = load_lpips(net, device=a.device) if isinstance(net, str) else net
    x = module.scaling_layer(a.permute(0, 3, 1, 2) * 2 - 1)  # LPIPS works in [-1, 1]
    y = module.scaling_layer(b.permute(0, 3, 1, 2) * 2 - 1)
    feats_x, feats_y = module.net(x), module.net(y)
    total = torch.zeros(a.shape[0], dtype=a.dtype, device=a.device)
    for lin, fx, fy in zip(module.lins, feats_x, feats_y):
        diff = (tm_lpips._normalize_tensor(fx) - tm_lpips._normalize_tensor(fy)) ** 2
        layer = lin(diff)[:, 0]  # [B, h, w]
        small_mask = (
            None
            if mask is None
            else F.interpolate(mask[:, None].to(a.dtype), size=layer.shape[1:], mode="area")[:, 0]
        )
        total = total + weighted_mean(layer, small_mask)
    return total
