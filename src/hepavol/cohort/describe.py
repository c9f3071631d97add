"""Descriptive statistics for the report's baseline characteristics table (median [IQR], counts)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from hepavol.cohort.derive import HTB_CLASS_LABELS, DerivedPatient


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
