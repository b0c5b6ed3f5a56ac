"""End-to-end contract tests against the real server process (issue: the core predictor)."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from bench.harness.server_process import ServerProcess
from model_server.logo_detection.model_contract import describe_model

from .conftest import (
    SAMPLE_NAMES,
    assert_health_answers,
    instance,
    loopback_fetch_settings,
    post_predict,
)
from .image_corpus import flat_png

pytestmark = pytest.mark.asyncio


def served_version(server: ServerProcess) -> str:
    """The version of the model file the server was started on: its JSON's, else its hash's."""
    return describe_model(Path(server.env["MODEL_PATH"])).version


def assert_scored(result: dict, filename: str) -> None:
    assert result["filename"] == filename
    assert result["target"] == "logo"
    assert "error" not in result, result
    assert 0.0 <= result["prediction"] <= 1.0
    assert 0.0 <= result["out_of_domain"] <= 1.0
    assert math.isclose(result["prediction"] + result["out_of_domain"], 1.0, abs_tol=2e-4)
    assert round(result["prediction"], 4) == result["prediction"]


async def test_samples_by_base64_and_by_url_score_identically(http, server, image_server, samples):
    by_base64 = [instance(name, data=data) for name, data in samples.items()]
    by_url = [
        instance(name, url=image_server.add_file(f"samples/{index}", data))
        for index, (name, data) in enumerate(samples.items())
    ]
    status, body = await post_predict(http, server, {"instances": by_base64 + by_url})
    assert status == 200, body
    results = body["predictions"]
    assert [r["filename"] for r in results] == list(SAMPLE_NAMES) * 2
    for result, name in zip(results, list(SAMPLE_NAMES) * 2, strict=True):
        assert_scored(result, name)
    for first, second in zip(results[:3], results[3:], strict=True):
        assert first["prediction"] == second["prediction"]
    # the answer names the model that scored it, and holds nothing else without debug
    assert set(body) == {"predictions", "model_version"}
    assert body["model_version"] == served_version(server)


async def test_fifty_instances_answer_in_order_with_duplicates(http, server):
    colors = [(i * 5, 255 - i * 5, (i * 37) % 256) for i in range(50)]
    instances = [instance(f"file-{i % 7}.png", data=flat_png(c)) for i, c in enumerate(colors)]
    status, body = await post_predict(http, server, {"instances": instances})
    assert status == 200, body
    assert [r["filename"] for r in body["predictions"]] == [f"file-{i % 7}.png" for i in range(50)]
    # the same image sent alone gets the same score as inside the 50: results are not shuffled
    status, alone = await post_predict(http, server, {"instances": [instances[23]]})
    assert alone["predictions"][0]["prediction"] == body["predictions"][23]["prediction"]


async def test_fifty_one_instances_are_rejected(http, server):
    instances = [instance(f"f{i}.png", data=flat_png((1, 2, 3))) for i in range(51)]
    status, body = await post_predict(http, server, {"instances": instances})
    assert status == 400
    assert "instances" in body["error"] and "50" in body["error"]


# Every refusal parse_request makes, with its exact message, is tested in process in
# tests/test_contract.py; these few show that a refusal reaches the client as a 400 naming it.
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"not json", "request"),  # KServe's own JSON parsing refuses it
        ({"instances": "x"}, "instances"),  # KServe's v1 validation may answer first
        ([1, 2], "JSON object"),
        (
            {"instances": [{"filename": "a", "target": "cat", "image": "aGk="}]},
            "instances[0].target",
        ),
        (
            {
                "instances": [
                    {"filename": "a", "target": "logo", "image": "aGk="},
                    {"filename": "b", "target": "logo", "image": "!!notbase64!!"},
                ]
            },
            "instances[1].image",
        ),
    ],
)
async def test_malformed_requests_get_400_naming_the_field(http, server, body, expected):
    status, answer = await post_predict(http, server, body)
    assert status == 400, answer
    assert expected in answer["error"], answer


async def test_broken_instances_get_errors_and_others_are_scored(
    http, server, image_server, samples
):
    logo = samples["Cambia_logo.png"]
    instances = [
        instance("good-1.png", data=logo),
        instance("text.txt", data=b"hello, not an image"),
        instance("truncated.png", data=logo[: len(logo) // 3]),
        instance("missing.jpg", url=image_server.url("does-not-exist.jpg")),
        instance("elsewhere.jpg", url="https://example.org/image.jpg"),
        instance("good-2.png", data=logo, url=None),
    ]
    status, body = await post_predict(http, server, {"instances": instances})
    assert status == 200, body
    results = body["predictions"]
    assert [r["filename"] for r in results] == [i["filename"] for i in instances]
    assert_scored(results[0], "good-1.png")
    assert_scored(results[5], "good-2.png")
    assert results[0]["prediction"] == results[5]["prediction"]
    assert results[1]["error"]["type"] == "unsupported_format"
    assert results[2]["error"]["type"] == "decode_failed"
    assert results[3]["error"]["type"] == "fetch_failed" and "404" in results[3]["error"]["message"]
    assert results[4]["error"]["type"] == "url_not_allowed"
    for result in results[1:5]:
        assert "prediction" not in result and result["error"]["message"]


async def test_debug_reports_per_stage_latency(http, server, image_server, samples):
    url = image_server.add_file("debug/photo.jpg", samples["Blooming_bush_(14248894271).jpg"])
    body = {
        "instances": [
            instance("a.png", data=samples["Cambia_logo.png"]),
            instance("b.jpg", url=url),
        ],
        "debug": True,
    }
    status, answer = await post_predict(http, server, body)
    assert status == 200, answer
    latency = answer["latency"]
    for stage in ("fetch_ms", "decode_ms", "inference_ms", "total_ms"):
        assert latency[stage] >= 0
    assert latency["fetch_ms"] > 0 and latency["inference_ms"] > 0
    assert latency["total_ms"] >= latency["inference_ms"]
    assert set(answer) == {"predictions", "model_version", "latency"}
    # each image joins a pass as soon as it is decoded: one pass for both, or one each
    assert (latency["passes"], latency["batch_size"]) in {(1, 2), (2, 1)}, latency


async def test_curl_style_form_content_type_is_accepted(http, server, samples):
    payload = json.dumps({"instances": [instance("x.png", data=samples["Cambia_logo.png"])]})
    async with http.post(
        server.predict_url,
        data=payload,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as response:
        assert response.status == 200
        assert_scored((await response.json())["predictions"][0], "x.png")


async def test_health_readiness_model_and_metrics_routes(http, server):
    async with http.get(f"{server.url}/v1/models/logo-detection") as response:
        assert response.status == 200
        assert await response.json() == {"name": "logo-detection", "ready": True}
    for route in ("/v2/health/live", "/v2/health/ready"):
        async with http.get(server.url + route) as response:
            assert response.status == 200
    async with http.get(f"{server.url}/v1/models/no-such-model") as response:
        assert response.status == 404
    async with http.get(f"{server.url}/metrics") as response:
        assert response.status == 200
        assert "request_predict_seconds" in await response.text()


async def test_health_answers_while_a_big_request_is_in_flight(
    http, patient_server, image_server, samples
):
    """Liveness and readiness answer during a 50-image request: decoding and inference run on
    threads, not on the event loop. The request's last image is held by the image server until
    the checks have answered, so the request is provably in flight; how fast they answer is
    measured by `make bench`."""
    photo = samples["Blooming_bush_(14248894271).jpg"]
    held = image_server.add_held_file("health/held.jpg", photo)
    big = {
        "instances": [
            *(instance(f"{i}.jpg", data=photo) for i in range(49)),
            instance("held.jpg", url=held.url),
        ]
    }
    in_flight = asyncio.ensure_future(post_predict(http, patient_server, big))
    try:
        await held.wait_until_requested(by=in_flight)
        await assert_health_answers(http, patient_server)
        assert not in_flight.done()
    finally:
        held.release()
    status, answer = await in_flight
    assert status == 200, answer
    assert all("prediction" in result for result in answer["predictions"]), answer


async def test_concurrent_requests_each_get_their_own_results(http, server):
    async def one(i: int) -> tuple[int, dict]:
        instances = [
            instance(f"r{i}-{j}.png", data=flat_png((i * 20, j * 40, 90))) for j in range(3)
        ]
        return await post_predict(http, server, {"instances": instances})

    answers = await asyncio.gather(*(one(i) for i in range(12)))
    for i, (status, body) in enumerate(answers):
        assert status == 200
        assert [r["filename"] for r in body["predictions"]] == [f"r{i}-{j}.png" for j in range(3)]


async def test_a_full_image_budget_answers_503_then_recovers(http, image_server, samples):
    """MAX_IMAGES_IN_FLIGHT=1, MAX_QUEUE_WAIT_S=0: while a held fetch keeps the only slot, others
    get 503 at once; with the slot free, requests are admitted without waiting."""
    held = image_server.add_held_file("slow/held.png", samples["Cambia_logo.png"], "image/png")
    with ServerProcess(
        max_images_in_flight=1,
        max_queue_wait_s=0,
        fetch_read_timeout_s=600,
        fetch_total_timeout_s=600,
        **loopback_fetch_settings(image_server),
    ) as server:
        holder = asyncio.ensure_future(
            post_predict(http, server, {"instances": [instance("held.png", url=held.url)]})
        )
        try:
            await held.wait_until_requested(by=holder)  # it fetches: it holds the slot
            body = {"instances": [instance("x.png", data=samples["Cambia_logo.png"])]}
            async with http.post(server.predict_url, json=body) as response:
                assert response.status == 503
                assert response.headers["Retry-After"] == "1"
                assert "busy" in (await response.json())["error"]
        finally:
            held.release()
        status, answer = await holder
        assert status == 200 and "error" not in answer["predictions"][0], answer
        status, answer = await post_predict(http, server, body)
        assert status == 200, answer


async def test_svg_with_doctype_and_absolute_units_is_scored(http, server):
    """Common in exported SVGs (matplotlib, Illustrator): a DOCTYPE and pt/mm sizes."""
    doctype = (
        '<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
    )
    shapes = '<rect width="200" height="100" fill="#c00"/><circle cx="100" cy="50" r="30"/>'
    svgs = [
        f'{doctype}<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 200 100">{shapes}</svg>'.encode()
        for w, h in (("200.0pt", "100.0pt"), ("20mm", "10mm"), ("200", "100"))
    ]
    body = {"instances": [instance(f"s{i}.svg", data=svg) for i, svg in enumerate(svgs)]}
    status, answer = await post_predict(http, server, body)
    assert status == 200, answer
    for i, result in enumerate(answer["predictions"]):
        assert_scored(result, f"s{i}.svg")
    # only the declared size differs and SVGs render at a fixed size: near-identical pixels
    scores = [result["prediction"] for result in answer["predictions"]]
    assert max(scores) - min(scores) < 0.01, scores
