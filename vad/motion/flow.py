"""Classical dense optical flow: TV-L1, DIS and Farneback through OpenCV.

Every estimator takes two H×W uint8 gray frames and returns the H×W×2 float32 flow from the
first to the second (channel 0: u, the x displacement; channel 1: v, the y displacement), so
that `first[y, x] ≈ second[y + v, x + u]`.

Options are snake_case versions of OpenCV's setter names (`scales_number` -> `setScalesNumber`).
Defaults are OpenCV's own, read from a freshly created object rather than copied here, so the
resolved options written next to a cache say exactly what was run.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from vad.frame_cache import resize_image

FlowEstimator = Callable[[np.ndarray, np.ndarray], np.ndarray]

METHODS = ("tvl1", "dis", "farneback")

TVL1_OPTIONS = (
    "tau",
    "lambda",
    "theta",
    "scales_number",
    "warpings_number",
    "epsilon",
    "outer_iterations",
    "inner_iterations",
    "scale_step",
    "gamma",
    "median_filtering",
    "use_initial_flow",
)

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
DIS_OPTIONS = (
    "finest_scale",
    "coarsest_scale",
    "patch_size",
    "patch_stride",
    "gradient_descent_iterations",
    "variational_refinement_iterations",
    "variational_refinement_alpha",
    "variational_refinement_delta",
    "variational_refinement_gamma",
    "variational_refinement_epsilon",
    "use_mean_normalization",
    "use_spatial_propagation",
)

# cv2.calcOpticalFlowFarneback has no defaults of its own; these are the values of OpenCV's
# samples/python/opt_flow.py. `gaussian` sets the OPTFLOW_FARNEBACK_GAUSSIAN flag.
FARNEBACK_DEFAULTS = {
    "pyr_scale": 0.5,
    "levels": 3,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
    "gaussian": False,
}


# ---------------------------------------------------------------------------------------------
# Options: defaults from OpenCV, validation with errors that name the bad key


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def _plain(value: object) -> object:
    """A getter's value as a plain Python value; float32 noise rounded (0.00999999977 -> 0.01)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    return float(f"{float(value):.7g}")


def _read_getters(algorithm: object, names: tuple[str, ...]) -> dict:
    return {name: _plain(getattr(algorithm, "get" + _camel(name))()) for name in names}


def _apply_setters(algorithm: object, options: dict) -> None:
    for name, value in options.items():
        getattr(algorithm, "set" + _camel(name))(value)


def default_options(method: str, preset: str = "fast") -> dict:
    """OpenCV's defaults for `method` (for `dis`, those of `preset`)."""
    if method == "tvl1":
        return _read_getters(cv2.optflow.DualTVL1OpticalFlow_create(), TVL1_OPTIONS)
    if method == "dis":
        _check_choice("dis", "preset", preset, tuple(DIS_PRESETS))
        algorithm = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
        return {"preset": preset, **_read_getters(algorithm, DIS_OPTIONS)}
    if method == "farneback":
        return dict(FARNEBACK_DEFAULTS)
    raise ValueError(f"unknown optical flow method {method!r}; valid methods: {', '.join(METHODS)}")


def _check_choice(method: str, key: str, value: object, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"{method} option {key!r}: {value!r} is not one of {', '.join(valid)}")


def _coerce(method: str, key: str, value: object, default: object) -> object:
    """`value` converted to the type of `default`, or a ValueError naming the option."""
    where = f"{method} option {key!r}"
    if isinstance(default, bool):
        if isinstance(value, bool | np.bool_) or value in (0, 1):
            return bool(value)
        raise ValueError(f"{where} must be true or false, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{where} must be a number, got {value!r}")
    if isinstance(default, int):
        if not float(value).is_integer():
            raise ValueError(f"{where} must be an integer, got {value!r}")
        return int(value)
    return float(value)


