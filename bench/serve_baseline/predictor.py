"""The baseline's Flask app: the U-Net with Keras, in the manner of AWS's example predictor.

As in scikit_bring_your_own, `ScoringService` loads the model on first use in each gunicorn
worker (so the first /ping of a worker loads it), /ping is healthy when the model loads,
and /invocations predicts a batch. Here the model is /opt/ml/model/model.keras and the
payload is NumPy: one (rows, cols, bands) uint8 tile or a batch (n, rows, cols, bands) in
`application/x-npy`, answered with the per-pixel probabilities, float32, in the same form.
"""

import io
import os
import time

import flask
import keras
import numpy as np

MODEL_PATH = os.path.join("/opt/ml", "model", "model.keras")
NPY = "application/x-npy"


class ScoringService:
    """Holds this worker's model, loaded on first use."""

    model = None

    @classmethod
    def get_model(cls) -> keras.Model:
        if cls.model is None:
            start = time.perf_counter()
            cls.model = keras.models.load_model(MODEL_PATH)
            seconds = time.perf_counter() - start
            print(f"baseline: worker {os.getpid()} loaded the model in {seconds:.2f} s", flush=True)
        return cls.model

    @classmethod
    def predict(cls, batch: np.ndarray) -> np.ndarray:
        """Probabilities for a (n, rows, cols, bands) batch of raw pixel values."""
        return cls.get_model().predict(batch.astype(np.float32), verbose=0)


app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping() -> flask.Response:
    """Healthy when the model loads (which the first ping of a worker does)."""
    healthy = ScoringService.get_model() is not None
    return flask.Response(
        response="\n", status=200 if healthy else 404, mimetype="application/json"
    )


@app.route("/invocations", methods=["POST"])
def invocations() -> flask.Response:
    """One tile or a batch of tiles in, their probabilities out, both as .npy."""
    if flask.request.content_type != NPY:
        return _error(415, f"this baseline takes {NPY} only")
    try:
        pixels = np.load(io.BytesIO(flask.request.get_data()), allow_pickle=False)
    except ValueError as error:
        return _error(400, f"the body is not a .npy array: {error}")
    _, rows, cols, bands = ScoringService.get_model().input_shape
    single = pixels.shape == (rows, cols, bands)
    if not single and (pixels.ndim != 4 or pixels.shape[1:] != (rows, cols, bands)):
        return _error(400, f"expected ({rows}, {cols}, {bands}) or (n, {rows}, {cols}, {bands})")
    probabilities = ScoringService.predict(pixels[None] if single else pixels)
    out = io.BytesIO()
    np.save(out, probabilities[0] if single else probabilities)
    return flask.Response(response=out.getvalue(), status=200, mimetype=NPY)


def _error(status: int, message: str) -> flask.Response:
    return flask.Response(response=message + "\n", status=status, mimetype="text/plain")
