"""HF2-VAD's spatio-temporal cubes (STCs; Liu et al., ICCV 2021, Sec. 4.2 "Implementation
details"): for every object box of the `objects` stage, the same box cut from the frames before
it and from the optical flows between them, resized to a small square (stage `stc`,
data/interim/stc.h5). The settings (settings.py), the cube of one box (cubes.py) and the
resumable per-video stage (runner.py)."""
