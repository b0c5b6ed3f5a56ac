"""The backend-neutral network (training/network.py) is the production network: the KerasCV
EfficientNetV2-B0 `ImageClassifier` the production file holds, with the same parameters and,
once KerasCV's weights are copied in, the same outputs. Needs KerasCV, so TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow

B0_BACKBONE_PARAMETERS = 5_919_312  # KerasCV's EfficientNetV2-B0 backbone, and keras.applications'


@pytest.fixture(scope="module")
def both_forms():
    """A KerasCV classifier with its initial weights, the 1-D ones (biases, batch-norm scales,
    offsets and statistics) perturbed so that they count, and the plain-Keras network given the
    same weights, in the same order."""
    from keras_export.architecture import build_classifier
    from training.network import build_network

    kerascv, plain = build_classifier(), build_network()
    rng = np.random.default_rng(0)
    weights = [
        w if w.ndim > 1 else (w * rng.uniform(0.9, 1.1, w.shape) + rng.normal(0, 0.01, w.shape))
        for w in kerascv.get_weights()
    ]
    kerascv.set_weights(weights)
    plain.set_weights(weights)
    return kerascv, plain


def test_same_layout_and_parameter_count(both_forms):
    kerascv, plain = both_forms
    assert [w.shape for w in plain.get_weights()] == [w.shape for w in kerascv.get_weights()]
    assert plain.count_params() == kerascv.count_params()
    backbone = plain.get_layer("efficientnetv2_b0")
    assert backbone.count_params() == B0_BACKBONE_PARAMETERS
    assert kerascv.backbone.count_params() == B0_BACKBONE_PARAMETERS


def test_pixels_in_rescaled_inside_softmax_out(both_forms):
    _, plain = both_forms
    rescaling = plain.get_layer("efficientnetv2_b0").get_layer("rescaling")
    assert rescaling.scale == pytest.approx(1 / 255) and rescaling.offset == 0
    head = plain.get_layer("predictions")
    assert head.units == 2 and head.activation.__name__ == "softmax"
    assert plain.output_shape == (None, 2)


def varied_images(size: int) -> np.ndarray:
    """Black, white, a colour gradient and noise: inputs that score apart even on random weights."""
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    gradient = np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :], 128.0), axis=-1)
    noise = np.random.default_rng(size).uniform(0, 255, (size, size, 3))
    flat = np.zeros((size, size, 3))
    return np.stack([flat, flat + 255, gradient, noise]).astype(np.float32)


@pytest.mark.parametrize("size", [224, 96])
def test_same_outputs_as_the_kerascv_classifier(both_forms, size):
    kerascv, plain = both_forms
    pixels = varied_images(size)
    features = plain.get_layer("efficientnetv2_b0").predict(pixels, verbose=0)
    expected_features = kerascv.backbone.predict(pixels, verbose=0)
    # the images differ inside far more than the tolerance below: a real comparison
    assert np.ptp(expected_features, axis=0).max() > 1e-3
    np.testing.assert_allclose(features, expected_features, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        plain.predict(pixels, verbose=0), kerascv.predict(pixels, verbose=0), rtol=0, atol=1e-6
    )
