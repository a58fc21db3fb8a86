"""Rendering: the pure-PyTorch reference rasterizer (`rasterize`), the native and gsplat paths,
image files and videos. Nothing is imported here, so image files load without a rasterizer."""
