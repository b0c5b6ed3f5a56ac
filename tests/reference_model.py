"""The default model loaded in the test process, once, for tests that call backends directly."""

from __future__ import annotations

import functools

from bench.harness.server_process import DEFAULT_MODEL
from keras_export.keras_model import LoadedModel, load_model


@functools.cache
def reference_model() -> LoadedModel:
    return load_model(DEFAULT_MODEL)
