"""Unit tests of the fine-tune job parts."""
