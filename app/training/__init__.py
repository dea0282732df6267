"""Training library: data loading, fine-tuning, evaluation, ONNX export and publishing.

Torch and transformers are imported inside the functions that need them, so importing this
package (or ``app.cli``) stays cheap and the serving image never needs torch.
"""
