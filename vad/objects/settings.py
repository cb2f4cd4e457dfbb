"""The `objects` section of params.yaml, resolved: HF2-VAD's per-dataset values fill every key
left null.

PRESETS are the values of HF2-VAD's released pre-processing (LiUzHiAn/hf2vad,
pre_process/extract_bboxes.py, DATASET_CFGS): detector confidence `conf_thr`, detector
`min_area`, `cover_thr`, the temporal-gradient `binary_thr`, the Gaussian blur `gauss_mask_size`
and the foreground `contour_min_area`. Datasets without a preset (synthetic, folders of frames
or videos) use Ped2's, the closest in scale (small people, fixed camera).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from vad.config import ConfigError, Section

PRESETS: dict[str, dict[str, float]] = {
    "ped2": {"confidence": 0.5, "min_area": 100, "cover": 0.6, "binary_threshold": 18,
             "blur": 3, "contour_min_area": 100},
    "avenue": {"confidence": 0.25, "min_area": 1600, "cover": 0.6, "binary_threshold": 18,
               "blur": 5, "contour_min_area": 1600},
    "shanghaitech": {"confidence": 0.5, "min_area": 64, "cover": 0.65, "binary_threshold": 15,
                     "blur": 5, "contour_min_area": 1600},
}  # fmt: skip
FOREGROUNDS = ("difference", "mog2", "knn")


@dataclass(frozen=True)
class ObjectSettings:
    preset: str
    foreground: tuple[str, ...]  # motion masks, OR-ed
    binary_threshold: float  # summed |gray difference| over t-1..t+1 above this is foreground
    blur: int  # odd Gaussian kernel (px) applied before differencing
    contour_min_area: float  # (w+1)(h+1) of a foreground component must exceed this
    close: int  # morphological closing kernel (px) on the mask; 0 = none
    merge_gap: float  # foreground boxes this close (px) merge; negative = never
    extend: float  # foreground boxes grow by this many px per side (HF2-VAD: 2)
    max_aspect: float  # components with w/h or h/w >= this are dropped (HF2-VAD: 10)
    hog: bool
    hog_upscale: float  # frames are enlarged before HOG (its window is 64x128 px)
    hog_threshold: float  # minimum SVM margin of a HOG detection
    onnx: str | None  # path to a user-supplied detector, run through cv2.dnn
    onnx_size: tuple[int, int]
    confidence: float  # detector boxes (ONNX): score above this
    min_area: float  # detector boxes: area at least this
    cover: float  # detector boxes mostly (> cover) inside a larger one are dropped

    def to_json(self) -> dict:
        return asdict(self)


def _number(section: Section, key: str, preset: dict, minimum: float = 0.0) -> float:
    if section.values.get(key) is None:
        return float(preset[key])
    return section.float(key, minimum=minimum)


def resolve_settings(params: dict) -> ObjectSettings:
    """Validate params.yaml's `objects` section (ConfigError names the key)."""
    section = Section(params, "objects")
    dataset = str(params.get("data", {}).get("name", ""))
    preset_name = section.str("preset", ["auto", *PRESETS], default="auto")
    if preset_name == "auto":
        preset_name = dataset if dataset in PRESETS else "ped2"
    preset = PRESETS[preset_name]
    foreground = section.values.get("foreground", ["difference"])
    if (
        not isinstance(foreground, list)
        or not foreground
        or any(value not in FOREGROUNDS for value in foreground)
    ):
        raise ConfigError(
            f"params.yaml: 'objects.foreground' must be a non-empty list of {FOREGROUNDS}, "
            f"got {foreground!r}"
        )
    blur = int(_number(section, "blur", preset, minimum=1))
    if blur % 2 == 0:
        raise ConfigError(f"params.yaml: 'objects.blur' must be odd, got {blur}")
    onnx = section.values.get("onnx")
    if onnx is not None and not isinstance(onnx, str):
        raise ConfigError(f"params.yaml: 'objects.onnx' must be a path or null, got {onnx!r}")
    hog = section.values.get("hog", False)
    if not isinstance(hog, bool):
        raise ConfigError(f"params.yaml: 'objects.hog' must be true or false, got {hog!r}")
    return ObjectSettings(
        preset=preset_name,
        foreground=tuple(foreground),
        binary_threshold=_number(section, "binary_threshold", preset),
        blur=blur,
        contour_min_area=_number(section, "contour_min_area", preset),
        close=section.int("close", minimum=0, default=3),
        merge_gap=section.float("merge_gap", default=-1.0),
        extend=section.float("extend", minimum=0.0, default=2.0),
        max_aspect=section.float("max_aspect", minimum=1.0, default=10.0),
        hog=hog,
        hog_upscale=section.float("hog_upscale", minimum=0.1, default=2.0),
        hog_threshold=section.float("hog_threshold", default=0.5),
        onnx=str(Path(onnx)) if onnx else None,
        onnx_size=section.size("onnx_size") if "onnx_size" in section.values else (640, 640),
        confidence=_number(section, "confidence", preset),
        min_area=_number(section, "min_area", preset),
        cover=_number(section, "cover", preset),
    )
