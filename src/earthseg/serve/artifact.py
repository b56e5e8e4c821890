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
from concurrent.futures import ThreadPoolExecutor
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
    it; without, `sessions` single-threaded sessions (one per core) run the windows of a
    batch side by side: 15-20 % more pixels per second on 2 cores than one session on
    both (bench/detect.py), for one session's memory each. One session uses every core.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        gpu: int | None = None,
        cores: CoreSlots | None = None,
        sessions: int = 1,
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
        self.sessions = sessions if cores is None and gpu is None else 1
        if cores is not None:
            thread_counts = sorted({1, len(cores.paths)})
        else:
            thread_counts = [0] if self.sessions == 1 else [1]
        shared_arena = len(thread_counts) > 1
        if shared_arena:
            _register_shared_arena(onnxruntime)

        def session(threads: int) -> Any:
            options = _options(onnxruntime, threads, shared_arena, self.sessions > 1)
            return onnxruntime.InferenceSession(str(path), options, providers=providers)

        try:
            self._sessions = {threads: session(threads) for threads in thread_counts}
            self._side_by_side = [session(1) for _ in range(self.sessions - 1)]
        except Exception as error:  # ONNX Runtime has no narrower error type for a bad file
            raise InputError(path, f"cannot be loaded by ONNX Runtime ({error})", RETRAIN) from None
        if self.sessions > 1:
            self._side_by_side.insert(0, self._sessions[1])
        self._pool = ThreadPoolExecutor(self.sessions) if self.sessions > 1 else None
        self._threads = thread_counts[0]  # without `cores`: the one session's
        self._cores = cores
        self.providers = self._sessions[thread_counts[0]].get_providers()

    def probabilities(self, tiles: np.ndarray) -> np.ndarray:
        """(N, rows, cols, bands) raw pixel values -> (N, rows, cols) float32 probabilities."""
        normalisation, graph = self.card.normalisation, self.card.onnx
        batch = np.asarray(tiles, dtype=np.float32)
        if not normalisation.in_model:
            batch = batch * np.float32(normalisation.scale) + np.float32(normalisation.offset)
        if self._pool is not None and len(batch) > 1:
            return self._run_side_by_side(batch)
        cores = self._cores.take() if self._cores else contextlib.nullcontext(self._threads)
        with cores as threads:
            session = self._sessions[threads]
            (output,) = session.run([graph.output], {graph.input: batch})
        return np.asarray(output, dtype=np.float32).reshape(batch.shape[:3])

    def _run_side_by_side(self, batch: np.ndarray) -> np.ndarray:
        """Session i runs windows i, i + sessions, ... of the batch, in a thread of its own
        (ONNX Runtime lets go of the GIL)."""
        graph = self.card.onnx
        answer = np.empty(batch.shape[:3], np.float32)

        def share(first: int) -> None:
            session = self._side_by_side[first]
            for index in range(first, len(batch), self.sessions):
                (output,) = session.run([graph.output], {graph.input: batch[index : index + 1]})
                answer[index] = np.asarray(output, dtype=np.float32).reshape(batch.shape[1:3])

        assert self._pool is not None
        shares = min(self.sessions, len(batch))
        for done in [self._pool.submit(share, first) for first in range(shares)]:
            done.result()
        return answer


def _options(onnxruntime: Any, threads: int, shared_arena: bool, side_by_side: bool) -> Any:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads  # 0: ONNX Runtime's choice, every core
    # Threads that sleep when idle: spinning ones would steal the cores of the other runs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Sessions side by side each hold their run's tensors: without a memory pattern, a
    # 768 px window holds 420 MB rather than 520, at the same speed (bench/detect.py).
    options.enable_mem_pattern = not side_by_side
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
