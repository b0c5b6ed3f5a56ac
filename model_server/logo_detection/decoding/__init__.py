"""Untrusted image bytes in, the model's (224, 224, 3) float32 input out, exactly as training's
`keras.utils.image_dataset_from_directory` produced it, without TensorFlow.

The public API below is what the server and training call. The stages behind it: `sniff` (what
format the bytes are), `jpeg`, `gif`, `bmp` (TensorFlow's decoders reproduced; other formats go
through Pillow), `svg` + `svg_dtd` (SVG rendered to PNG in a sandboxed worker, DTDs held to what
Commons accepts), `resize` (TensorFlow's bilinear resize) and `model_input`, which chains them.
Nothing here imports kserve, asyncio, the server's settings or TensorFlow.
"""

from ..model_contract import INPUT_SIZE
from .model_input import (
    DecodeLimits,
    image_to_model_input,
    image_to_rgb,
    warm_up_decoding,
)
from .sniff import ImageFormat, sniff_format
from .svg import SvgLimits

__all__ = [
    "INPUT_SIZE",
    "DecodeLimits",
    "ImageFormat",
    "SvgLimits",
    "image_to_model_input",
    "image_to_rgb",
    "sniff_format",
    "warm_up_decoding",
]
