"""What an STC is made of (params.yaml `stc`, checked in vad.params.stc)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

PAPER_FRAMES = 5  # HF2-VAD: t = 4 past frames and the frame predicted from them
PAPER_SIZE = 32  # HF2-VAD: STCs resized to 32 x 32
FLOW_UNITS = ("cube", "frame")  # a cube's u, v: pixels of the cube, or of the frame (released code)
DEFAULT_FLOW_UNITS = "frame"  # the released code's: on Ped2 0.868 frame AUC against cube's 0.593


@dataclass(frozen=True)
class CubeSettings:
    """`frames` frames per cube, the box's own frame last (x_1..x_t and x_{t+1}, t =
    frames - 1), the frames - 1 flows between consecutive ones (y_1..y_t), each `size` x
    `size` pixels; the flows' u, v in `flow_units`: "frame" (pixels of the frame, not rescaled:
    the default) or "cube" (pixels of the cube: rescaled by size / the box's crop width and
    height)."""

    frames: int = PAPER_FRAMES
    size: int = PAPER_SIZE
    flow_units: str = DEFAULT_FLOW_UNITS

    def __post_init__(self) -> None:
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or self.frames < 2:
            raise ValueError(f"an STC needs at least 2 frames (one flow), got {self.frames!r}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"an STC's size must be a positive integer, got {self.size!r}")
        if self.flow_units not in FLOW_UNITS:
            raise ValueError(f"an STC's flow_units must be one of {FLOW_UNITS}, got "
                             f"{self.flow_units!r}")  # fmt: skip

    @property
    def flows(self) -> int:
        return self.frames - 1

    def to_json(self) -> dict:
        return asdict(self)
