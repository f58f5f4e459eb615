"""edge-bench: benchmark TFLite/LiteRT models and their quantized variants on edge devices."""
__version__ = "0.1.0"
