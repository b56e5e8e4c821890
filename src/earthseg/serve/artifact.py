"""The model artifact as serving runs it: the ONNX model behind the model card.

Everything about the input (tile size, bands, pixel type, normalisation) and the decision
threshold comes from the card `earthseg train` wrote (earthseg.contracts.model_card), so a
model trained on other scenes or with another threshold is served right without a code
change.
"""

from __future__ import annotations

import contextlib
import functools
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from earthseg.archives import extract
from earthseg.contracts.model_card import ONNX_FILE, RETRAIN, read_model_card
from earthseg.errors import InputError
from earthseg.serve.cores import CoreSlots


class OnnxModel:
    """The ONNX model of an artifact in ONNX Runtime: tiles in, probabilities out.

    On a GPU image, `gpu` picks the CUDA device. On CPU, `cores` (shared by a server's
    workers) says how many cores each run may use, and a session per thread count runs
    it; without, one session uses every core.
    """

    def __init__(
        self, model_dir: Path, *, gpu: int | None = None, cores: CoreSlots | None = None
    ) -> None:
        import onnxruntime

        self.card = read_model_card(model_dir)
        path = Path(model_dir) / ONNX_FILE
        if not path.is_file():
            raise InputError(path, "is missing from the model artifact", RETRAIN)
        providers: list[Any] = ["CPUExecutionProvider"]
        if gpu is not None:
            onnxruntime.preload_dlls()  # CUDA and cuDNN from their pip wheels
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": gpu}))
        thread_counts = [0] if cores is None else sorted({1, len(cores.paths)})
        shared_arena = len(thread_counts) > 1
        if shared_arena:
            _register_shared_arena(onnxruntime)
        try:
            self._sessions = {
                threads: onnxruntime.InferenceSession(
                    str(path), _options(onnxruntime, threads, shared_arena), providers=providers
                )
                for threads in thread_counts
            }
        except Exception as error:  # ONNX Runtime has no narrower error type for a bad file
            raise InputError(path, f"cannot be loaded by ONNX Runtime ({error})", RETRAIN) from None
        self._cores = cores
        self.providers = self._sessions[thread_counts[0]].get_providers()

    def probabilities(self, tiles: np.ndarray) -> np.ndarray:
        """(N, rows, cols, bands) raw pixel values -> (N, rows, cols) float32 probabilities."""
        normalisation, graph = self.card.normalisation, self.card.onnx
        batch = np.asarray(tiles, dtype=np.float32)
        if not normalisation.in_model:
            batch = batch * np.float32(normalisation.scale) + np.float32(normalisation.offset)
        cores = self._cores.take() if self._cores else contextlib.nullcontext(0)
        with cores as threads:
            session = self._sessions[threads]
            (output,) = session.run([graph.output], {graph.input: batch})
        return np.asarray(output, dtype=np.float32).reshape(batch.shape[:3])


def _options(onnxruntime: Any, threads: int, shared_arena: bool) -> Any:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads  # 0: ONNX Runtime's choice, every core
    # Threads that sleep when idle: spinning ones would steal the cores of the other runs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if shared_arena:
        options.add_session_config_entry("session.use_env_allocators", "1")
    return options


@functools.cache  # once per process
def _register_shared_arena(onnxruntime: Any) -> None:
    """One CPU memory arena for all of this process's sessions rather than one each
    (measured: 157 MB instead of 250 MB resident for two sessions, at the same speed)."""
    memory = onnxruntime.OrtMemoryInfo(
        "Cpu",
        onnxruntime.OrtAllocatorType.ORT_ARENA_ALLOCATOR,
        0,
        onnxruntime.OrtMemType.DEFAULT,
    )
    onnxruntime.create_and_register_allocator(memory, None)


@contextlib.contextmanager
def model_folder(path: Path) -> Iterator[Path]:
    """A model folder, or a SageMaker `model.tar.gz` unpacked into a temporary one."""
    path = Path(path)
    if path.is_dir():
        yield path
        return
    if not path.is_file() or not tarfile.is_tarfile(path):
        raise InputError(path, "is neither a model folder nor a model.tar.gz", RETRAIN)
    with tempfile.TemporaryDirectory(prefix="earthseg-model-") as folder:
        yield extract(path, Path(folder) / "model")
