"""An in-memory Scene without any Gaussian code: proves the edit loop talks only to the interface.

Each view is its own learnable image (no 3D), labels are per-view label maps, and a training step
moves the viewed image toward its target by a fixed fraction.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from gsedit.cameras import Cameras
from gsedit.scene.base import RenderOutput, Scene, SceneOptimizer


def fake_cameras(count: int, size: int = 8) -> Cameras:
    viewmats = torch.eye(4).repeat(count, 1, 1)
    viewmats[:, 0, 3] = torch.arange(count, dtype=torch.float32)  # distinct views, identified by x offset
    Ks = torch.tensor([[size, 0, size / 2], [0, size, size / 2], [0, 0, 1.0]]).repeat(count, 1, 1)
    return Cameras(viewmats, Ks, size, size)


def view_ids(cameras: Cameras) -> list[int]:
    return [int(v) for v in cameras.viewmats[:, 0, 3].round()]


class FakeOptimizer(SceneOptimizer):
    def __init__(self, scene: "FakeScene", rate: float):
        self.scene, self.rate = scene, rate

    def step(self, cameras: Cameras, targets: Tensor) -> float:
        ids = view_ids(cameras)
        current = self.scene.images[ids]
        self.scene.images[ids] = current + self.rate * (targets - current)
        return float((current - targets).abs().mean())


class FakeScene(Scene):
    filename = "scene.pt"

    def __init__(self, images: Tensor, labels: Tensor | None = None, names: dict[int, str] | None = None,
                 rate: float = 0.5):
        self.images = images.clone()  # [V, H, W, 3]
        self.labels = labels  # [V, H, W] integer label per pixel
        self.names = names or {}
        self.rate = rate
        self.extra: dict[str, Tensor] = {}

    @property
    def device(self) -> torch.device:
        return self.images.device

    def render(self, cameras, channels=()):
        ids = view_ids(cameras)
        out = {}
        for name in channels:
            if name.startswith("label="):
                out[name] = (self.labels[ids] == float(name.split("=")[1])).float()
            else:
                out[name] = self.extra[name][ids]
        return RenderOutput(self.images[ids].clone(), torch.ones(self.images[ids].shape[:3]), out)

    def channel_names(self):
        return list(self.extra) + (["label"] if self.labels is not None else [])

    def label_names(self):
        return dict(self.names)

    def optimizer(self, steps, lr_scale=1.0, densify=True, opacity_reset=True):
        return FakeOptimizer(self, self.rate * lr_scale)

    def save(self, folder: Path) -> Path:
        path = Path(folder) / self.filename
        torch.save({"images": self.images, "labels": self.labels, "names": self.names}, path)
        return path

    @classmethod
    def load(cls, path: Path) -> "FakeScene":
        data = torch.load(path)
        return cls(data["images"], data["labels"], data["names"])

    def clone(self):
        return FakeScene(self.images, self.labels, self.names, self.rate)

    def lift_channel(self, name, cameras, maps):
        # the fake "3D" field: the mean over views, so the lifted masks agree across views
        self.extra[name] = maps.mean(dim=0, keepdim=True).expand_as(maps).clone()
