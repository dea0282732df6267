"""Embedding models: a sentence encoder exported with its pooling inside the ONNX graph."""

from app.training.embedding.publish import build_embedding

__all__ = ["build_embedding"]
