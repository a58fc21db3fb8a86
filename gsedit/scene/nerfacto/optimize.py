"""nerfacto's optimisation recipe: Adam per parameter group (fields, proposal networks) with
exponential decay, MSE + interlevel + distortion loss on random rays of the step's views."""

from __future__ import annotations

import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.scene.base import PARAMETER_CHECK_EVERY, SceneOptimizer, check_finite
from gsedit.scene.nerfacto.field import camera_rays, random_pixels, reproducible
from gsedit.scene.nerfacto.nerfstudio_parts import (
    AdamOptimizerConfig,
    ExponentialDecaySchedulerConfig,
    Optimizers,
    distortion_loss,
    interlevel_loss,
)
from gsedit.scene.optim import Adam


class NerfactoOptimizer(SceneOptimizer):
    """nerfacto's optimisation: Adam per group (fields, proposal networks), exponential decay."""

    def __init__(self, scene, steps: int, lr_scale: float = 1.0):
        """`scene`: the NerfactoScene it optimises in place (its network and frame; it counts the
        scene's `steps_trained` and leaves Adam's moments in its `optimizer_state` when finished).
        Not imported here: the scene module makes its optimisers with this class."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.scene = scene
        c = scene.config
        network = scene.network
        groups = {
            "proposal_networks": list(network.proposal_networks.parameters()),
            "fields": list(network.field.parameters()),
        }
        recipe = {
            name: {
                "optimizer": AdamOptimizerConfig(_target=Adam, lr=c.lr * lr_scale, eps=1e-15),
                "scheduler": ExponentialDecaySchedulerConfig(
                    lr_final=c.lr_final * lr_scale, max_steps=max(1, round(steps * c.decay_horizon))
                ),
            }
            for name in groups
        }
        self.optimizers = Optimizers(recipe, groups)
        self.step_index = 0
        for name, optimizer in self.optimizers.optimizers.items():
            if name in scene.optimizer_state:  # the moments only: the turn's own schedule sets the rates
                saved = optimizer.state_dict()
                saved["state"] = scene.optimizer_state[name]
                optimizer.load_state_dict(saved)

    def step(self, cameras: Cameras, targets: Tensor) -> float:
        """One step on `rays_per_batch` random pixels of `cameras` against `targets` [C, H, W, 3]"""
        scene, network, c = self.scene, self.scene.network, self.scene.config
        shape = (len(cameras), cameras.height, cameras.width, 3)
        if tuple(targets.shape) != shape:
            raise ValueError(
                f"targets must be [C, H, W, 3] = {list(shape)}, got {list(targets.shape)}"
            )
        cameras, targets = cameras.to(scene.device), targets.to(scene.device)
        network.train()
        network.set_anneal(scene.steps_trained)
        pixels = random_pixels(cameras, c.rays_per_batch)
        sampling = network.sample(camera_rays(cameras, scene.frame, pixels))
        rgb = network.rgb_renderer(rgb=sampling.rgb, weights=sampling.weights)
        target = targets[pixels[:, 0], pixels[:, 1], pixels[:, 2]]
        loss = (
            torch.nn.functional.mse_loss(rgb, target)
            + c.interlevel_loss_mult * interlevel_loss(sampling.weights_list, sampling.samples_list)
            + c.distortion_loss_mult * distortion_loss(sampling.weights_list, sampling.samples_list)
        )
        value = float(loss.detach())
        check_finite(self.step_index + 1, value)  # before backward: a NaN loss poisons the whole field
        self.optimizers.zero_grad_all()
        with reproducible(scene.device):
            loss.backward()
        self.optimizers.optimizer_step_all()
        # not scheduler_step_all: it also logs every step to nerfstudio's global event writer
        for scheduler in self.optimizers.schedulers.values():
            scheduler.step()
        network.sampler.step_cb(scene.steps_trained)
        scene.steps_trained += 1
        self.step_index += 1
        if self.step_index % PARAMETER_CHECK_EVERY == 0:
            self._check_parameters()
        return value

    def _check_parameters(self) -> None:
        check_finite(self.step_index, parameters=self.scene.network.named_parameters())

    def finish(self) -> None:
        self._check_parameters()
        self.scene.optimizer_state = {
            name: cpu_copy(optimizer.state_dict()["state"])
            for name, optimizer in self.optimizers.optimizers.items()
        }
        self.optimizers.optimizers.clear()
        self.optimizers.schedulers.clear()


def cpu_copy(state):
    """A copy of `state` (nested dicts of tensors and numbers) with every tensor on the CPU.

    Optimiser state is kept there (Adam's load_state_dict moves the moments to the parameters'
    device itself, and wants its step counters on the CPU)."""
    if isinstance(state, dict):
        return {k: cpu_copy(v) for k, v in state.items()}
    if isinstance(state, Tensor):
        return state.detach().to("cpu", copy=True)
    return state
