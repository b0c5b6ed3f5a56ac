"""Everything that needs TensorFlow: the architecture, loading `.keras` files, the TensorFlow
reference backend and the ONNX export. The development install has it; the production image
(requirements-serving.txt) does not, and serves exported `.onnx` models without this package.
"""
