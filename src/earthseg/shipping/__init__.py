"""Shipping the images `make build` made: the registries they go to (ECR or any other),
and `earthseg push`."""
