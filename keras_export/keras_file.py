"""Reading a `.keras` file for export and conversion: the production file is a KerasCV
`ImageClassifier`, whose classes are registered by importing KerasCV (TensorFlow backend)."""

from __future__ import annotations

from pathlib import Path

import keras
import keras_cv  # noqa: F401  (registers KerasCV classes for deserialization)


def read_keras_file(path: Path) -> keras.Model:
    """The keras.Model saved in a `.keras` file, uncompiled (conversion and serving alike)."""
    return keras.saving.load_model(path, compile=False)
