"""Reading a `.keras` file on whichever Keras backend is active.

Training writes plain-Keras files, which any backend loads. The production file is a KerasCV
`ImageClassifier`: its classes are registered by importing KerasCV, which needs TensorFlow, so
that happens on the TensorFlow backend only.
"""

from __future__ import annotations

from pathlib import Path


def read_keras_file(path: Path):
    """The keras.Model saved in a `.keras` file, uncompiled (evaluation and scoring alike)."""
    import keras

    if keras.config.backend() == "tensorflow":
        import keras_cv  # noqa: F401  (registers KerasCV classes for deserialization)
    return keras.saving.load_model(path, compile=False)
