"""Entry point: `python -m model_server.logo_detection` (also the container's entrypoint)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from pydantic import ValidationError

from . import request_ids
from .command_line import parse_command_line
from .cpu_quota import effective_cpu_count
from .settings import Settings

logger = logging.getLogger("logo_detection")


def quiet_per_request_logs(latency_logging: bool) -> None:
    """One log line per request: uvicorn's access log. KServe 0.21 answers every request with
    FastAPI's ORJSONResponse, which FastAPI 0.165 deprecates with a warning on each use; the
    class still works and orjson is what serializes the scores, so that one warning is muted.
    KServe's timing lines (logger kserve.trace) come back with --enable_latency_logging true."""
    from fastapi.exceptions import FastAPIDeprecationWarning

    warnings.filterwarnings(
        "ignore", message="ORJSONResponse is deprecated", category=FastAPIDeprecationWarning
    )
    if not latency_logging:
        logging.getLogger("kserve.trace").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    flags, overrides = parse_command_line(sys.argv[1:] if argv is None else argv)
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        print(f"error: invalid setting: {error}", file=sys.stderr)
        return 2
    request_ids.tag_log_records()
    logging.basicConfig(level=logging.INFO, format=request_ids.LOG_FORMAT)
    cpu_count = effective_cpu_count(settings.cpu_threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(cpu_count))  # before any runtime starts

    import kserve
    from kserve.model_server import app
    from PIL import Image

    from . import http_limits, metrics
    from .model import LogoDetectionModel
    from .model_contract import ModelFileError
    from .readiness import report_models_in_server_readiness

    # Decoding refuses an image over MAX_IMAGE_PIXELS from its header, before any pixel is
    # decoded, in every format. Pillow's process-wide guard (a fixed ~89 MP, an error past twice
    # that, some formats checked only at load) would refuse, differently, images that budget
    # admits; the server owns its process and turns it off once, here, so its budget alone
    # decides, as before. Importing decoding leaves Pillow's guard to the importer (training).
    Image.MAX_IMAGE_PIXELS = None
    model = LogoDetectionModel(settings, threads=cpu_count)
    try:
        model.load()  # the model file, its warmed-up backend and the batcher: then ready
    except ModelFileError as error:
        logger.error("Cannot start: %s", error)
        return 2
    http_limits.install(app, settings.max_request_bytes)
    app.add_middleware(metrics.RefusedRequestCounter)
    app.add_middleware(request_ids.RequestIdMiddleware)  # wraps ours: every line has the id
    assert model.model_file is not None and model.batcher is not None  # loaded
    logger.info(
        "Serving %s version %s from %s on port %d (%d CPU threads, backend %s)",
        settings.model_name,
        model.model_file.version,
        model.model_file.path,
        settings.http_port,
        cpu_count,
        model.batcher.backend.name,
    )
    server = kserve.ModelServer(
        http_port=settings.http_port,
        grpc_port=settings.grpc_port,
        enable_grpc=settings.enable_grpc,
        grace_period=settings.shutdown_grace_period_s,
        **kserve_server_flags(flags),
    )
    report_models_in_server_readiness(server)
    quiet_per_request_logs(flags.enable_latency_logging)  # after KServe configures logging
    server.start([model])
    return 0


def kserve_server_flags(flags: argparse.Namespace) -> dict[str, object]:
    """KServe's own ModelServer flags, passed through as KServe's servers do."""
    names = (
        "max_threads",
        "max_asyncio_workers",
        "enable_docs_url",
        "enable_latency_logging",
        "access_log_format",
        "event_loop",
        "timeout_keep_alive",
        "ssl_certfile",
        "ssl_keyfile",
    )
    return {name: getattr(flags, name) for name in names}


if __name__ == "__main__":
    sys.exit(main())
