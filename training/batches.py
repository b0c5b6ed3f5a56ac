"""Training and validation batches for every Keras backend, without TensorFlow.

A `keras.utils.PyDataset` over the cached uint8 224x224 arrays (see `training.data`), augmented
per image with Pillow: the recipe of `training.pipeline` (TensorFlow's tf.data, which
the TensorFlow backend keeps for its distribution strategies), in the same terms. Crops of
`min_scale`..1 of the side and flips ("basic"); "strong" adds zoom-out onto a plain padding,
aspect changes, colour jitter, greyscale and JPEG re-encoding. Both classes are augmented
alike, so no augmentation artefact can become a class cue. Every random draw comes from a
generator seeded by (seed, batch number), so a batch does not depend on which worker makes it.
"""

from __future__ import annotations

import io
import math

import keras
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from model_server.logo_detection.model_contract import INPUT_SIZE
from training import recipe


def crop_box(
    rng: np.random.Generator, min_scale: float, strong: bool
) -> tuple[float, float, float, float]:
    """(top, left, height, width) of the view, as fractions of the image; a view larger than
    the image (strong zoom-out) shows padding around it."""
    scale = rng.uniform(min_scale, 1.0)
    if not strong:
        top, left = rng.uniform(size=2) * (1.0 - scale)
        return top, left, scale, scale
    zoom_out = rng.uniform() < recipe.ZOOM_OUT_SHARE
    if zoom_out:
        scale = rng.uniform(1.0, recipe.ZOOM_OUT_MAX)
    aspect = math.exp(rng.uniform(-recipe.MAX_LOG_ASPECT, recipe.MAX_LOG_ASPECT))
    height, width = scale * math.sqrt(aspect), scale / math.sqrt(aspect)
    bound = max if zoom_out else min
    height, width = bound(height, 1.0), bound(width, 1.0)
    top, left = rng.uniform(size=2) * (1.0 - np.array([height, width]))
    return top, left, height, width


def padding_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """Black or white half of the time, any colour otherwise."""
    if rng.uniform() < 0.5:
        return (255, 255, 255) if rng.uniform() < 0.5 else (0, 0, 0)
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def view(
    image: np.ndarray, box: tuple[float, float, float, float], size: int, pad: tuple[int, int, int]
) -> Image.Image:
    """The `box` of `image`, resized to size x size (bilinear), padded with `pad` outside it."""
    top, left, height, width = box
    rows, cols = image.shape[:2]
    y0, x0 = top * rows, left * cols
    y1, x1 = y0 + height * rows, x0 + width * cols
    left_pad, top_pad = max(0, math.ceil(-x0)), max(0, math.ceil(-y0))
    right_pad, bottom_pad = max(0, math.ceil(x1 - cols)), max(0, math.ceil(y1 - rows))
    picture = ImageOps.expand(
        Image.fromarray(image), (left_pad, top_pad, right_pad, bottom_pad), fill=pad
    )
    box_in_picture = (x0 + left_pad, y0 + top_pad, x1 + left_pad, y1 + top_pad)
    return picture.resize((size, size), Image.Resampling.BILINEAR, box=box_in_picture)


def between(bounds: tuple[float, float], fraction: float) -> float:
    return bounds[0] + (bounds[1] - bounds[0]) * fraction


def jitter_colours(picture: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Hue, saturation, contrast and brightness jitter; sometimes greyscale (Pillow's own)."""
    hue, saturation, contrast, brightness = rng.uniform(size=4)
    h, s, v = picture.convert("HSV").split()
    h = h.point(lambda level: (level + round((hue - 0.5) * recipe.HUE_SHIFT * 256)) % 256)
    picture = Image.merge("HSV", (h, s, v)).convert("RGB")
    picture = ImageEnhance.Color(picture).enhance(between(recipe.SATURATION, saturation))
    picture = ImageEnhance.Contrast(picture).enhance(between(recipe.CONTRAST, contrast))
    picture = ImageEnhance.Brightness(picture).enhance(0.7 + 0.6 * brightness)
    if rng.uniform() < recipe.GREYSCALE_SHARE:
        picture = ImageOps.grayscale(picture).convert("RGB")
    return picture


def reencode_as_jpeg(picture: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=quality)
    return Image.open(buffer).convert("RGB")


def augment(
    image: np.ndarray, size: int, min_scale: float, strong: bool, rng: np.random.Generator
) -> np.ndarray:
    """One uint8 224x224 image -> one float32 size x size image in 0..255."""
    box = crop_box(rng, min_scale, strong)
    picture = view(image, box, size, padding_colour(rng) if strong else (0, 0, 0))
    if rng.uniform() < 0.5:
        picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if not strong:
        return np.asarray(picture, np.float32)
    picture = jitter_colours(picture, rng)
    if rng.uniform() < recipe.JPEG_SHARE:
        picture = reencode_as_jpeg(
            picture, int(rng.integers(recipe.JPEG_QUALITIES[0], recipe.JPEG_QUALITIES[1] + 1))
        )
    return np.asarray(picture, np.float32)


class Batches(keras.utils.PyDataset):
    """(float32 0..255 images, one-hot labels) batches of `images[i]`.

    Training (`train=True`): an endless stream cut into epochs of `steps` batches, each pass over
    the data a new permutation, every image augmented. Otherwise: every image once, at 224 px,
    in one fixed permutation (files are listed class by class, so capped validation steps would
    otherwise see one class only).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        size: int = INPUT_SIZE,
        train: bool = False,
        min_scale: float = 1.0,
        seed: int = 0,
        num_classes: int = 2,
        augmentation: str = "basic",
        steps: int | None = None,
        first_epoch: int = 0,
        workers: int = 1,
    ) -> None:
        super().__init__(workers=workers)
        self.images, self.labels = images, labels
        self.batch_size, self.size, self.train = batch_size, size, train
        self.min_scale, self.seed, self.num_classes = min_scale, seed, num_classes
        self.strong = augmentation == "strong"
        self.steps = steps or math.ceil(len(labels) / batch_size)
        self.epoch = first_epoch
        self._passes: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.steps

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def _permutation(self, number: int) -> np.ndarray:
        """Pass `number`'s order of the rows (-1: validation's one fixed order); the latest kept."""
        if number not in self._passes:
            self._passes = {
                number: np.random.default_rng(
                    (0,) if number < 0 else (self.seed, number)
                ).permutation(len(self.labels))
            }
        return self._passes[number]

    def rows(self, batch: int) -> np.ndarray:
        """The rows of batch number `batch` (counted from the first training batch)."""
        if not self.train:
            return self._permutation(-1)[batch * self.batch_size : (batch + 1) * self.batch_size]
        count = len(self.labels)
        start = batch * self.batch_size
        positions = range(start, start + self.batch_size)
        return np.array([self._permutation(p // count)[p % count] for p in positions])

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        batch = self.epoch * self.steps + index if self.train else index
        rows = self.rows(batch)
        order = np.argsort(rows)  # sorted reads are much faster from a memory-mapped cache
        images = np.empty((len(rows), INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
        images[order] = np.asarray(self.images[rows[order]])
        one_hot = np.eye(self.num_classes, dtype=np.float32)[self.labels[rows]]
        if not self.train:
            return images.astype(np.float32), one_hot
        rng = np.random.default_rng((self.seed, 1, batch))
        augmented = [
            augment(image, self.size, self.min_scale, self.strong, rng) for image in images
        ]
        return np.stack(augmented), one_hot
