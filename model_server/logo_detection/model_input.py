"""The model's input: square RGB images of INPUT_SIZE pixels a side, float32 in 0..255.

A module of its own so that preprocessing and the ONNX backend know the input shape without
importing Keras.
"""

from __future__ import annotations

INPUT_SIZE = 224
