"""Entry point: `python -m model_server.logo_detection` (also the container's entrypoint)."""

from __future__ import annotations

import logging
import os
import sys

from . import request_ids
from .cpu_quota import effective_cpu_count
from .settings import Settings

logger = logging.getLogger("logo_detection")


def configure_threads(cpu_count: int) -> None:
    """Size TensorFlow's and OpenMP's pools to the CPU quota before TensorFlow starts."""
    os.environ.setdefault("OMP_NUM_THREADS", str(cpu_count))
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(cpu_count)
    tf.config.threading.set_inter_op_parallelism_threads(min(2, cpu_count))


def main() -> int:
    settings = Settings()
    request_ids.tag_log_records()
    logging.basicConfig(level=logging.INFO, format=request_ids.LOG_FORMAT)
    cpu_count = effective_cpu_count(settings.cpu_threads)
    configure_threads(cpu_count)

    import kserve
    from kserve.model_server import app

    from . import http_limits, metrics
    from .batching import MicroBatcher
    from .inference import select_backend, warm_up
    from .model_file import ModelFileError, load_model
    from .predictor import LogoDetectionModel
    from .preprocess import warm_up_decoding

    try:
        loaded = load_model(settings.model_path, settings.class_names)
    except ModelFileError as error:
        logger.error("Cannot start: %s", error)
        return 2
    backend = select_backend(
        settings.inference_backend,
        loaded.keras_model,
        loaded.path,
        settings.onnx_cache_dir,
        threads=cpu_count,
    )
    warm_up(backend, settings.max_batch_size)
    warm_up_decoding()
    batcher = MicroBatcher(backend, settings.max_batch_size, settings.batch_max_wait_ms / 1000)
    model = LogoDetectionModel(settings, loaded, batcher, decode_threads=cpu_count)
    http_limits.install(app, settings.max_request_bytes)
    app.add_middleware(metrics.RefusedRequestCounter)
    app.add_middleware(request_ids.RequestIdMiddleware)  # wraps ours: every line has the id
    logger.info(
        "Serving %s from %s on port %d (%d CPU threads, backend %s)",
        settings.model_name,
        loaded.path,
        settings.http_port,
        cpu_count,
        backend.name,
    )
    kserve.ModelServer(
        http_port=settings.http_port,
        grpc_port=settings.grpc_port,
        enable_grpc=settings.enable_grpc,
        grace_period=settings.shutdown_grace_period_s,
    ).start([model])
    return 0


if __name__ == "__main__":
    sys.exit(main())
