"""The exported ONNX graph: SAME-padded transposed convolutions written with `pads` rather
than cropped by shape arithmetic, computing what Keras computes on windows of any size."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime

from earthseg.contracts.model_card import ONNX_FILE
from earthseg.train.onnx_graph import crop_transposed_convolutions_in_place
from earthseg.train.seeded_model import export_seeded_model


def test_transposed_convolutions_are_padded_and_agree_with_keras(tmp_path: Path) -> None:
    model = export_seeded_model(tmp_path / "model", tile=32, filters=4, depth=2)
    path = tmp_path / "model" / ONNX_FILE
    graph = onnx.load(str(path)).graph
    kinds = Counter(node.op_type for node in graph.node)
    assert kinds["ConvTranspose"] == 2
    assert kinds["Slice"] == kinds["Pad"] == kinds["Shape"] == 0  # the crop arithmetic is gone
    for node in graph.node:
        if node.op_type == "ConvTranspose":
            pads = [a for a in node.attribute if a.name == "pads"]
            assert list(pads[0].ints) == [0, 0, 1, 1]  # TensorFlow's SAME: the far end
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    pixels = np.random.default_rng(3).integers(0, 255, (2, 36, 20, 3)).astype(np.float32)
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: pixels})
    keras_out = np.asarray(model.predict(pixels, verbose=0))
    np.testing.assert_allclose(onnx_out, keras_out, rtol=0, atol=1e-5)
    assert crop_transposed_convolutions_in_place(path) == 0  # nothing left to rewrite
