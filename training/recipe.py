"""The numbers of the training augmentation, shared by both input pipelines (TensorFlow's
tf.data in `training.pipeline`, the PyDataset of `training.batches`), so that a recipe tuned in
one is the recipe of the other. "basic" draws crops and flips; "strong" adds the rest. Only the
brightness jitter differs between them: tf.data shifts it by up to 0.15 of the range, Pillow's
ImageEnhance scales it by 0.7..1.3.
"""

from __future__ import annotations

ZOOM_OUT_SHARE = 0.3  # of the images, viewed from further out, onto a plain padding
ZOOM_OUT_MAX = 1.8  # the widest view's side, in sides of the image
MAX_LOG_ASPECT = 0.25  # aspect changes of exp(-0.25)..exp(0.25)
HUE_SHIFT = 0.1  # the hue moves by at most half of this, as a share of the colour circle
SATURATION = (0.6, 1.4)  # saturation scaled within
CONTRAST = (0.7, 1.3)  # contrast scaled within
GREYSCALE_SHARE = 0.1
JPEG_SHARE = 0.25
JPEG_QUALITIES = (30, 95)  # re-encoding quality, both ends included
