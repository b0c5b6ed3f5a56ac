"""Our pixel budget and Pillow's own guard, in process. Importing the decoding package leaves
Pillow's process-wide `Image.MAX_IMAGE_PIXELS` as the importer has it (training keeps Pillow's
guard; the server turns it off at start-up), and an image over Pillow's limit but within our
budget is treated exactly as it was when importing decoding turned Pillow's guard off."""

from __future__ import annotations

import importlib
import io
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

import model_server.logo_detection as logo_detection
from model_server.logo_detection.decoding import DecodeLimits, image_to_model_input
from model_server.logo_detection.errors import ErrorType, ImageError

from .hostile_support import gif_bomb, jpeg, png, png_bomb

DECODING = "model_server.logo_detection.decoding"
PILLOW_DEFAULT = 89_478_485  # Pillow's Image.MAX_IMAGE_PIXELS as it ships; errors past twice it


def decode(data: bytes) -> np.ndarray | tuple[str, str]:
    """The model input, or the refusal as (type, message); no Pillow warning may escape."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return image_to_model_input(data, DecodeLimits())  # the default budget, 100 MP
        except ImageError as error:
            return (error.error_type, error.message)


def as_before(monkeypatch: pytest.MonkeyPatch, data: bytes) -> np.ndarray | tuple[str, str]:
    """What decoding did before: importing it turned Pillow's guard off."""
    with monkeypatch.context() as before:
        before.setattr(Image, "MAX_IMAGE_PIXELS", None)
        return decode(data)


def assert_same(actual, expected) -> None:
    if isinstance(expected, np.ndarray):
        assert isinstance(actual, np.ndarray), actual
        np.testing.assert_array_equal(actual, expected)
    else:
        assert actual == expected


def saved(image_format: str, size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").resize(size).save(buffer, image_format)
    return buffer.getvalue()


def test_importing_decoding_leaves_pillows_limit_alone(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 12_345_678)
    # A fresh import runs every decoding module's code again; the originals come back after.
    monkeypatch.setattr(logo_detection, "decoding", sys.modules[DECODING])
    for name in [name for name in sys.modules if name.startswith(DECODING)]:
        monkeypatch.delitem(sys.modules, name)
    importlib.import_module(DECODING)
    assert Image.MAX_IMAGE_PIXELS == 12_345_678


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("png", png((64, 48))),
        ("jpeg", jpeg((64, 48))),
        ("webp", saved("WEBP")),
        ("tiff", saved("TIFF")),
        ("bmp", saved("BMP")),
        ("gif", gif_bomb(48, 2)),
    ],
)
def test_an_image_over_pillows_limit_within_our_budget_decodes_as_before(monkeypatch, name, data):
    """A lowered Pillow limit stands in for a large image: 3072 pixels is over 2000 (a warning)
    and 2304 x 2 frames over 1000 (Pillow's error, were Pillow to read the GIF's frames)."""
    limit = 1000 if name == "gif" else 2000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    result = decode(data)
    assert isinstance(result, np.ndarray), result
    assert_same(result, as_before(monkeypatch, data))
    assert limit == Image.MAX_IMAGE_PIXELS  # decoding changed nothing


def test_a_large_image_within_our_budget_is_treated_as_before(monkeypatch):
    """9500 x 9500 (only its first rows encoded): past Pillow's shipped limit, within ours."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", PILLOW_DEFAULT)
    data = png_bomb(9500, 9500, rows=4)
    assert_same(decode(data), as_before(monkeypatch, data))


def test_over_our_budget_is_refused_with_our_error_as_before(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", PILLOW_DEFAULT)
    data = png_bomb(12_000, 12_000, rows=4)  # Pillow would only warn; our budget refuses
    expected = (
        ErrorType.TOO_LARGE,
        "12000x12000 pixels x 1 frame(s) exceeds the limit of 100000000 pixels",
    )
    assert decode(data) == as_before(monkeypatch, data) == expected


def test_past_pillows_error_limit_is_too_large(monkeypatch):
    """Where the importer keeps Pillow's guard and it refuses first (twice its limit), the image
    is still refused as too_large; the server, which turns the guard off, says our budget's."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", PILLOW_DEFAULT)
    data = png_bomb(100_000, 100_000, rows=4)
    error_type, message = decode(data)
    assert error_type == ErrorType.TOO_LARGE and "Pillow's pixel limit" in message
    assert as_before(monkeypatch, data) == (
        ErrorType.TOO_LARGE,
        "100000x100000 pixels x 1 frame(s) exceeds the limit of 100000000 pixels",
    )
