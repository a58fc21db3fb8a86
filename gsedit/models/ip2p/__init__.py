"""InstructPix2Pix editor (Brooks et al. 2023) with Watch Your Steps relevance (Mirzaei et al. 2024).

The denoising loop is gsedit's own, as Instruct-NeRF2NeRF runs it: the image to edit is
encoded, noised to a level t in [0, 1] and denoised with DDIM under InstructPix2Pix's
three-way classifier-free guidance (paper eq. 1), conditioned on the VAE latents of a
condition image. Different views may start at different noise levels. With edit regions
(relevance-guided editing, Watch Your Steps section 4.2), after every step the latents outside
the region are replaced by the input latents noised to the new level.

- `config`: `IP2PConfig` and its checks (no torch: command options name it).
- `denoise`: the stateless guided-denoising core (`denoise`, `ddim_step`, `guide`, ...).
- `relevance`: relevance maps from noise predictions (pure functions).
- `editor`: `IP2PEditor`, the pipeline that owns the diffusers components and turns images into
  latents and back.

Nothing is imported here, so the config loads without torch.
"""
