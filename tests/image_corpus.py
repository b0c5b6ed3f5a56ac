"""Generated test images in every variant the training pipeline reads (never committed).

Pillow writes most variants; simplejpeg writes the chroma subsamplings Pillow can't (4:1:1,
4:4:0) and YCCK; libjpeg-turbo's `jpegtran` (Debian's libjpeg-turbo-progs, installed by
.ci/run) writes arithmetic coding. PNGs with 16 bits per channel and GIFs with exact frame
layouts are assembled byte by byte here.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import zlib

import numpy as np
import simplejpeg
from PIL import Image


def photo_like(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus texture: compresses and resizes like a photo, not like flat art."""
    rng = np.random.default_rng(seed)
    y, x = np.ogrid[0:height, 0:width]
    x, y = x.astype(np.float32), y.astype(np.float32)
    pixels = rng.standard_normal((height, width, 3), dtype=np.float32)  # float32: a 12 MP
    pixels *= 18  # photo is made in a fraction of a second, not seconds
    pixels[..., 0] += 127 + 100 * np.sin(x / (width / 6.0) + seed)
    pixels[..., 1] += 127 + 100 * np.cos(y / (height / 5.0))
    pixels[..., 2] += 127 + 80 * np.sin((x + y) / (width / 9.0))
    return np.clip(pixels, 0, 255, out=pixels).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


JPEGTRAN_MISSING = "jpegtran is missing: install Debian's libjpeg-turbo-progs (.ci/run does)"


def arithmetic_coded(baseline: bytes) -> dict[str, bytes]:
    """Arithmetic-coded copies of a JPEG, written by libjpeg-turbo's jpegtran (lossless); none
    where jpegtran is missing (test_preprocessing_parity fails on that in CI)."""
    tool = shutil.which("jpegtran")
    if tool is None:
        return {}

    def transcode(*options: str) -> bytes:
        command = [tool, *options]
        return subprocess.run(command, input=baseline, capture_output=True, check=True).stdout

    return {
        "jpeg_arithmetic.jpg": transcode("-arithmetic"),
        "jpeg_arithmetic_progressive.jpg": transcode("-arithmetic", "-progressive"),
    }


