"""Rasterize SVG uploads into PNG bytes, so they take the same decode path as PNG thumbnails.

Commons shows SVGs as PNG renderings with transparency; rendering to PNG and then decoding
that PNG like any other keeps SVG scores consistent with the PNG logos the model saw.
The document is parsed with defusedxml first (no DTDs, no entities) to learn its aspect ratio,
so the rendering size is bounded before resvg allocates anything.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as safe_xml
import resvg_py
from defusedxml import DefusedXmlException

from .errors import ErrorType, ImageError

_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)")


def rasterize_svg(data: bytes, longest_side: int) -> bytes:
    """Render the SVG so its longest side is `longest_side` pixels; returns PNG bytes."""
    root = parse_svg(data)
    width, height = _aspect(root)
    size = {"width": longest_side} if width >= height else {"height": longest_side}
    try:
        return resvg_py.svg_to_bytes(svg_string=data.decode("utf-8"), **size)
    except (ValueError, UnicodeDecodeError) as error:
        raise ImageError(ErrorType.DECODE_FAILED, f"SVG could not be rendered: {error}") from None


def parse_svg(data: bytes) -> Element:
    """Parse with DTDs and entities forbidden; the root must be an <svg> element."""
    try:
        root = safe_xml.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as error:
        raise ImageError(ErrorType.DECODE_FAILED, f"unsafe SVG refused: {error}") from None
    except Exception as error:  # ParseError and friends: malformed XML
        raise ImageError(ErrorType.DECODE_FAILED, f"SVG is not well-formed XML: {error}") from None
    if not root.tag.endswith("svg"):
        raise ImageError(ErrorType.DECODE_FAILED, "the XML document's root is not <svg>")
    return root


def _aspect(root: Element) -> tuple[float, float]:
    """Width and height (any unit) from viewBox, else width/height attributes, else square."""
    view_box = (root.get("viewBox") or "").replace(",", " ").split()
    if len(view_box) == 4:
        try:
            width, height = float(view_box[2]), float(view_box[3])
            if width > 0 and height > 0:
                return width, height
        except ValueError:
            pass
    width, height = _length(root.get("width")), _length(root.get("height"))
    if width and height:
        return width, height
    return 1.0, 1.0


def _length(value: str | None) -> float | None:
    match = _NUMBER.match(value or "")
    return float(match.group(1)) if match and float(match.group(1)) > 0 else None
