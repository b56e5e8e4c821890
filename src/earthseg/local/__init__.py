"""The images on this machine, in local Docker containers, standing in for SageMaker: a
Processing job is the training image with the Processing mounts, an endpoint is the serve
image on a loopback port. (Training runs through the SageMaker SDK's own local mode.)"""
