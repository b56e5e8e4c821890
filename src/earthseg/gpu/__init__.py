"""GPU hosts: which NVIDIA driver the SageMaker hosts our images run on have."""
