"""Builders for RECIST assessments in the response tests (compact series of diameters at regular dates)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from hepavol.response.recist import Assessment, PatientAssessment, TargetLesion, assess_patient

BASELINE = datetime.date(2024, 1, 1)


def day(n: int) -> datetime.date:
    """The date ``n`` days after the common baseline 2024-01-01."""
    return BASELINE + datetime.timedelta(days=n)


def single_target_series(
    diameters_mm: Sequence[str | float | None], *, organ: str = "liver", every_days: int = 56
) -> list[Assessment]:
    """One target lesion measured at baseline and then every ``every_days`` days (``None`` = not evaluated)."""
    return [
        Assessment(date=day(i * every_days), targets=(TargetLesion(lesion_id="T1", organ=organ, diameter_mm=d),))
        for i, d in enumerate(diameters_mm)
    ]


def assess_series(
    diameters_mm: Sequence[str | float | None], *, organ: str = "liver", every_days: int = 56, **options: object
) -> PatientAssessment:
    """:func:`assess_patient` of :func:`single_target_series`."""
    return assess_patient(
        single_target_series(diameters_mm, organ=organ, every_days=every_days),
        **options,  # type: ignore[arg-type]
    )
