"""Streaming scorers: each method's `Method.stream_scorer` factory (named by its `streaming`
attribute), and the fusion of several (fused.py). They call the pipeline's own functions on a
window of recent frames, so that their scores equal the pipeline's."""
