"""The `objects` section (stage `objects`): the box settings of vad.objects.settings, plus the
stage's worker count, with unknown keys refused."""

from __future__ import annotations

from vad.config import Section, check_all
from vad.objects.settings import ObjectSettings, resolve_settings

OBJECTS_KEYS = (*ObjectSettings.__dataclass_fields__, "n_jobs")


def objects_settings(params: dict) -> dict:
    """`objects`: {settings: ObjectSettings (HF2-VAD's preset fills each null), n_jobs}."""
    section = Section(params, "objects")
    return check_all(
        lambda: section.check_keys(OBJECTS_KEYS),
        lambda: {
            "settings": resolve_settings(params),
            "n_jobs": section.int("n_jobs", minimum=1, default=2),
        },
    )[1]
