"""The one seam between the server and the offline `keras_export` package: serving a `.keras`
file in the full install.

The server package never imports TensorFlow, Keras, KerasCV, tf2onnx or onnx
(tests/test_layout.py). A `.keras` file is converted to ONNX at start by `keras_export` (imported
here, lazily, and nowhere else), parity-checked against TensorFlow as the export is, and cached
by the file's hash. TensorFlow stays the explicit fallback there, in `keras_export` too: it
serves where INFERENCE_BACKEND asks for it, where the conversion fails its parity check, or where
`auto` times it faster at start. Where `keras_export` or TensorFlow is missing (the
production image, the serving-only install), the server refuses to start and names the export.
"""

from __future__ import annotations

from pathlib import Path

from .inference.backend import BackendChoice, InferenceBackend
from .model_contract import ModelFile, ModelFileError

EXPORT_COMMAND = "make export MODEL={model} EXPORT_DIR=DIR"


def load_keras_model_backend(
    model: ModelFile, choice: BackendChoice, onnx_cache_dir: Path, threads: int
) -> InferenceBackend:
    """The backend for a `.keras` file: its verified ONNX conversion, or TensorFlow."""
    try:
        from keras_export.keras_model import keras_backend
    except ImportError as error:
        command = EXPORT_COMMAND.format(model=model.path)
        raise ModelFileError(
            f"serving the .keras file {model.path} needs TensorFlow and the keras_export package "
            f"of the full install ({error}); this install serves exported models: export it with "
            f"`{command}` (python -m keras_export) in the full install and serve the .onnx file"
        ) from None
    backend: InferenceBackend = keras_backend(model, choice, onnx_cache_dir, threads)
    return backend
