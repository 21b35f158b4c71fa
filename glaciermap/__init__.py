"""glaciermap: map glaciers from satellite scenes and glacier outlines with deep learning."""

__version__ = "0.1.0"
