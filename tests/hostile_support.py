"""Helpers for the hostile-input tests: server memory sampling, health checks, crafted files."""

from __future__ import annotations

import contextlib
import io
import struct
import threading
import zlib

import aiohttp
import psutil
from PIL import Image

from bench.harness.server_process import ServerProcess

MIB = 1024 * 1024


class PeakRss:
    """Samples, every 10 ms, the RSS of the server process and of its largest child (an SVG
    render worker). They are kept apart: a worker may grow up to its own address-space cap
    before the kernel stops it, which says nothing about the server's memory."""

    def __init__(self, server: ServerProcess) -> None:
        self._process = psutil.Process(server.process.pid)
        self.baseline = self._process.memory_info().rss
        self.peak = self.baseline
        self.worker_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _largest_child_rss(self) -> int:
        largest = 0
        for child in self._process.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # a render worker just replaced
                largest = max(largest, child.memory_info().rss)
        return largest

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._process.memory_info().rss)
            self.worker_peak = max(self.worker_peak, self._largest_child_rss())

    @property
    def growth_mib(self) -> float:
        """The server process's own growth over the baseline."""
        return (self.peak - self.baseline) / MIB

    @property
    def worker_peak_mib(self) -> float:
        return self.worker_peak / MIB

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


async def assert_healthy(http: aiohttp.ClientSession, server: ServerProcess) -> None:
    """The process is alive and ready after the attack."""
    assert server.process.poll() is None, server.log()[-3000:]
    async with http.get(f"{server.url}/v2/health/ready") as response:
        assert response.status == 200


def png(size: tuple[int, int] = (48, 32), color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(size: tuple[int, int] = (64, 48), progressive: bool = False) -> bytes:
    buffer = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").resize(size).save(
        buffer, "JPEG", quality=90, progressive=progressive
    )
    return buffer.getvalue()


def jpeg_scan_bomb(repeats: int = 150) -> bytes:
    """A progressive JPEG whose last scan is repeated: libjpeg makes a full pass for each one."""
    data = jpeg((320, 240), progressive=True)
    last_scan = data[data.rindex(b"\xff\xda") : -2]
    return data[:-2] + last_scan * repeats + b"\xff\xd9"


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def png_bomb(width: int, height: int, rows: int | None = None) -> bytes:
    """A valid greyscale PNG of zeros: tiny on the wire, width x height bytes once decoded.

    `rows` limits how many rows are actually encoded (a truncated body; the header still
    declares the full size), which keeps generating a 10-gigapixel header cheap.
    """
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    body = b"".join(compressor.compress(row) for _ in range(height if rows is None else rows))
    body += compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )


def gif_bomb(side: int, frames: int) -> bytes:
    """An animated GIF of `frames` full frames of side x side (TF decodes every frame)."""
    images = [Image.new("P", (side, side), index % 2) for index in range(frames)]
    for image in images:
        image.putpalette([0, 0, 0, 255, 255, 255] * 128)
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], optimize=False)
    return buffer.getvalue()


def jpeg_with_dimensions(width: int, height: int) -> bytes:
    """A small real JPEG whose SOF header is rewritten to declare width x height."""
    data = bytearray(jpeg())
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            struct.pack_into(">HH", data, at + 5, height, width)
            return bytes(data)
    raise AssertionError("no SOF marker in the generated JPEG")


def tiff_with_dimensions(width: int, height: int) -> bytes:
    """A little-endian TIFF header (one IFD) declaring width x height, 8-bit RGB, no pixels."""
    entries = [
        (256, 4, 1, width),  # ImageWidth, LONG
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 2),  # Photometric: RGB
        (273, 4, 1, 8),  # StripOffsets
        (277, 3, 1, 3),  # SamplesPerPixel
        (279, 4, 1, width * height * 3 & 0xFFFFFFFF),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd


SVG_OPEN = (
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
    'width="120" height="60" viewBox="0 0 120 60">'
)


def svg(body: str, prolog: str = "") -> bytes:
    return (prolog + SVG_OPEN + body + "</svg>").encode()


def billion_laughs_svg() -> bytes:
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    return svg("<text>&lol9;</text>", f'<?xml version="1.0"?><!DOCTYPE svg [{entities}]>')


def use_bomb_svg(levels: int = 7, fan_out: int = 10) -> bytes:
    groups = "".join(
        f'<g id="g{level}">' + f'<use xlink:href="#g{level - 1}"/>' * fan_out + "</g>"
        for level in range(1, levels)
    )
    return svg(
        f'<defs><rect id="g0" width="1" height="1"/>{groups}</defs>'
        f'<use xlink:href="#g{levels - 1}"/>'
    )


SLOW_FILTER_SVG = svg(
    '<filter id="f"><feTurbulence baseFrequency="0.05" numOctaves="1000000"/></filter>'
    '<rect width="120" height="60" filter="url(#f)"/>'
)
