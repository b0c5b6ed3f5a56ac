"""Operability: /metrics moves by exactly what real requests did; request ids reach the logs;
the Grafana dashboard and the metrics table in docs/monitoring.md name only metrics the server
exports."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bench.harness.image_server import ImageServer
from bench.harness.server_process import REPO_ROOT, ServerProcess
from model_server.logo_detection.errors import ErrorType

from .conftest import instance, loopback_fetch_settings
from .hostile_support import png

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "logo-detection.json"
MAX_REQUEST_BYTES = 64 * 1024
MAX_IMAGE_PIXELS = 1_000_000
QUEUE_WAIT_S = 0.5  # how long a request refused with 503 waits first (not a timing assumption)

Samples = dict[tuple[str, frozenset], float]


@pytest.fixture(scope="module")
def metered(image_server: ImageServer) -> Iterator[ServerProcess]:
    """A server of its own, so no other test's requests move its counters: one image in
    flight at a time (a held fetch makes the next request 503), small request and pixel limits."""
    with ServerProcess(
        max_images_in_flight=1,
        max_queue_wait_s=QUEUE_WAIT_S,
        max_request_bytes=MAX_REQUEST_BYTES,
        max_image_pixels=MAX_IMAGE_PIXELS,
        **loopback_fetch_settings(image_server),
    ) as server:
        yield server


async def scrape(http: aiohttp.ClientSession, server: ServerProcess) -> Samples:
    async with http.get(f"{server.url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def moved(before: Samples, after: Samples, prefix: str = "logo_detection_") -> dict[str, float]:
    """Samples of ours that changed: 'name{label=value,...}' -> delta (timestamps left out)."""
    deltas = {}
    for key, value in after.items():
        name, labels = key
        if name.startswith(prefix) and not name.endswith("_created"):
            delta = value - before.get(key, 0.0)
            if delta:
                label_text = ",".join(f"{k}={v}" for k, v in sorted(labels))
                deltas[f"{name}{{{label_text}}}" if labels else name] = delta
    return deltas


def exported_names(samples: Samples) -> set[str]:
    return {name for name, _labels in samples}


async def predict(
    http: aiohttp.ClientSession, server: ServerProcess, body: object, request_id: str = ""
) -> tuple[int, dict, str]:
    """(status, JSON body, the X-Request-Id the server answered with)."""
    headers = {"X-Request-Id": request_id} if request_id else {}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers["Content-Type"] = "application/json"
    async with http.post(server.predict_url, data=data, headers=headers) as response:
        return (
            response.status,
            await response.json(content_type=None),
            response.headers.get("X-Request-Id", ""),
        )


def one_of_each_outcome(image_server: ImageServer, samples: dict[str, bytes]) -> list[dict]:
    """Seven instances: scored by base64 and by URL, then each per-image error type once."""
    logo = samples["Cambia_logo.png"]
    return [
        instance("scored.png", data=logo),
        instance("fetched.png", url=image_server.add_file("metrics/logo.png", logo, "image/png")),
        instance("elsewhere.png", url="http://example.org/logo.png"),  # host not allowed
        instance("missing.png", url=image_server.url("metrics/no-such-file.png")),  # 404
        instance("huge.png", data=png((1001, 1000))),  # over MAX_IMAGE_PIXELS
        instance("notes.txt", data=b"just some text, not an image"),
        instance("cut.png", data=logo[:200]),  # the PNG cut short
    ]


async def test_one_request_moves_each_outcome_and_stage_by_exactly_its_images(
    http, metered, image_server, samples
):
    before = await scrape(http, metered)
    # every input kind x outcome series exists before it first moves, internal_error included
    outcomes = {"scored", *(e.value for e in ErrorType if e is not ErrorType.OVERLOADED)}
    for kind in ("url", "image"):
        for outcome in outcomes:
            labels = frozenset({"input": kind, "outcome": outcome}.items())
            assert ("logo_detection_images_total", labels) in before, (kind, outcome)
    body = {"instances": one_of_each_outcome(image_server, samples), "debug": True}
    status, answer, _ = await predict(http, metered, body)
    assert status == 200, answer
    types = [r.get("error", {}).get("type", "scored") for r in answer["predictions"]]
    assert types == [
        "scored",
        "scored",
        "url_not_allowed",
        "fetch_failed",
        "too_large",
        "unsupported_format",
        "decode_failed",
    ]
    after = await scrape(http, metered)
    passes = answer["latency"]["passes"]
    assert passes in (1, 2), answer["latency"]
    assert moved(before, after) == {
        "logo_detection_images_total{input=image,outcome=scored}": 1,
        "logo_detection_images_total{input=url,outcome=scored}": 1,
        "logo_detection_images_total{input=url,outcome=url_not_allowed}": 1,
        "logo_detection_images_total{input=url,outcome=fetch_failed}": 1,
        "logo_detection_images_total{input=image,outcome=too_large}": 1,
        "logo_detection_images_total{input=image,outcome=unsupported_format}": 1,
        "logo_detection_images_total{input=image,outcome=decode_failed}": 1,
        # one request of 7 images
        **histogram_moved("logo_detection_request_images", before, after, count=1, total=7),
        **histogram_moved("logo_detection_predict_seconds", before, after, count=1),
        **histogram_moved("logo_detection_admission_wait_seconds", before, after, count=1),
        # one fetch succeeded; the refused and the 404 ones are counted as errors only
        **histogram_moved("logo_detection_fetch_seconds", before, after, count=1),
        "logo_detection_fetched_bytes_total": len(samples["Cambia_logo.png"]),
        # two images decoded, waited for and rode in the passes the response reports
        **histogram_moved("logo_detection_decode_seconds", before, after, count=2),
        **histogram_moved("logo_detection_batch_wait_seconds", before, after, count=2),
        **histogram_moved("logo_detection_forward_pass_seconds", before, after, count=passes),
        **histogram_moved(
            "logo_detection_forward_pass_images", before, after, count=passes, total=2
        ),
    }
    assert after[("logo_detection_images_in_flight", frozenset())] == 0
    assert after[("logo_detection_images_waiting_for_pass", frozenset())] == 0


def histogram_moved(
    name: str, before: Samples, after: Samples, count: int, total: float | None = None
) -> dict[str, float]:
    """The deltas a histogram shows after `count` observations (summing to `total` if given):
    _count and _sum, and each cumulative bucket by how many of them it holds."""
    deltas = moved(before, after, prefix=name)
    assert deltas.get(f"{name}_count") == count, deltas
    assert deltas.get(f"{name}_bucket{{le=+Inf}}") == count, deltas
    buckets = [delta for key, delta in deltas.items() if key.startswith(f"{name}_bucket")]
    assert all(0 < delta <= count for delta in buckets), deltas
    if total is not None:
        assert deltas.get(f"{name}_sum") == total, deltas
    assert deltas.get(f"{name}_sum", 0) > 0, deltas
    return deltas


async def test_refused_requests_are_counted_by_status_and_score_nothing(
    http, metered, image_server, samples
):
    """400 (unknown target), 413 (body over MAX_REQUEST_BYTES) and 503 (the one image slot held
    by a fetch that the test releases) each move only their own counter."""
    arrived, release = threading.Event(), threading.Event()

    async def held_until_released(_request: web.Request) -> web.Response:
        arrived.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 30)
        return web.Response(body=samples["Cambia_logo.png"], content_type="image/png")

    held_url = image_server.add_route("metrics/held.png", held_until_released)
    logo = instance("logo.png", data=samples["Cambia_logo.png"])
    before = await scrape(http, metered)

    status, _, _ = await predict(http, metered, {"instances": [{**logo, "target": "cat"}]})
    assert status == 400
    status, _, request_id = await predict(http, metered, b"x" * (MAX_REQUEST_BYTES + 1))
    assert status == 413 and request_id  # the id is on answers from every layer
    holder = asyncio.ensure_future(
        predict(http, metered, {"instances": [instance("held.png", url=held_url)]})
    )
    try:
        # the image server has the fetch, so the request holds the only image slot
        assert await asyncio.get_running_loop().run_in_executor(None, arrived.wait, 30)
        while_held = await scrape(http, metered)
        assert while_held[("logo_detection_images_in_flight", frozenset())] == 1
        status, answer, _ = await predict(http, metered, {"instances": [logo]})
        assert status == 503, answer
    finally:
        release.set()
    status, answer, _ = await holder
    assert status == 200 and "prediction" in answer["predictions"][0], answer
    after = await scrape(http, metered)

    deltas = moved(before, after)
    assert {key: delta for key, delta in deltas.items() if "refused" in key} == {
        "logo_detection_requests_refused_total{status=400}": 1,
        "logo_detection_requests_refused_total{status=413}": 1,
        "logo_detection_requests_refused_total{status=503}": 1,
    }
    # only the held request reached the images
    assert {key: delta for key, delta in deltas.items() if "images_total" in key} == {
        "logo_detection_images_total{input=url,outcome=scored}": 1
    }
    assert deltas["logo_detection_request_images_count"] == 1


async def test_request_ids_are_echoed_generated_and_on_each_log_line_about_the_request(
    http, metered, samples
):
    secret = b"GIF89a" + b"\x00" * 7 + b"secret-pixels-never-logged"
    body = {
        "instances": [
            instance("ok.png", data=samples["Cambia_logo.png"]),
            instance("bad.gif", data=secret),
            instance("elsewhere.png", url="http://example.org/logo.png"),
        ]
    }
    status, _, given = await predict(http, metered, body, request_id="upload-wizard-42")
    assert status == 200 and given == "upload-wizard-42"
    status, _, generated = await predict(http, metered, body)
    assert status == 200 and re.fullmatch(r"[0-9a-f]{32}", generated), generated
    status, _, replaced = await predict(http, metered, body, request_id="two words")
    assert status == 200 and replaced not in ("", "two words")
    assert len({given, generated, replaced}) == 3

    log = metered.log()
    for request_id in (given, generated, replaced):
        lines = [line for line in log.splitlines() if f"[{request_id}]" in line]
        # each failed image once, by index and type; the access line
        assert sum("instances[1] (image): decode_failed" in line for line in lines) == 1, lines
        assert sum("instances[2] (url): url_not_allowed" in line for line in lines) == 1, lines
        assert not any("instances[0]" in line for line in lines), lines
        assert any("uvicorn.access" in line and "POST" in line for line in lines), lines
    for leaked in (b"secret-pixels", base64.b64encode(secret)[:24], b"ok.png", b"bad.gif"):
        assert leaked.decode() not in log


# --- the dashboard and docs/monitoring.md describe what the server exports ----------------

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
PROMQL_WORDS |= {"and", "or", "unless", "inf", "nan"}


def metric_names(expression: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords,
    label names (inside {...} or by/without (...)), durations or Grafana variables."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)  # $__rate_interval, ${instance}
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if not call and word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def dashboard_expressions(dashboard: dict) -> list[str]:
    panels = list(dashboard["panels"])
    for panel in dashboard["panels"]:
        panels += panel.get("panels", [])  # inside collapsed rows
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def test_metric_names_are_found_in_promql():
    expression = (
        "histogram_quantile(0.99, sum by (le) (rate(logo_detection_fetch_seconds_bucket"
        '{instance=~"$instance", le!="+Inf"}[$__rate_interval]))) / on (job) group_left '
        "scalar(up offset 5m) + process_resident_memory_bytes"
    )
    assert metric_names(expression) == {
        "logo_detection_fetch_seconds_bucket",
        "up",
        "process_resident_memory_bytes",
    }


async def test_every_dashboard_expression_names_only_exported_metrics(http, metered):
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = dashboard_expressions(dashboard)
    assert len(expressions) >= 10
    exported = exported_names(await scrape(http, metered))
    used = set().union(*(metric_names(expression) for expression in expressions))
    for variable in dashboard["templating"]["list"]:  # label_values(metric, label) queries
        used |= set(re.findall(r"label_values\((\w+)", json.dumps(variable.get("query", ""))))
    assert used, expressions
    assert used <= exported, f"not exported by the server: {sorted(used - exported)}"
    # what an SRE opens it for: traffic, errors, refusals, every stage, batching, queue, memory
    for needed in (
        "logo_detection_images_total",
        "logo_detection_requests_refused_total",
        "logo_detection_fetch_seconds_bucket",
        "logo_detection_decode_seconds_bucket",
        "logo_detection_batch_wait_seconds_bucket",
        "logo_detection_forward_pass_seconds_bucket",
        "logo_detection_predict_seconds_bucket",
        "logo_detection_forward_pass_images_bucket",
        "logo_detection_images_in_flight",
        "logo_detection_images_waiting_for_pass",
        "process_resident_memory_bytes",
    ):
        assert needed in used, f"the dashboard does not show {needed}"


async def test_the_docs_table_lists_exactly_the_metrics_the_server_exports(http, metered):
    monitoring = (REPO_ROOT / "docs" / "monitoring.md").read_text()
    documented = set(re.findall(r"^\| `(logo_detection_\w+)` \|", monitoring, re.MULTILINE))
    families = set()
    async with http.get(f"{metered.url}/metrics") as response:
        for family in text_string_to_metric_families(await response.text()):
            if family.name.startswith("logo_detection_") and not family.name.endswith("_created"):
                suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
                families.add(family.name + suffix)
    assert documented == families


async def test_the_model_info_names_the_version_every_answer_names(http, metered, samples):
    """One model_info series, whose labels are the ones docs/monitoring.md and the dashboard's
    Model table name, and whose model_version is the one the predict answer carries."""
    status, answer, _ = await predict(
        http, metered, {"instances": [instance("logo.png", data=samples["Cambia_logo.png"])]}
    )
    assert status == 200, answer
    info = [
        dict(labels) for name, labels in await scrape(http, metered) if name.endswith("model_info")
    ]
    assert len(info) == 1, info
    assert info[0]["model_version"] == answer["model_version"] != ""
    monitoring = (REPO_ROOT / "docs" / "monitoring.md").read_text()
    row = re.search(r"^\| `logo_detection_model_info` \| [^|]+ \| ([^|]+) \|", monitoring, re.M)
    assert set(re.findall(r"`(\w+)`", row.group(1))) == set(info[0])
    legends = [
        target.get("legendFormat", "")
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel.get("targets", [])
        if "logo_detection_model_info" in target["expr"]
    ]
    shown = set().union(*(re.findall(r"\{\{(\w+)\}\}", legend) for legend in legends))
    assert "model_version" in shown and shown - {"instance"} <= set(info[0]), shown


def test_the_dashboard_is_importable_grafana_json():
    dashboard = json.loads(Path(DASHBOARD).read_text())
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
