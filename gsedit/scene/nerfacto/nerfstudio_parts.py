"""The nerfstudio parts the nerfacto backend is built from, imported in one place.

nerfstudio 1.1.5 pins viser==0.2.7, gsplat==1.4.0 and timm==0.6.7, which clash with gsedit's own
requirements; the parts used here (fields, sampler, renderers, losses, optimisers) run on gsedit's
versions, so the install command adds nerfstudio without its dependencies ([nerf] has the rest).
When it is missing, importing this module says which install fixes it.
"""

from __future__ import annotations

import warnings

from gsedit.errors import MissingPackageError

try:
    with warnings.catch_warnings():  # nerfstudio's torch.cuda.amp decorators warn on import
        warnings.simplefilter("ignore", FutureWarning)
        from nerfstudio.cameras.rays import RayBundle, RaySamples
        from nerfstudio.engine.optimizers import AdamOptimizerConfig, Optimizers
        from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
        from nerfstudio.field_components.field_heads import FieldHeadNames
        from nerfstudio.field_components.mlp import MLPWithHashEncoding
        from nerfstudio.field_components.spatial_distortions import SceneContraction
        from nerfstudio.fields.density_fields import HashMLPDensityField
        from nerfstudio.fields.nerfacto_field import NerfactoField
        from nerfstudio.model_components.losses import distortion_loss, interlevel_loss
        from nerfstudio.model_components.ray_samplers import ProposalNetworkSampler
        from nerfstudio.model_components.renderers import RGBRenderer
        from nerfstudio.model_components.scene_colliders import NearFarCollider
except ImportError as exc:  # the optional extra is missing: say which install fixes it
    raise MissingPackageError("The nerfacto backend", "nerfstudio", str(exc)) from exc

__all__ = [
    "AdamOptimizerConfig",
    "ExponentialDecaySchedulerConfig",
    "FieldHeadNames",
    "HashMLPDensityField",
    "MLPWithHashEncoding",
    "NearFarCollider",
    "NerfactoField",
    "Optimizers",
    "ProposalNetworkSampler",
    "RGBRenderer",
    "RayBundle",
    "RaySamples",
    "SceneContraction",
    "distortion_loss",
    "interlevel_loss",
]
