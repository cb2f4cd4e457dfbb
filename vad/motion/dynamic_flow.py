"""Dynamic flow (Fan et al., GMFC-VAE, Sec. III-A, eq. 4): one rank-pooled flow map per frame.

For a video of T frames and its N = T - 1 optical flows (N, H, W, 2):

1. each flow is encoded as clip(a f + b, 0, 255) (a = 16, b = 128, Sec. IV-C, after [18]) and
   flattened, u and v together, into one D = 2HW vector;
2. frame i is given the window of `window` flows starting at flow i; near the end of the video
   the window slides no further (frames i > N - window share the last full window), and a video
   with fewer flows than `window` uses all of them;
3. each window is rank-pooled: `ranksvm`, the exact RankSVM of eq. 4, or `approx`, Bilen et
   al.'s approximate rank pooling; the result d = (F^u, F^v) is a weighted sum of the window's
   flows with weights that sum to zero, so the encoding offset b (indeed any flow shared by all
   frames) cancels exactly;
4. the map (F^u, F^v, sqrt(F^u^2 + F^v^2)) is quantised to uint8 with one fixed scale s, the
   same for every window, video and split: u, v -> clip(128 + s F) and magnitude ->
   clip(2 s |F|), so all three channels span [0, 255] for |F| up to 127.5 / s.

The D-dimensional work per video is one banded Gram matrix of the flows (each flow against the
next window - 1 flows) and one weighted sum of `window` flows per window; every window's Gram
matrix of time-varying means is assembled from the band by 2-D cumulative sums, and the small
dual QPs of all windows are solved together (vad.motion.rank_pool).

`stream_dynamic_flows` computes the same maps, bit for bit, from flows read a block of windows
at a time (the dynamic-flow stage): one pass for the flows' mean, one for the band (RankSVM
only), one for the weighted sums, each holding one block of flows, so memory does not grow
with the length of the video (the band, window x 8 bytes per flow, aside).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import numpy as np

from vad.motion.rank_pool import (
    DEFAULT_TOLERANCE,
    RankSVMSolution,
    approx_rank_pool_coefficients,
    mean_to_flow_coefficients,
    solve_rank_svm,
)

METHODS = ("ranksvm", "approx")
# Output scale s per method, for the defaults window = 20, C = 1, a = 16 (see module docstring,
# step 4). Chosen on UCSD Ped2 flows so ordinary motion spans a good part of [0, 255] and only
# the strongest pixels clip; other settings change d's range and may call for another scale.
# approx: Ped2 p99.9 of |F| is 1.3-3.5e3 and the synthetic scene's normal (training) p99.9 is
# ~3.1e3, so 2 * 0.03 * |F| keeps normal motion below ~210 and lets only fast movers clip.
DEFAULT_OUTPUT_SCALE = {"ranksvm": 2.5e5, "approx": 0.03}
# Columns of the flattened flows processed at once (float64 working set N x this).
_COLUMN_CHUNK = 2048
# Windows computed at once by `stream_dynamic_flows` (it reads this + window - 1 flows), and
# maps quantised at once (element-wise work: the number does not change the result). 16
# windows: a worker's peak ~190 MB at 420x280 (64: ~350 MB), in the same time (1151 flows,
# window 20: 10.7 s against 11.2 s, approx; RankSVM 16.1 s against 15.8 s).
BLOCK_WINDOWS = 16
_QUANTIZED = 8

# columns -> the encoded flows' (N, columns) float64 slice
Encoder = Callable[[slice], np.ndarray]


def dynamic_flows(
    flows: np.ndarray,
    window: int = 20,
    method: str = "ranksvm",
    C: float = 1.0,
    a: float = 16.0,
    b: float = 128.0,
    name: str = "video",
    scale: float | None = None,
    tol: float = DEFAULT_TOLERANCE,
) -> np.ndarray:
    """Dynamic flow maps (T, H, W, 3) uint8 (F^u, F^v, magnitude), one per frame of the video.

    `flows` is (N, H, W, 2) for the N = T - 1 consecutive frame pairs; `scale` defaults to
    DEFAULT_OUTPUT_SCALE[method]; `name` identifies the video in error messages.
    """
    scale = resolve_output_scale(method, scale)
    windows, frame_window = window_dynamic_flows(flows, window, method, C, a, b, name, tol)
    return quantize_dynamic_flow(windows, scale)[frame_window]


def resolve_output_scale(method: str, scale: float | None) -> float | None:
    """The output scale s used: `scale`, or DEFAULT_OUTPUT_SCALE[method] when it is None."""
    return DEFAULT_OUTPUT_SCALE.get(method) if scale is None else scale


def dynamic_flows_raw(
    flows: np.ndarray,
    window: int = 20,
    method: str = "ranksvm",
    C: float = 1.0,
    a: float = 16.0,
    b: float = 128.0,
    name: str = "video",
    tol: float = DEFAULT_TOLERANCE,
) -> np.ndarray:
    """The unquantised dynamic flows d = (F^u, F^v) per frame, (T, H, W, 2) float32."""
    windows, frame_window = window_dynamic_flows(flows, window, method, C, a, b, name, tol)
    return windows[frame_window]


def window_dynamic_flows(
    flows: np.ndarray,
    window: int = 20,
    method: str = "ranksvm",
    C: float = 1.0,
    a: float = 16.0,
    b: float = 128.0,
    name: str = "video",
    tol: float = DEFAULT_TOLERANCE,
) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic flow of each distinct window, (num_windows, H, W, 2) float32, and the window of
    each frame, (T,) indices. Window w covers flows w .. w + length - 1 (`window_layout`)."""
    _check_arguments(flows, window, method, C, a, b, name)
    num_flows, height, width, _ = flows.shape
    matrix = flows.reshape(num_flows, -1)
    num_windows, length = window_layout(num_flows, window)
    encode = _encoder(matrix, a, b)
    if method == "ranksvm":
        band = flow_gram_band(encode, num_flows, matrix.shape[1], length)
        grams = window_mean_grams(band, num_windows, length)
        coefficients = mean_to_flow_coefficients(_solve_named(grams, C, tol, name).beta)
    else:
        coefficients = np.tile(approx_rank_pool_coefficients(length), (num_windows, 1))
    combined = combine_window_flows(encode, matrix.shape[1], coefficients)
    frame_window = np.minimum(np.arange(num_flows + 1), num_windows - 1)
    return combined.reshape(num_windows, height, width, 2), frame_window


