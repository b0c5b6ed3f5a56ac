"""Hostile URLs (issue: hostile input): a local server misbehaves on purpose, the real model
server must answer each instance with the right error, keep scoring the others, stay healthy,
and never connect to an address the policy refuses."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator

import pytest
from aiohttp import web

from bench.harness.image_server import ImageServer
from bench.harness.server_process import ServerProcess
from model_server.logo_detection.errors import ImageError
from model_server.logo_detection.fetch import ImageFetcher
from model_server.logo_detection.settings import Settings

from .conftest import instance, post_predict
from .hostile_support import MIB, PeakRss, assert_healthy, png, svg

pytestmark = pytest.mark.asyncio

GOOD = png()


def assert_scored(result: dict, case: str) -> None:
    assert "error" not in result and 0.0 <= result["prediction"] <= 1.0, (case, result)


def add_hostile_routes(images: ImageServer, model_server_port: int) -> dict[str, tuple[str, str]]:
    """Register the misbehaving routes; returns case -> (URL, expected error type or 'scored')."""
    port = images.port

    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        try:
            for _ in range(120):  # one byte every 0.5 s: never stalls, never finishes
                await response.write(GOOD[:1])
                await asyncio.sleep(0.5)
        except (ConnectionError, RuntimeError):
            pass
        return response

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        await asyncio.sleep(30)
        return response

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = GOOD + b"\x00" * (MIB - len(GOOD))
        try:
            for _ in range(1000):  # up to 1 GB, far past the 25 MiB limit
                await response.write(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return response

    async def lying_length(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = 100_000
        await response.prepare(request)
        await response.write(GOOD)
        request.transport.close()  # far fewer bytes than promised, then hang up
        return response

    async def huge_length(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = 10 * 1024**3
        await response.prepare(request)
        await asyncio.sleep(30)
        return response

    async def no_length(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(GOOD), 16):
            await response.write(GOOD[start : start + 16])
        await response.write_eof()
        return response

    async def hang_up(request: web.Request) -> web.Response:
        request.transport.close()  # no status line at all: a reset, as far as the client sees
        return web.Response()

    async def gzipped(_request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(GOOD),
            headers={"Content-Type": "image/png", "Content-Encoding": "gzip"},
        )

    def redirect(location: str):
        async def handler(_request: web.Request) -> web.Response:
            raise web.HTTPFound(location)

        return handler

    async def chain(request: web.Request) -> web.Response:
        remaining = int(request.query["n"])
        if remaining == 0:
            return web.Response(body=GOOD, content_type="image/png")
        raise web.HTTPFound(f"/hostile/chain?n={remaining - 1}")

    def status(code: int):
        async def handler(_request: web.Request) -> web.Response:
            return web.Response(status=code, text="nope")

        return handler

    good = images.add_file("hostile/good.png", GOOD, "image/png")
    cases = {
        "good": (good, "scored"),
        "wrong content type": (images.add_file("hostile/x.txt", GOOD, "text/plain"), "scored"),
        "no content length": (images.add_route("hostile/chunked", no_length), "scored"),
        "slow drip": (images.add_route("hostile/drip", drip), "fetch_failed"),
        "stall": (images.add_route("hostile/stall", stall), "fetch_failed"),
        "endless body": (images.add_route("hostile/endless", endless), "too_large"),
        "lying content length": (images.add_route("hostile/lying", lying_length), "fetch_failed"),
        "huge content length": (images.add_route("hostile/huge", huge_length), "too_large"),
        "gzip encoded": (images.add_route("hostile/gzip", gzipped), "unsupported_format"),
        "404": (images.url("hostile/missing.png"), "fetch_failed"),
        "500": (images.add_route("hostile/500", status(500)), "fetch_failed"),
        "hang-up": (images.add_route("hostile/hang-up", hang_up), "fetch_failed"),
        "html body": (
            images.add_file(
                "hostile/page", b"<!DOCTYPE html><html><body>hi</body></html>", "image/png"
            ),
            "unsupported_format",
        ),
        "zero bytes": (
            images.add_file("hostile/empty.png", b"", "image/png"),
            "unsupported_format",
        ),
        "3 redirects": (images.url("hostile/chain?n=3"), "scored"),
        "4 redirects": (images.url("hostile/chain?n=4"), "fetch_failed"),
        "redirect loop": (
            images.add_route("hostile/loop", redirect("/hostile/loop")),
            "fetch_failed",
        ),
    }
    images.add_route("hostile/chain", chain)
    for name, location in {
        "to metadata": "http://169.254.169.254/latest/meta-data/",
        "to metadata, allowed port": f"http://169.254.169.254:{port}/latest/meta-data/",
        "to private": f"http://10.0.0.7:{port}/x.png",
        "to private 192.168": f"http://192.168.1.1:{port}/x.png",
        "to ipv6 loopback": f"http://[::1]:{port}/hostile/good.png",
        "to ipv4-mapped": f"http://[::ffff:10.0.0.7]:{port}/x.png",
        "to 127.0.0.1, other port": f"http://127.0.0.1:{model_server_port}/v2/health/ready",
        "to file": "file:///etc/passwd",
        "to user-info": f"http://user:secret@127.0.0.1:{port}/hostile/good.png",
    }.items():
        url = images.add_route(f"hostile/redirect-{len(cases)}", redirect(location))
        cases[f"redirect {name}"] = (url, "url_not_allowed")
    return cases


async def test_misbehaving_servers_get_per_instance_errors(http, server, image_server):
    cases = add_hostile_routes(image_server, server.http_port)
    names = list(cases)
    body = {"instances": [instance(name, url=cases[name][0]) for name in names]}
    body["instances"].insert(5, instance("base64 in the middle", data=GOOD))
    await post_predict(http, server, {"instances": [instance("warm", data=GOOD)]})
    with PeakRss(server) as memory:
        status, answer = await post_predict(http, server, body)
    assert status == 200, answer
    results = answer["predictions"]
    assert [r["filename"] for r in results] == [i["filename"] for i in body["instances"]]
    assert_scored(results.pop(5), "base64 in the middle")
    wrong = {}
    for name, result in zip(names, results, strict=True):
        expected = cases[name][1]
        actual = result["error"]["type"] if "error" in result else "scored"
        if actual != expected:
            wrong[name] = (expected, result)
    assert not wrong, wrong
    by_name = dict(zip(names, results, strict=True))
    assert "404" in by_name["404"]["error"]["message"]
    assert "500" in by_name["500"]["error"]["message"]
    # the 60 s drip was cut by the 5 s total timeout, the 30 s stall by the 2 s read timeout
    assert "longer than 5 s" in by_name["slow drip"]["error"]["message"]
    assert "nothing for 2 s" in by_name["stall"]["error"]["message"]
    assert "redirects" in by_name["4 redirects"]["error"]["message"]
    print(f"peak RSS growth {memory.growth_mib:.0f} MiB")
    assert memory.growth_mib < 400, f"server memory grew by {memory.growth_mib:.0f} MiB"
    await assert_healthy(http, server)


async def test_fetch_sends_the_configured_user_agent_and_no_gzip(http, server, image_server):
    seen: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(body=GOOD, content_type="image/png")

    url = image_server.add_route("hostile/record", record)
    status, answer = await post_predict(http, server, {"instances": [instance("ua", url=url)]})
    assert status == 200
    assert_scored(answer["predictions"][0], "ua")
    assert seen[0]["User-Agent"] == Settings().user_agent
    assert seen[0]["Accept-Encoding"] == "identity"


# --- Address policy with loopback NOT allowed (production default) ---------------------------


@pytest.fixture(scope="module")
def strict_server(image_server: ImageServer) -> Iterator[ServerProcess]:
    """Loopback refused; loopback and link-local hosts on the allow-list on purpose, so only
    the address checks stand between them and a connection. Also small body limits."""
    hosts = "localhost,127.0.0.1,169.254.169.254"
    with ServerProcess(
        fetch_allowed_schemes="http",
        fetch_allowed_hosts=hosts,
        fetch_allowed_ports=f"{image_server.port},80",
        fetch_allow_loopback="false",
        fetch_connect_timeout_s=5,
        max_request_bytes=MIB,
        max_images_in_flight=4,
    ) as process:
        yield process


async def test_refused_addresses_are_never_connected_to(http, strict_server, image_server):
    hits: list[str] = []

    async def count(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=GOOD, content_type="image/png")

    image_server.add_route("strict/probe.png", count)
    port = image_server.port
    # Every address class, IPv6 and IPv4-in-IPv6 spellings, and DNS answers mixing classes are
    # tested in process (tests/test_fetch_policy.py); here: a name the real resolver maps to
    # loopback, a loopback literal and the metadata address, through the real server.
    urls = {
        f"http://localhost:{port}/strict/probe.png": "resolves only to refused",
        f"http://127.0.0.1:{port}/strict/probe.png": "loopback",
        "http://169.254.169.254/latest/meta-data/": "link-local",
    }
    body = {"instances": [instance(url, url=url) for url in urls]}
    body["instances"].append(instance("good.png", data=GOOD))
    status, answer = await post_predict(http, strict_server, body)
    assert status == 200, answer
    results = answer["predictions"]
    for (url, reason), result in zip(urls.items(), results[:-1], strict=True):
        assert result["error"]["type"] == "url_not_allowed", (url, result)
        assert reason in result["error"]["message"], (url, result)
    assert_scored(results[-1], "good.png")
    assert hits == [], "the server connected to a refused address"
    # refused before any connection: an attempt would have ended as fetch_failed (timeout or
    # refused), not url_not_allowed with the address's class in the message
    await assert_healthy(http, strict_server)


async def test_redirect_hops_get_the_address_checks_too(image_server):
    """In-process: a redirect to an allow-listed host whose address is refused stops there."""
    port = image_server.port

    async def to_metadata(_request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://169.254.169.254:{port}/latest/meta-data/")

    url = image_server.add_route("hop/metadata", to_metadata)
    settings = Settings(
        fetch_allowed_schemes="http",
        fetch_allowed_hosts="127.0.0.1,169.254.169.254",
        fetch_allowed_ports=str(port),
        fetch_allow_loopback=True,
        fetch_connect_timeout_s=5,
    )
    fetcher = ImageFetcher(settings)
    try:
        with pytest.raises(ImageError) as refused:
            await fetcher.fetch(url)
        # refused by the address check, not a connect timeout (that would be fetch_failed)
        assert refused.value.error_type == "url_not_allowed"
        assert "169.254.169.254 is a link-local address" in refused.value.message
    finally:
        await fetcher.close()


async def test_egress_proxy_from_the_environment(image_server, monkeypatch):
    """HTTP(S)_PROXY is used (the proxy host is exempt from the address check, the image host is
    resolved by the proxy, not by us); NO_PROXY hosts are fetched directly."""
    seen: list[tuple[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((request.host, request.path))
        return web.Response(body=GOOD, content_type="image/png")

    image_server.add_route("egress/logo.png", record)
    monkeypatch.setenv("HTTP_PROXY", f"http://localhost:{image_server.port}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    allowed = {
        "fetch_allowed_schemes": "http",
        "fetch_allowed_hosts": "upload.wikimedia.org,127.0.0.1",
        "fetch_allowed_ports": f"80,{image_server.port}",
    }
    proxied = ImageFetcher(Settings(**allowed, fetch_allow_loopback=False))
    direct = ImageFetcher(Settings(**allowed, fetch_allow_loopback=True))
    try:
        assert await proxied.fetch("http://upload.wikimedia.org/egress/logo.png") == GOOD
        assert await direct.fetch(image_server.url("egress/logo.png")) == GOOD
    finally:
        await proxied.close()
        await direct.close()
    assert seen == [
        ("upload.wikimedia.org", "/egress/logo.png"),
        (f"127.0.0.1:{image_server.port}", "/egress/logo.png"),
    ]


async def test_tls_failure_is_fetch_failed(image_server):
    """https to a server that speaks plain HTTP: the handshake fails, reported per instance."""
    settings = Settings(
        fetch_allowed_schemes="https",
        fetch_allowed_hosts="127.0.0.1",
        fetch_allowed_ports=str(image_server.port),
        fetch_allow_loopback=True,
    )
    fetcher = ImageFetcher(settings)
    try:
        with pytest.raises(ImageError) as failed:
            await fetcher.fetch(f"https://127.0.0.1:{image_server.port}/hostile/good.png")
        assert failed.value.error_type == "fetch_failed"
        assert "SSL" in failed.value.message or "TLS" in failed.value.message, failed.value
    finally:
        await fetcher.close()


# --- Whole-request limits --------------------------------------------------------------------


async def post_without_finishing(
    server: ServerProcess, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict]:
    """POST over a bare socket: the headers and `body`, then no more, and read the answer. A
    server that refuses a body early closes while an ordinary client may still be writing, and
    aiohttp then reports a write error instead of the answer; here nothing is left unread."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
    path = server.predict_url.removeprefix(server.url)
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()
    try:
        # the server closes after answering; one that waits for the rest fails the test
        answer = await asyncio.wait_for(reader.read(), timeout=120)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def chunked(data: bytes, size: int = 64 * 1024) -> bytes:
    """`data` as HTTP/1.1 chunks, without the last, empty chunk: the body never ends."""
    pieces = (data[start : start + size] for start in range(0, len(data), size))
    return b"".join(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for piece in pieces)


