"""Scoring model inputs: the model file and its JSON (`model_file`), the backend interface
(`backend`), ONNX Runtime (`onnx_backend`, what production serves) and the micro-batcher that
shares one forward pass between concurrent requests (`batching`). No TensorFlow here: the
full install's TensorFlow backend lives in `tf/`, and `backend_loader` chooses between them."""
