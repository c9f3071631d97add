"""Eligibility of a patient for NCT03689231 (VOLUNET), and the CONSORT-style flow of a screened cohort.

The criteria are those of the registry record (SCIENCE.md §0), as issue 6 lists them, checked in this order
(:data:`CRITERIA`; a patient is counted under the first criterion it fails, and every failing criterion is
reported):

1. **Tumour type**: a well-differentiated small-intestinal NET (``tumour_type`` NET, or ``differentiation``
   well, and ``primary_site`` small_intestine). A recorded value that contradicts it excludes (``not_si_net``;
   an explicitly ``unknown`` primary too: the study requires a small-intestinal one); a value that is not
   recorded makes the patient *not assessable* (``tumour_type_not_recorded``), never silently included.
2. **Measurable liver metastasis** on the baseline CT/MR: at least one liver lesion with a long axis of at least
   10 mm, or 2 × the slice thickness when slices are thicker than 5 mm (RECIST 1.1 §3.1.1, Eisenhauer et al.,
   EJC 2009;45:228-247; SCIENCE.md §1.1), not marked non-measurable (poorly limited, visible only on diffusion
   MRI: registry exclusions). Baseline liver lesions below the size are returned in ``small_lesion_ids``.
   Without a baseline scan: ``no_baseline_scan``; with baseline lesions not yet measured (``lesions=None``):
   ``lesions_not_measured`` (not assessable).
3. **No invasive liver treatment and no systemic therapy other than somatostatin analogues during follow-up**.
   *During follow-up* means: the treatment interval ``[start_date, end_date]`` (an ongoing treatment has no end;
   a procedure lasts its day) shares at least one day with ``[baseline date, follow-up end]``, both inclusive,
   where the follow-up end is the date of the patient's last CT/MR scan of the baseline modality, or
   ``follow_up_end`` when given (for example the RECIST progression date, so that treatment started after
   progression, the usual next step of care, does not exclude; that is the study statistician's choice).
   A treatment ending the day before baseline is prior treatment and gives only a warning (previously treated
   lesions are not measurable per RECIST 1.1 unless they progressed, SCIENCE.md §1.1). Somatostatin analogues
   and resection of the primary (registry: allowed) never exclude; a treatment of kind ``other`` during
   follow-up gives a warning for review. Without any treatment history (no treatments file and no yes/no
   history columns), or with a history column saying "yes" and no dated treatment of that category, the patient
   is not assessable (``treatments_not_recorded``).
4. **Sufficient follow-up**: a baseline scan and an early scan 3-6 months later, of the same modality (the study
   keeps its CT and MR cohorts apart, SCIENCE.md §0). The window is ``early_window_days`` = (91, 183) days after
   the baseline date, both inclusive: 3 months = 3 × 30.4375 = 91.3 days and 6 months = 182.6 days with the
   mean Gregorian month (365.25/12 days, SCIENCE.md §2.2), rounded outwards to whole days so that every scan
   dated 3.0-6.0 months after baseline is in; the simulator uses the same window
   (:attr:`hepavol.simulate.SimulationConfig.early_scan_days`). The early scan is the first scan in the window.

Baseline is the first CT or MR scan by date (the registry's baseline is the date hepatic metastatic disease was
discovered, SCIENCE.md §0). Scans of other modalities are ignored with a warning; so are scans of the other of CT
and MR than the baseline's.

A patient without a clinical record is not assessable (``no_clinical_data``) for the tumour-type and treatment
criteria; the scan criteria are still checked and reported. :attr:`EligibilityDecision.status` is ``included``,
``excluded`` (at least one criterion failed on recorded data) or ``not assessable`` (only missing data stands in
the way).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hepavol.errors import InputError
from hepavol.study.clinical import ClinicalRecord, Treatment

#: Version of the criteria implemented here; stored with every decision.
CRITERIA_VERSION = "NCT03689231/hepavol-1"
#: RECIST 1.1 minimum long axis of a measurable non-nodal lesion on CT/MR with slices ≤ 5 mm (§3.1.1).
MEASURABLE_MIN_MM = 10.0
#: Early scan window in days after baseline, both inclusive: 3-6 months (registry; see the module docstring).
EARLY_WINDOW_DAYS: tuple[int, int] = (91, 183)
_IMAGING = {"CT": "CT", "MR": "MR", "MRI": "MR"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Criterion:
    """One eligibility criterion: code, a short label for tables, and whether failing it means missing data."""

    code: str
    label: str
    missing_data: bool = False


#: The criteria in the fixed order of the flow table (a patient is counted under the first one it fails).
CRITERIA: tuple[Criterion, ...] = (
    Criterion(code="no_clinical_data", label="no clinical record", missing_data=True),
    Criterion(
        code="tumour_type_not_recorded", label="tumour type or primary site not recorded", missing_data=True
    ),
    Criterion(code="not_si_net", label="not a well-differentiated small-intestinal NET"),
    Criterion(code="no_baseline_scan", label="no baseline CT or MR scan"),
    Criterion(code="lesions_not_measured", label="baseline lesions not measured yet", missing_data=True),
    Criterion(code="no_liver_metastasis", label="no liver metastasis at baseline"),
    Criterion(code="no_measurable_liver_metastasis", label="no measurable liver metastasis (all < 10 mm)"),
    Criterion(
        code="treatments_not_recorded", label="treatment history not recorded or undated", missing_data=True
    ),
    Criterion(code="invasive_liver_treatment", label="invasive liver treatment during follow-up"),
    Criterion(
        code="systemic_therapy", label="systemic therapy other than somatostatin analogues during follow-up"
    ),
    Criterion(code="insufficient_follow_up", label="no early scan 3-6 months after baseline"),
)
_BY_CODE = {c.code: c for c in CRITERIA}
_ORDER = {c.code: i for i, c in enumerate(CRITERIA)}


@dataclass(frozen=True, slots=True, kw_only=True)
class LesionSummary:
    """One lesion on one scan, as the eligibility check needs it.

    ``long_axis_mm`` is the RECIST long axis (None = not measured); ``in_liver`` False for extra-hepatic lesions
    (ignored here); ``measurable`` False when the reader or the measurement marked the lesion not measurable
    (poorly limited, visible only on diffusion MRI, below the RECIST size: e.g. ``LesionMeasurement.measurable``).
    """

    lesion_id: str | int
    long_axis_mm: float | None
    in_liver: bool = True
    measurable: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanSummary:
    """One scan: date, modality (``CT``/``MR``; ``MRI`` is read as MR; others are ignored), its lesions (None = not
    measured yet; an empty tuple = measured, no lesion) and, if known, the slice thickness in mm."""

    date: dt.date
    modality: str
    lesions: tuple[LesionSummary, ...] | None = None
    slice_thickness_mm: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExclusionReason:
    """A failed criterion: its code (a :data:`CRITERIA` code), the patient-specific text, and whether it is missing
    data (not assessable) rather than a recorded fact that excludes."""

    code: str
    text: str
    missing_data: bool = False

    @property
    def label(self) -> str:
        """The criterion's short label (the same for every patient; for tables)."""
        return _BY_CODE[self.code].label


