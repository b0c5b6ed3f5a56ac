"""Which backend serves a model file.

An exported `.onnx` model runs on ONNX Runtime alone: no TensorFlow is imported (the export
checked it against TensorFlow when it was written). A `.keras` file needs the full install:
TensorFlow is the reference there, and its ONNX conversion serves only after matching it within
`PARITY_TOLERANCE` on fixed inputs (`tf/keras_model.py`). This module sits above both `inference`
and `tf` so that neither imports the other's dispatcher.
"""

from __future__ import annotations

from pathlib import Path

from .inference.backend import BackendChoice, InferenceBackend
from .model_contract import ModelFile, ModelFileError


def load_backend(
    model: ModelFile, choice: BackendChoice, onnx_cache_dir: Path, threads: int
) -> InferenceBackend:
    """The backend that serves `model`: ONNX Runtime for an exported `.onnx` file; for a `.keras`
    file, TensorFlow or its verified ONNX conversion (full install only)."""
    if model.is_onnx:
        if choice == "tensorflow":
            raise ModelFileError(
                f"INFERENCE_BACKEND=tensorflow needs a .keras model; {model.path} is exported ONNX"
            )
        from .inference.onnx_backend import load_onnx_backend

        return load_onnx_backend(model.path, len(model.class_names), threads)
    try:
        from .tf.keras_model import keras_backend
    except ImportError as error:
        raise ModelFileError(
            f"serving the .keras file {model.path} needs TensorFlow ({error}); this install "
            "serves exported models: export it with `python -m model_server.logo_detection.tf"
            ".export` in the full install (requirements.txt) and serve the .onnx file"
        ) from None
    return keras_backend(model, choice, onnx_cache_dir, threads)
