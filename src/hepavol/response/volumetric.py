"""Volumetric response of the total tumour volume, the volume analogue of RECIST 1.1.

Default thresholds are the sphere equivalents of RECIST's diameter thresholds (SCIENCE.md §3.1):
PR is a decrease of at least 65 % vs baseline (0.7³ − 1 = −65.7 %), PD an increase of at least 73 % vs the nadir
(1.2³ − 1 = +72.8 %; the EORTC FAQ uses the same 73 % for unequivocal non-target progression), CR a total volume
of 0. New unequivocal lesions are PD. Thresholds are parameters (no consensus exists, SCIENCE.md §3.2) and are
compared exactly (inclusive), like :mod:`hepavol.response.recist`: volumes are read as the decimals they print as.

The nadir is the smallest volume on study, baseline included, updated by every time point that is not PD.
There is no "PR maintained until PD" rule here (*ours*: it is a RECIST clarification for diameters).

Examples
--------
>>> import datetime
>>> from hepavol.response.volumetric import VolumePoint, assess_volumes
>>> d = datetime.date
>>> points = [
...     VolumePoint(date=d(2024, 1, 1), volume_ml=100.0),
...     VolumePoint(date=d(2024, 4, 1), volume_ml=35.0),  # -65 %: PR
...     VolumePoint(date=d(2024, 7, 1), volume_ml=60.55),  # +73 % vs nadir 35: PD
... ]
>>> [tp.response.value for tp in assess_volumes(points)]
['PR', 'PD']
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from hepavol.errors import InputError
from hepavol.response.recist import Response, to_decimal

__all__ = [
    "VOLUME_PD_PERCENT",
    "VOLUME_PR_PERCENT",
    "VolumePoint",
    "VolumetricTimepoint",
    "assess_volumes",
    "classify_volume_change",
]

VOLUME_PR_PERCENT = Decimal(-65)
"""PR threshold, percent change vs baseline (inclusive): sphere equivalent of RECIST's −30 % diameter."""
VOLUME_PD_PERCENT = Decimal(73)
"""PD threshold, percent change vs nadir (inclusive): sphere equivalent of RECIST's +20 % diameter."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumePoint:
    """Total tumour volume at one date (any one volume unit; mL by convention), ``None`` if not evaluated."""

    date: datetime.date
    volume_ml: float | Decimal | int | str | None
    new_lesions: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumetricTimepoint:
    """Volumetric response at one follow-up date; percent changes are exact values rounded for display."""

    date: datetime.date
    volume_ml: float | None
    change_from_baseline_percent: float | None
    change_from_nadir_percent: float | None
    nadir_ml: float | None
    response: Response


def _exact(value: float | Decimal | int | str | Fraction) -> Fraction:
    if isinstance(value, Fraction):
        return value
    return Fraction(to_decimal(value))


def classify_volume_change(
    volume: float | Decimal | int | str | Fraction,
    baseline: float | Decimal | int | str | Fraction,
    nadir: float | Decimal | int | str | Fraction | None = None,
    *,
    new_lesions: bool = False,
    pr_percent: float | Decimal | int | str = VOLUME_PR_PERCENT,
    pd_percent: float | Decimal | int | str = VOLUME_PD_PERCENT,
) -> Response:
    """Volumetric response of one time point (CR, PR, SD or PD), thresholds inclusive and exact.

    Parameters
    ----------
    volume, baseline : number
        Total tumour volume now and at baseline (same unit).
    nadir : number, optional
        Smallest volume on study so far, baseline included; default the baseline.
    new_lesions : bool
        Unequivocal new lesions: PD.
    pr_percent : number
        Change vs baseline at or below which the response is PR (negative, default −65).
    pd_percent : number
        Change vs nadir at or above which the response is PD (positive, default +73). From a nadir of 0 any
        volume above 0 is PD (reappearance after CR).

    Examples
    --------
    >>> classify_volume_change(35, 100), classify_volume_change(35.1, 100), classify_volume_change(173, 100)
    (<Response.PR: 'PR'>, <Response.SD: 'SD'>, <Response.PD: 'PD'>)
    """
    v, b = _exact(volume), _exact(baseline)
    n = b if nadir is None else _exact(nadir)
    pr, pd = _exact(pr_percent) / 100, _exact(pd_percent) / 100
    if v < 0 or b < 0 or n < 0:
        raise InputError(f"volumes must be >= 0, got volume={volume}, baseline={baseline}, nadir={nadir}")
    if pr >= 0 or pd <= 0:
        raise InputError(f"pr_percent must be < 0 and pd_percent > 0, got {pr_percent} and {pd_percent}")
    if new_lesions:
        return Response.PD
    if n == 0:
        return Response.PD if v > 0 else Response.CR
    if v - n >= pd * n:
        return Response.PD
    if v == 0:
        return Response.CR
    if b > 0 and v - b <= pr * b:
        return Response.PR
    return Response.SD


def _pct(value: Fraction, reference: Fraction) -> float | None:
    return None if reference == 0 else round(float((value - reference) * 100 / reference), 2)


def assess_volumes(
    points: Iterable[VolumePoint],
    *,
    pr_percent: float | Decimal | int | str = VOLUME_PR_PERCENT,
    pd_percent: float | Decimal | int | str = VOLUME_PD_PERCENT,
) -> tuple[VolumetricTimepoint, ...]:
    """Volumetric response at every follow-up of one patient (baseline = earliest point, must have a volume).

    A point without a volume is NE (unless it has new lesions: PD). See :func:`classify_volume_change`.

    Raises
    ------
    InputError
        No points, a baseline without a volume, a negative volume, two points on one date.
    """
    items = sorted(points, key=lambda p: p.date)
    if not items:
        raise InputError("no volume points; give at least a baseline")
    for a, b in itertools.pairwise(items):
        if a.date == b.date:
            raise InputError(f"two volume points on {a.date.isoformat()}; give one total volume per date")
    if items[0].volume_ml is None:
        raise InputError(f"the baseline ({items[0].date.isoformat()}) has no volume; a baseline must be measured")
    baseline = _exact(items[0].volume_ml)
    nadir = baseline
    out: list[VolumetricTimepoint] = []
    for p in items[1:]:
        if p.volume_ml is None:
            response = Response.PD if p.new_lesions else Response.NE
            out.append(
                VolumetricTimepoint(
                    date=p.date,
                    volume_ml=None,
                    change_from_baseline_percent=None,
                    change_from_nadir_percent=None,
                    nadir_ml=float(nadir),
                    response=response,
                )
            )
            continue
        v = _exact(p.volume_ml)
        response = classify_volume_change(
            v, baseline, nadir, new_lesions=p.new_lesions, pr_percent=pr_percent, pd_percent=pd_percent
        )
        out.append(
            VolumetricTimepoint(
                date=p.date,
                volume_ml=float(v),
                change_from_baseline_percent=_pct(v, baseline),
                change_from_nadir_percent=_pct(v, nadir),
                nadir_ml=float(nadir),
                response=response,
            )
        )
        if response != Response.PD:
            nadir = min(nadir, v)
    return tuple(out)
