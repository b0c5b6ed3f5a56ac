"""Bilinear resize that equals `tf.image.resize(image, (size, size))` bit for bit, in numpy.

TensorFlow's kernel (ResizeBilinear with half-pixel centres, no antialiasing) works in float32:
the scale is `in / out` as a float32 division, output pixel `i` samples the source coordinate
`(i + 0.5) * scale - 0.5`, whose floor (clamped to 0) and ceiling (clamped to the last pixel)
are the two neighbours and whose distance from the floor, unclamped, is the weight. Each output
is then the lerp `top = tl + (tr - tl) * fx`, `bottom = bl + (br - bl) * fx`,
`top + (bottom - top) * fy`. The same operations in the same order and precision give the same
floats; the textbook weighted sum `(1-fx)(1-fy) tl + ...` rounds differently (up to 0.012).
Outside the image both neighbours are the edge pixel, so the unclamped weight has no effect.
"""

from __future__ import annotations

import numpy as np

_HALF = np.float32(0.5)


def resize_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """(height, width, channels) uint8 -> (size, size, channels) float32, as TensorFlow does."""
    height, width, channels = image.shape
    rows_low, rows_high, row_weights = _source_positions(height, size)
    cols_low, cols_high, col_weights = _source_positions(width, size)
    # All four neighbours as one (2 size, 2 size) block [[top_left, top_right], [bottom_left,
    # bottom_right]]: whole rows first (plain copies), then columns as byte offsets in those rows,
    # which numpy gathers several times faster than (row, column) pairs of 3-byte pixels.
    rows = image[np.concatenate([rows_low, rows_high])].reshape(2 * size, width * channels)
    cols = np.concatenate([cols_low, cols_high])[:, np.newaxis] * channels + np.arange(channels)
    block = rows.take(cols.ravel(), axis=1).reshape(2 * size, 2 * size, channels)
    fx = col_weights[np.newaxis, :, np.newaxis]
    top = _lerp(block[:size, :size], block[:size, size:], fx)
    bottom = _lerp(block[size:, :size], block[size:, size:], fx)
    return _lerp(top, bottom, row_weights[:, np.newaxis, np.newaxis])


def _lerp(start: np.ndarray, end: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """`start + (end - start) * weight` in float32 (uint8 inputs are converted exactly), in a new
    array. Floating-point addition commutes exactly, so adding `start` last is TensorFlow's
    expression to the last bit."""
    result: np.ndarray = np.subtract(end, start, dtype=np.float32)
    result *= weight
    result += start
    return result


def _source_positions(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output index along one axis: lower and upper source index, and the weight."""
    scale = np.float32(in_size) / np.float32(out_size)
    source = (np.arange(out_size, dtype=np.float32) + _HALF) * scale - _HALF
    floor = np.floor(source)
    lower = np.maximum(floor.astype(np.intp), 0)
    upper = np.minimum(np.ceil(source).astype(np.intp), in_size - 1)
    return lower, upper, source - floor
