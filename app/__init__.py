"""textserve: a model-serving REST microservice for text."""

__version__ = "0.1.0"
