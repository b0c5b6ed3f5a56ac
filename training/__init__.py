"""Training tools (`python -m training`, see README.md).

Imported before any `training.*` module: the TensorFlow package of the server sets KERAS_BACKEND
(and TensorFlow's log level) there, before any module here imports Keras.
"""

import model_server.logo_detection.tf  # noqa: F401
