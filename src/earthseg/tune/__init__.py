"""Hyperparameter tuning: the `tune:` section, local trials driven by Optuna, and the
leaderboard (on SageMaker: a HyperparameterTuner, earthseg.aws.tuning)."""