async def test_body_over_the_limit_gets_413_with_or_without_content_length(http, strict_server):
    declared = {"Content-Length": str(2 * MIB)}  # refused from the header, before any body
    status, answer = await post_without_finishing(strict_server, declared)
    assert status == 413 and "larger than" in answer["error"], answer
    # no Content-Length: refused once the body read so far passes the limit, before it ends
    body = chunked(b'{"instances": [' + b" " * MIB)
    status, answer = await post_without_finishing(
        strict_server, {"Transfer-Encoding": "chunked"}, body
    )
    assert status == 413 and "larger than" in answer["error"], answer
    status, answer = await post_predict(
        http, strict_server, {"instances": [instance("ok.png", data=GOOD)]}
    )
    assert status == 200
    assert_scored(answer["predictions"][0], "ok.png")


async def test_bursts_over_the_image_budget_queue_and_all_complete(http, strict_server):
    """MAX_IMAGES_IN_FLIGHT=4: eight 10-image requests at once wait their turn; none fails."""
    photo = png((800, 600), (10, 120, 200))
    bodies = [
        {"instances": [instance(f"r{r}-{i}.png", data=photo) for i in range(10)]} for r in range(8)
    ]
    await post_predict(http, strict_server, {"instances": [instance("warm", data=GOOD)]})
    with PeakRss(strict_server) as memory:
        answers = await asyncio.gather(*(post_predict(http, strict_server, b) for b in bodies))
    print(f"peak RSS growth {memory.growth_mib:.0f} MiB")
    for r, (status, answer) in enumerate(answers):
        assert status == 200, answer
        assert [p["filename"] for p in answer["predictions"]] == [
            f"r{r}-{i}.png" for i in range(10)
        ]
        for result in answer["predictions"]:
            assert_scored(result, result["filename"])
    assert memory.growth_mib < 400, f"server memory grew by {memory.growth_mib:.0f} MiB"
    await assert_healthy(http, strict_server)


async def test_shutdown_closes_the_fetch_session_and_render_workers_quietly(http, strict_server):
    """Runs last in this module: SIGTERM after fetches and an SVG render leaves a clean log."""
    body = {"instances": [instance("logo.svg", data=svg('<rect width="80" height="40"/>'))]}
    status, answer = await post_predict(http, strict_server, body)
    assert status == 200 and "error" not in answer["predictions"][0], answer
    assert strict_server.stop() == 0
    log = strict_server.log()
    for noise in ("Unclosed", "Exception ignored", "Traceback", "leaked", "ResourceWarning"):
        assert noise not in log, log[-3000:]
