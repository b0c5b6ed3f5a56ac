"""Keras, KerasCV and TensorFlow tooling, offline: never part of the server package or its image.

The KerasCV architecture (`architecture`), reading `.keras` files (`keras_file`), the TensorFlow
reference backend (`keras_model`), the ONNX conversion and its cache (`onnx_conversion`), the
parity check (`parity`) and the export CLI (`python -m keras_export MODEL.keras`, `make export`).
The full install's server reaches this package through one seam,
`model_server.logo_detection.keras_conversion`, to serve a `.keras` file; the production image
serves exported `.onnx` files and does not have it.
"""

from __future__ import annotations

import os

# Keras 3 reads KERAS_BACKEND once, when `keras` is first imported, and cannot switch backends
# afterwards: every module here imports this package first, so it is set before any
# `import keras` (KerasCV included) in the process. The tooling here runs on TensorFlow;
# `setdefault` leaves a backend chosen by the caller's environment alone.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow's C++ start-up chatter (INFO and WARNING); also read once, at `import tensorflow`.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
