"""ONNX Runtime backend: the same Keras graph, converted once and cached by the model's hash.

ONNX Runtime runs EfficientNetV2-B0 on CPU 1.4-3.5x faster than TensorFlow's graph executor
(see the README's Performance section). Conversion uses Keras' own ONNX export (tf2onnx), works
offline, and takes tens of seconds, so its result is cached as `<sha256 of .keras>.onnx` in
ONNX_CACHE_DIR; a read-only or missing cache directory only costs the conversion at each start.
Whether the result may serve is decided by `inference.verify`, never assumed.

Ahead of time (e.g. in a container build): `python -m model_server.logo_detection.onnx_backend
MODEL_PATH [CACHE_DIR]` fills the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

INPUT_NAME = "images"
# Part of the cache key: a different converter may produce a different graph.
CONVERTER = f"keras{version('keras')}-tf2onnx{version('tf2onnx')}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_path(cache_dir: Path, model_file: Path) -> Path:
    return cache_dir / f"{file_sha256(model_file)}.{CONVERTER}.onnx"


def export_onnx(keras_model, destination: Path) -> None:
    """Keras' ONNX export with a dynamic batch; written atomically so readers never see half."""
    import tensorflow as tf

    from .architecture import INPUT_SIZE

    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    spec = tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, 3], tf.float32, name=INPUT_NAME)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=destination.parent, suffix=".onnx.part")
    os.close(fd)
    try:
        keras_model.export(partial, format="onnx", input_signature=[spec], verbose=False)
        os.replace(partial, destination)
    finally:
        Path(partial).unlink(missing_ok=True)


def cached_onnx_file(keras_model, model_file: Path, cache_dir: Path) -> tuple[Path, bool]:
    """The converted model for this exact .keras file, and whether it came from the cache."""
    try:
        target = cache_path(cache_dir, model_file)
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
        return self._session.run(None, {self._input: batch})[0]


def main(argv: list[str]) -> int:
    """Fill the cache ahead of time: `python -m ...onnx_backend MODEL_PATH [CACHE_DIR]`."""
    from .model_file import load_model
    from .settings import Settings

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not 1 <= len(argv) <= 2:
        print(main.__doc__, file=sys.stderr)
        return 2
    cache_dir = Path(argv[1]) if len(argv) == 2 else Settings().onnx_cache_dir
    loaded = load_model(Path(argv[0]))
    path, _ = cached_onnx_file(loaded.keras_model, loaded.path, cache_dir)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
