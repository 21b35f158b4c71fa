"""One training run: augmentation, losses, the epoch loop with checkpoints and TensorBoard."""