def window_layout(num_flows: int, window: int) -> tuple[int, int]:
    """Number of distinct windows and their length min(window, num_flows).

    Window w covers flows w .. w + length - 1; frame i uses window min(i, count - 1), so the
    last full window also serves the final frames (including the last frame, which has no
    forward flow), and a video with fewer flows than `window` has one window of all of them.
    """
    if num_flows < 1:
        raise ValueError(f"need at least one flow (two frames), got {num_flows}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    length = min(window, num_flows)
    return num_flows - length + 1, length


def flow_gram_band(
    encode: Encoder, num_flows: int, dim: int, length: int, rows: int | None = None
) -> np.ndarray:
    """band[p, j] = <e_p, e_{p+j}> for j < length (zero past the end): n x t inner products of
    the encoded flows e (`encode(columns)` gives their (num_flows, columns) slice). With
    `rows`, only the band's first `rows` rows (of a block of flows whose last ones only serve
    as later partners)."""
    rows = num_flows if rows is None else rows
    band = np.zeros((rows, length))
    for start in range(0, dim, _COLUMN_CHUNK):
        chunk = encode(slice(start, start + _COLUMN_CHUNK))
        for lag in range(length):
            count = min(rows, num_flows - lag)
            band[:count, lag] += np.vecdot(chunk[:count], chunk[lag : lag + count])
    return band


def window_mean_grams(
    band: np.ndarray, num_windows: int, length: int, first: int = 0
) -> np.ndarray:
    """Gram matrices <V_k, V_l> of every window's time-varying means, (W, length, length)
    (windows first .. first + num_windows - 1).

    With X_k = sum_{tau<k} e_{w+tau}, <X_k, X_l> is a 2-D cumulative sum of the window's block
    of flow inner products, and V_k = X_k / k (eq. 4's time-varying means).
    """
    offsets = np.arange(length)
    earlier = np.minimum.outer(offsets, offsets)
    lag = np.abs(np.subtract.outer(offsets, offsets))
    block = band[first + np.arange(num_windows)[:, None, None] + earlier, lag]
    sums = np.cumsum(np.cumsum(block, axis=1), axis=2)
    counts = np.arange(1, length + 1, dtype=np.float64)
    return sums / np.multiply.outer(counts, counts)


def combine_window_flows(
    encode: Encoder, dim: int, coefficients: np.ndarray, step: int = _COLUMN_CHUNK
) -> np.ndarray:
    """d_w = sum_tau coefficients[w, tau] e_{w + tau} for every window w, (W, dim) float32,
    `step` columns at a time (element-wise work: the step does not change the result)."""
    num_windows, length = coefficients.shape
    combined = np.empty((num_windows, dim), dtype=np.float32)
    for start in range(0, dim, step):
        columns = slice(start, start + step)
        chunk = encode(columns)
        total = np.zeros((num_windows, chunk.shape[1]))
        term = np.empty_like(total)
        for offset in range(length):
            np.multiply(
                coefficients[:, offset, None], chunk[offset : offset + num_windows], out=term
            )
            total += term
        combined[:, columns] = total
    return combined


def quantize_dynamic_flow(dynamic: np.ndarray, scale: float) -> np.ndarray:
    """(..., 2) float (F^u, F^v) -> (..., 3) uint8 (u, v, magnitude), one fixed linear map.

    u, v -> 128 + s F and magnitude -> 2 s |F|, rounded and clipped to [0, 255]: all three
    channels use their whole range for |F| up to 127.5 / s and saturate beyond it.
    """
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"output scale must be a positive number, got {scale}")
    dynamic = np.asarray(dynamic, dtype=np.float32)
    magnitude = np.sqrt(np.sum(np.square(dynamic), axis=-1, keepdims=True))
    mapped = np.concatenate([scale * dynamic + 128.0, 2.0 * scale * magnitude], axis=-1)
    return np.clip(np.rint(mapped), 0, 255).astype(np.uint8)