def resolve_options(method: str, options: dict | None) -> dict:
    """All options of `method`: OpenCV's defaults overridden by `options`, validated."""
    options = dict(options or {})
    preset = options.get("preset", "fast") if method == "dis" else "fast"
    defaults = default_options(method, preset)
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown {method} option(s) {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(defaults)}"
        )
    resolved = dict(defaults)
    for key, value in options.items():
        if key != "preset":
            resolved[key] = _coerce(method, key, value, defaults[key])
    return resolved


# ---------------------------------------------------------------------------------------------
# Estimators


def _check_pair(first: np.ndarray, second: np.ndarray) -> None:
    for label, frame in (("first", first), ("second", second)):
        if frame.ndim != 2 or frame.dtype != np.uint8:
            raise ValueError(
                f"optical flow: the {label} frame must be an H×W uint8 gray image, "
                f"got shape {frame.shape} {frame.dtype}"
            )
    if first.shape != second.shape:
        raise ValueError(f"optical flow: frame sizes differ, {first.shape} vs {second.shape}")


class TVL1Flow:
    """Dual TV-L1 (Zach, Pock, Bischof 2007) via cv2.optflow, configured through its setters.

    With `use_initial_flow`, each pair starts from the previous pair's flow; `reset()` (called
    by `video_flows` at the start of every video) forgets it.
    """

    def __init__(self, options: dict | None = None):
        self.options = resolve_options("tvl1", options)
        # The constructor's keyword names are misspelt in OpenCV 5; the setters are reliable.
        self.algorithm = cv2.optflow.DualTVL1OpticalFlow_create()
        _apply_setters(self.algorithm, self.options)
        self._previous: np.ndarray | None = None

    def reset(self) -> None:
        self._previous = None

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        _check_pair(first, second)
        initial = None
        if self.options["use_initial_flow"]:
            initial = self._previous
            if initial is None or initial.shape[:2] != first.shape:
                initial = np.zeros(first.shape + (2,), np.float32)
        flow = np.asarray(self.algorithm.calc(first, second, initial), np.float32)
        if self.options["use_initial_flow"]:
            self._previous = flow.copy()
        return flow


class DISFlow:
    """Dense Inverse Search (Kroeger et al. 2016): a preset plus optional overrides."""

    def __init__(self, options: dict | None = None):
        self.options = resolve_options("dis", options)
        self.algorithm = cv2.DISOpticalFlow_create(DIS_PRESETS[self.options["preset"]])
        _apply_setters(self.algorithm, {k: v for k, v in self.options.items() if k != "preset"})

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        _check_pair(first, second)
        return np.asarray(self.algorithm.calc(first, second, None), np.float32)


class FarnebackFlow:
    """Farneback's polynomial-expansion flow (Farneback 2003)."""

    def __init__(self, options: dict | None = None):
        self.options = resolve_options("farneback", options)

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        _check_pair(first, second)
        o = self.options
        flags = cv2.OPTFLOW_FARNEBACK_GAUSSIAN if o["gaussian"] else 0
        flow = cv2.calcOpticalFlowFarneback(
            first,
            second,
            None,
            o["pyr_scale"],
            o["levels"],
            o["winsize"],
            o["iterations"],
            o["poly_n"],
            o["poly_sigma"],
            flags,
        )
        return np.asarray(flow, np.float32)


ESTIMATORS = {"tvl1": TVL1Flow, "dis": DISFlow, "farneback": FarnebackFlow}


def make_flow_estimator(method: str, options: dict | None = None) -> FlowEstimator:
    """A callable (gray0, gray1) -> H×W×2 float32 flow for `method` with `options`."""
    if method not in ESTIMATORS:
        raise ValueError(
            f"unknown optical flow method {method!r}; valid methods: {', '.join(METHODS)}"
        )
    return ESTIMATORS[method](options)


# ---------------------------------------------------------------------------------------------
# Whole videos


