"""ONNX Runtime sessions, tokenization, the dynamic batcher and the engine that joins them."""