def _solve_named(grams: np.ndarray, C: float, tol: float, name: str) -> RankSVMSolution:
    """solve_rank_svm, with the video's name on its warnings and errors."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            solution = solve_rank_svm(grams, C=C, tol=tol)
        except RuntimeError as error:
            raise RuntimeError(f"{name}: {error}") from error
    for warning in caught:
        warnings.warn(f"{name}: {warning.message}", warning.category, stacklevel=4)
    return solution


def encode_flows(flows: np.ndarray, a: float, b: float) -> np.ndarray:
    """Flows (flattened or not) -> their encoding clip(a f + b, 0, 255) as float64 (step 1)."""
    return np.clip(flows.astype(np.float64) * a + b, 0.0, 255.0)


def _encoder(matrix: np.ndarray, a: float, b: float, mean: np.ndarray | None = None) -> Encoder:
    """columns -> encoded flows clip(a f + b, 0, 255) minus their mean over the video, float64
    (the mean of `matrix`'s rows, or `mean` when they are a block of the video).

    Subtracting one vector from every flow leaves every dynamic flow unchanged (the weights sum
    to zero) and keeps the inner products small, so the Gram matrices are well conditioned.
    """

    def encode(columns: slice) -> np.ndarray:
        chunk = encode_flows(matrix[:, columns], a, b)
        return chunk - (chunk.mean(axis=0) if mean is None else mean[columns])

    return encode


# ---------------------------------------------------------------------------------------------
# The same maps from flows read a block at a time

FlowReader = Callable[[int, int], np.ndarray]  # (start, stop) -> flows start..stop-1, (n, H, W, 2)


def _blocks(read: FlowReader, num_flows: int, block: int, overlap: int):
    """(first, flows first .. first + block + overlap - 1 (clipped), last block?) in order."""
    first = 0
    while True:
        stop = min(first + block + overlap, num_flows)
        yield first, read(first, stop), stop >= num_flows
        if stop >= num_flows:
            return
        first += block


def encoded_mean(
    read: FlowReader, num_flows: int, a: float, b: float, name: str, block: int
) -> np.ndarray:
    """The mean over the video of the encoded flows clip(a f + b, 0, 255), (D,) float64, as
    `chunk.mean(axis=0)` computes it (rows added in order, then divided by their number);
    checks every flow is finite (a ValueError naming the video and the flow)."""
    total = None
    for first, flows, _ in _blocks(read, num_flows, block, 0):
        matrix = flows.reshape(len(flows), -1)
        finite = np.isfinite(matrix).all(axis=1)
        if not finite.all():
            index = first + int(np.flatnonzero(~finite)[0])
            raise ValueError(
                f"{name}: flow {index} (frames {index} -> {index + 1}) contains NaN or inf"
            )
        if total is None:
            total = np.empty(matrix.shape[1])
        for start in range(0, matrix.shape[1], _COLUMN_CHUNK):
            columns = slice(start, start + _COLUMN_CHUNK)
            rows = encode_flows(matrix[:, columns], a, b)
            if first:  # continue the previous blocks' sum, row after row
                rows = np.concatenate([total[None, columns], rows])
            total[columns] = np.add.reduce(rows, axis=0)
    assert total is not None
    return total / np.intp(num_flows)


def stream_dynamic_flows(
    read: FlowReader,
    num_flows: int,
    window: int = 20,
    method: str = "ranksvm",
    C: float = 1.0,
    a: float = 16.0,
    b: float = 128.0,
    name: str = "video",
    scale: float | None = None,
    tol: float = DEFAULT_TOLERANCE,
    block: int = BLOCK_WINDOWS,
) -> Iterator[np.ndarray]:
    """`dynamic_flows` of a video's `num_flows` flows read a block at a time (`read(start,
    stop)`): the same (T, H, W, 3) uint8 maps, bit for bit, yielded in order, `block` frames at
    a time (the last block also holds the final frames that repeat the last window)."""
    scale = resolve_output_scale(method, scale)
    probe = read(0, min(1, num_flows))
    _check_arguments(probe, window, method, C, a, b, name)
    num_windows, length = window_layout(num_flows, window)
    mean = encoded_mean(read, num_flows, a, b, name, block)
    band = None
    if method == "ranksvm":
        band = np.concatenate(
            [
                flow_gram_band(
                    _encoder(flows.reshape(len(flows), -1), a, b, mean),
                    len(flows),
                    mean.size,
                    length,
                    rows=len(flows) if last else block,
                )
                for _, flows, last in _blocks(read, num_flows, block, length - 1)
            ]
        )
    for first, flows, last in _blocks(read, num_flows, block, length - 1):
        count = len(flows) - length + 1  # windows first .. first + count - 1
        if band is not None:
            grams = window_mean_grams(band, count, length, first)
            where = f"{name} (windows {first}..{first + count - 1})"
            beta = _solve_named(grams, C, tol, where).beta
            coefficients = mean_to_flow_coefficients(beta)
        else:
            coefficients = np.tile(approx_rank_pool_coefficients(length), (count, 1))
        encode = _encoder(flows.reshape(len(flows), -1), a, b, mean)
        combined = combine_window_flows(encode, mean.size, coefficients)
        combined = combined.reshape(count, *flows.shape[1:3], 2)
        maps = np.concatenate(  # a few maps at a time: float temporaries of a few maps
            [
                quantize_dynamic_flow(combined[start : start + _QUANTIZED], scale)
                for start in range(0, count, _QUANTIZED)
            ]
        )
        if last:  # frames past the last window's start use the last window
            maps = np.concatenate([maps, np.repeat(maps[-1:], num_flows + 1 - num_windows, 0)])
        yield maps


def _check_arguments(
    flows: np.ndarray, window: int, method: str, C: float, a: float, b: float, name: str
) -> None:
    if not isinstance(flows, np.ndarray) or flows.ndim != 4 or flows.shape[-1] != 2:
        shape = getattr(flows, "shape", type(flows).__name__)
        raise ValueError(f"{name}: flows must be an (N, H, W, 2) array, got {shape}")
    if flows.shape[0] < 1:
        raise ValueError(f"{name}: need at least one flow (two frames), got none")
    if not np.issubdtype(flows.dtype, np.floating):
        raise ValueError(f"{name}: flows must be floating point, got {flows.dtype}")
    finite = np.isfinite(flows.reshape(len(flows), -1)).all(axis=1)
    if not finite.all():
        index = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"{name}: flow {index} (frames {index} -> {index + 1}) contains NaN or inf"
        )
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"{name}: window must be a positive integer, got {window!r}")
    if method not in METHODS:
        raise ValueError(f"{name}: method must be one of {METHODS}, got {method!r}")
    if not (np.isfinite(C) and C > 0):
        raise ValueError(f"{name}: C (the soft margin of eq. 4) must be positive, got {C}")
    if not (np.isfinite(a) and a > 0):
        raise ValueError(f"{name}: the flow encoding scale a must be positive, got {a}")
    if not np.isfinite(b):
        raise ValueError(f"{name}: the flow encoding offset b must be finite, got {b}")