def video_flows(
    frames: np.ndarray,
    estimator: FlowEstimator,
    on_pair: Callable[[], None] | None = None,
) -> np.ndarray:
    """Flows between consecutive frames of a T×H×W uint8 gray video: (T-1)×H×W×2 float32."""
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"video_flows expects T×H×W uint8 gray frames, got shape {frames.shape} {frames.dtype}"
        )
    reset = getattr(estimator, "reset", None)
    if reset is not None:
        reset()
    return pair_flows(frames, estimator, on_pair)


def pair_flows(
    frames: np.ndarray,
    estimator: FlowEstimator,
    on_pair: Callable[[], None] | None = None,
) -> np.ndarray:
    """`video_flows` without the reset: the flows of a later block of a video's frames (whose
    first frame is the previous block's last), continuing what the estimator carries over
    from the pair before (TV-L1's initial flow)."""
    count, height, width = frames.shape
    flows = np.empty((max(count - 1, 0), height, width, 2), np.float32)
    for index in range(count - 1):
        flows[index] = estimator(frames[index], frames[index + 1])
        if on_pair is not None:
            on_pair()
    return flows


def check_finite(flow: np.ndarray, where: str, first_pair: int = 0) -> None:
    """Raise ValueError naming `where` (and the frame pair, for a stack of flows starting at
    pair `first_pair` of the video) on NaN/inf."""
    finite = np.isfinite(flow)
    if finite.all():
        return
    if flow.ndim == 4:
        pair = first_pair + int(np.argmin(finite.reshape(len(flow), -1).all(axis=1)))
        raise ValueError(
            f"{where}: the optical flow of frame pair {pair} (frames {pair} -> {pair + 1}) "
            "contains NaN or inf"
        )
    raise ValueError(f"{where}: the optical flow contains NaN or inf")


# ---------------------------------------------------------------------------------------------
# Frame preparation


def _check_frames(frames: np.ndarray, where: str) -> None:
    if frames.ndim != 4 or frames.dtype != np.uint8 or frames.shape[-1] not in (1, 3):
        raise ValueError(
            f"{where}: expected T×H×W×C uint8 frames with C = 1 or 3, "
            f"got shape {frames.shape} {frames.dtype}"
        )


def check_size(size: tuple[int, int] | None, where: str) -> tuple[int, int] | None:
    """`size` as (width, height) ints (None stays None), or a ValueError naming `where`."""
    if size is None:
        return None
    if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
        raise ValueError(f"{where}: size must be (width, height) in positive pixels, got {size!r}")
    return int(size[0]), int(size[1])


def prepare_frames(
    frames: np.ndarray, size: tuple[int, int] | None, where: str = "frames"
) -> np.ndarray:
    """T×H×W×C uint8 (gray or RGB) -> T×h×w uint8 gray at `size` = (width, height).

    `size=None` keeps the native size.
    """
    _check_frames(frames, where)
    size = check_size(size, where)
    width, height = size if size is not None else (frames.shape[2], frames.shape[1])
    out = np.empty((len(frames), height, width), np.uint8)
    for index, frame in enumerate(frames):
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.shape[-1] == 3 else frame[..., 0]
        out[index] = resize_image(np.ascontiguousarray(gray), size)
    return out


def prepare_rgb_frames(
    frames: np.ndarray, size: tuple[int, int] | None, where: str = "frames"
) -> np.ndarray:
    """T×H×W×C uint8 (gray or RGB) -> T×h×w×3 uint8 RGB at `size` (for FlowNet2)."""
    _check_frames(frames, where)
    size = check_size(size, where)
    width, height = size if size is not None else (frames.shape[2], frames.shape[1])
    out = np.empty((len(frames), height, width, 3), np.uint8)
    for index, frame in enumerate(frames):
        resized = resize_image(frame, size)
        out[index] = resized.reshape(height, width, -1)  # cv2.resize drops a single channel
    return out
