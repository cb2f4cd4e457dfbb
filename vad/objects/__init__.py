"""Foreground object boxes for every frame (stage `objects`, data/interim/objects.h5) without
downloaded weights: motion foreground (foreground.py), OpenCV's HOG people detector and an
optional user-supplied ONNX detector (detectors.py), HF2-VAD's filtering (boxes.py,
settings.py), the resumable per-video stage (runner.py)."""
