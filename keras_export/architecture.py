"""The production architecture: KerasCV EfficientNetV2-B0 backbone + ImageClassifier head.

The B0 configuration is spelled out here because KerasCV's presets download it from Kaggle,
which does not work offline. Shared by the training tools and the placeholder default model.
"""

from __future__ import annotations

import keras
import keras_cv

# The contract, not decoding: the legacy-stack test loads this module without Pillow.
from model_server.logo_detection.model_contract import DEFAULT_CLASS_NAMES

EFFICIENTNETV2_B0_CONFIG = {
    "width_coefficient": 1.0,
    "depth_coefficient": 1.0,
    "skip_connection_dropout": 0.2,
    "depth_divisor": 8,
    "min_depth": 8,
    "activation": "swish",
    "stackwise_kernel_sizes": [3, 3, 3, 3, 3, 3],
    "stackwise_num_repeats": [1, 2, 2, 3, 5, 8],
    "stackwise_input_filters": [32, 16, 32, 48, 96, 112],
    "stackwise_output_filters": [16, 32, 48, 96, 112, 192],
    "stackwise_expansion_ratios": [1, 4, 4, 4, 6, 6],
    "stackwise_squeeze_and_excite_ratios": [0.0, 0.0, 0.0, 0.25, 0.25, 0.25],
    "stackwise_strides": [1, 2, 2, 2, 1, 2],
    "stackwise_conv_types": ["fused", "fused", "fused", "unfused", "unfused", "unfused"],
}


def build_backbone() -> keras.Model:
    """EfficientNetV2-B0 with rescaling inside, so the model takes pixels in 0..255."""
    return keras_cv.models.EfficientNetV2Backbone(
        include_rescaling=True, input_shape=(None, None, 3), **EFFICIENTNETV2_B0_CONFIG
    )


def build_classifier(
    num_classes: int = len(DEFAULT_CLASS_NAMES), backbone: keras.Model | None = None
) -> keras.Model:
    """The classifier exactly as the production file has it: pooled features -> softmax."""
    return keras_cv.models.ImageClassifier(
        backbone=backbone or build_backbone(),
        num_classes=num_classes,
        activation="softmax",
    )
