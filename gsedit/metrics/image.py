"""Full-reference image metrics, optionally restricted to a mask: PSNR, SSIM, LPIPS, Edit PSNR.

Images are `[B, H, W, 3]` float tensors in [0, 1]; masks are `[B, H, W]` weights in [0, 1]
(a binary mask selects pixels, a soft one weights them). Every metric returns one value per
image, `[B]`; a mask with no weight gives NaN for that image, so callers average with
`torch.nanmean` and can tell "no pixels" from a score.

SSIM follows torchmetrics (>= 1.4): an 11x11 Gaussian window with sigma 1.5, reflect padding,
the SSIM map averaged over every pixel. The original 3DGS code pads with zeros instead, which
only changes a 5-pixel border.

LPIPS needs ImageNet weights for its backbone (AlexNet, VGG16 or SqueezeNet from torchvision);
its linear heads ship inside torchmetrics. The backbone file is read from the torch hub cache
or a given path; when it is absent and downloading is off or fails, `load_lpips` raises
ModelMissingError and no score is made up.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from gsedit.errors import GseditError, MissingPackageError, ModelMissingError, hub_offline
from gsedit.torch_files import load_tensor_file

if TYPE_CHECKING:
    from torch import nn

LpipsNet = Literal["alex", "vgg", "squeeze"]

#: torchvision builder and the url of its ImageNet V1 weights (those LPIPS was trained on) per LPIPS
#: backbone; written out because importing torchvision to read them imports torch._dynamo (seconds);
#: tests/metrics/test_image_metrics.py checks them against torchvision's weights enums
_BACKBONES = {
    "alex": ("alexnet", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
    "vgg": ("vgg16", "https://download.pytorch.org/models/vgg16-397923af.pth"),
    "squeeze": ("squeezenet1_1", "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth"),
}

_SSIM_SIGMA = 1.5
_SSIM_RADIUS = 5  # 11x11 window, as torchmetrics derives it from sigma 1.5
_SSIM_K1, _SSIM_K2 = 0.01, 0.03


def _check_images(a: Tensor, b: Tensor, mask: Tensor | None) -> None:
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"images: expected [B, H, W, 3], got shape {tuple(a.shape)}")
    if a.shape != b.shape:
        raise ValueError(
            f"images: both batches must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if mask is not None and mask.shape != a.shape[:3]:
        raise ValueError(
            f"mask: expected shape {tuple(a.shape[:3])} ([B, H, W]), got {tuple(mask.shape)}"
        )


def _weighted_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """[B] mean of `values` [B, H, W] over each image, weighted by `mask` [B, H, W]; NaN where the mask is empty."""
    if mask is None:
        return values.mean(dim=(1, 2))
    mask = mask.to(values.dtype)
    weight = mask.sum(dim=(1, 2))
    total = (values * mask).sum(dim=(1, 2))
    return torch.where(weight > 0, total / weight, torch.full_like(total, float("nan")))


def psnr(a: Tensor, b: Tensor, mask: Tensor | None = None, data_range: float = 1.0) -> Tensor:
    """[B] PSNR in dB of `a` against `b` ([B, H, W, 3]), over the pixels `mask` [B, H, W] weights.

    The mean squared error runs over the three channels of the weighted pixels:
    `mse = sum(m * (a - b)^2) / (3 * sum(m))`, `psnr = 10 log10(data_range^2 / mse)`; identical
    images give +inf, an empty mask NaN.
    """
    _check_images(a, b, mask)
    squared_error = (a.double() - b.double()).pow(2).mean(dim=-1)  # [B, H, W]
    mse = _weighted_mean(squared_error, mask)
    return (10.0 * torch.log10(data_range**2 / mse)).to(a.dtype)


def edit_psnr(renders_before: Tensor, renders_after: Tensor) -> Tensor:
    """Watch Your Steps' "Edit PSNR" (Sec. 5, Metrics; Table 1): scalar mean over views of the PSNR
    between each view rendered from the edited scene and the same view from the input scene.

    Args:
        renders_before: [V, H, W, 3] views of the input scene.
        renders_after: [V, H, W, 3] the same views of the edited scene.
    """
    return psnr(renders_after, renders_before).mean()


@functools.cache
def _gaussian_taps() -> tuple[float, ...]:
    """The 11 normalised Gaussian taps (sigma 1.5) whose outer product is the SSIM window."""
    offsets = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (offsets / _SSIM_SIGMA) ** 2)
    return tuple((g / g.sum()).tolist())


def _correlate_slices(x: Tensor, taps: tuple[float, ...], dim: int) -> Tensor:
    """Valid 1-D correlation of `x` with `taps` along `dim` (-1 or -2), as a sum of shifted slices."""
    size = x.shape[dim] - len(taps) + 1
    out = x.narrow(dim, 0, size) * taps[0]
    for k in range(1, len(taps)):
        out.add_(x.narrow(dim, k, size), alpha=taps[k])
    return out


class _Correlate(torch.autograd.Function):
    """`_correlate_slices` with its input gradient: the correlation of the zero-padded gradient with
    the reversed taps. Measured on 2 cores for the SSIM stack: 7-16x faster than ATen's one-channel
    CPU convolution forward, whose backward was slower still (73% of a demo training step)."""

    @staticmethod
    def forward(ctx, x: Tensor, taps: tuple[float, ...], dim: int) -> Tensor:
        ctx.taps, ctx.dim = taps, dim
        return _correlate_slices(x, taps, dim)

    @staticmethod
    def backward(ctx, grad: Tensor):
        width = len(ctx.taps) - 1
        pad = [width, width] if ctx.dim == -1 else [0, 0, width, width]  # F.pad starts at the last dim
        return _correlate_slices(F.pad(grad, pad), ctx.taps[::-1], ctx.dim), None, None


def gaussian_blur_valid(x: Tensor) -> Tensor:
    """[..., H, W] -> [..., H - 10, W - 10]: the 11 x 11 SSIM window, applied as two 1-D passes."""
    taps = _gaussian_taps()
    return _Correlate.apply(_Correlate.apply(x, taps, -1), taps, -2)


def ssim_map(a: Tensor, b: Tensor) -> Tensor:
    """[B, H, W] per-pixel SSIM of `a` against `b` ([B, H, W, 3] in [0, 1]), averaged over channels."""
    _check_images(a, b, None)
    if min(a.shape[1:3]) <= _SSIM_RADIUS:
        raise ValueError(
            f"images: SSIM needs at least {_SSIM_RADIUS + 1} pixels a side, got {tuple(a.shape[1:3])}"
        )
    bsz = a.shape[0]
    x = a.permute(0, 3, 1, 2).reshape(bsz * 3, 1, *a.shape[1:3])  # [3B, 1, H, W]
    y = b.permute(0, 3, 1, 2).reshape(bsz * 3, 1, *b.shape[1:3])
    pad = (_SSIM_RADIUS,) * 4
    stack = torch.cat([x, y, x * x, y * y, x * y])  # [15B, 1, H, W]
    stack = F.pad(stack, pad, mode="reflect")
    mu_x, mu_y, e_xx, e_yy, e_xy = gaussian_blur_valid(stack).split(x.shape[0])
    var_x = (e_xx - mu_x * mu_x).clamp_min(0)  # rounding can make a flat patch's variance negative
    var_y = (e_yy - mu_y * mu_y).clamp_min(0)
    cov = e_xy - mu_x * mu_y
    c1, c2 = _SSIM_K1**2, _SSIM_K2**2  # data range 1
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return (num / den).reshape(bsz, 3, *a.shape[1:3]).mean(dim=1)


def ssim(a: Tensor, b: Tensor, mask: Tensor | None = None) -> Tensor:
    """[B] SSIM of `a` against `b` ([B, H, W, 3] in [0, 1]): the SSIM map averaged over `mask` [B, H, W]."""
    _check_images(a, b, mask)
    return _weighted_mean(ssim_map(a, b), mask)


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
    _check_images(a, b, mask)
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
        total = total + _weighted_mean(layer, small_mask)
    return total
