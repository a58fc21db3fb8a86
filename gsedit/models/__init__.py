"""Image models behind small interfaces: editors (InstructPix2Pix, synthetic), segmenters, enhancers."""
