"""Training tools (`python -m training`, see training/README.md).

Imported before any `training.*` module, so the Keras backend is chosen here, before any module
here imports Keras: KERAS_BACKEND from the environment (TensorFlow, JAX or PyTorch), TensorFlow
if unset. Training needs neither TensorFlow nor the `keras_export` package on JAX or PyTorch.
"""

import os

# Keras 3 reads KERAS_BACKEND once, at its first import, and cannot switch backends afterwards.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow's C++ start-up chatter (INFO and WARNING), read once at `import tensorflow`.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
