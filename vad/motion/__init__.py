"""Motion: dense optical flow (classical OpenCV backends, FlowNet2) and the flow stage runner.

Kept free of imports so that `import vad.motion` stays cheap; import the submodules directly.
"""
