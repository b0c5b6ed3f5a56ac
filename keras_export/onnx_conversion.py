"""Keras -> ONNX conversion (tf2onnx through Keras' own export), and the conversion cache used
when the full install serves a `.keras` file directly.

Conversion works offline and takes tens of seconds, so a server that serves a `.keras` file
caches the result as `<sha256 of .keras>.<converter>.onnx` in ONNX_CACHE_DIR; a read-only or
missing cache directory only costs the conversion at each start. Whether the result may serve is
decided by a parity check against TensorFlow, never assumed. The production image never converts:
it serves what `export.py` wrote once.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import tensorflow as tf

if TYPE_CHECKING:
    import keras

from model_server.logo_detection.model_contract import INPUT_SIZE, file_sha256

logger = logging.getLogger(__name__)

INPUT_NAME = "images"
# The model's input, (N, 224, 224, 3) float32 pixels: the ONNX graph's input (named) and the
# signature the TensorFlow reference backend traces.
INPUT_SPEC = tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, 3], tf.float32, name=INPUT_NAME)
# Part of the cache key: a different converter may produce a different graph.
CONVERTER = f"keras{version('keras')}-tf2onnx{version('tf2onnx')}"


def cache_path(cache_dir: Path, model_file: Path, sha256: str | None = None) -> Path:
    """The cache slot for this file's conversion; the server passes the hash `describe_model`
    took at start (`ModelFile.sha256`) so the file is read once, tools may leave it out."""
    return cache_dir / f"{sha256 or file_sha256(model_file)}.{CONVERTER}.onnx"


def export_onnx(keras_model: keras.Model, destination: Path) -> None:
    """Keras' ONNX export with a dynamic batch; written atomically so readers never see half."""
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=destination.parent, suffix=".onnx.part")
    os.close(fd)
    try:
        with warnings.catch_warnings():  # tf2onnx's own NumPy deprecation notices
            warnings.simplefilter("ignore", FutureWarning)
            keras_model.export(partial, format="onnx", input_signature=[INPUT_SPEC], verbose=False)
        os.chmod(partial, 0o644)  # mkstemp's 0600 would hide it from a non-root server
        os.replace(partial, destination)
    finally:
        Path(partial).unlink(missing_ok=True)


def cached_onnx_file(
    keras_model: keras.Model, model_file: Path, cache_dir: Path, sha256: str | None = None
) -> tuple[Path, bool]:
    """The converted model for this exact .keras file, and whether it came from the cache."""
    try:
        target = cache_path(cache_dir, model_file, sha256)
        if target.is_file():
            logger.info("ONNX model from cache: %s", target)
            return target, True
        started = time.perf_counter()
        export_onnx(keras_model, target)
    except OSError as error:  # read-only or full cache dir: convert into a temp dir instead
        logger.warning("ONNX cache %s unusable (%s); converting without caching", cache_dir, error)
        target = Path(tempfile.mkdtemp(prefix="logo-detection-onnx-")) / "model.onnx"
        started = time.perf_counter()
        export_onnx(keras_model, target)
    logger.info("Converted the model to ONNX in %.1f s: %s", time.perf_counter() - started, target)
    return target, False
