"""Launching on AWS: pushing the images, SageMaker jobs and endpoints, the pipeline."""
