"""Serving: the model artifact behind SageMaker's inference contract, and whole-scene prediction."""
