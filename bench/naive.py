"""The naive baseline the server is compared against: what a first notebook version would do.

Write the images to a temporary directory, read them back with
`keras.utils.image_dataset_from_directory` (the training pipeline's own loader) and call the
Keras model eagerly. This is the one place where request images touch the disk, on purpose:
it is the thing being measured against.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from model_server.logo_detection.model_contract import INPUT_SIZE


def naive_predict(keras_model, images: list[bytes]) -> np.ndarray:
    import keras

    with tempfile.TemporaryDirectory(prefix="logo-detection-naive-") as directory:
        for index, data in enumerate(images):
            Path(directory, f"{index:04d}.jpg").write_bytes(data)
        dataset = keras.utils.image_dataset_from_directory(
            directory,
            labels=None,
            image_size=(INPUT_SIZE, INPUT_SIZE),
            batch_size=len(images),
            shuffle=False,
            verbose=False,
        )
        return np.concatenate([np.asarray(keras_model(batch)) for batch in dataset])
