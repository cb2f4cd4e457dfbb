"""The frame-difference baseline: per-cell z-scored frame-difference energy (energy.py), the
floor of every results table; method.py puts it behind vad.methods.base.Method."""
