"""Model export: ONNX (and TensorRT engines built from it)."""
