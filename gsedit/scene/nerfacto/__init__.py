"""The nerfacto implementation of the Scene interface: nerfstudio's fields, sampler and recipe.

Needs nerfstudio (installed by the README's install command); no other gsedit module imports it. The
model is put together from nerfstudio's nerfacto parts (`NerfactoField`, one `HashMLPDensityField` per
proposal level, `ProposalNetworkSampler`, MSE + interlevel + distortion loss, Adam with exponential
decay per parameter group) instead of being built as a `NerfactoModel`: that class's setup also builds
an LPIPS metric, which downloads AlexNet weights, plus per-image appearance embeddings and pose
refinement, which an edit loop with given cameras does not want.

- `config`: the model and recipe settings and presets (no torch: command options name them).
- `field`: the networks, the sampler, rays from cameras and the model frame (`nerfstudio_parts`
  imports nerfstudio once, with the install hint when it is missing).
- `scene`: `NerfactoScene` (rendering, checkpoints, lifted channels) and `fit_nerfacto`.
- `optimize`: `NerfactoOptimizer`, nerfacto's optimisation recipe.

Nothing is imported here, so the config loads without torch or nerfstudio.
"""
