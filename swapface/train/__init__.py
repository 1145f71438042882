"""Training: data, augmentation, losses, checkpoints and the loop (see loop.train)."""
