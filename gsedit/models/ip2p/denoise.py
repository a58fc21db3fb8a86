"""Guided denoising, the stateless core of the InstructPix2Pix editor: forward noise, DDIM steps
under InstructPix2Pix's three-way guidance (paper eq. 1), per-view start levels, and Watch Your
Steps' region replacement (eq. 5)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from gsedit.models.ip2p.relevance import relevance_from_eps


@dataclass
class DenoiseStep:
    """One DDIM step of `denoise`, for progress display and tests."""

    index: int  # position in the DDIM schedule
    timestep: int  # diffusion timestep denoised from
    views: Tensor  # [n] indices of the views denoised at this step
    eps: Tensor  # [n, C, h, w] guided noise prediction
    latents: Tensor  # [n, C, h, w] latents after the step (and the region replacement)


#: (noisy latents [n, C, h, w], timestep, views [n]) -> noise predictions per branch, each [n, C, h, w]
Predict = Callable[[Tensor, int, Tensor], Sequence[Tensor]]


def add_noise(clean: Tensor, noise: Tensor, alpha: Tensor) -> Tensor:
    """Forward diffusion z_t = sqrt(a_t) z_0 + sqrt(1 - a_t) eps (a_t: cumulative alpha)."""
    return alpha.sqrt() * clean + (1 - alpha).sqrt() * noise


def ddim_step(latents: Tensor, eps: Tensor, alpha: Tensor, alpha_prev: Tensor) -> Tensor:
    """Deterministic DDIM update (eta = 0, Watch Your Steps eq. 4) from level `alpha` to `alpha_prev`."""
    clean = (latents - (1 - alpha).sqrt() * eps) / alpha.sqrt()
    return alpha_prev.sqrt() * clean + (1 - alpha_prev).sqrt() * eps


def guide(
    eps_full: Tensor, eps_image: Tensor, eps_uncond: Tensor, s_img: float, s_txt: float
) -> Tensor:
    """InstructPix2Pix guidance: eps_u + s_I (eps_I - eps_u) + s_T (eps_IT - eps_I)."""
    return eps_uncond + s_img * (eps_image - eps_uncond) + s_txt * (eps_full - eps_image)


def noise_timestep(level: Tensor, num_train: int) -> Tensor:
    """Diffusion timestep of noise level t in [0, 1]: T = t * num_train (as IN2N), long, <= num_train - 1."""
    return (level.float() * num_train).round().clamp(0, num_train - 1).long()


def start_indices(levels: Tensor, timesteps: Tensor, num_train: int) -> Tensor:
    """[B] schedule index whose timestep is nearest to each level's; len(timesteps) for level 0 (no step).

    Args:
        levels: [B] noise levels in [0, 1].
        timesteps: [S] descending DDIM timesteps.
        num_train: the scheduler's number of training timesteps.
    """
    target = noise_timestep(levels, num_train)  # [B]
    nearest = (timesteps[None, :] - target[:, None]).abs().argmin(dim=1)  # [B]
    return torch.where(levels > 0, nearest, torch.full_like(nearest, len(timesteps)))


def latent_region(mask: Tensor, factor: int) -> Tensor:
    """[B, 1, h, w] bool: a latent may change if any pixel of its factor x factor patch may.

    The decoder spreads every latent over its whole patch, so a latent touching the region
    must be free for the region's pixels to be fully edited; the pixels outside are restored
    from the input afterwards. `mask` is [B, H, W] of 0/1 with H, W multiples of `factor`.
    """
    return F.max_pool2d(mask[:, None].float(), factor) > 0


def denoise(
    clean: Tensor,
    noise: Tensor,
    start: Tensor,
    timesteps: Tensor,
    alphas_cumprod: Tensor,
    predict: Predict,
    guidance: tuple[float, float],
    region: Tensor | None = None,
    on_step: Callable[[DenoiseStep], None] | None = None,
) -> tuple[Tensor, Tensor]:
    """Noises each view to its start step, then runs the rest of the DDIM schedule.

    All views share one schedule, so at every step the views already started are denoised
    together; a view starting at index k joins at step k.

    Args:
        clean: [B, C, h, w] scaled latents of the images to edit.
        noise: [B, C, h, w] standard normal noise, one sample per view for the whole run.
        start: [B] index into `timesteps` where each view starts; len(timesteps) = no step.
        timesteps: [S] descending DDIM timesteps.
        alphas_cumprod: [T] cumulative alphas of the noise schedule.
        predict: noise predictions for the branches (text+image, image, none).
        guidance: (image guidance s_I, text guidance s_T).
        region: [B, 1, h, w] bool, True where latents may change; None: everywhere.
        on_step: called after every step.

    Returns:
        [B, C, h, w] denoised latents, and [B, h, w] raw relevance (`relevance_from_eps`) of
        each view at its first step (0 for views that take no step).
    """
    alphas = alphas_cumprod[timesteps].float()  # [S]
    # the last step goes all the way to clean latents (alpha 1)
    alphas_next = torch.cat([alphas[1:], alphas.new_ones(1)])  # [S]
    latents = clean.clone()
    raw = clean.new_zeros(clean.shape[0], *clean.shape[2:])  # [B, h, w]
    for i in range(int(start.min()), len(timesteps)):
        views = (start <= i).nonzero()[:, 0]  # [n]
        entering = (start[views] == i)[:, None, None, None]  # [n, 1, 1, 1]
        z = torch.where(entering, add_noise(clean[views], noise[views], alphas[i]), latents[views])
        eps_full, eps_image, eps_uncond = predict(z, int(timesteps[i]), views)
        new = views[entering[:, 0, 0, 0]]
        raw[new] = relevance_from_eps(eps_full, eps_image)[entering[:, 0, 0, 0]]
        eps = guide(eps_full, eps_image, eps_uncond, *guidance)
        z = ddim_step(z, eps, alphas[i], alphas_next[i])
        if region is not None:
            # Watch Your Steps eq. 5: outside the region the latents stay the noised input
            z = torch.where(region[views], z, add_noise(clean[views], noise[views], alphas_next[i]))
        latents[views] = z
        if on_step is not None:
            on_step(DenoiseStep(i, int(timesteps[i]), views, eps, z))
    return latents, raw

