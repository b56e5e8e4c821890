"""Training: SageMaker's training contract, the U-Net, its data, and what fits and exports it."""
