"""Rendering: the pure-PyTorch reference rasterizer and the gsplat CUDA path."""
