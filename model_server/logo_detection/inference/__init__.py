"""Scoring model inputs: the backend interface (`backend`), ONNX Runtime (`onnx_backend`, what
production serves) and the micro-batcher that shares one forward pass between concurrent
requests (`batching`). No TensorFlow here: a `.keras` model is converted to ONNX at start by the
offline `keras_export` package, reached through `keras_conversion_seam`."""
