"""ONNX Runtime backend: what the production image serves with, no TensorFlow needed.

Why ONNX Runtime: docs/model.md#which-backend-serves-a-model-file, measured in
docs/results.md#backends. The `.onnx` file comes from the export tool
(`keras_export/export.py`, checked against TensorFlow when written) or, serving a `.keras` file
in the full install, from the conversion cache (`keras_export/onnx_conversion.py`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..decoding import INPUT_SIZE
from ..model_contract import ModelFileError


class OnnxRuntimeBackend:
    """One ONNX Runtime session; `threads` intra-op threads that sleep rather than spin when
    idle, so they don't steal the CPU from the decode threads between passes."""

    name = "onnx"

    def __init__(self, onnx_file: Path, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        # The memory arena stays on: it keeps the activation buffers of the largest pass seen
        # (the server warms up at MAX_BATCH_SIZE, so RSS is flat from start-up), and without it
        # every pass re-allocates them: measured 11.5 vs 17.3 ms per image at batch 8.
        self.onnx_file = onnx_file
        self._session = onnxruntime.InferenceSession(
            str(onnx_file), options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        scores: np.ndarray = self._session.run(None, {self._input: batch})[0]
        return scores


def load_onnx_backend(onnx_file: Path, num_classes: int, threads: int) -> OnnxRuntimeBackend:
    """The session for an exported model, refused unless it maps images to per-class scores."""
    try:
        backend = OnnxRuntimeBackend(onnx_file, threads)
        scores = backend.predict(np.zeros((2, INPUT_SIZE, INPUT_SIZE, 3), np.float32))
    except Exception as error:  # onnxruntime raises its own exception types
        raise ModelFileError(f"cannot load model {onnx_file}: {error}") from error
    if scores.shape != (2, num_classes):
        raise ModelFileError(
            f"model {onnx_file} maps 2 images to shape {scores.shape}; the server needs "
            f"(N, {num_classes}) softmax scores"
        )
    return backend
