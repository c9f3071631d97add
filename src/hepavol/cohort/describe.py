"""Descriptive statistics for the report's baseline characteristics table (median [IQR], counts)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hepavol.cohort.derive import HTB_CLASS_LABELS, DerivedPatient
from hepavol.cohort.table import RECIST_CATEGORIES, YEARLY_FIELDS, YEARLY_MONTHS, PatientRecord


def median_iqr(values: Sequence[float | None], *, digits: int = 1) -> str:
    """``median [Q1–Q3] (n)`` of the non-missing values (numpy's linear quantiles, R type 7).

    Examples
    --------
    >>> median_iqr([1, 2, 3, 4, None])
    '2.5 [1.8–3.2], n=4'
    """
    v = np.array([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return "–"
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return f"{med:.{digits}f} [{q1:.{digits}f}–{q3:.{digits}f}], n={v.size}"


def count_percent(flags: Sequence[bool | None]) -> str:
    """``k/n (p %)`` of the non-missing flags.

    >>> count_percent([True, False, None, True])
    '2/3 (67 %)'
    """
    known = [f for f in flags if f is not None]
    if not known:
        return "–"
    k = sum(known)
    return f"{k}/{len(known)} ({100.0 * k / len(known):.0f} %)"


def _levels(values: Sequence[str | None], order: Sequence[str] | None = None) -> str:
    c = Counter(v for v in values if v is not None)
    n = sum(c.values())
    if n == 0:
        return "–"
    keys = [k for k in (order or sorted(c)) if c.get(k)]
    return "; ".join(f"{k}: {c[k]} ({100.0 * c[k] / n:.0f} %)" for k in keys)


def baseline_characteristics(
    patients: Sequence[DerivedPatient],
) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The baseline table: column headers (All, then each modality) and rows ``(label, cells)``."""
    groups: list[tuple[str, list[DerivedPatient]]] = [("All", list(patients))]
    modalities = sorted({p.modality for p in patients})
    if len(modalities) > 1:
        groups += [(m, [p for p in patients if p.modality == m]) for m in modalities]
    headers = [f"{name} (n={len(ps)})" for name, ps in groups]
    spec: list[tuple[str, Callable[[list[DerivedPatient]], str]]] = [
        ("Baseline liver tumour volume, mL", lambda ps: median_iqr([p.baseline_volume_ml for p in ps])),
        ("Hepatic tumour load, % of liver", lambda ps: median_iqr([p.hepatic_tumor_load_percent for p in ps])),
        (
            "Hepatic tumour load class",
            lambda ps: _levels([p.hepatic_tumor_load_class for p in ps], HTB_CLASS_LABELS),
        ),
        ("Number of liver lesions", lambda ps: median_iqr([p.lesion_count for p in ps], digits=0)),
        ("Chromogranin A, µg/L", lambda ps: median_iqr([p.cga_ug_l for p in ps], digits=0)),
        ("Ki-67, %", lambda ps: median_iqr([p.ki67_percent for p in ps])),
        ("Grade", lambda ps: _levels([p.grade for p in ps])),
        ("Extra-abdominal disease", lambda ps: count_percent([p.extra_abdominal for p in ps])),
        ("Baseline → early scan, days", lambda ps: median_iqr([p.interval_days for p in ps], digits=0)),
        ("Early volume change, %", lambda ps: median_iqr([p.volume_change_percent for p in ps])),
        ("Early SLD change, %", lambda ps: median_iqr([p.sld_change_percent for p in ps])),
        ("Volumetric TGR, %/month", lambda ps: median_iqr([p.tgr_volume_percent_per_month for p in ps], digits=2)),
        ("RECIST TGR, %/month", lambda ps: median_iqr([p.tgr_recist_percent_per_month for p in ps], digits=2)),
        (
            "Volumetric category (early scan)",
            lambda ps: _levels([p.volumetric_response for p in ps], ("CR", "PR", "SD", "PD")),
        ),
        (
            "RECIST target category (early scan)",
            lambda ps: _levels([p.recist_response for p in ps], ("CR", "PR", "SD", "PD")),
        ),
        ("PFS events (whole follow-up)", lambda ps: count_percent([p.pfs_event for p in ps])),
    ]
    rows = [(label, [fn(ps) for _, ps in groups]) for label, fn in spec]
    return headers, rows


#: The time points the registry records and how each is taken from the cohort table.
TIME_POINT_RULE = (
    "baseline = first scan; early = first scan 3-6 months later; month12/24/36 = the scan nearest to 12, 24, 36 "
    "months after the baseline within ± 3 months (months = days / 30.4375; the month*_ columns of the table)"
)


def _quartiles(values: Sequence[float | None]) -> dict[str, Any]:
    """``n``, ``median``, ``q1``, ``q3`` of the non-missing values (numpy linear quantiles, R type 7)."""
    v = np.array([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return {"n": 0, "median": None, "q1": None, "q3": None}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"n": int(v.size), "median": float(med), "q1": float(q1), "q3": float(q3)}


def _time_point_values(p: PatientRecord, point: str) -> dict[str, Any] | None:
    """(date, total volume, target volume, lesion count, RECIST) of one patient at one time point, or None."""
    if point == "baseline":
        return {
            "date": p.baseline_date,
            "volume_ml": p.baseline_volume_ml,
            "target_volume_ml": p.baseline_target_volume_ml,
            "lesion_count": p.lesion_count,
            "recist_response": None,
        }
    if point == "early":
        if p.early_date is None:
            return None
        return {
            "date": p.early_date,
            "volume_ml": p.early_volume_ml,
            "target_volume_ml": p.early_target_volume_ml,
            "lesion_count": None,
            "recist_response": None,
        }
    months = int(point.removeprefix("month"))
    date = p.at_month(months, "date")
    if date is None:
        return None
    return {name: p.at_month(months, name) for name in YEARLY_FIELDS}


def time_points(patients: Sequence[PatientRecord]) -> dict[str, Any]:
    """The registry's time points described: per population (``All``, then each modality when both are present)
    and time point (``baseline``, ``early``, ``month12``...), the number of patients with a scan, median [IQR] of
    the days from baseline, total tumour volume, target-lesion volume and lesion count, and the RECIST 1.1
    categories counted (the results.json ``time_points`` section).

    Examples
    --------
    >>> import datetime as dt
    >>> from hepavol.cohort.table import PatientRecord
    >>> b = dt.date(2020, 1, 1)
    >>> def rec(i, v12, r12):
    ...     return PatientRecord(line=i, patient_id=str(i), modality="CT", baseline_date=b, early_date=None,
    ...         baseline_volume_ml=10.0 * i, early_volume_ml=None, baseline_sld_mm=None, early_sld_mm=None,
    ...         lesion_count=None, liver_volume_ml=None, pfs_event=False, pfs_date=dt.date(2022, 1, 1),
    ...         ki67_percent=None, cga_ug_l=None, extra_abdominal=None, grade=None,
    ...         yearly={"month12_date": dt.date(2021, 1, 1), "month12_volume_ml": v12, "month12_recist_response": r12})
    >>> tp = time_points([rec(1, 4.0, "PR"), rec(2, 8.0, "SD"), rec(3, 20.0, "SD")])["populations"]["All"]
    >>> tp["baseline"]["volume_ml"]["median"], tp["month12"]["volume_ml"]
    (20.0, {'n': 3, 'median': 8.0, 'q1': 6.0, 'q3': 14.0})
    >>> tp["month12"]["days_from_baseline"]["median"], tp["month12"]["recist_response"], tp["month24"]["n"]
    (366.0, {'PR': 1, 'SD': 2}, 0)
    """
    groups: list[tuple[str, list[PatientRecord]]] = [("All", list(patients))]
    modalities = sorted({p.modality for p in patients})
    if len(modalities) > 1:
        groups += [(m, [p for p in patients if p.modality == m]) for m in modalities]
    points = ("baseline", "early", *(f"month{k}" for k in YEARLY_MONTHS))
    populations: dict[str, Any] = {}
    for label, ps in groups:
        entry: dict[str, Any] = {}
        for point in points:
            values = [v for v in (_time_point_values(p, point) for p in ps) if v is not None]
            starts = [p.baseline_date for p in ps if _time_point_values(p, point) is not None]
            counts = Counter(v["recist_response"] for v in values if v["recist_response"] is not None)
            entry[point] = {
                "n": len(values),
                "days_from_baseline": _quartiles(
                    [(v["date"] - s).days for v, s in zip(values, starts, strict=True)]
                ),
                "volume_ml": _quartiles([v["volume_ml"] for v in values]),
                "target_volume_ml": _quartiles([v["target_volume_ml"] for v in values]),
                "lesion_count": _quartiles([v["lesion_count"] for v in values]),
                "recist_response": {k: counts[k] for k in RECIST_CATEGORIES if counts.get(k)},
            }
        populations[label] = entry
    return {"rule": TIME_POINT_RULE, "populations": populations}
