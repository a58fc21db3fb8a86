"""PSNR / SSIM / LPIPS against torchmetrics and hand computations; LPIPS weights missing offline."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.functional.image import (
    learned_perceptual_image_patch_similarity,
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from gsedit.errors import GseditError, InputFileError, ModelMissingError
from gsedit.metrics.image import edit_psnr, load_lpips, lpips, lpips_backbone_file, psnr, ssim


def _pair(b: int = 3, h: int = 24, w: int = 30, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(b, h, w, 3, generator=gen)
    noisy = (a + 0.1 * torch.randn(b, h, w, 3, generator=gen)).clamp(0, 1)
    return a, noisy


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def test_psnr_matches_torchmetrics_per_image():
    a, b = _pair()
    ref = peak_signal_noise_ratio(
        _nchw(a), _nchw(b), data_range=1.0, reduction="none", dim=(1, 2, 3)
    )
    torch.testing.assert_close(psnr(a, b), ref, atol=1e-4, rtol=0)


def test_masked_psnr_is_psnr_of_the_masked_pixels():
    a, b = _pair(b=2)
    mask = torch.zeros(2, 24, 30)
    mask[0, 3:10, 5:20] = 1
    mask[1, 12:, :7] = 1
    for i in range(2):
        sel = mask[i].bool()
        mse = ((a[i][sel] - b[i][sel]) ** 2).mean().item()
        assert psnr(a, b, mask)[i].item() == pytest.approx(10 * math.log10(1 / mse), abs=1e-4)


def test_psnr_edge_cases_and_edit_psnr():
    a, b = _pair(b=2)
    empty = torch.zeros(2, 24, 30)
    assert torch.isnan(psnr(a, b, empty)).all()
    assert torch.isinf(psnr(a, a)).all()
    assert edit_psnr(a, b).item() == pytest.approx(psnr(b, a).mean().item())
    with pytest.raises(ValueError, match=r"mask: expected shape \(2, 24, 30\)"):
        psnr(a, b, torch.ones(2, 24))


def test_ssim_matches_torchmetrics():
    a, b = _pair()
    ref = structural_similarity_index_measure(_nchw(a), _nchw(b), data_range=1.0, reduction="none")
    torch.testing.assert_close(ssim(a, b), ref, atol=1e-5, rtol=0)


def test_ssim_gradient_matches_torchmetrics_autograd():
    """The fast blur's hand-written input gradient (the D-SSIM loss of every fit) against autograd
    through torchmetrics' 2-D convolution, in float64; and a gradcheck of the blur itself."""
    from gsedit.render.filters import gaussian_blur_valid

    a, b = (t.double() for t in _pair(b=2))
    ours = a.clone().requires_grad_(True)
    ssim(ours, b).sum().backward()
    theirs = _nchw(a).clone().requires_grad_(True)
    structural_similarity_index_measure(theirs, _nchw(b), data_range=1.0, reduction="none").sum().backward()
    torch.testing.assert_close(ours.grad, theirs.grad.permute(0, 2, 3, 1), atol=1e-10, rtol=1e-7)
    x = torch.rand(2, 1, 13, 15, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gaussian_blur_valid, (x,))


