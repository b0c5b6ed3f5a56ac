"""`python -m bench`: benchmark the real server against the floor and a naive baseline.

1. In-process: load the model, pick the serving backend exactly as the server does, check its
   scores against TensorFlow, time the floor (decode + forward pass) and the naive baseline.
2. Start the real server with that backend and a local image server, warm it up, then drive
   each workload over real HTTP (base64 and URL instances) and watch the server's RSS; then
   health checks and a 1-image request beside a 50-image one (interference.py).
3. A soak of `--soak-requests` more requests shows whether RSS drifts.
Results: a table on stdout, and JSON + markdown under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from model_server.logo_detection.cpu_quota import effective_cpu_count
from model_server.logo_detection.settings import Settings

from . import images, interference, report
from .harness.image_server import ImageServer
from .harness.server_process import ServerProcess
from .load import LoadResult, predict_body, run_load
from .memory import RssMonitor

RESULTS_DIR = Path(__file__).resolve().parent / "results"
STARTED = time.monotonic()


def progress(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f} s] {message}", flush=True)


@dataclass(frozen=True)
class Workload:
    kind: str  # image size class, see images.SIZES
    per_request: int
    concurrency: int
    source: str  # "base64" or "url"
    requests: int

    @property
    def name(self) -> str:
        shape = "50 in 1 request" if self.per_request == 50 else "1/request"
        return f"{self.kind}, {shape}, c={self.concurrency}, {self.source}"


def workloads(quick: bool) -> list[Workload]:
    n = (lambda full, small: small) if quick else (lambda full, small: full)
    return [
        Workload("1024px", 1, 1, "base64", n(40, 3)),
        Workload("1024px", 1, 1, "url", n(40, 3)),
        Workload("thumbnail", 1, 1, "base64", n(40, 3)),
        Workload("12MP", 1, 1, "base64", n(15, 2)),
        Workload("1024px", 1, 10, "base64", n(300, 10)),
        Workload("1024px", 1, 20, "base64", n(400, 20)),
        Workload("1024px", 1, 20, "url", n(300, 20)),
        Workload("1024px", 50, 1, "base64", n(10, 1)),
        Workload("1024px", 50, 1, "url", n(6, 1)),
    ]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (a smoke test)")
    parser.add_argument(
        "--soak-requests", type=int, default=None, help="requests for the RSS drift (1000)"
    )
    parser.add_argument("--backend", choices=["auto", "tensorflow", "onnx"], default=None)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra server setting, e.g. --set BATCH_MAX_WAIT_MS=2 (repeatable)",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("model_server").setLevel(logging.INFO)
    settings = Settings()
    cpu_count = effective_cpu_count(settings.cpu_threads)
    from keras_export.keras_model import (
        TensorFlowBackend,
        configure_threads,
        load_model,
        select_backend,
    )

    configure_threads(cpu_count)

    from . import floor

    quick = args.quick
    soak_requests = (
        args.soak_requests if args.soak_requests is not None else (20 if quick else 1000)
    )
    result: dict = {"machine": report.machine(), "quick": quick}
    progress(f"Machine: {result['machine']}")

    # The raw-model floor and the naive baseline run the Keras model: the `.keras` file that an
    # exported `.onnx` (the default model path) was made from, or MODEL_PATH if it is one.
    keras_file = settings.model_path.with_suffix(".keras")
    loaded = load_model(keras_file, settings.class_names)
    reference = TensorFlowBackend(loaded.keras_model)
    backend = select_backend(
        args.backend or settings.inference_backend,
        loaded.keras_model,
        loaded.path,
        settings.onnx_cache_dir,
        threads=cpu_count,
        sha256=loaded.sha256,
    )
    result["backend"] = backend.name

    progress("Generating images ...")
    corpus = images.corpus()
    batch = images.variants("1024px", 50)
    singles = {
        "1024px": batch,
        "thumbnail": images.variants("thumbnail", 10),
        "12MP": [corpus["12MP"], *images.variants("12MP", 1)],
    }

    progress("Parity, floor and naive baseline (in-process) ...")
    diff, count = floor.parity(backend, reference, [*corpus.values(), *batch])
    result["parity"] = {"max_abs_diff": diff, "images": count, "reference": "tensorflow"}
    reps_single, reps_batch, reps_naive = (2, 1, 1) if quick else (15, 5, 3)
    floor_ms = {
        kind: floor.floor_s(backend, [data], reps_single) * 1000 for kind, data in corpus.items()
    }
    floor_ms["50 x 1024px"] = floor.floor_s(backend, batch, reps_batch, 0 if quick else 1) * 1000
    naive_ms = {
        kind: floor.naive_s(loaded.keras_model, [data], reps_naive, 0 if quick else 1) * 1000
        for kind, data in corpus.items()
    }
    naive_ms["50 x 1024px"] = floor.naive_s(loaded.keras_model, batch, reps_naive, 0) * 1000
    forward_ms = {
        b.name: [
            floor.forward_s(b, size, reps_batch if size > 1 else reps_single) * 1000
            for size in (1, 50)
        ]
        for b in {reference.name: reference, backend.name: backend}.values()
    }
    result.update(floor_ms=floor_ms, naive_ms=naive_ms, forward_ms=forward_ms)
    progress(f"floor ms {floor_ms}\nnaive ms {naive_ms}\nforward ms {forward_ms}")
    del reference, backend, loaded
    gc.collect()

    image_server = ImageServer().start()
    urls = {
        kind: [image_server.add_file(f"{kind}/{i}.jpg", data) for i, data in enumerate(datas)]
        for kind, datas in singles.items()
    }
    server_env = {
        "inference_backend": result["backend"],
        "onnx_cache_dir": settings.onnx_cache_dir,
        "enable_grpc": "false",
        "fetch_allowed_schemes": "http",
        "fetch_allowed_hosts": "127.0.0.1",
        "fetch_allowed_ports": str(image_server.port),
        "fetch_allow_loopback": "true",
        **dict(item.split("=", 1) for item in args.set),
    }
    result["server_settings"] = {key: str(value) for key, value in server_env.items()}
    progress(f"Starting the server ({result['backend']}) ...")
    try:
        with ServerProcess(settings.model_path, **server_env) as server:
            asyncio.run(
                drive(server, workloads(quick), singles, urls, soak_requests, quick, result)
            )
            errors = result["memory"]["soak_errors"] + sum(r["errors"] for r in result["rows"])
            if errors or server.process.poll() is not None:
                progress(f"{errors} errors; the server's log ends:\n{server.log()[-4000:]}")
    finally:
        image_server.stop()

    for row in result["rows"]:
        work = "50 x 1024px" if row["per_request"] == 50 else row["kind"]
        row["floor_ms"] = floor_ms[work]
        row["naive_ms"] = naive_ms[work]
        row["x_floor"] = row["p50_ms"] / floor_ms[work]
        # the floor's best throughput for this work: one image at a time, or batches of 50
        best = "50 x 1024px" if row["concurrency"] > 1 and row["kind"] == "1024px" else work
        floor_images_per_s = (50 if best == "50 x 1024px" else 1) * 1000 / floor_ms[best]
        row["of_floor_images_per_s"] = row["images_per_s"] / floor_images_per_s
        if row["concurrency"] == 1:
            row["x_naive"] = naive_ms[work] / row["p50_ms"]
        else:  # under load compare throughput: the naive pipeline serves one request at a time
            row["x_naive"] = row["images_per_s"] / (row["per_request"] / naive_ms[work] * 1000)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["targets"] = report.targets(result)
    json_path, md_path = report.write(result, args.out)
    print("\n" + report.markdown(result))
    print(f"Written {json_path} and {md_path}")
    return 0


async def drive(
    server: ServerProcess,
    plan: list[Workload],
    singles: dict[str, list[bytes]],
    urls: dict[str, list[str]],
    soak_requests: int,
    quick: bool,
    result: dict,
) -> None:
    """Warm up, run every workload, then the soak; fills result['rows'] and ['memory']."""

    def bodies(work: Workload) -> list[bytes]:
        if work.per_request == 50:
            if work.source == "url":
                return [predict_body(urls=urls[work.kind][:50])]
            return [predict_body(images=singles[work.kind][:50])]
        if work.source == "url":
            return [predict_body(urls=[url]) for url in urls[work.kind]]
        return [predict_body(images=[data]) for data in singles[work.kind]]

    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=600)
    rows = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        url = server.predict_url
        with RssMonitor(server.process.pid) as monitor:
            for work in plan:  # warm-up: every kind of request, at its concurrency
                count = 1 if quick else work.concurrency
                await run_load(session, url, bodies(work), work.per_request, count, count)
            rss_warm = monitor.rss()
            for work in plan:
                progress(f"  {work.name}: {work.requests} requests ...")
                outcome = await run_load(
                    session, url, bodies(work), work.per_request, work.requests, work.concurrency
                )
                rows.append(row_summary(work, outcome))
            progress("  beside a 50-image request: health checks and a 1-image request ...")
            result["interference"] = await interference.measure(
                session,
                server.url,
                url,
                predict_body(images=singles["1024px"][:50]),
                predict_body(images=singles["1024px"][:1]),
                rounds=2 if quick else 10,
            )
            progress(f"  soak: {soak_requests} requests ...")
            soak_bodies = bodies(Workload("1024px", 1, 10, "base64", soak_requests))
            soak = await run_load(session, url, soak_bodies, 1, soak_requests, 10)
            if soak.first_error:
                progress(f"    first error: {soak.first_error}")
            rss_end = monitor.rss()
            peak = monitor.peak()
    result["rows"] = rows
    result["memory"] = {
        "rss_after_warm_up_bytes": rss_warm,
        "rss_after_soak_bytes": rss_end,
        "peak_rss_bytes": peak,
        "soak_requests": soak_requests,
        "soak_errors": soak.errors,
        "soak_images_per_s": soak.images_per_s,
        "rss_drift": rss_end / rss_warm - 1 if rss_warm else 0.0,
    }


def row_summary(work: Workload, outcome: LoadResult) -> dict:
    if outcome.first_error:
        progress(f"    first error: {outcome.first_error}")
    return {
        "name": work.name,
        "kind": work.kind,
        "per_request": work.per_request,
        "concurrency": work.concurrency,
        "source": work.source,
        "requests": work.requests,
        "errors": outcome.errors,
        "p50_ms": outcome.percentile_ms(50),
        "p95_ms": outcome.percentile_ms(95),
        "p99_ms": outcome.percentile_ms(99),
        "images_per_s": outcome.images_per_s,
        "wall_s": outcome.wall_s,
    }


if __name__ == "__main__":
    raise SystemExit(main())
