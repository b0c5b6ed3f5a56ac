"""tf.data pipelines over the cached uint8 224x224 tensors.

Lower-resolution stages (progressive resizing) and augmentation resize the *decoded* 224 tensors
inside the graph; decoding itself only ever happens in the server's preprocessing code.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from model_server.logo_detection.tf.architecture import INPUT_SIZE


def _gather(images: np.ndarray, labels: np.ndarray, num_classes: int):
    def fetch(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.sort(idx)  # sorted reads are much faster from a memory-mapped cache
        return np.asarray(images[order]), np.eye(num_classes, dtype=np.float32)[labels[order]]

    def gather(idx: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x, y = tf.numpy_function(fetch, [idx], [tf.uint8, tf.float32], stateful=False)
        x.set_shape([None, INPUT_SIZE, INPUT_SIZE, 3])
        y.set_shape([None, num_classes])
        return x, y

    return gather


def _augment(size: int, min_scale: float, seed: int):
    """Random flip and a random crop of ``min_scale``..1 of the side, resized to ``size``."""

    def augment(x: tf.Tensor, y: tf.Tensor, batch_seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        n = tf.shape(x)[0]
        seeds = tf.random.experimental.stateless_split(
            tf.stack([batch_seed, tf.constant(seed, tf.int64)]), 3
        )
        scale = tf.random.stateless_uniform([n], seeds[0], min_scale, 1.0)
        offset = tf.random.stateless_uniform([n, 2], seeds[1]) * (1.0 - scale)[:, None]
        boxes = tf.concat([offset, offset + scale[:, None]], axis=1)
        x = tf.image.crop_and_resize(tf.cast(x, tf.float32), boxes, tf.range(n), (size, size))
        flip = tf.random.stateless_uniform([n, 1, 1, 1], seeds[2]) < 0.5
        return tf.where(flip, tf.reverse(x, axis=[2]), x), y

    return augment


def _resize(size: int):
    def resize(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.cast(x, tf.float32)
        return (x if size == INPUT_SIZE else tf.image.resize(x, (size, size))), y

    return resize


def dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    size: int = INPUT_SIZE,
    train: bool = False,
    min_scale: float = 1.0,
    seed: int = 0,
    num_classes: int = 2,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of (float32 0..255 images, one-hot labels); shuffled and augmented when ``train``.

    ``drop_remainder`` for multi-worker evaluation: a last batch too small to give every worker
    an example leaves one with an empty shard, which BatchNormalization cannot run on.
    """
    ds = tf.data.Dataset.range(len(labels))
    if train:
        # endless, so an epoch may be any number of steps; still a permutation per pass
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).map(
        _gather(images, labels, num_classes)
    )
    if train:
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.range(1 << 62))).map(
            lambda xy, i: _augment(size, min_scale, seed)(xy[0], xy[1], i)
        )
    else:
        ds = ds.map(_resize(size))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return ds.with_options(options).prefetch(2)
