"""The contracts between stages, each with one owner: the one reader and writer that the
producer and every consumer use.

- `opt_ml`: where SageMaker mounts a job's files (/opt/ml, or SAGEMAKER_BASE_DIR);
- `processing`: the Processing job mounts `earthseg preprocess` reads and writes;
- `channels`: the training channels' names and each channel's self-description;
- `manifest`: the dataset manifest, what every tile is and where it came from;
- `model_card`: the model artifact's files and its card, what serving needs to run it;
- `serving`: the model server's environment, as SageMaker sets it.
"""