def test_masked_ssim_is_the_mean_of_the_ssim_map_over_the_mask():
    a, b = _pair(b=2)
    _, full_map = structural_similarity_index_measure(
        _nchw(a), _nchw(b), data_range=1.0, reduction="none", return_full_image=True
    )
    per_pixel = full_map.mean(dim=1)  # [B, H, W]
    mask = torch.zeros(2, 24, 30)
    mask[:, 2:12, 4:9] = 1
    ref = torch.stack([per_pixel[i][mask[i].bool()].mean() for i in range(2)])
    torch.testing.assert_close(ssim(a, b, mask), ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(ssim(a, b, torch.ones(2, 24, 30)), ssim(a, b), atol=1e-6, rtol=0)


@pytest.fixture
def random_squeezenet_cache(tmp_path, monkeypatch):
    """A torch hub cache holding a random SqueezeNet-1.1 under the official file name."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _, cached = lpips_backbone_file("squeeze")
    cached.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), cached)
    load_lpips.cache_clear()
    yield cached
    load_lpips.cache_clear()


def test_lpips_matches_torchmetrics_with_the_same_backbone(random_squeezenet_cache):
    a, b = _pair(b=2, h=48, w=40)
    # torchmetrics builds its backbone through torchvision, which reads the same cached file
    ref = learned_perceptual_image_patch_similarity(
        _nchw(a), _nchw(b), net_type="squeeze", reduction="none", normalize=True
    )
    torch.testing.assert_close(lpips(a, b, net="squeeze"), ref, atol=1e-5, rtol=1e-5)
    explicit = load_lpips("squeeze", backbone_weights=random_squeezenet_cache)
    torch.testing.assert_close(lpips(a, b, net=explicit), ref, atol=1e-5, rtol=1e-5)


def test_masked_lpips(random_squeezenet_cache):
    a, b = _pair(b=2, h=48, w=40)
    net = load_lpips("squeeze")
    plain = lpips(a, b, net=net)
    torch.testing.assert_close(
        lpips(a, b, torch.ones(2, 48, 40), net=net), plain, atol=1e-6, rtol=0
    )
    half = torch.zeros(2, 48, 40)
    half[:, :24] = 1
    # a mask is a region, not a weight: scaling it changes nothing; an empty one gives NaN
    torch.testing.assert_close(lpips(a, b, half * 0.5, net=net), lpips(a, b, half, net=net))
    b_top_equal = b.clone()
    b_top_equal[:, :24] = a[:, :24]
    # identical top halves: the top-masked distance drops well below the full one
    assert (lpips(a, b_top_equal, half, net=net) < 0.5 * lpips(a, b_top_equal, net=net)).all()
    assert torch.isnan(lpips(a, b, torch.zeros(2, 48, 40), net=net)).all()


@pytest.mark.parametrize(
    ("net", "weights_enum"),
    [("alex", "AlexNet_Weights"), ("vgg", "VGG16_Weights"), ("squeeze", "SqueezeNet1_1_Weights")],
)
def test_lpips_backbone_urls_are_torchvisions(net, weights_enum):
    import torchvision

    url, cached = lpips_backbone_file(net)
    assert url == getattr(torchvision.models, weights_enum).IMAGENET1K_V1.url
    assert cached.name == url.rsplit("/", 1)[-1]


def test_lpips_weights_missing_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    load_lpips.cache_clear()
    with pytest.raises(ModelMissingError, match="alexnet-owt-7be5be79.pth") as err:
        load_lpips("alex")
    assert "--lpips-weights" in str(err.value)
    with pytest.raises(ModelMissingError, match="nowhere.pth"):
        load_lpips("vgg", backbone_weights=tmp_path / "nowhere.pth")


def test_lpips_weights_that_are_no_tensor_file_are_named(tmp_path):
    garbage = tmp_path / "squeezenet.pth"
    garbage.write_bytes(bytes(range(256)) * 4)
    load_lpips.cache_clear()
    with pytest.raises(InputFileError, match=r"squeezenet.pth: not a PyTorch checkpoint .*LPIPS-squeeze needs"):
        load_lpips("squeeze", backbone_weights=garbage)


@pytest.mark.parametrize("payload", [[torch.ones(3)], torch.ones(3)])
def test_lpips_weights_that_are_no_state_dict_are_named(tmp_path, payload):
    path = tmp_path / "squeezenet.pth"
    torch.save(payload, path)
    load_lpips.cache_clear()
    with pytest.raises(GseditError, match=r"squeezenet.pth: not the torchvision squeezenet1_1 weights"):
        load_lpips("squeeze", backbone_weights=path)
    load_lpips.cache_clear()
