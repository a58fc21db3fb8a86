"""Edit metrics: CLIP scores, preservation, consistency, mIoU."""

from typing import Literal

#: the LPIPS backbones (torchvision's ImageNet networks LPIPS was trained on)
LpipsNet = Literal["alex", "vgg", "squeeze"]
