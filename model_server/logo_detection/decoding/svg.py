"""Rasterize SVG uploads into PNG bytes, so they take the same decode path as PNG thumbnails.

Commons shows SVGs as PNG renderings with transparency; rendering to PNG and then decoding
that PNG like any other keeps SVG scores consistent with the PNG logos the model saw.

SVG is a program more than an image, so it is handled in three bounded steps:
1. parse with defusedxml's expat parser, after the DOCTYPE's internal subset passed the rule
   Wikimedia Commons applies (see svg_dtd: plain entities such as Illustrator's `&ns_svg;` are
   expanded, within a byte bound; external and parameter entities, nested entity values and
   other declarations are refused); no file or URL is ever read, and the root must be <svg>.
   A document with an internal subset is rendered from the parsed tree, entities expanded and
   DTD dropped, so resvg never interprets a DTD;
2. inspect the tree: at most `max_elements` elements counting what <use> expands to, and no
   reference that leaves the document (href/src/url()/@import other than `#fragment` or a
   raster `data:` URI): resvg would otherwise read local files such as /dev/zero;
3. render with resvg at a bounded size in a separate worker process, killed after
   `timeout_s`: a few bytes of filter (feTurbulence octaves, feMorphology radius) can keep resvg
   busy for minutes, and resvg holds the GIL, so a thread could not be stopped or run beside
   the event loop. The worker also has an address-space limit.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import re
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import cast
from xml.etree.ElementTree import Element, tostring

from defusedxml import DefusedXmlException

from ..errors import ErrorType, ImageError
from .svg_dtd import Dtd, DtdEnforcingParser, check_expansion, read_dtd

logger = logging.getLogger(__name__)

_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)")
_CSS_URL = re.compile(r"url\(\s*['\"]?\s*([^'\")\s]*)", re.IGNORECASE)
_REFERENCE_ATTRIBUTES = frozenset({"href", "src"})
_WORKER_START_TIMEOUT_S = 120.0
_WORKER_ADDRESS_SPACE_BYTES = 2 * 1024**3  # resvg allocations past this fail, the worker exits


@dataclass(frozen=True)
class SvgLimits:
    max_bytes: int = 10 * 1024 * 1024
    max_elements: int = 50_000  # after <use> expansion
    render_size: int = 512  # longest side of the rendering, in pixels
    timeout_s: float = 5.0


def rasterize_svg(data: bytes, limits: SvgLimits = SvgLimits()) -> bytes:
    """Render the SVG so its longest side is `limits.render_size` pixels; returns PNG bytes."""
    if len(data) > limits.max_bytes:
        raise ImageError(ErrorType.TOO_LARGE, f"the SVG is larger than {limits.max_bytes} bytes")
    dtd = read_dtd(data)  # before anything copies the bytes: refusals stay cheap
    check_expansion(data, dtd, limits.max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ImageError(ErrorType.DECODE_FAILED, "the SVG is not UTF-8 encoded") from None
    root = parse_svg(data, dtd)
    check_svg_tree(root, limits.max_elements)
    if dtd.has_internal_subset:
        text = _serialize(root)
    width, height = _aspect(root)
    size = {"width": limits.render_size} if width >= height else {"height": limits.render_size}
    return _renderers.render(text, size, limits.timeout_s)


def parse_svg(data: bytes, dtd: Dtd) -> Element:
    """Parse UTF-8 with only the declarations `dtd` accepted, no external references; the
    root must be <svg>."""
    parser = DtdEnforcingParser(dtd)
    try:
        parser.feed(data)
        root = parser.close()
    except ImageError:
        raise
    except DefusedXmlException as error:
        raise ImageError(ErrorType.DECODE_FAILED, f"unsafe SVG refused: {error}") from None
    except Exception as error:  # ParseError and friends: malformed XML
        raise ImageError(ErrorType.DECODE_FAILED, f"SVG is not well-formed XML: {error}") from None
    if not isinstance(root.tag, str) or _local(root.tag) != "svg":
        raise ImageError(ErrorType.DECODE_FAILED, "the XML document's root is not <svg>")
    return cast(Element, root)  # defusedxml is untyped


def _serialize(root: Element) -> str:
    """The parsed document as XML without a DTD: entities expanded, nothing left to declare."""
    try:
        return tostring(root, encoding="unicode")
    except RecursionError:
        raise ImageError(ErrorType.DECODE_FAILED, "the SVG is nested too deeply") from None


def check_svg_tree(root: Element, max_elements: int) -> None:
    """Refuse references that leave the document, and trees that expand past `max_elements`."""
    for element in root.iter():
        for name, value in element.attrib.items():
            if _local(name) in _REFERENCE_ATTRIBUTES:
                _check_reference(value)
            elif "url(" in value.lower():
                _check_css(value)
        if isinstance(element.tag, str) and _local(element.tag) == "style" and element.text:
            _check_css(element.text)
    if _expanded_size(root, max_elements) > max_elements:
        raise ImageError(
            ErrorType.TOO_LARGE, f"the SVG has more than {max_elements} elements (<use> expanded)"
        )


def _check_reference(value: str) -> None:
    target = value.strip()
    lowered = target.lower()
    if target.startswith("#"):
        return
    if lowered.startswith("data:") and not lowered.startswith("data:image/svg"):
        return  # embedded raster: decoded inside the bounded worker
    raise ImageError(
        ErrorType.DECODE_FAILED,
        f"unsafe SVG refused: reference {target[:80]!r} leaves the document",
    )


def _check_css(css: str) -> None:
    if "@import" in css.lower():
        raise ImageError(ErrorType.DECODE_FAILED, "unsafe SVG refused: CSS @import")
    for target in _CSS_URL.findall(css):
        _check_reference(target)


def _expanded_size(root: Element, limit: int) -> int:
    """Elements after <use> expansion (capped just past `limit`); a <use> cycle counts as over."""
    by_id = {element.get("id"): element for element in root.iter() if element.get("id")}
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(element: Element) -> int:
        key = id(element)
        if key in sizes:
            return sizes[key]
        if key in visiting:
            return limit + 1  # a cycle through <use>
        visiting.add(key)
        total = 1 + sum(size(child) for child in element)
        if isinstance(element.tag, str) and _local(element.tag) == "use":
            target = by_id.get(_use_target(element))
            if target is not None:
                total += size(target)
        visiting.discard(key)
        sizes[key] = min(total, limit + 1)
        return sizes[key]

    try:
        return size(root)
    except RecursionError:
        raise ImageError(ErrorType.DECODE_FAILED, "the SVG is nested too deeply") from None


def _use_target(element: Element) -> str:
    for name, value in element.attrib.items():
        if _local(name) == "href":
            return value.strip().removeprefix("#")
    return ""


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


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
    width_attribute, height_attribute = _length(root.get("width")), _length(root.get("height"))
    if width_attribute and height_attribute:
        return width_attribute, height_attribute
    return 1.0, 1.0


def _length(value: str | None) -> float | None:
    match = _NUMBER.match(value or "")
    return float(match.group(1)) if match and float(match.group(1)) > 0 else None


# --- The render worker processes -------------------------------------------------------------


def _serve_renders(connection: Connection) -> None:
    """Worker process main loop: (svg text, size) in, (ok, PNG bytes or message) out."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (_WORKER_ADDRESS_SPACE_BYTES,) * 2)
    import resvg_py

    connection.send((True, b"ready"))
    while True:
        try:
            text, size = connection.recv()
        except (EOFError, OSError):
            return  # the server went away
        try:
            # CSS's 96 dpi: resvg-py's default of 0 makes pt/mm/in sizes zero ("invalid size").
            png = resvg_py.svg_to_bytes(svg_string=text, dpi=96, **size)
            connection.send((True, png))
        except BaseException as error:  # pyo3 panics are BaseException; the worker lives on
            connection.send((False, f"{type(error).__name__}: {error}"))


