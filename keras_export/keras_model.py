"""Serving a `.keras` file directly (full install): load it, run it with TensorFlow (the
reference backend), and prefer its verified ONNX conversion where that is faster."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

if TYPE_CHECKING:
    import keras

from model_server.logo_detection.inference.backend import BackendChoice, InferenceBackend
from model_server.logo_detection.inference.onnx_backend import OnnxRuntimeBackend
from model_server.logo_detection.model_contract import ModelFile, ModelFileError, describe_model

from .keras_file import read_keras_file
from .onnx_conversion import INPUT_SPEC, cached_onnx_file
from .parity import PARITY_TOLERANCE, fastest, max_score_difference, parity_batches

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    keras_model: object  # keras.Model
    path: Path
    class_names: tuple[str, ...]
    metadata: dict[str, Any]
    sha256: str  # of the file, as describe_model read it


def configure_threads(cpu_count: int) -> None:
    """Size TensorFlow's pools to the CPU quota, before TensorFlow runs anything."""
    tf.config.threading.set_intra_op_parallelism_threads(cpu_count)
    tf.config.threading.set_inter_op_parallelism_threads(min(2, cpu_count))


def load_keras_model(model: ModelFile) -> keras.Model:
    """The Keras model in the file, refused unless it outputs one score per class."""
    try:
        keras_model = read_keras_file(model.path)
    except Exception as error:
        raise ModelFileError(f"cannot load model {model.path}: {error}") from error
    output_shape = tuple(keras_model.output_shape)
    if len(output_shape) != 2 or output_shape[1] != len(model.class_names):
        raise ModelFileError(
            f"model {model.path} outputs shape {output_shape}; the server needs (N, 2) "
            "softmax scores"
        )
    logger.info("Loaded %s, classes %s", model.path, list(model.class_names))
    return keras_model


def load_model(model_path: Path, configured_class_names: tuple[str, ...] = ()) -> LoadedModel:
    """A `.keras` file (or a directory holding one) with its class order, for tools and tests."""
    model = describe_model(model_path, configured_class_names)
    if model.is_onnx:
        raise ModelFileError(f"{model.path} is an exported ONNX model, not a .keras file")
    return LoadedModel(
        load_keras_model(model), model.path, model.class_names, model.metadata, model.sha256
    )


class TensorFlowBackend:
    """The reference: the Keras model as one compiled graph, traced once for any batch size."""

    name = "tensorflow"

    def __init__(self, keras_model: keras.Model) -> None:
        self._forward = tf.function(
            lambda images: keras_model(images, training=False), input_signature=[INPUT_SPEC]
        )

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._forward(tf.convert_to_tensor(batch, tf.float32)).numpy())


def keras_backend(
    model: ModelFile, choice: BackendChoice, onnx_cache_dir: Path, threads: int
) -> InferenceBackend:
    """Load a `.keras` file; INFERENCE_BACKEND `tensorflow`, `onnx` if its conversion verifies,
    or `auto`: the fastest that does."""
    configure_threads(threads)
    keras_model = load_keras_model(model)
    return select_backend(
        choice, keras_model, model.path, onnx_cache_dir, threads, sha256=model.sha256
    )


def select_backend(
    choice: BackendChoice,
    keras_model: keras.Model,
    model_file: Path,
    onnx_cache_dir: Path,
    threads: int,
    sha256: str | None = None,
) -> InferenceBackend:
    """INFERENCE_BACKEND: `tensorflow`; `onnx` if it verifies; `auto`: the fastest that does.
    `sha256` is the file's hash if already known (the conversion cache is keyed by it)."""
    reference = TensorFlowBackend(keras_model)
    if choice == "tensorflow":
        return reference
    candidate = verified_onnx_backend(
        reference, keras_model, model_file, onnx_cache_dir, threads, sha256
    )
    if candidate is None:
        return reference
    if choice == "onnx":
        return candidate
    return fastest([reference, candidate])


def verified_onnx_backend(
    reference: InferenceBackend,
    keras_model: keras.Model,
    model_file: Path,
    onnx_cache_dir: Path,
    threads: int,
    sha256: str | None = None,
) -> InferenceBackend | None:
    """The ONNX Runtime backend if it converts, loads and matches the reference; else None."""
    try:
        onnx_file, from_cache = cached_onnx_file(keras_model, model_file, onnx_cache_dir, sha256)
        candidate = OnnxRuntimeBackend(onnx_file, threads)
        difference = max_score_difference(candidate, reference, parity_batches())
    except Exception as error:  # conversion or runtime failure: TensorFlow still serves
        logger.warning("ONNX backend unavailable, serving with TensorFlow: %s", error)
        return None
    if difference > PARITY_TOLERANCE:
        logger.warning(
            "ONNX backend refused, serving with TensorFlow: its scores differ from TensorFlow's "
            "by %.3g (tolerance %g) on the parity inputs (%s)",
            difference,
            PARITY_TOLERANCE,
            onnx_file,
        )
        if from_cache:  # a stale or corrupt cache entry: let the next start convert afresh
            with contextlib.suppress(OSError):
                onnx_file.unlink(missing_ok=True)
        return None
    logger.info("ONNX backend matches TensorFlow (max score difference %.3g)", difference)
    return candidate
