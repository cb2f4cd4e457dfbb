"""Scoring new footage with a trained run: `vad export` writes a run bundle (bundle.py), `vad
score` streams a video, a folder or a live source through a method's streaming scorer
(scorers/, source.py, loop.py) into per-frame scores, events and an annotated video."""
