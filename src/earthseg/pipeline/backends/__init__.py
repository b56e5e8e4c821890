"""Where a pipeline's stages run: `local` (local containers, or this machine without
Docker) and `sagemaker` (SageMaker jobs and endpoints driven from here)."""
