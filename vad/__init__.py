"""vad: a reproducible DVC pipeline for video anomaly detection."""

__version__ = "0.1.0"
