"""Load and accuracy benchmarks: standalone scripts (``python bench/classify.py``)."""
