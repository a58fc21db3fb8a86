"""The InstructPix2Pix pipeline: `IP2PEditor` loads the diffusers components, encodes images to
latents, runs the guided denoising of `gsedit.models.ip2p.denoise` and decodes the result, and
computes Watch Your Steps relevance maps (section 4.1) from the same noise predictions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from gsedit.errors import GseditError, InputFileError, ModelMissingError
from gsedit.hub import offline_detail, offline_reason
from gsedit.models.base import EditOutput, ImageEditor
from gsedit.models.ip2p.config import DTYPE_NAMES, IP2PConfig, check_config
from gsedit.models.ip2p.denoise import (
    DenoiseStep,
    add_noise,
    denoise,
    latent_region,
    noise_timestep,
    start_indices,
)
from gsedit.models.ip2p.relevance import binarize, relevance_from_eps, relevance_map
from gsedit.models.offload import OFFLOADED, on_device

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

# Optional, CUDA only, not part of the install command (README, "Models and weights").
XFORMERS_INSTALL = "python -m pip install xformers"
#: subfolders of a diffusers InstructPix2Pix model folder
SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}
#: (text on, image on) per guidance branch: the full, image-only and unconditional predictions
EDIT_BRANCHES = ((True, True), (False, True), (False, False))
#: relevance needs only the two image-conditioned predictions, with and without the text
RELEVANCE_BRANCHES = EDIT_BRANCHES[:2]
#: renders may round a hair outside [0, 1]; more than this is a caller's bug
RANGE_TOLERANCE = 1e-4


class IP2PEditor(ImageEditor):
    """InstructPix2Pix editor built from diffusers components, with relevance maps.

    Args:
        unet: the InstructPix2Pix UNet (in_channels = 2 x the VAE's latent channels).
        vae: the autoencoder; its downsampling factor sets the padding of images.
        text_encoder: the CLIP text encoder.
        tokenizer: its tokenizer.
        scheduler: gives the noise schedule and the DDIM timesteps (its `step` is not used).
        config: settings; all components must sit on one device in one dtype.
    """

    name = "ip2p"

    def __init__(
        self,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        scheduler: DDIMScheduler,
        config: IP2PConfig | None = None,
    ):
        self.config = config or IP2PConfig()
        num_train = scheduler.config.num_train_timesteps
        check_config(self.config)
        if self.config.steps > num_train:
            raise GseditError(
                f"IP2PConfig.steps must be at most the model's {num_train} diffusion timesteps, "
                f"got {self.config.steps}"
            )
        problem = _component_problem(unet, vae, text_encoder, tokenizer)
        if problem:
            raise ValueError(problem)
        for module in (unet, vae, text_encoder):
            module.eval().requires_grad_(False)
        _set_attention(unet, self.config.attention)
        if self.config.vae_tiling:
            vae.enable_tiling()
        self.unet, self.vae, self.text_encoder, self.tokenizer = unet, vae, text_encoder, tokenizer
        self.device, self.dtype = unet.device, unet.dtype
        self._offloaded = OFFLOADED[self.config.offload]
        for name in self._offloaded:
            getattr(self, name).to("cpu")
        self.num_train = num_train
        self.factor = 2 ** (len(vae.config.block_out_channels) - 1)  # pixels per latent
        scheduler.set_timesteps(self.config.steps)
        self.timesteps = scheduler.timesteps.long().to(self.device)  # [S] descending
        self.alphas_cumprod = scheduler.alphas_cumprod.float().to(self.device)  # [T]
        #: called after every denoising step (progress display, tests)
        self.on_step: Callable[[DenoiseStep], None] | None = None
        self._text: tuple[str, Tensor] | None = None  # instruction and its [2, L, D] embeddings

    @classmethod
    def from_pretrained(
        cls, config: IP2PConfig | None = None, device: str | torch.device = "cpu"
    ) -> IP2PEditor:
        """Loads `config.model` (local folder or hub id) onto `device`.

        Raises:
            ModelMissingError: the model is neither a local folder nor in the Hugging Face
                cache, and could not be downloaded (or downloading is off).
            InputFileError: the local folder, or the cached model, is not an InstructPix2Pix model.
        """
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        from huggingface_hub.errors import HFValidationError
        from transformers import CLIPTextModel, CLIPTokenizer

        config = config or IP2PConfig()
        check_config(config)  # before loading gigabytes
        device = torch.device(device)
        dtype = resolve_dtype(config.dtype, device)
        folder = Path(config.model).expanduser()
        local = folder.is_dir()
        if local:
            missing = [name + "/" for name in SUBFOLDERS if not (folder / name).is_dir()]
            if missing:
                raise InputFileError(
                    folder,
                    f"not an InstructPix2Pix model folder: {', '.join(missing)} missing (expected "
                    f"the diffusers layout {'/ '.join(SUBFOLDERS)}/ as save_pretrained writes it)",
                )
        source = str(folder) if local else config.model
        reason = None if local else "--ip2p.local-files-only" if config.local_files_only else offline_reason()
        offline = reason is not None

        def load(kind, subfolder: str, **kwargs):
            try:
                return kind.from_pretrained(
                    source, subfolder=subfolder, local_files_only=offline, **kwargs
                )
            except (OSError, HFValidationError) as err:
                detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
                if local:
                    raise InputFileError(folder, f"cannot load {subfolder}/: {detail}") from None
                raise ModelMissingError(
                    "InstructPix2Pix", config.model, "--ip2p.model", offline_detail(reason, detail)
                ) from None

        # the scheduler's small json first: a missing model fails before any weights load
        scheduler = load(DDIMScheduler, "scheduler")
        unet = load(UNet2DConditionModel, "unet", torch_dtype=dtype)
        vae = load(AutoencoderKL, "vae", torch_dtype=dtype)
        text_encoder = load(CLIPTextModel, "text_encoder")
        tokenizer = load(CLIPTokenizer, "tokenizer")
        problem = _component_problem(unet, vae, text_encoder, tokenizer)
        if problem:
            raise InputFileError(config.model, problem)
        # diffusers models were loaded in `dtype`; transformers' dtype keyword differs across versions
        unet, vae = unet.to(device), vae.to(device)
        text_encoder = text_encoder.to(device=device, dtype=dtype)
        return cls(unet, vae, text_encoder, tokenizer, scheduler, config)

    @torch.no_grad()
    def edit(
        self,
        images: Tensor,
        conditions: Tensor,
        instruction: str,
        noise_levels: Tensor,
        generator: torch.Generator | None = None,
        regions: Tensor | None = None,
    ) -> EditOutput:
        """Edits a batch (see `ImageEditor.edit`).

        Returns:
            EditOutput with images [B, H, W, 3] in [0, 1] (equal to `images` where a region
            is below `relevance_threshold`) and relevance [B, H, W] in [0, 1]: the text /
            no-text disagreement at each view's start step (its own noise level, not t_rel;
            free, from the guidance branches), zeros for views with noise level 0. Views at
            noise level 0 take no step and come back as the VAE reconstruction of the input.
        """
        height, width = _check_edit_inputs(images, conditions, noise_levels, regions)
        pixels = self._pixels(images)  # [B, 3, H', W']
        latents = self._encode(pixels)  # [B, C, h, w]
        cond = self._encode(self._pixels(conditions))
        noise = self._randn(latents.shape, generator)
        start = start_indices(noise_levels.to(self.device), self.timesteps, self.num_train)
        region = mask = None
        if regions is not None:
            mask = binarize(regions.to(self.device), self.config.relevance_threshold)  # [B, H, W]
            region = latent_region(_pad(mask[:, None], self.factor)[:, 0], self.factor)
        text = self._text_pair(instruction)
        scale = self.vae.config.scaling_factor

        def predict(z: Tensor, timestep: int, views: Tensor) -> Sequence[Tensor]:
            return self._predict(z, timestep, cond[views], text, EDIT_BRANCHES)

        guidance = (self.config.image_guidance, self.config.text_guidance)
        out, raw = denoise(
            latents * scale, noise, start, self.timesteps, self.alphas_cumprod,
            predict, guidance, region, self.on_step,
        )  # fmt: skip
        edited = self._decode(out / scale)[:, :, :height, :width].permute(0, 2, 3, 1)
        if mask is not None:
            original = images.to(self.device, torch.float32).clamp(0, 1)
            edited = torch.where(mask[..., None] > 0, edited, original)
        relevance = relevance_map(raw, self.config.iqr_factor, pixels.shape[-2:])
        relevance = relevance[:, :height, :width]
        return EditOutput(edited.to(images.device), relevance.to(images.device))

    @torch.no_grad()
    def relevance(
        self, images: Tensor, instruction: str, generator: torch.Generator | None = None
    ) -> Tensor:
        """[B, H, W] relevance maps in [0, 1] (Watch Your Steps section 4.1).

        Each image is noised to `relevance_noise` and conditioned on itself; the norm of the
        text / no-text noise disagreement is averaged over `relevance_samples` noise samples,
        clipped at the upper IQR fence, normalised and upsampled bilinearly to the image size.
        """
        _check_images("images", images)
        height, width = images.shape[1:3]
        pixels = self._pixels(images)
        cond = self._encode(pixels)  # [B, C, h, w]
        clean = cond * self.vae.config.scaling_factor
        level = torch.tensor(self.config.relevance_noise, device=self.device)
        timestep = int(noise_timestep(level, self.num_train))
        alpha = self.alphas_cumprod[timestep]
        text = self._text_pair(instruction)
        raw = clean.new_zeros(clean.shape[0], *clean.shape[2:])  # [B, h, w]
        for _ in range(self.config.relevance_samples):
            z = add_noise(clean, self._randn(clean.shape, generator), alpha)
            eps_text, eps_empty = self._predict(z, timestep, cond, text, RELEVANCE_BRANCHES)
            raw += relevance_from_eps(eps_text, eps_empty)
        maps = relevance_map(
            raw / self.config.relevance_samples, self.config.iqr_factor, pixels.shape[-2:]
        )
        return maps[:, :height, :width].to(images.device)

    # ------------------------------------------------------------------------- helpers

    def _pixels(self, images: Tensor) -> Tensor:
        """[B, H, W, 3] in [0, 1] -> [B, 3, H', W'] in [-1, 1], edge-padded to multiples of the VAE factor."""
        x = images.to(self.device, torch.float32).clamp(0, 1).permute(0, 3, 1, 2)
        return _pad(x, self.factor) * 2 - 1

    def _encode(self, pixels: Tensor) -> Tensor:
        """[B, 3, H', W'] in [-1, 1] -> [B, C, h, w] unscaled latents (posterior mode, float32).

        The mode, as InstructPix2Pix takes its condition; the posterior's spread is tiny,
        and the same latents then also stand for the input outside edit regions.
        """
        chunks = pixels.to(self.dtype).split(self.config.max_batch)
        with self._on_device("vae") as vae:
            return torch.cat([vae.encode(x).latent_dist.mode().float() for x in chunks])

    def _decode(self, latents: Tensor) -> Tensor:
        """[B, C, h, w] unscaled latents -> [B, 3, H', W'] images in [0, 1] (float32)."""
        chunks = latents.to(self.dtype).split(self.config.max_batch)
        with self._on_device("vae") as vae:
            images = torch.cat([vae.decode(z).sample.float() for z in chunks])
        return (images / 2 + 0.5).clamp(0, 1)

    def _randn(self, shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        """Standard normal noise drawn on the generator's device (so CPU seeds reproduce on CUDA)."""
        device = generator.device if generator is not None else self.device
        return torch.randn(shape, generator=generator, device=device).to(self.device)

    def _text_pair(self, instruction: str) -> Tensor:
        """[2, L, D] embeddings of the instruction and of the empty text, cached per instruction."""
        if self._text is None or self._text[0] != instruction:
            ids = self.tokenizer(
                [instruction, ""],
                padding="max_length",
                max_length=self.tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids.to(self.device)
            with self._on_device("text_encoder") as text_encoder:
                self._text = (instruction, text_encoder(ids)[0].to(self.dtype))
        return self._text[1]

    def _predict(
        self,
        latents: Tensor,
        timestep: int,
        cond: Tensor,
        text: Tensor,
        branches: Sequence[tuple[bool, bool]],
    ) -> list[Tensor]:
        """Noise predictions per guidance branch, each [n, C, h, w] float32.

        Args:
            latents: [n, C, h, w] noisy scaled latents.
            timestep: diffusion timestep.
            cond: [n, C, h, w] unscaled condition-image latents.
            text: [2, L, D] instruction and empty-text embeddings.
            branches: (text on, image on) per branch; off = empty text / zero image latents.
        """
        n = latents.shape[0]
        no_image = torch.zeros_like(cond)
        inputs = torch.cat(
            [torch.cat([latents, cond if image else no_image], dim=1) for _, image in branches]
        ).to(self.dtype)  # [k n, 2 C, h, w]
        states = torch.cat([text[0 if txt else 1].expand(n, -1, -1) for txt, _ in branches])
        t = torch.tensor(timestep, device=self.device)
        rows = self.config.max_batch * len(branches)  # max_batch views per UNet call
        with self._on_device("unet") as unet:
            eps = [
                unet(x, t, encoder_hidden_states=s).sample.float()
                for x, s in zip(inputs.split(rows), states.split(rows))
            ]
        return list(torch.cat(eps).split(n))

    def _on_device(self, name: str):
        """The network `name` on the editor's device for a block (offloaded ones visit, see offload.py)."""
        return on_device(getattr(self, name), self.device, name in self._offloaded)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """Weights' dtype for a config name; auto = float16 on CUDA, float32 elsewhere."""
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return DTYPES[name]


def _pad(x: Tensor, factor: int) -> Tensor:
    """Edge-pads [B, C, H, W] at the bottom and right to multiples of `factor`."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % factor, -width % factor
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


def _component_problem(unet, vae, text_encoder, tokenizer) -> str | None:
    """Why these components cannot form InstructPix2Pix, or None."""
    latent = vae.config.latent_channels
    if unet.config.in_channels != 2 * latent:
        return (
            f"the UNet takes {unet.config.in_channels} input channels but InstructPix2Pix needs "
            f"{2 * latent} (noisy + condition latents): is this a text-to-image model?"
        )
    if unet.config.out_channels != latent:
        return f"the UNet predicts {unet.config.out_channels} channels, the VAE has {latent}"
    width = text_encoder.config.hidden_size
    if unet.config.cross_attention_dim != width:
        return (
            f"the UNet attends to {unet.config.cross_attention_dim}-wide text features, "
            f"the text encoder gives {width}"
        )
    if len(tokenizer) != text_encoder.config.vocab_size:
        return (
            f"the tokenizer has {len(tokenizer)} tokens but the text encoder expects "
            f"{text_encoder.config.vocab_size}: tokenizer files missing or from another model"
        )
    return None


def _set_attention(unet, mode: str) -> None:
    if mode == "sliced":
        unet.set_attention_slice("auto")
    elif mode == "xformers":
        try:
            unet.enable_xformers_memory_efficient_attention()
        except (ImportError, ValueError) as err:  # not installed, or no CUDA device
            raise GseditError(
                f"IP2PConfig.attention='xformers' is unavailable ({err}); "
                f"on a CUDA machine `{XFORMERS_INSTALL}` installs it (README), or use attention='sdpa'"
            ) from None


def _check_images(name: str, images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[-1] != 3:
        found = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"`{name}` must be a [B, H, W, 3] tensor, got {found}")
    if min(images.shape[:3]) < 1:
        raise ValueError(
            f"`{name}` must hold at least one image of at least 1x1, got {tuple(images.shape)}"
        )
    if not images.is_floating_point():
        raise ValueError(f"`{name}` must be float in [0, 1], got dtype {images.dtype}")
    low, high = float(images.min()), float(images.max())
    if not (-RANGE_TOLERANCE <= low and high <= 1 + RANGE_TOLERANCE):
        raise ValueError(f"`{name}` must lie in [0, 1], got values in [{low:.4g}, {high:.4g}]")


def _check_edit_inputs(
    images: Tensor, conditions: Tensor, noise_levels: Tensor, regions: Tensor | None
) -> tuple[int, int]:
    """Validates `edit`'s arguments; returns the image (height, width)."""
    _check_images("images", images)
    _check_images("conditions", conditions)
    batch, height, width = images.shape[:3]
    if conditions.shape != images.shape:
        raise ValueError(
            f"`conditions` must have the shape of `images` {tuple(images.shape)}, "
            f"got {tuple(conditions.shape)}"
        )
    if not isinstance(noise_levels, Tensor) or noise_levels.shape != (batch,):
        found = tuple(noise_levels.shape) if isinstance(noise_levels, Tensor) else noise_levels
        raise ValueError(f"`noise_levels` must be a [{batch}] tensor, got {found}")
    if bool(((noise_levels < 0) | (noise_levels > 1)).any()):
        raise ValueError(f"`noise_levels` must lie in [0, 1], got {noise_levels.tolist()}")
    if regions is not None and (
        not isinstance(regions, Tensor) or regions.shape != (batch, height, width)
    ):
        found = tuple(regions.shape) if isinstance(regions, Tensor) else type(regions).__name__
        raise ValueError(f"`regions` must be None or [{batch}, {height}, {width}], got {found}")
    return height, width
