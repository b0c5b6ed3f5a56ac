"""Hostile image bytes (issue: hostile input): bombs, corrupt files and unsafe SVGs sent to the real
server in one request with good images around them; each gets its error, the good ones are
scored, memory stays bounded, and the server stays healthy and responsive."""

from __future__ import annotations

import asyncio
import base64

import pytest

from .conftest import assert_health_answers, instance, post_predict
from .hostile_support import (
    SLOW_FILTER_SVG,
    PeakRss,
    assert_healthy,
    billion_laughs_svg,
    gif_bomb,
    jpeg,
    jpeg_scan_bomb,
    jpeg_with_dimensions,
    png,
    png_bomb,
    svg,
    tiff_with_dimensions,
    use_bomb_svg,
)

pytestmark = pytest.mark.asyncio

SVG_DOCTYPE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
    '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
)


def hostile_images() -> dict[str, tuple[bytes, str]]:
    """case -> (bytes, expected error type or 'scored'); all generated here, nothing on disk."""
    photo = jpeg((640, 480))
    return {
        "png bomb 12000x12000 (valid, 140 KB)": (png_bomb(12_000, 12_000), "too_large"),
        "png header 100000x100000": (png_bomb(100_000, 100_000, rows=4), "too_large"),
        "gif bomb 1000x1000 x 120 frames": (gif_bomb(1000, 120), "too_large"),
        "jpeg declaring 65000x65000": (jpeg_with_dimensions(65_000, 65_000), "too_large"),
        "tiff declaring 100000x100000": (tiff_with_dimensions(100_000, 100_000), "too_large"),
        "jpeg with 150 progressive scans": (jpeg_scan_bomb(), "decode_failed"),
        "truncated jpeg": (photo[: len(photo) // 3], "decode_failed"),
        "truncated progressive jpeg": (jpeg((640, 480), progressive=True)[:2000], "decode_failed"),
        "tiff without pixels": (tiff_with_dimensions(10, 10), "decode_failed"),
        "png with corrupt header": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "decode_failed"),
        "zero bytes": (b"", "unsupported_format"),
        "html": (b"<!DOCTYPE html><html><body>not an image</body></html>", "unsupported_format"),
        "text": (b"GIF? no, just text", "unsupported_format"),
        "svg billion laughs": (billion_laughs_svg(), "decode_failed"),
        "svg external entity": (
            svg(
                "<text>&xxe;</text>",
                '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
            ),
            "decode_failed",
        ),
        "svg external href": (
            svg('<image xlink:href="file:///etc/hostname" width="10" height="10"/>'),
            "decode_failed",
        ),
        "svg /dev/zero href": (
            svg('<image href="/dev/zero" width="10" height="10"/>'),
            "decode_failed",
        ),
        "svg remote href": (
            svg('<image href="http://127.0.0.1:9/x.png" width="10" height="10"/>'),
            "decode_failed",
        ),
        "svg css @import": (svg("<style>@import url(/etc/passwd);</style>"), "decode_failed"),
        "svg css external url()": (
            svg('<rect width="9" height="9" style="fill:url(http://127.0.0.1:9/p.svg#g)"/>'),
            "decode_failed",
        ),
        "svg <use> bomb": (use_bomb_svg(), "too_large"),
        "svg pattern tile of 3.6 GB": (
            svg(
                '<defs><pattern id="p" width="100" height="50" patternUnits="userSpaceOnUse" '
                'patternTransform="scale(100)"><rect width="50" height="25" fill="red"/>'
                '</pattern></defs><rect width="120" height="60" fill="url(#p)"/>'
            ),
            "decode_failed",  # the render worker's 2 GiB cap: the worker dies, not the server
        ),
        "svg not xml": (b"<svg xmlns='http://www.w3.org/2000/svg'><rect", "decode_failed"),
        "svg with doctype (safe)": (
            svg('<rect width="80" height="40" fill="#c00"/>', SVG_DOCTYPE),
            "scored",
        ),
        "svg with embedded raster and fragment refs (safe)": (
            svg(
                '<defs><linearGradient id="g"><stop offset="0" stop-color="red"/></linearGradient>'
                '</defs><rect id="r" width="50" height="30" fill="url(#g)"/><use href="#r" x="60"/>'
                f'<image width="20" height="20" href="data:image/png;base64,'
                f'{base64.b64encode(png()).decode()}"/>'
            ),
            "scored",
        ),
    }


async def test_hostile_images_get_per_instance_errors(http, server, samples):
    cases = hostile_images()
    names = list(cases)
    logo = samples["Cambia_logo.png"]
    body = {"instances": [instance(name, data=cases[name][0]) for name in names]}
    body["instances"].insert(0, instance("logo first", data=logo))
    body["instances"].append(instance("logo last", data=logo))
    await post_predict(http, server, {"instances": [instance("warm", data=png())]})
    with PeakRss(server) as memory:
        status, answer = await post_predict(http, server, body)
    assert status == 200, answer
    results = answer["predictions"]
    assert [r["filename"] for r in results] == [i["filename"] for i in body["instances"]]
    first, last = results.pop(0), results.pop()
    assert "error" not in first and first["prediction"] == last["prediction"], (first, last)
    wrong = {}
    for name, result in zip(names, results, strict=True):
        actual = result["error"]["type"] if "error" in result else "scored"
        if actual != cases[name][1]:
            wrong[name] = (cases[name][1], result)
    assert not wrong, wrong
    print(
        f"peak RSS growth {memory.growth_mib:.0f} MiB, render worker {memory.worker_peak_mib:.0f}"
    )
    # decoding any of the bombs would have needed gigabytes (12000^2 RGB as float32: 1.6 GB)
    assert memory.growth_mib < 400, f"server memory grew by {memory.growth_mib:.0f} MiB"
    # the 3.6 GB pattern tile is stopped by the render worker's 2 GiB address-space cap
    assert memory.worker_peak_mib < 2048, f"a render worker reached {memory.worker_peak_mib} MiB"
    await assert_healthy(http, server)


async def test_slow_svg_is_stopped_and_the_server_stays_responsive(http, server):
    """A few bytes of filter keep resvg busy for minutes: the render is killed at the timeout
    (5 s by default, 2 s on the test server) while health checks and other requests keep
    being answered."""
    body = {"instances": [instance("slow.svg", data=SLOW_FILTER_SVG)]}
    slow = asyncio.ensure_future(post_predict(http, server, body))
    await assert_health_answers(http, server, times=1)
    # the render runs for minutes unless killed at 2 s: the request was still in flight
    health_answered_during_the_render = not slow.done()
    status, answer = await slow
    assert status == 200, answer
    result = answer["predictions"][0]
    assert result["error"]["type"] == "decode_failed", result
    assert "longer than 2 s" in result["error"]["message"]  # killed at the timeout
    assert health_answered_during_the_render
    # the killed worker is replaced: the next SVG renders
    again = {"instances": [instance("ok.svg", data=svg('<circle cx="30" cy="30" r="20"/>'))]}
    status, answer = await post_predict(http, server, again)
    assert status == 200 and "error" not in answer["predictions"][0], answer
    await assert_healthy(http, server)
