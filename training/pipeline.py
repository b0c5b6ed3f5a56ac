"""tf.data pipelines over the cached uint8 224x224 tensors.

Lower-resolution stages (progressive resizing) and augmentation resize the *decoded* 224 tensors
inside the graph; decoding itself only ever happens in the server's preprocessing code.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from model_server.logo_detection.model_contract import INPUT_SIZE
from training import recipe


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


def _augment(size: int, min_scale: float, seed: int, strength: str = "basic"):
    """Random crops of ``min_scale``..1 of the side and flips ("basic"); "strong" adds what
    tells Commons files apart without telling logos from non-logos: zoom-out onto a padding of
    a random plain colour, aspect changes, colour jitter, greyscale and JPEG re-encoding.

    Applied to both classes alike, so no augmentation artefact can become a class cue.
    """

    def augment(x: tf.Tensor, y: tf.Tensor, batch_seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        n = tf.shape(x)[0]
        seeds = tf.random.experimental.stateless_split(
            tf.stack([batch_seed, tf.constant(seed, tf.int64)]), 12
        )

        def uniform(i: int, shape, lo: float = 0.0, hi: float = 1.0) -> tf.Tensor:
            return tf.random.stateless_uniform(shape, seeds[i], lo, hi)

        scale = uniform(0, [n], min_scale, 1.0)
        x = tf.cast(x, tf.float32)
        if strength == "basic":
            offset = uniform(1, [n, 2]) * (1.0 - scale)[:, None]
            boxes = tf.concat([offset, offset + scale[:, None]], axis=1)
            x = tf.image.crop_and_resize(x, boxes, tf.range(n), (size, size))
        else:
            # a third of the images zoomed out (box larger than the image: padding), aspect jitter
            zoom_out = uniform(2, [n]) < recipe.ZOOM_OUT_SHARE
            scale = tf.where(zoom_out, uniform(3, [n], 1.0, recipe.ZOOM_OUT_MAX), scale)
            aspect = tf.exp(uniform(4, [n], -recipe.MAX_LOG_ASPECT, recipe.MAX_LOG_ASPECT))
            hw = tf.stack([scale * tf.sqrt(aspect), scale / tf.sqrt(aspect)], axis=1)
            hw = tf.where(zoom_out[:, None], tf.maximum(hw, 1.0), tf.minimum(hw, 1.0))
            offset = uniform(1, [n, 2]) * (1.0 - hw)
            boxes = tf.concat([offset, offset + hw], axis=1)
            x = tf.image.crop_and_resize(x, boxes, tf.range(n), (size, size))
            inside = tf.image.crop_and_resize(
                tf.ones([n, 8, 8, 1]), boxes, tf.range(n), (size, size)
            )
            pad = tf.where(
                uniform(5, [n, 1, 1, 1]) < 0.5,
                tf.round(uniform(6, [n, 1, 1, 1])) * 255.0,  # black or white
                uniform(7, [n, 1, 1, 3], 0.0, 255.0),  # any colour
            )
            x = x * inside + pad * (1.0 - inside)
        flip = uniform(8, [n, 1, 1, 1]) < 0.5
        x = tf.where(flip, tf.reverse(x, axis=[2]), x)
        if strength == "strong":
            x = _jitter_colours(x, seeds[9], seeds[10])
            x = _jpeg_reencode(x, seeds[11])
        return x, y

    return augment


def _jitter_colours(x: tf.Tensor, seed: tf.Tensor, grey_seed: tf.Tensor) -> tf.Tensor:
    """Per-image brightness, contrast, saturation and hue jitter; 10% of images in greyscale."""
    n = tf.shape(x)[0]
    r = tf.random.stateless_uniform([n, 1, 1, 4], seed)
    x = x / 255.0
    hsv = tf.image.rgb_to_hsv(tf.clip_by_value(x, 0.0, 1.0))
    hue = tf.math.floormod(hsv[..., :1] + (r[..., 0:1] - 0.5) * recipe.HUE_SHIFT, 1.0)
    low, high = recipe.SATURATION
    saturation = tf.clip_by_value(hsv[..., 1:2] * (low + (high - low) * r[..., 1:2]), 0.0, 1.0)
    x = tf.image.hsv_to_rgb(tf.concat([hue, saturation, hsv[..., 2:]], axis=-1))
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    low, high = recipe.CONTRAST
    x = (x - mean) * (low + (high - low) * r[..., 2:3]) + mean + (r[..., 3:4] - 0.5) * 0.3
    grey = tf.random.stateless_uniform([n, 1, 1, 1], grey_seed) < recipe.GREYSCALE_SHARE
    x = tf.where(grey, tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(x)), x)
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0


def _jpeg_reencode(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """A quarter of the images re-encoded as JPEG (quality 30..95), as Commons re-uploads are."""
    n = tf.shape(x)[0]
    seeds = tf.random.experimental.stateless_split(seed, 2)
    apply = tf.random.stateless_uniform([n], seeds[0]) < recipe.JPEG_SHARE
    lowest, highest = recipe.JPEG_QUALITIES
    quality = tf.random.stateless_uniform([n], seeds[1], lowest, highest + 1, dtype=tf.int32)

    def one(args):
        img, do, q = args
        return tf.cond(
            do,
            lambda: tf.image.adjust_jpeg_quality(img / 255.0, q) * 255.0,
            lambda: img,
        )

    return tf.map_fn(one, (x, apply, quality), fn_output_signature=tf.float32)


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
    augmentation: str = "basic",
) -> tf.data.Dataset:
    """Batches of (float32 0..255 images, one-hot labels); shuffled and augmented when ``train``.

    ``drop_remainder`` for multi-worker evaluation: a last batch too small to give every worker
    an example leaves one with an empty shard, which BatchNormalization cannot run on.
    """
    if train:
        # endless, so an epoch may be any number of steps; still a permutation per pass
        ds = tf.data.Dataset.range(len(labels))
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).repeat()
    else:
        # one fixed permutation: files are listed class by class, so capped validation steps
        # (--validation-steps) would otherwise see one class only
        ds = tf.data.Dataset.from_tensor_slices(np.random.default_rng(0).permutation(len(labels)))
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).map(
        _gather(images, labels, num_classes)
    )
    if train:
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.range(1 << 62))).map(
            lambda xy, i: _augment(size, min_scale, seed, augmentation)(xy[0], xy[1], i),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        ds = ds.map(_resize(size))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return ds.with_options(options).prefetch(2)