class _RenderWorker:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process running TF threads
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=_serve_renders, args=(child,), daemon=True, name="svg-render"
        )
        self.process.start()
        child.close()
        # Start-up (a fresh interpreter importing resvg) is not charged to any SVG's timeout.
        if not self.connection.poll(_WORKER_START_TIMEOUT_S):
            self.kill()
            raise _WorkerLost(ErrorType.INTERNAL, "the SVG renderer did not start")
        self.connection.recv()

    def render(self, text: str, size: dict[str, int], timeout_s: float) -> bytes:
        """PNG bytes; raises ImageError. On timeout or crash the worker is unusable (kill it)."""
        crashed = _WorkerLost(
            ErrorType.DECODE_FAILED, "the SVG renderer ran out of memory or crashed on this SVG"
        )
        try:
            self.connection.send((text, size))
            if not self.connection.poll(timeout_s):
                raise _WorkerLost(
                    ErrorType.DECODE_FAILED, f"rendering the SVG took longer than {timeout_s:g} s"
                )
            ok, payload = self.connection.recv()
        except (EOFError, OSError):
            raise crashed from None
        if not ok:
            raise ImageError(ErrorType.DECODE_FAILED, f"SVG could not be rendered: {payload}")
        return cast(bytes, payload)

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.connection.close()


class _WorkerLost(ImageError):
    """The render failed in a way that leaves the worker busy or dead."""


class _RendererPool:
    """Worker processes started on first use; a lost worker is replaced by a fresh one."""

    def __init__(self, max_workers: int) -> None:
        self._idle: queue.LifoQueue[_RenderWorker | None] = queue.LifoQueue()
        for _ in range(max_workers):
            self._idle.put(None)  # a slot whose worker is not started yet

    def render(self, text: str, size: dict[str, int], timeout_s: float) -> bytes:
        worker = self._idle.get()
        try:
            if worker is None or not worker.process.is_alive():
                worker = _RenderWorker()
            return worker.render(text, size, timeout_s)
        except _WorkerLost:
            logger.warning("Killing an SVG render worker (timeout or crash) and starting afresh")
            with contextlib.suppress(Exception):
                if worker is not None:
                    worker.kill()
            worker = None
            raise
        finally:
            self._idle.put(worker)


def _default_workers() -> int:
    from ..cpu_quota import effective_cpu_count

    return max(1, effective_cpu_count(0))


_renderers = _RendererPool(_default_workers())
