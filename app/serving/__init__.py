"""Task logic over engines: classification (labels, scores) and replies."""