@dataclass(frozen=True, slots=True, kw_only=True)
class EligibilityDecision:
    """Eligibility of one patient for NCT03689231.

    ``reasons`` holds every failed criterion in :data:`CRITERIA` order (empty when eligible). Dates are the
    baseline and early scans found (None if absent); ``follow_up_end_date`` closes the interval in which treatments
    count. ``small_lesion_ids`` are the baseline liver lesions below the RECIST measurable size and
    ``measurable_lesion_ids`` those at or above it. ``criteria_version`` names the criteria and the window used.
    """

    eligible: bool
    reasons: tuple[ExclusionReason, ...]
    baseline_date: dt.date | None
    early_date: dt.date | None
    small_lesion_ids: tuple[str | int, ...]
    warnings: tuple[str, ...]
    criteria_version: str
    modality: str | None = None
    follow_up_end_date: dt.date | None = None
    measurable_lesion_ids: tuple[str | int, ...] = ()

    @property
    def status(self) -> str:
        """``included``, ``excluded`` or ``not assessable`` (every failed criterion is missing data)."""
        if self.eligible:
            return "included"
        if all(r.missing_data for r in self.reasons):
            return "not assessable"
        return "excluded"

    @property
    def reason_codes(self) -> tuple[str, ...]:
        """The codes of ``reasons``, in criteria order."""
        return tuple(r.code for r in self.reasons)


