"""`python -m bench.container`: what the production image costs to ship and to run.

For each image given (the current one and, optionally, a baseline): its size, the time from
`docker run` to ready (median of --starts), the server's RSS once ready and after a warm-up
request (50 x 1024 px), and its peak RSS during one request of 50 x 12-megapixel JPEGs and one
of 6 JPEGs at the pixel limit (100 MP), all fetched from a local image server. RSS is read from
/proc on the host for the container's server process; the peak is the kernel's high-water
mark, reset (clear_refs) before each big request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import aiohttp
from PIL import Image

from . import images
from .harness.container import Container, docker
from .harness.image_server import ImageServer

MIB = 1024 * 1024


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a host process, in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def server_pid(container: Container) -> int:
    return int(docker("inspect", "--format", "{{.State.Pid}}", container.name).strip())


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


async def predict(url: str, instances: list[dict]) -> float:
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=600)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.post(url, json={"instances": instances}) as answer,
    ):
        body = await answer.json()
    assert answer.status == 200, body
    errors = [p for p in body["predictions"] if "error" in p]
    assert not errors, errors[:3]
    return time.monotonic() - started


def measure(
    image: str,
    starts: int,
    image_server: ImageServer,
    warm_up: list[dict],
    big: list[dict],
    huge: list[dict],
    volumes: dict[Path, str],
    read_only: bool,
) -> dict:
    size = json.loads(docker("image", "inspect", image))[0]["Size"]
    fetch = {
        "fetch_allowed_schemes": "http",
        "fetch_allowed_hosts": "127.0.0.1",
        "fetch_allowed_ports": str(image_server.port),
        "fetch_allow_loopback": "true",
    }
    ready_s = []
    for _ in range(starts):
        container = Container(image, volumes=volumes, read_only=read_only, **fetch)
        started = time.monotonic()
        with container:
            ready_s.append(time.monotonic() - started)
            pid = server_pid(container)
            rss_ready = proc_status(pid)["VmRSS"]
            peak_start = proc_status(pid)["VmHWM"]
            warm_up_s = asyncio.run(predict(container.predict_url, warm_up))
            rss_warm = proc_status(pid)["VmRSS"]
            reset_peak(pid)
            big_s = asyncio.run(predict(container.predict_url, big))
            peak_big = proc_status(pid)["VmHWM"]
            reset_peak(pid)
            huge_s = asyncio.run(predict(container.predict_url, huge))
            peak_huge = proc_status(pid)["VmHWM"]
    return {
        "image": image,
        "size_bytes": size,
        "ready_s": ready_s,
        "ready_s_median": statistics.median(ready_s),
        "rss_ready_mib": rss_ready / MIB,
        "peak_rss_start_mib": peak_start / MIB,
        "rss_after_warm_up_mib": rss_warm / MIB,
        "peak_rss_50x12mp_mib": peak_big / MIB,
        "peak_rss_6x100mp_mib": peak_huge / MIB,
        "warm_up_request_s": warm_up_s,
        "request_50x12mp_s": big_s,
        "request_6x100mp_s": huge_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.container", description=__doc__)
    parser.add_argument("--image", default="logo-detection:latest")
    parser.add_argument("--baseline", help="an earlier image, e.g. the TensorFlow one")
    parser.add_argument(
        "--baseline-model", type=Path, help="directory mounted at /mnt/models for the baseline"
    )
    parser.add_argument("--starts", type=int, default=3, help="container starts per image")
    parser.add_argument("--out", type=Path, help="write the results as JSON here too")
    args = parser.parse_args()

    print("Generating images ...", flush=True)
    image_server = ImageServer().start()
    twelve_mp = images.variants("12MP", 10)
    big = [
        {"filename": f"{i}.jpg", "target": "logo", "url": image_server.add_file(f"{i}.jpg", data)}
        for i, data in enumerate(twelve_mp * 5)
    ]
    pixel_limit = images.jpeg(Image.radial_gradient("L").resize((10_000, 10_000)).convert("RGB"))
    huge_url = image_server.add_file("pixel-limit.jpg", pixel_limit)
    huge = [{"filename": f"h{i}.jpg", "target": "logo", "url": huge_url} for i in range(6)]
    warm_up = [
        {"filename": f"w{i}.jpg", "target": "logo", "url": image_server.add_file(f"w{i}.jpg", d)}
        for i, d in enumerate(images.variants("1024px", 50))
    ]
    runs = [(args.image, {}, True)]
    if args.baseline:
        volumes = {args.baseline_model.resolve(): "/mnt/models"} if args.baseline_model else {}
        runs.insert(0, (args.baseline, volumes, False))  # it writes its ONNX cache to $HOME
    results = []
    try:
        for image, volumes, read_only in runs:
            print(f"Measuring {image} ...", flush=True)
            results.append(
                measure(image, args.starts, image_server, warm_up, big, huge, volumes, read_only)
            )
            print(json.dumps(results[-1], indent=2), flush=True)
    finally:
        image_server.stop()
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
