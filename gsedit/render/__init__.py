"""Rendering: the pure-PyTorch reference rasterizer and the gsplat CUDA path."""

from gsedit.render.rasterize import RasterOutput, rasterize

__all__ = ["RasterOutput", "rasterize"]