def png_bytes(pixels: np.ndarray) -> bytes:
    """A PNG of 8- or 16-bit grey, grey+alpha, RGB or RGBA pixels (Pillow writes 16-bit grey
    only)."""
    height, width, channels = pixels.shape
    bit_depth = 16 if pixels.dtype == np.uint16 else 8
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = pixels.astype(">u2" if bit_depth == 16 else np.uint8).reshape(height, -1).view(np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def gif_bytes(
    screen: tuple[int, int],
    frames: list[dict],
    global_colors: list[tuple[int, int, int]] | None,
    trailer: bool = True,
) -> bytes:
    """A GIF with exactly the given frames: each a dict of `indices` (2-D uint8) and optional
    `left`, `top`, `colors` (a local table) and `transparent` (an index)."""
    flags, table = _color_table(global_colors)
    data = bytearray(b"GIF89a" + struct.pack("<HHBBB", *screen, flags, 0, 0) + table)
    for frame in frames:
        indices = frame["indices"]
        if frame.get("transparent") is not None:
            data += b"\x21\xf9\x04" + bytes([1, 0, 0, frame["transparent"]]) + b"\x00"
        local_flags, local_table = _color_table(frame.get("colors"))
        data += b"\x2c" + struct.pack(
            "<HHHHB",
            frame.get("left", 0),
            frame.get("top", 0),
            indices.shape[1],
            indices.shape[0],
            local_flags,
        )
        data += local_table + _lzw_literal_codes(indices)
    if trailer:
        data += b"\x3b"
    return bytes(data)


def _color_table(colors: list[tuple[int, int, int]] | None) -> tuple[int, bytes]:
    if colors is None:
        return 0, b""
    bits = max(1, (len(colors) - 1).bit_length())
    padded = list(colors) + [(0, 0, 0)] * ((1 << bits) - len(colors))
    return 0x80 | (bits - 1), b"".join(bytes(color) for color in padded)


def _lzw_literal_codes(indices: np.ndarray, code_size: int = 8) -> bytes:
    """Valid LZW data made of literal codes only: a clear code before the table would grow
    past the first code width keeps every code code_size + 1 bits wide."""
    clear, end = 1 << code_size, (1 << code_size) + 1
    codes, run = [clear], 0
    for value in indices.ravel().tolist():
        if run == (1 << code_size) - 2:
            codes.append(clear)
            run = 0
        codes.append(value)
        run += 1
    codes.append(end)
    packed = sum(code << (index * (code_size + 1)) for index, code in enumerate(codes))
    stream = packed.to_bytes((len(codes) * (code_size + 1) + 7) // 8, "little")
    blocks = b"".join(
        bytes([len(stream[at : at + 255])]) + stream[at : at + 255]
        for at in range(0, len(stream), 255)
    )
    return bytes([code_size]) + blocks + b"\x00"


def _without_adobe_marker(jpeg: bytes) -> bytes:
    """The same JPEG without its APP14 segments: libjpeg then reads 4 channels as plain CMYK."""
    out, at = bytearray(jpeg[:2]), 2
    while True:
        marker, length = jpeg[at + 1], int.from_bytes(jpeg[at + 2 : at + 4], "big")
        if marker == 0xDA:
            return bytes(out + jpeg[at:])
        if marker != 0xEE:
            out += jpeg[at : at + 2 + length]
        at += 2 + length


def jpeg_corpus() -> dict[str, bytes]:
    """JPEG in every coding, colour space and subsampling the decoder must get exactly right."""
    pixels = photo_like(321, 243, seed=1)
    rgb = Image.fromarray(pixels)
    cmyk = rgb.convert("CMYK")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90; TensorFlow ignores it
    baseline = encode(rgb, "JPEG", quality=90)
    return {
        "jpeg_baseline.jpg": baseline,
        "jpeg_progressive.jpg": encode(rgb, "JPEG", quality=85, progressive=True),
        "jpeg_grayscale.jpg": encode(rgb.convert("L"), "JPEG", quality=90),
        "jpeg_grayscale_progressive.jpg": encode(rgb.convert("L"), "JPEG", progressive=True),
        "jpeg_cmyk_adobe.jpg": encode(cmyk, "JPEG", quality=90),
        "jpeg_cmyk_no_adobe_marker.jpg": _without_adobe_marker(encode(cmyk, "JPEG", quality=90)),
        "jpeg_ycck_adobe.jpg": simplejpeg.encode_jpeg(
            np.asarray(cmyk), 90, colorspace="CMYK", colorsubsampling="420"
        ),
        "jpeg_rgb_colorspace.jpg": encode(rgb, "JPEG", quality=90, keep_rgb=True),
        "jpeg_subsampled_444.jpeg": encode(rgb, "JPEG", quality=95, subsampling="4:4:4"),
        "jpeg_subsampled_422.jpg": encode(rgb, "JPEG", quality=90, subsampling="4:2:2"),
        "jpeg_subsampled_420.jpg": encode(rgb, "JPEG", quality=90, subsampling="4:2:0"),
        "jpeg_subsampled_411.jpg": simplejpeg.encode_jpeg(pixels, 90, colorsubsampling="411"),
        "jpeg_subsampled_440.jpg": simplejpeg.encode_jpeg(pixels, 90, colorsubsampling="440"),
        "jpeg_restart_every_2_blocks.jpg": encode(rgb, "JPEG", restart_marker_blocks=2),
        "jpeg_restart_every_row.jpg": encode(rgb, "JPEG", progressive=True, restart_marker_rows=1),
        **arithmetic_coded(baseline),
        "jpeg_exif_rotated.jpg": encode(rgb, "JPEG", quality=90, exif=exif.tobytes()),
        "jpeg_quality_100.jpg": encode(rgb, "JPEG", quality=100),
        "jpeg_odd_17x9.jpg": encode(Image.fromarray(photo_like(17, 9, seed=3)), "JPEG"),
        "jpeg_1x1.jpg": encode(Image.fromarray(photo_like(1, 1, seed=3)), "JPEG"),
        "jpeg_1x517.jpg": encode(Image.fromarray(photo_like(1, 517, seed=3)), "JPEG"),
        "jpeg_517x1.jpg": encode(Image.fromarray(photo_like(517, 1, seed=3)), "JPEG"),
        "jpeg_large_photo.jpg": encode(Image.fromarray(photo_like(3000, 2000, seed=2)), "JPEG"),
    }


def png_corpus() -> dict[str, bytes]:
    rgb = Image.fromarray(photo_like(320, 240, seed=1))
    rgba = rgb.copy()
    alpha = np.zeros((240, 320), np.uint8)
    alpha[40:200, 60:260] = 255
    alpha[:10] = 128
    rgba.putalpha(Image.fromarray(alpha))
    texture = photo_like(130, 90, seed=4).astype(np.uint16)
    grey16 = texture[:, :, :1] * 250 + 7
    alpha16 = (np.arange(130 * 90, dtype=np.uint32).reshape(90, 130, 1) * 31 % 65536).astype(
        np.uint16
    )
    animation = [Image.fromarray(photo_like(60, 40, seed=s)) for s in range(3)]
    return {
        "png_rgb.png": encode(rgb, "PNG"),
        "png_rgba.png": encode(rgba, "PNG"),
        "png_palette.png": encode(rgb.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "png_palette_4bit.png": encode(
            rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG", bits=4
        ),
        "png_palette_transparent.png": encode(
            rgba.convert("P", palette=Image.Palette.ADAPTIVE), "PNG", transparency=0
        ),
        "png_palette_trns_many.png": encode(
            rgba.convert("P", palette=Image.Palette.ADAPTIVE, colors=64),
            "PNG",
            transparency=bytes(range(0, 256, 4)),
        ),
        "png_gray.png": encode(rgb.convert("L"), "PNG"),
        "png_gray_1bit.png": encode(rgb.convert("1"), "PNG"),
        "png_gray_2bit.png": encode(rgb.convert("L"), "PNG", bits=2),
        "png_gray_4bit.png": encode(rgb.convert("L"), "PNG", bits=4),
        "png_gray_trns.png": encode(rgb.convert("L"), "PNG", transparency=17),
        "png_rgb_trns.png": encode(rgb, "PNG", transparency=(10, 20, 30)),
        "png_gray_alpha.png": encode(rgba.convert("LA"), "PNG"),
        "png_16bit_rgb.png": png_bytes(texture * 257 + 3),
        "png_16bit_rgba.png": png_bytes(np.dstack([texture * 257 + 3, alpha16])),
        "png_16bit_gray.png": png_bytes(grey16),
        "png_16bit_gray_alpha.png": png_bytes(np.dstack([grey16, alpha16])),
        "png_animated.png": encode(animation[0], "PNG", save_all=True, append_images=animation[1:]),
        "png_tiny.png": encode(rgb.resize((7, 5)), "PNG"),
        "png_1x1.png": encode(rgb.resize((1, 1)), "PNG"),
        "png_1x300.png": encode(rgb.resize((1, 300)), "PNG"),
        "png_300x1.png": encode(rgb.resize((300, 1)), "PNG"),
    }


def gif_corpus() -> dict[str, bytes]:
    """GIFs whose first frame TensorFlow renders unlike a browser (see gif.py)."""
    rng = np.random.default_rng(6)
    colors = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(16)]
    local = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(8)]

    def indices(height: int, width: int, count: int = 16) -> np.ndarray:
        return rng.integers(0, count, (height, width), dtype=np.uint8)

    rgb = Image.fromarray(photo_like(96, 64, seed=8))
    frames = [Image.fromarray(photo_like(96, 64, seed=s)).convert("P") for s in range(3)]
    animated = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80)
    return {
        "gif_static.gif": encode(rgb.convert("P"), "GIF"),
        "gif_gray.gif": encode(rgb.convert("L"), "GIF"),
        "gif_interlaced.gif": encode(rgb.convert("P"), "GIF", interlace=True),
        "gif_animated.gif": animated,
        "gif_transparent_index.gif": gif_bytes(
            (40, 30), [{"indices": indices(30, 40), "transparent": 3}], colors
        ),
        "gif_first_frame_offset.gif": gif_bytes(
            (60, 50), [{"indices": indices(30, 40), "left": 7, "top": 5}], colors
        ),
        "gif_later_frame_larger.gif": gif_bytes(
            (40, 30), [{"indices": indices(30, 40)}, {"indices": indices(45, 55)}], colors
        ),
        "gif_frame_larger_than_screen.gif": gif_bytes(
            (10, 5), [{"indices": indices(30, 40)}], colors
        ),
        "gif_local_color_table.gif": gif_bytes(
            (40, 30), [{"indices": indices(30, 40, 8), "colors": local}], None
        ),
        "gif_no_trailer.gif": gif_bytes((40, 30), [{"indices": indices(30, 40)}], colors, False),
        "gif_1x200.gif": gif_bytes((1, 200), [{"indices": indices(200, 1)}], colors),
    }


