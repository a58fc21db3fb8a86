"""Edit metrics: CLIP scores, preservation, consistency, mIoU."""
