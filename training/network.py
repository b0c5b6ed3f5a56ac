"""The production network, defined once for every Keras 3 backend (TensorFlow, JAX, PyTorch).

The production file is a KerasCV `ImageClassifier` (EfficientNetV2-B0 backbone with the rescaling
inside, average pooling, a 2-class softmax), and KerasCV imports TensorFlow whatever the backend.
This is the same network from plain Keras: `keras.applications`' EfficientNetV2-B0 without its
ImageNet mean/variance normalisation (KerasCV's backbone only rescales), behind the same
`Rescaling(1/255)`, with the same pooled softmax head: 5,919,312 backbone parameters, and equal
outputs once KerasCV's weights are copied in (`tests/test_network.py` proves both in the full
install). Models are saved as this plain-Keras form: a file any Keras backend can load, which
exports and serves like the KerasCV one.
"""

from __future__ import annotations

import keras

from model_server.logo_detection.model_contract import DEFAULT_CLASS_NAMES

BACKBONE_NAME = "efficientnetv2_b0"


def build_backbone() -> keras.Model:
    """EfficientNetV2-B0 on pixels 0..255 (any size), without its classification top."""
    pixels = keras.Input((None, None, 3), name="pixels")
    rescaled = keras.layers.Rescaling(1.0 / 255, name="rescaling")(pixels)
    blocks = keras.applications.EfficientNetV2B0(
        include_top=False, weights=None, include_preprocessing=False, input_shape=(None, None, 3)
    )
    return keras.Model(pixels, blocks(rescaled), name=BACKBONE_NAME)


def build_network(
    num_classes: int = len(DEFAULT_CLASS_NAMES), backbone: keras.Model | None = None
) -> keras.Model:
    """Pixels 0..255 in, softmax scores out (index 0 `out_of_domain`, 1 `logo`)."""
    backbone = backbone or build_backbone()
    pixels = keras.Input((None, None, 3), name="pixels")
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(backbone(pixels))
    scores = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(pooled)
    return keras.Model(pixels, scores, name="logo_detection")