def measurable_min_mm(slice_thickness_mm: float | None) -> float:
    """RECIST 1.1 minimum long axis (mm) for a slice thickness: 10 mm, or 2 × the thickness above 5 mm (§3.1.1).

    Examples
    --------
    >>> measurable_min_mm(None), measurable_min_mm(5.0), measurable_min_mm(7.5)
    (10.0, 10.0, 15.0)
    """
    if slice_thickness_mm is None:
        return MEASURABLE_MIN_MM
    return max(MEASURABLE_MIN_MM, 2.0 * slice_thickness_mm)


def _check_window(early_window_days: tuple[int, int]) -> tuple[int, int]:
    try:
        lo, hi = early_window_days
    except (TypeError, ValueError):
        raise InputError(
            f"Argument 'early_window_days' must be two whole numbers of days (first, last), but it is "
            f"{early_window_days!r}"
        ) from None
    if not (isinstance(lo, int) and isinstance(hi, int)) or not 0 < lo <= hi:
        raise InputError(
            f"Argument 'early_window_days' must be whole days with 0 < first <= last, but it is {early_window_days!r};"
            " the study's window is (91, 183)"
        )
    return lo, hi


def _check_scans(scans: Sequence[ScanSummary]) -> None:
    for scan in scans:
        if not isinstance(scan.date, dt.date) or isinstance(scan.date, dt.datetime):
            raise InputError(f"Scan date must be a datetime.date, but it is {scan.date!r}")
        thickness = scan.slice_thickness_mm
        if thickness is not None and not (math.isfinite(thickness) and thickness > 0):
            raise InputError(
                f"Scan of {scan.date.isoformat()}: slice_thickness_mm must be > 0, but it is {thickness!r}"
            )
        for lesion in scan.lesions or ():
            size = lesion.long_axis_mm
            if size is not None and not (math.isfinite(size) and size >= 0):
                raise InputError(
                    f"Scan of {scan.date.isoformat()}, lesion {lesion.lesion_id!r}: long_axis_mm must be a finite "
                    f"number >= 0 (or None if not measured), but it is {size!r}"
                )


def _treatment_text(treatments: Iterable[Treatment]) -> str:
    return "; ".join(t.describe() + (f" (treatments line {t.line})" if t.line > 0 else "") for t in treatments)


def _clinical_line(record: ClinicalRecord) -> str:
    """`` (clinical line N)``, or nothing for a record that does not come from a file (line 0)."""
    return f" (clinical line {record.line})" if record.line > 0 else ""