def bmp_corpus() -> dict[str, bytes]:
    rgb = Image.fromarray(photo_like(320, 240, seed=1))
    rgba = rgb.copy()
    rgba.putalpha(100)
    return {
        "bmp_rgb.bmp": encode(rgb, "BMP"),
        "bmp_rgba.bmp": encode(rgba, "BMP"),
        "bmp_palette.bmp": encode(rgb.convert("P"), "BMP"),
        "bmp_gray.bmp": encode(rgb.convert("L"), "BMP"),
        "bmp_odd_7x5.bmp": encode(rgb.resize((7, 5)), "BMP"),
        "bmp_gray_odd_7x5.bmp": encode(rgb.convert("L").resize((7, 5)), "BMP"),
        "bmp_1x33.bmp": encode(rgb.resize((1, 33)), "BMP"),
        "bmp_33x1.bmp": encode(rgb.resize((33, 1)), "BMP"),
    }


def reference_corpus() -> dict[str, bytes]:
    """Files named with the extensions keras.utils.image_dataset_from_directory reads."""
    return jpeg_corpus() | png_corpus() | gif_corpus() | bmp_corpus()


def damaged_corpus() -> dict[str, bytes]:
    """Damaged files TensorFlow decodes anyway (or refuses): the server must decide alike."""
    baseline = encode(Image.fromarray(photo_like(120, 80, seed=9)), "JPEG")
    progressive = encode(Image.fromarray(photo_like(120, 80, seed=9)), "JPEG", progressive=True)
    first_marker = baseline.index(b"\xff\xdb")  # the first quantisation table
    rng = np.random.default_rng(10)
    colors = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(16)]
    first, second = (rng.integers(0, 16, shape, dtype=np.uint8) for shape in ((30, 40), (45, 55)))
    two_frames = gif_bytes((40, 30), [{"indices": first}, {"indices": second}], colors)
    bmp = encode(Image.fromarray(photo_like(20, 10, seed=1)), "BMP")
    return {
        "jpeg_truncated.jpg": baseline[: len(baseline) * 2 // 3],
        "jpeg_progressive_truncated.jpg": progressive[: len(progressive) // 2],
        "jpeg_without_eoi.jpg": baseline[:-2],
        "jpeg_garbage_between_header_segments.jpg": (
            baseline[:first_marker] + b"\x00garbage" + baseline[first_marker:]
        ),
        "jpeg_garbage_before_eoi.jpg": baseline[:-2] + b"\x12\x34\x56" + baseline[-2:],
        "jpeg_data_cut_then_eoi.jpg": baseline[: len(baseline) * 2 // 3] + b"\xff\xd9",
        "gif_second_frame_truncated.gif": two_frames[:-40],
        "gif_second_frame_without_terminator.gif": two_frames[:-2],
        "gif_first_frame_truncated.gif": two_frames[:100],
        "bmp_one_byte_short.bmp": bmp[:-1],
        "bmp_one_byte_long.bmp": bmp + b"\x00",
    }


def pillow_only_corpus() -> dict[str, tuple[bytes, bytes]]:
    """(WebP/TIFF file, PNG of the same pixels): the reference can't read the former."""
    rgb = Image.fromarray(photo_like(200, 150, seed=7))
    rgba = rgb.copy()
    rgba.putalpha(128)
    return {
        "webp_lossless_rgb": (encode(rgb, "WEBP", lossless=True), encode(rgb, "PNG")),
        "webp_lossless_rgba": (encode(rgba, "WEBP", lossless=True), encode(rgba, "PNG")),
        "tiff_rgb": (encode(rgb, "TIFF"), encode(rgb, "PNG")),
        "tiff_rgba": (encode(rgba, "TIFF"), encode(rgba, "PNG")),
        "tiff_gray": (encode(rgb.convert("L"), "TIFF"), encode(rgb.convert("L"), "PNG")),
    }


def flat_png(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    """A flat-colour PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()
