"""gsedit: multi-turn text-driven editing of 3D Gaussian splatting scenes and NeRFs."""

__version__ = "0.1.0"