def assess_eligibility(
    clinical: ClinicalRecord | None,
    scans: Sequence[ScanSummary],
    *,
    early_window_days: tuple[int, int] = EARLY_WINDOW_DAYS,
    follow_up_end: dt.date | None = None,
    mixed_modalities: bool = False,
) -> EligibilityDecision:
    """Apply NCT03689231's eligibility criteria to one patient (see the module docstring for each criterion).

    Parameters
    ----------
    clinical : ClinicalRecord or None
        The patient's clinical record (:func:`hepavol.study.clinical.read_clinical`); None when the patient has
        none (not assessable for tumour type and treatments).
    scans : sequence of ScanSummary
        All the patient's scans, in any order.
    early_window_days : (int, int)
        First and last day after baseline (inclusive) of the early scan; default (91, 183) = 3-6 months.
    follow_up_end : datetime.date, optional
        Last day of follow-up for the treatment criterion; default the last CT/MR scan of the baseline modality.
    mixed_modalities : bool
        False (the study's design): only scans of the baseline's modality are followed, the others are ignored
        with a warning. True (``[followup] mixed_modalities = true`` in study.toml): CT and MR scans are one series,
        and a warning says that volumes are compared across modalities.

    Returns
    -------
    EligibilityDecision
        ``eligible`` is True only when every criterion is met on recorded data; ``reasons`` lists every failed
        criterion (missing data marked as such).

    Raises
    ------
    InputError
        For a malformed window, a negative or non-finite lesion size or slice thickness, a scan date that is not a
        ``datetime.date``, or a ``follow_up_end`` before the baseline date.

    Notes
    -----
    Missing data never lets a patient in: no clinical record, tumour type or primary site not recorded, baseline
    lesions not measured, or no (dated) treatment history each give a reason with ``missing_data=True``; the
    status is then "not assessable", or "excluded" if another criterion fails on recorded data. Without a baseline
    CT/MR there is no follow-up interval, so the treatment criterion is not checked (the scan criteria fail).
    """
    lo, hi = _check_window(early_window_days)
    _check_scans(scans)
    version = f"{CRITERIA_VERSION} (early scan {lo}-{hi} days after baseline)"
    reasons: list[ExclusionReason] = []
    warnings: list[str] = []

    def fail(code: str, text: str) -> None:
        reasons.append(ExclusionReason(code=code, text=text, missing_data=_BY_CODE[code].missing_data))

    # ---- scans: baseline, modality series, early scan -------------------------------------------------------
    imaging = sorted((s for s in scans if s.modality.upper() in _IMAGING), key=lambda s: s.date)
    ignored = sorted({s.modality for s in scans if s.modality.upper() not in _IMAGING})
    if ignored:
        warnings.append(f"scans of modality {', '.join(ignored)} ignored: the study measures on CT or MR")
    baseline = imaging[0] if imaging else None
    modality = None if baseline is None else _IMAGING[baseline.modality.upper()]
    series = imaging if mixed_modalities else [s for s in imaging if _IMAGING[s.modality.upper()] == modality]
    other = sum(1 for s in imaging if _IMAGING[s.modality.upper()] != modality)
    if other and mixed_modalities:
        other_mod = "MR" if modality == "CT" else "CT"
        warnings.append(
            f"{other} {other_mod} scan(s) compared with the {modality} baseline: study.toml sets [followup] "
            "mixed_modalities = true (volumes measured on CT and MR are not interchangeable)"
        )
    elif other:
        other_mod = "MR" if modality == "CT" else "CT"
        warnings.append(
            f"{other} {other_mod} scan(s) ignored: the patient is followed by {modality} from baseline and the "
            "study keeps its CT and MR cohorts apart (to compare them, set [followup] mixed_modalities = true in "
            "study.toml)"
        )
    early: ScanSummary | None = None
    end_date: dt.date | None = None
    if baseline is not None:
        same_day = [s for s in series if s.date == baseline.date]
        if len(same_day) > 1:
            warnings.append(
                f"{len(same_day)} {modality} scans on the baseline date {baseline.date.isoformat()}; the first given "
                "is used"
            )
        early = next((s for s in series if lo <= (s.date - baseline.date).days <= hi), None)
        end_date = series[-1].date if follow_up_end is None else follow_up_end
        if end_date < baseline.date:
            raise InputError(
                f"Argument 'follow_up_end' ({end_date.isoformat()}) is before the baseline scan "
                f"({baseline.date.isoformat()}); give the last day of follow-up"
            )

    # ---- 1. tumour type ---------------------------------------------------------------------------------------
    if clinical is None:
        fail("no_clinical_data", "no clinical record for this patient: tumour type and treatments unknown")
    else:
        wrong = []
        if clinical.tumour_type is not None and clinical.tumour_type != "NET":
            wrong.append(f"tumour type {clinical.tumour_type}")
        if clinical.differentiation is not None and clinical.differentiation != "well":
            wrong.append(f"{clinical.differentiation} differentiated")
        if clinical.primary_site is not None and clinical.primary_site != "small_intestine":
            wrong.append(f"primary site {clinical.primary_site}")
        if wrong:
            fail("not_si_net", f"{', '.join(wrong)}: the study includes well-differentiated small-intestinal NETs")
        else:
            missing = [
                name
                for name, value in (
                    ("tumour type/differentiation", clinical.tumour_type),
                    ("primary site", clinical.primary_site),
                )
                if value is None
            ]
            if missing:
                fail(
                    "tumour_type_not_recorded",
                    f"{' and '.join(missing)} not recorded{_clinical_line(clinical)}: cannot confirm a "
                    "well-differentiated small-intestinal NET",
                )

    # ---- 2. measurable liver metastasis at baseline ---------------------------------------------------------------
    small: list[str | int] = []
    measurable: list[str | int] = []
    if baseline is None:
        fail("no_baseline_scan", "no CT or MR scan")
    elif baseline.lesions is None:
        fail("lesions_not_measured", f"the baseline {modality} of {baseline.date.isoformat()} is not measured yet")
    else:
        threshold = measurable_min_mm(baseline.slice_thickness_mm)
        liver = [lesion for lesion in baseline.lesions if lesion.in_liver]
        for lesion in liver:
            size = lesion.long_axis_mm
            if size is None:
                warnings.append(
                    f"baseline lesion {lesion.lesion_id!r} has no long axis; not counted as measurable"
                )
            elif size < threshold:
                small.append(lesion.lesion_id)
            elif lesion.measurable:
                measurable.append(lesion.lesion_id)
            else:
                warnings.append(
                    f"baseline lesion {lesion.lesion_id!r} ({size:.1f} mm) is marked not measurable; not counted"
                )
        if small:
            warnings.append(
                f"{len(small)} baseline liver lesion(s) below {threshold:g} mm (not measurable per RECIST 1.1: "
                f"non-targets only): {', '.join(str(i) for i in small)}"
            )
        if not liver:
            fail(
                "no_liver_metastasis", f"no liver lesion on the baseline {modality} of {baseline.date.isoformat()}"
            )
        elif not measurable:
            sizes = [lesion.long_axis_mm for lesion in liver if lesion.long_axis_mm is not None]
            largest = f"; largest long axis {max(sizes):.1f} mm" if sizes else ""
            fail(
                "no_measurable_liver_metastasis",
                f"none of {len(liver)} baseline liver lesion(s) is measurable (long axis >= {threshold:g} mm, "
                f"RECIST 1.1){largest}",
            )

    # ---- 3. treatments during follow-up -------------------------------------------------------------------------
    if clinical is not None and baseline is not None and end_date is not None:
        if not clinical.treatments_recorded:
            fail(
                "treatments_not_recorded",
                "no treatment history: give the treatments file (or the invasive_liver_treatment and "
                "systemic_therapy yes/no columns)",
            )
        elif clinical.undated_treatment_categories:
            fail(
                "treatments_not_recorded",
                f"{' and '.join(clinical.undated_treatment_categories)} treatment marked 'yes' without dates"
                f"{_clinical_line(clinical)}",
            )
        during = [t for t in clinical.treatments if t.overlaps(baseline.date, end_date)]
        invasive = [t for t in during if t.category == "invasive_liver"]
        systemic = [t for t in during if t.category == "systemic"]
        if invasive:
            fail("invasive_liver_treatment", _treatment_text(invasive))
        if systemic:
            fail("systemic_therapy", _treatment_text(systemic))
        others = [t for t in during if t.kind == "other"]
        if others:
            warnings.append(
                f"treatment 'other' during follow-up: {_treatment_text(others)}; check that it is neither an "
                "invasive liver treatment nor a systemic therapy"
            )
        prior = [
            t
            for t in clinical.treatments
            if t.category in ("invasive_liver", "systemic")
            and t.end_date is not None
            and t.end_date < baseline.date
        ]
        if prior:
            warnings.append(
                f"treatment before baseline: {_treatment_text(prior)}; allowed, but previously treated lesions are "
                "not measurable per RECIST 1.1 unless they progressed"
            )

    # ---- 4. sufficient follow-up -------------------------------------------------------------------------------
    if baseline is not None and early is None:
        days = [(s.date - baseline.date).days for s in series[1:]]
        later = f"; later {modality} scans on day(s) {', '.join(str(d) for d in days)}" if days else ""
        fail(
            "insufficient_follow_up",
            f"no {modality} scan {lo}-{hi} days after the baseline{later}",
        )
    elif baseline is None:
        fail("insufficient_follow_up", "no baseline and early CT/MR scans")

    reasons.sort(key=lambda r: _ORDER[r.code])
    return EligibilityDecision(
        eligible=not reasons,
        reasons=tuple(reasons),
        baseline_date=None if baseline is None else baseline.date,
        early_date=None if early is None else early.date,
        small_lesion_ids=tuple(small),
        warnings=tuple(warnings),
        criteria_version=version,
        modality=modality,
        follow_up_end_date=end_date,
        measurable_lesion_ids=tuple(measurable),
    )


# ---- flow table -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowRow:
    """One row of the CONSORT-style flow.

    ``step`` is ``screened``, ``excluded``, ``reason``, ``not_assessable`` or ``included``. For a ``reason`` row,
    ``patients`` counts the patients whose *first* failed criterion (in :data:`CRITERIA` order) it is, so these
    rows add up to the excluded total, and ``patients_any_reason`` counts every patient failing it.
    """

    step: str
    label: str
    patients: int
    code: str | None = None
    patients_any_reason: int | None = None
    missing_data: bool = False


def flow_table(decisions: Iterable[EligibilityDecision]) -> list[FlowRow]:
    """Screened → excluded per criterion → included, for a list of decisions (one per screened patient).

    Every criterion has a row, also with zero patients, in :data:`CRITERIA` order; the ``not_assessable`` row counts
    the excluded patients whose only failures are missing data.

    Examples
    --------
    >>> ok = EligibilityDecision(eligible=True, reasons=(), baseline_date=None, early_date=None,
    ...                          small_lesion_ids=(), warnings=(), criteria_version="v")
    >>> rows = flow_table([ok, ok])
    >>> [(r.step, r.patients) for r in rows if r.step != "reason"]
    [('screened', 2), ('excluded', 0), ('not_assessable', 0), ('included', 2)]
    """
    items = list(decisions)
    first = dict.fromkeys(_BY_CODE, 0)
    anyr = dict.fromkeys(_BY_CODE, 0)
    for d in items:
        codes = sorted({r.code for r in d.reasons}, key=lambda c: _ORDER[c])
        if codes:
            first[codes[0]] += 1
        for c in codes:
            anyr[c] += 1
    excluded = sum(not d.eligible for d in items)
    rows = [
        FlowRow(step="screened", label="Screened", patients=len(items)),
        FlowRow(step="excluded", label="Excluded", patients=excluded),
    ]
    rows += [
        FlowRow(
            step="reason",
            label=c.label,
            patients=first[c.code],
            code=c.code,
            patients_any_reason=anyr[c.code],
            missing_data=c.missing_data,
        )
        for c in CRITERIA
    ]
    rows.append(
        FlowRow(
            step="not_assessable",
            label="of which not assessable (missing data only)",
            patients=sum(d.status == "not assessable" for d in items),
        )
    )
    rows.append(FlowRow(step="included", label="Included", patients=sum(d.eligible for d in items)))
    return rows


def format_flow_table(rows: Sequence[FlowRow], *, title: str | None = None) -> str:
    """The flow as plain text: one line per row, reasons indented with their first-reason and any-reason counts.

    Examples
    --------
    >>> rows = [FlowRow(step="screened", label="Screened", patients=3),
    ...         FlowRow(step="excluded", label="Excluded", patients=1),
    ...         FlowRow(step="reason", label="no early scan", patients=1, code="x", patients_any_reason=1),
    ...         FlowRow(step="included", label="Included", patients=2)]
    >>> print(format_flow_table(rows))
                     patients  any reason
    Screened                3
    Excluded                1
      no early scan         1           1
    Included                2
    """
    labels = [
        r.label
        if r.step in ("screened", "excluded", "included")
        else f"  {r.label}" + " [missing data]" * r.missing_data
        for r in rows
    ]
    width = max([len(s) for s in labels] + [8])
    lines = [] if title is None else [title]
    lines.append(f"{'':<{width}}  patients  any reason")
    for label, r in zip(labels, rows):
        tail = "" if r.patients_any_reason is None else f"  {r.patients_any_reason:>10}"
        lines.append(f"{label:<{width}}  {r.patients:>8}{tail}")
    return "\n".join(lines)
