"""Per-patient derived variables of a cohort: early changes, TGR, hepatic tumour load, landmark times.

All derived quantities keep their unit in the name. Percent changes are ``100·(early/baseline − 1)``; TGR follows
Ferté et al. 2014 (:mod:`hepavol.response.growth`, months = days / 30.4375). Response categories at the early
scan are *target-lesion* categories (the table carries no non-target or new-lesion information):

- RECIST 1.1 (sum of diameters, baseline = nadir at the first follow-up): CR if the sum is 0; PR at ≤ −30 %;
  PD at ≥ +20 % **and** ≥ +5 mm; SD otherwise (Eisenhauer et al., EJC 2009;45:228-247).
- Volumetric (total liver tumour volume, :mod:`hepavol.response.volumetric`): by default PR at ≤ −65 %, PD at
  ≥ +73 %, the sphere equivalents of the RECIST thresholds (SCIENCE.md §3.1). No consensus threshold exists.

Hepatic tumour load (HTB) = baseline tumour volume / whole-liver volume, in the ENETS classes ``<=10``,
``11-25``, ``26-50``, ``>50`` % (:mod:`hepavol.response.load`; Luo et al., Eur Radiol 2019).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from hepavol.cohort.table import CohortTable, PatientRecord
from hepavol.response.growth import tgr_recist, tgr_volume
from hepavol.response.load import LOAD_CLASSES, hepatic_tumor_load_class
from hepavol.response.recist import is_target_pd, is_target_pr, to_decimal
from hepavol.response.volumetric import VOLUME_PD_PERCENT as _VOLUME_PD
from hepavol.response.volumetric import VOLUME_PR_PERCENT as _VOLUME_PR
from hepavol.response.volumetric import classify_volume_change

#: Volumetric thresholds (% change of total volume): −65 % / +73 %, hepavol.response.volumetric's defaults.
VOLUME_PR_PERCENT = float(_VOLUME_PR)
VOLUME_PD_PERCENT = float(_VOLUME_PD)
#: HTB class labels (hepavol.response.load), upper bounds 10, 25, 50 % inclusive.
HTB_CLASS_LABELS = LOAD_CLASSES


@dataclass(frozen=True, slots=True, kw_only=True)
class DerivedPatient:
    """The analysis variables of one patient (``None`` = not defined for this patient)."""

    line: int
    patient_id: str
    modality: str
    baseline_volume_ml: float
    log2_baseline_volume: float | None
    lesion_count: float | None
    cga_ug_l: float | None
    ki67_percent: float | None
    extra_abdominal: bool | None
    grade: str | None
    interval_days: int | None  # baseline scan → early scan
    volume_change_percent: float | None
    sld_change_percent: float | None
    sld_change_mm: float | None
    target_volume_change_percent: float | None  # RECIST target lesions' volumes summed (optional columns)
    three_largest_diameter_change_percent: float | None  # 3 largest liver metastases' diameters summed
    tgr_volume_percent_per_month: float | None
    tgr_recist_percent_per_month: float | None
    volumetric_response: str | None  # "CR", "PR", "SD", "PD" (total volume, no new-lesion information)
    recist_response: str | None  # "CR", "PR", "SD", "PD" (target lesions only)
    hepatic_tumor_load_percent: float | None
    hepatic_tumor_load_class: str | None
    ttp_days: int  # baseline scan → pfs_date
    pfs_event: bool
    landmark: bool  # in the landmark set: early scan present and pfs_date after early_date
    landmark_days: int | None  # early scan → pfs_date (landmark set only)
    landmark_exclusion: str | None  # why the patient is not in the landmark set
    # With a repeatability CV (hepavol.cohort.uncertainty.with_repeatability; None otherwise): 95 % intervals
    # of the true volume change and volumetric TGR, and whether the change is below the smallest detectable one.
    volume_change_ci95_low_percent: float | None = None
    volume_change_ci95_high_percent: float | None = None
    tgr_volume_ci95_low_percent_per_month: float | None = None
    tgr_volume_ci95_high_percent_per_month: float | None = None
    volume_change_below_sdc: bool | None = None
    target_volume_change_below_sdc: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def recist_target_response(sld_baseline_mm: float, sld_early_mm: float) -> str:
    """RECIST 1.1 target-lesion response at the first follow-up (the baseline is the nadir).

    Uses the exact threshold tests of :mod:`hepavol.response.recist` (PR: −30 %; PD: +20 % and +5 mm).

    Examples
    --------
    STYLE.md boundary cases (Eisenhauer 2009): 100 → 70 mm is PR, 100 → 71 mm SD, 50 → 60 mm PD,
    20 → 24 mm SD (+20 % but only +4 mm).

    >>> [recist_target_response(b, e) for b, e in ((100, 70), (100, 71), (50, 60), (20, 24), (30, 0))]
    ['PR', 'SD', 'PD', 'SD', 'CR']
    """
    base, early = to_decimal(sld_baseline_mm), to_decimal(sld_early_mm)
    if early == 0:
        return "CR"
    if is_target_pd(early, base):
        return "PD"
    if is_target_pr(early, base):
        return "PR"
    return "SD"


def volumetric_response(
    baseline_ml: float,
    early_ml: float,
    *,
    pr_percent: float = VOLUME_PR_PERCENT,
    pd_percent: float = VOLUME_PD_PERCENT,
) -> str:
    """Volumetric category of the early scan (:func:`hepavol.response.volumetric.classify_volume_change`).

    Examples
    --------
    >>> [volumetric_response(100, v) for v in (30, 40, 100, 172, 173)]
    ['PR', 'SD', 'SD', 'SD', 'PD']
    """
    return classify_volume_change(early_ml, baseline_ml, pr_percent=pr_percent, pd_percent=pd_percent).value


def _change(baseline: float | None, early: float | None) -> float | None:
    if baseline is None or early is None or baseline <= 0:
        return None
    return 100.0 * (early / baseline - 1.0)


def derive_patient(
    p: PatientRecord, *, pr_percent: float = VOLUME_PR_PERCENT, pd_percent: float = VOLUME_PD_PERCENT
) -> DerivedPatient:
    """The derived variables of one validated patient record."""
    interval = (p.early_date - p.baseline_date).days if p.early_date is not None else None
    vol_change = _change(p.baseline_volume_ml, p.early_volume_ml)
    sld_change = _change(p.baseline_sld_mm, p.early_sld_mm)
    tgr_v = tgr_r = None
    if interval is not None and p.early_volume_ml is not None:
        tgr_v = tgr_volume(p.baseline_volume_ml, p.early_volume_ml, interval).percent_per_month
        if p.baseline_sld_mm is not None and p.early_sld_mm is not None:
            tgr_r = tgr_recist(p.baseline_sld_mm, p.early_sld_mm, interval).percent_per_month
    recist = None
    if p.baseline_sld_mm is not None and p.early_sld_mm is not None and p.baseline_sld_mm > 0:
        recist = recist_target_response(p.baseline_sld_mm, p.early_sld_mm)
    vresp = None
    if vol_change is not None and p.early_volume_ml is not None:
        vresp = volumetric_response(
            p.baseline_volume_ml, p.early_volume_ml, pr_percent=pr_percent, pd_percent=pd_percent
        )
    htb = htb_class = None
    if p.liver_volume_ml is not None and p.liver_volume_ml > 0:
        htb = 100.0 * p.baseline_volume_ml / p.liver_volume_ml
        htb_class = hepatic_tumor_load_class(min(htb, 100.0))
    ttp_days = (p.pfs_date - p.baseline_date).days
    exclusion: str | None = None
    landmark_days: int | None = None
    if p.early_date is None:
        exclusion = "no early scan"
    elif p.pfs_date <= p.early_date:
        exclusion = (
            "progression or death on or before the early scan"
            if p.pfs_event
            else "censored on or before the early scan"
        )
    elif vol_change is None:
        exclusion = "volume change undefined (baseline volume 0)"
    else:
        landmark_days = (p.pfs_date - p.early_date).days
    return DerivedPatient(
        line=p.line,
        patient_id=p.patient_id,
        modality=p.modality,
        baseline_volume_ml=p.baseline_volume_ml,
        log2_baseline_volume=math.log2(p.baseline_volume_ml) if p.baseline_volume_ml > 0 else None,
        lesion_count=p.lesion_count,
        cga_ug_l=p.cga_ug_l,
        ki67_percent=p.ki67_percent,
        extra_abdominal=p.extra_abdominal,
        grade=p.grade,
        interval_days=interval,
        volume_change_percent=vol_change,
        sld_change_percent=sld_change,
        sld_change_mm=(p.early_sld_mm - p.baseline_sld_mm)
        if p.early_sld_mm is not None and p.baseline_sld_mm is not None
        else None,
        target_volume_change_percent=_change(p.baseline_target_volume_ml, p.early_target_volume_ml),
        three_largest_diameter_change_percent=_change(
            p.baseline_three_largest_diameter_sum_mm, p.early_three_largest_diameter_sum_mm
        ),
        tgr_volume_percent_per_month=tgr_v,
        tgr_recist_percent_per_month=tgr_r,
        volumetric_response=vresp,
        recist_response=recist,
        hepatic_tumor_load_percent=htb,
        hepatic_tumor_load_class=htb_class,
        ttp_days=ttp_days,
        pfs_event=p.pfs_event,
        landmark=landmark_days is not None,
        landmark_days=landmark_days,
        landmark_exclusion=exclusion,
    )


def derive(
    table: CohortTable, *, pr_percent: float = VOLUME_PR_PERCENT, pd_percent: float = VOLUME_PD_PERCENT
) -> tuple[DerivedPatient, ...]:
    """The derived variables of every patient of ``table``, in table order."""
    return tuple(derive_patient(p, pr_percent=pr_percent, pd_percent=pd_percent) for p in table.patients)


#: Columns of ``derived.csv`` (no patient id: the ``line`` refers back to the input table).
DERIVED_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(DerivedPatient) if f.name != "patient_id")
