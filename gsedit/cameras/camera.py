"""The one camera type of gsedit: OpenCV pinhole cameras, as gsplat takes them."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class Cameras:
    """A batch of C pinhole cameras sharing one image size.

    OpenCV convention: x right, y down, z forward; `viewmats` map world to camera.
    """

    viewmats: Tensor  # [C, 4, 4] world-to-camera
    Ks: Tensor  # [C, 3, 3] intrinsics in pixels, principal point in pixel units (pixel centres at +0.5)
    width: int
    height: int
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.viewmats.ndim != 3 or self.viewmats.shape[1:] != (4, 4):
            raise ValueError(f"viewmats must be [C, 4, 4], got {tuple(self.viewmats.shape)}")
        if self.Ks.shape != (self.viewmats.shape[0], 3, 3):
            raise ValueError(f"Ks must be [C, 3, 3] matching viewmats, got {tuple(self.Ks.shape)}")
        if not self.names:
            self.names = [f"{i:04d}" for i in range(len(self))]
        if len(self.names) != len(self):
            raise ValueError(f"{len(self.names)} names for {len(self)} cameras")

    def __len__(self) -> int:
        return self.viewmats.shape[0]

    def __getitem__(self, index: int | slice | list[int] | Tensor) -> "Cameras":
        """A sub-batch; an int gives a batch of one camera."""
        if isinstance(index, int):
            index = [index]
        idx = torch.as_tensor(range(len(self)))[index] if isinstance(index, slice) else index
        idx_list = [int(i) for i in torch.as_tensor(idx).reshape(-1)]
        return Cameras(
            self.viewmats[idx_list],
            self.Ks[idx_list],
            self.width,
            self.height,
            [self.names[i] for i in idx_list],
        )

    def to(self, device: torch.device | str) -> "Cameras":
        return Cameras(self.viewmats.to(device), self.Ks.to(device), self.width, self.height, self.names)

    @property
    def device(self) -> torch.device:
        return self.viewmats.device

    @property
    def camtoworlds(self) -> Tensor:
        """[C, 4, 4] camera-to-world (OpenCV)."""
        return torch.linalg.inv(self.viewmats)

    @property
    def centers(self) -> Tensor:
        """[C, 3] camera centres in world space."""
        return self.camtoworlds[:, :3, 3]

    def resized(self, width: int, height: int) -> "Cameras":
        """The same cameras at another image size (intrinsics scaled, pixel-centre convention kept)."""
        sx, sy = width / self.width, height / self.height
        Ks = self.Ks.clone()
        Ks[:, 0, :] *= sx
        Ks[:, 1, :] *= sy
        return Cameras(self.viewmats.clone(), Ks, width, height, list(self.names))

    def limited(self, max_side: int | None) -> "Cameras":
        """Downscaled so that the longer side is at most `max_side` (None or 0: unchanged)."""
        if not max_side or max(self.width, self.height) <= max_side:
            return self
        scale = max_side / max(self.width, self.height)
        return self.resized(max(1, round(self.width * scale)), max(1, round(self.height * scale)))
