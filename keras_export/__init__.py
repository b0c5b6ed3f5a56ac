"""Keras and TensorFlow, which the production image (requirements-serving.txt) leaves out: it
serves exported `.onnx` models without this package. The KerasCV architecture, the TensorFlow
reference backend, the parity checks and the ONNX export need TensorFlow (the development
install); `keras_file` reads `.keras` files on any Keras backend, for training.

Every TensorFlow entry point (these modules, the export CLI, `python -m training`) imports this
package before Keras, so the environment below is set in this one place.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

# Keras 3 reads KERAS_BACKEND once, when `keras` is first imported, and cannot switch backends
# afterwards: it must be set before any `import keras` (KerasCV included) anywhere in the
# process. `setdefault` leaves a backend chosen by the caller's environment alone.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow's C++ start-up chatter (INFO and WARNING); also read once, at `import tensorflow`.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def library_versions(names: Iterable[str]) -> dict[str, str]:
    """The installed version of each named distribution; those not installed are left out.
    Recorded in the JSON written beside a trained or exported model."""
    versions = {}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions
