"""Identify an image's format from its first bytes, never from its name or Content-Type."""

from __future__ import annotations

from enum import StrEnum

from ..errors import ErrorType, ImageError


class ImageFormat(StrEnum):
    JPEG = "jpeg"
    PNG = "png"
    GIF = "gif"
    BMP = "bmp"
    WEBP = "webp"
    TIFF = "tiff"
    SVG = "svg"


_MAGIC_NUMBERS: tuple[tuple[bytes, ImageFormat], ...] = (
    (b"\xff\xd8\xff", ImageFormat.JPEG),
    (b"\x89PNG\r\n\x1a\n", ImageFormat.PNG),
    (b"GIF87a", ImageFormat.GIF),
    (b"GIF89a", ImageFormat.GIF),
    (b"BM", ImageFormat.BMP),
    (b"II*\x00", ImageFormat.TIFF),
    (b"MM\x00*", ImageFormat.TIFF),
)
_SVG_SNIFF_BYTES = 4096


def sniff_format(data: bytes) -> ImageFormat:
    """The format the bytes really are; raises ImageError for anything we don't read."""
    if not data:
        raise ImageError(ErrorType.UNSUPPORTED_FORMAT, "the image is empty (0 bytes)")
    for magic, image_format in _MAGIC_NUMBERS:
        if data.startswith(magic):
            return image_format
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ImageFormat.WEBP
    if _looks_like_svg(data[:_SVG_SNIFF_BYTES]):
        return ImageFormat.SVG
    if _looks_like_html(data[:_SVG_SNIFF_BYTES]):
        raise ImageError(ErrorType.UNSUPPORTED_FORMAT, "the bytes are an HTML page, not an image")
    raise ImageError(
        ErrorType.UNSUPPORTED_FORMAT,
        "unrecognised image format (supported: JPEG, PNG, GIF, BMP, WebP, TIFF, SVG)",
    )


def _looks_like_svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    starts_like_xml = text.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype svg"))
    # A long DTD (Illustrator's style entities) can push <svg past the sniffed head.
    return starts_like_xml and (b"<svg" in text or b"<!doctype svg" in text)


def _looks_like_html(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))
