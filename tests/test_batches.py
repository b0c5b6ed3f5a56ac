"""The backend-neutral training pipeline (training/batches.py), in process: what it feeds the
network, that every image is seen once per pass, and that batches depend on the seed and the
batch number only."""

from __future__ import annotations

import numpy as np
import pytest

from training.batches import Batches, crop_box, view

pytestmark = pytest.mark.training  # imports Keras (on the TensorFlow backend by default)

COUNT, SIZE = 10, 224


def numbered_images(count: int = COUNT) -> np.ndarray:
    """Image i is flat grey level 20 * i, so a batch says which images it holds."""
    return np.repeat(20 * np.arange(count, dtype=np.uint8), SIZE * SIZE * 3).reshape(
        count, SIZE, SIZE, 3
    )


def test_validation_batches_are_every_image_once_unchanged_in_a_fixed_mixed_order():
    images, labels = numbered_images(), np.array([0] * 5 + [1] * 5)
    batches = Batches(images, labels, batch_size=4)
    assert len(batches) == 3
    seen = [batches[i] for i in range(3)]
    pixels = np.concatenate([x for x, _ in seen])
    assert pixels.dtype == np.float32 and pixels.shape == (COUNT, SIZE, SIZE, 3)
    levels = pixels[:, 0, 0, 0] / 20
    assert sorted(levels) == list(range(COUNT))
    assert list(levels) != list(range(COUNT))  # mixed: capped validation sees both classes
    one_hot = np.concatenate([y for _, y in seen])
    np.testing.assert_array_equal(one_hot.argmax(1), labels[levels.astype(int)])
    again = Batches(images, labels, batch_size=4)[0][0]
    np.testing.assert_array_equal(again, seen[0][0])


def test_training_sees_every_image_once_per_pass_and_a_new_order_each_pass():
    images, labels = numbered_images(), np.arange(COUNT) % 2
    batches = Batches(images, labels, batch_size=5, size=32, train=True, steps=2, seed=3)
    passes = []
    for _ in range(3):  # one pass of 10 images per epoch of 2 batches of 5
        rows = np.concatenate([batches.rows(batches.epoch * batches.steps + i) for i in range(2)])
        passes.append(list(rows))
        batches.on_epoch_end()
    assert all(sorted(rows) == list(range(COUNT)) for rows in passes)
    assert len({tuple(rows) for rows in passes}) == 3


@pytest.mark.parametrize("strength", ["basic", "strong"])
def test_training_batches_are_augmented_to_the_stage_size_in_range_and_reproducible(strength):
    images, labels = numbered_images(), np.arange(COUNT) % 2

    def second_batch(seed: int) -> tuple[np.ndarray, np.ndarray]:
        options = {"size": 64, "train": True, "min_scale": 0.5, "augmentation": strength}
        return Batches(images, labels, 4, seed=seed, **options)[1]

    x, y = second_batch(seed=1)
    assert x.shape == (4, 64, 64, 3) and x.dtype == np.float32 and y.shape == (4, 2)
    assert x.min() >= 0 and x.max() <= 255
    np.testing.assert_array_equal(second_batch(seed=1)[0], x)  # same seed and batch: same pixels
    assert not np.array_equal(second_batch(seed=2)[0], x)


def test_crops_stay_inside_the_image_and_zoom_out_pads_with_the_colour():
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, height, width = crop_box(rng, 0.6, strong=False)
        assert 0.6 <= height == width <= 1.0
        assert 0 <= top <= 1 - height and 0 <= left <= 1 - width
    white = np.full((SIZE, SIZE, 3), 255, np.uint8)
    padded = np.asarray(view(white, (-0.5, -0.5, 2.0, 2.0), 64, (10, 200, 30)))
    np.testing.assert_array_equal(padded[0, 0], (10, 200, 30))  # the corner is padding
    np.testing.assert_array_equal(padded[32, 32], (255, 255, 255))  # the middle is the image
