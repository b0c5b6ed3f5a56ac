"""Which backend serves a model file.

An exported `.onnx` model runs on ONNX Runtime alone: no TensorFlow is imported (the export
checked it against TensorFlow when it was written). A `.keras` file needs the full install: it
is converted at start through `keras_conversion`, the one seam to the offline `keras_export`
package, and serves only after matching TensorFlow within its parity tolerance on fixed inputs.
"""

from __future__ import annotations

from pathlib import Path

from .inference.backend import BackendChoice, InferenceBackend
from .keras_conversion import load_keras_model_backend
from .model_contract import ModelFile, ModelFileError


def load_backend(
    model: ModelFile, choice: BackendChoice, onnx_cache_dir: Path, threads: int
) -> InferenceBackend:
    """The backend that serves `model`: ONNX Runtime for an exported `.onnx` file; for a `.keras`
    file, its verified ONNX conversion or TensorFlow (full install only)."""
    if model.is_onnx:
        if choice == "tensorflow":
            raise ModelFileError(
                f"INFERENCE_BACKEND=tensorflow needs a .keras model; {model.path} is exported ONNX"
            )
        from .inference.onnx_backend import load_onnx_backend

        return load_onnx_backend(model.path, len(model.class_names), threads)
    return load_keras_model_backend(model, choice, onnx_cache_dir, threads)
