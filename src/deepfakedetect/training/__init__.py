"""Training: data folders, augmentation, self-blended fakes, the Trainer, evaluation."""
