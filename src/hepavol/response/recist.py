"""RECIST 1.1 response assessment over plain data (no imaging), with exact arithmetic.

Rules: Eisenhauer EA et al., "New response evaluation criteria in solid tumours: revised RECIST guideline
(version 1.1)", Eur J Cancer 2009;45:228-247, and the RECIST committee's clarifications (EORTC FAQ,
https://recist.eortc.org/; Schwartz LH et al., Eur J Cancer 2016;62:132-137). SCIENCE.md §1 lists them with sources.

The public entry point is :func:`assess_patient`: it takes the assessments (scan dates) of one patient, each with
its target lesions (diameter in mm: long axis, short axis for lymph nodes), non-target lesions (present, absent,
unequivocal progression) and new lesions (unequivocal or equivocal), and returns a :class:`PatientAssessment`:
the response at every time point after baseline, the best overall response and the progression date for PFS.
Baseline is the earliest assessment.

Decisions (all from the guideline unless marked *ours*):

- Diameters are exact decimals. Floats are read through their shortest representation (``16.4`` is 16.4 mm), so
  every threshold is compared exactly: PR is a decrease of at least 30 % vs the baseline sum; PD an increase of
  at least 20 % **and** at least 5 mm vs the nadir (smallest sum on study, baseline included). 30 → 36 mm is PD.
- "Too small to measure" counts as 5 mm (EORTC); 0 means disappeared. A target lesion without a value is not
  evaluated: the target response is NE unless the measured targets alone already prove PD.
- Target CR: every non-nodal target is 0 and every nodal target has a short axis below 10 mm (the sum can stay
  above 0).
- A PR, once assigned, continues until PD (EORTC FAQ): a later target response that is neither PR vs baseline
  nor PD vs nadir stays PR. With ``confirm=True`` this applies only after the PR has been confirmed.
- Reappearance: a lesion that disappeared and comes back is PD only through the usual PD rules, unless the last
  evaluable overall response was CR; then any reappearing disease (a non-nodal target above 0, a nodal target
  of 10 mm or more, a present non-target) is PD (RECIST 1.1 Table 3 footnote; EORTC FAQ).
- Equivocal new lesions do not change the time point; once the same lesion (same ``lesion_id``) is later seen
  as unequivocal, PD is dated back to the first scan that showed it, and that earlier time point's overall
  response becomes PD (RECIST 1.1 §4.3.2; FDA 2007 guidance, Appendix 2).
- Overall response: RECIST 1.1 Table 1 with target disease; Table 2 (non-target disease only), where the
  time-point response is ``NON_CR_NON_PD`` instead of SD. A patient with neither target nor non-target disease at
  baseline is NE unless new lesions appear (*ours*; a warning says so).
- The nadir is updated by every time point with a complete sum that is not itself PD.
- Best overall response (BOR) uses the time points up to the first PD. SD (or NON_CR_NON_PD) needs a time point
  at least ``sd_min_days`` (default 42) after baseline; otherwise BOR is PD if the patient progressed, else NE.
  With ``confirm=True`` (RECIST 1.1 Table 3) a CR or PR counts only when a later time point at least
  ``confirm_min_days`` (default 28) afterwards shows the same or a better response, with only equal, better or
  NE time points between; an unconfirmed CR/PR counts as SD for the minimum duration. The same minimum duration
  applies to NON_CR_NON_PD (*ours*).
- The progression date is the date of the first overall PD (for a confirmed equivocal new lesion: the first scan
  that showed it), ``None`` without progression.

Errors (:class:`RecistDataError`, carrying ``date`` and ``lesion_id``): the same lesion twice on one date, a target
lesion that first appears after baseline, a lesion that changes category, a new lesion at baseline, a baseline
target without a measurement, two assessments on the same date. Warnings (returned, not raised): more than 5
targets, more than 2 targets per organ (lymph nodes count as one organ, paired organs as one), a baseline target
below the measurable size (10 mm; 15 mm short axis for nodes), and a few inconsistencies listed in
:attr:`PatientAssessment.warnings`.

Examples
--------
A liver target of 30 mm and a node of 18 mm (short axis) at baseline; 8 weeks later the liver lesion is gone and
the node measures 8 mm: target CR although the sum is 8 mm (SCIENCE.md §1.10, R10).

>>> import datetime
>>> from hepavol.response.recist import Assessment, TargetLesion, assess_patient
>>> base = Assessment(
...     date=datetime.date(2024, 1, 8),
...     targets=(
...         TargetLesion(lesion_id="L1", organ="liver", diameter_mm="30"),
...         TargetLesion(lesion_id="N1", organ="lymph_node", diameter_mm="18"),
...     ),
... )
>>> fu = Assessment(
...     date=datetime.date(2024, 3, 4),
...     targets=(
...         TargetLesion(lesion_id="L1", organ="liver", diameter_mm=0),
...         TargetLesion(lesion_id="N1", organ="lymph_node", diameter_mm=8),
...     ),
... )
>>> result = assess_patient([base, fu], patient_id="P01")
>>> tp = result.timepoints[0]
>>> tp.sum_of_diameters_mm, tp.target_response.value, tp.overall_response.value
(Decimal('8'), 'CR', 'CR')
>>> result.best_overall_response.value, result.progression_date
('CR', None)
"""

from __future__ import annotations

import datetime
import enum
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from hepavol.errors import TimelineError

__all__ = [
    "CONFIRM_MIN_DAYS",
    "MEASURABLE_NODE_SHORT_AXIS_MM",
    "MEASURABLE_NON_NODAL_MM",
    "NODE_NORMAL_SHORT_AXIS_MM",
    "SD_MIN_DAYS",
    "TOO_SMALL_MM",
    "Assessment",
    "NewLesion",
    "NewLesionFinding",
    "NewLesionStatus",
    "NonTargetLesion",
    "NonTargetStatus",
    "PatientAssessment",
    "RecistDataError",
    "Response",
    "TargetLesion",
    "TimepointResponse",
    "assess_patient",
    "is_nodal_organ",
    "is_target_pd",
    "is_target_pr",
    "organ_group",
    "to_decimal",
]

TOO_SMALL_MM = Decimal(5)
"""Default diameter of a target lesion "too small to measure" (EORTC clarification)."""
NODE_NORMAL_SHORT_AXIS_MM = Decimal(10)
"""A lymph node with short axis below this is normal (target CR rule)."""
MEASURABLE_NON_NODAL_MM = Decimal(10)
"""Minimum long axis of a measurable non-nodal lesion on CT/MRI with slices of 5 mm or less."""
MEASURABLE_NODE_SHORT_AXIS_MM = Decimal(15)
"""Minimum short axis of a measurable (target) lymph node."""
PR_DECREASE = Fraction(3, 10)
PD_INCREASE = Fraction(1, 5)
PD_ABSOLUTE_MM = Fraction(5)
SD_MIN_DAYS = 42
CONFIRM_MIN_DAYS = 28
MAX_TARGETS = 5
MAX_TARGETS_PER_ORGAN = 2


class Response(enum.StrEnum):
    """A RECIST response category (time point or best overall); ``ND`` = no such disease."""

    CR = "CR"
    PR = "PR"
    SD = "SD"
    PD = "PD"
    NE = "NE"
    NON_CR_NON_PD = "NON_CR_NON_PD"
    ND = "ND"


class NonTargetStatus(enum.StrEnum):
    """Status of a non-target lesion at one assessment."""

    PRESENT = "present"
    ABSENT = "absent"
    PROGRESSION = "progression"  # unequivocal progression


class NewLesionStatus(enum.StrEnum):
    """Status of a new lesion at one assessment: unequivocal (``present``) or ``equivocal``."""

    PRESENT = "present"
    EQUIVOCAL = "equivocal"


class NewLesionFinding(enum.StrEnum):
    """New lesions at a time point, as reported: ``none``, ``equivocal`` or ``unequivocal``."""

    NONE = "none"
    EQUIVOCAL = "equivocal"
    UNEQUIVOCAL = "unequivocal"


class RecistDataError(TimelineError):
    """The assessments of a patient contradict RECIST's data model (names the date and lesion)."""

    def __init__(
        self,
        message: str,
        *,
        patient_id: str = "",
        date: datetime.date | None = None,
        lesion_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.patient_id = patient_id
        self.date = date
        self.lesion_id = lesion_id


DiameterLike = Decimal | int | float | str | None


def to_decimal(value: Decimal | int | float | str | Fraction) -> Decimal:
    """An exact decimal from a number or a string; floats through their shortest repr (``16.4`` → 16.4).

    Raises
    ------
    ValueError
        If the value is not a finite number.

    Examples
    --------
    >>> to_decimal(16.4), to_decimal("36"), to_decimal(7)
    (Decimal('16.4'), Decimal('36'), Decimal('7'))
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, Decimal):
        out = value
    elif isinstance(value, int):
        out = Decimal(value)
    elif isinstance(value, float):
        out = Decimal(repr(value))
    elif isinstance(value, Fraction):
        out = Decimal(value.numerator) / Decimal(value.denominator)
    elif isinstance(value, str):
        try:
            out = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
    else:
        raise ValueError(f"expected a number, got {value!r}")
    if not out.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return out


_NODE_RE = re.compile(r"^(lymph[ _-]?nodes?|ln|nodes?|nodal)$")
_SIDE_TOKENS = {"left", "right", "l", "r", "lt", "rt", "bilateral"}
_PAIRED = {"lung": "lung", "lungs": "lung", "kidney": "kidney", "kidneys": "kidney", "ovary": "ovary"}
_PAIRED["ovaries"] = "ovary"


def is_nodal_organ(organ: str) -> bool:
    """True for organ names that mark a lymph node (``lymph_node``; also ``lymph node``, ``lymph-nodes``).

    >>> is_nodal_organ("lymph_node"), is_nodal_organ("Lymph node"), is_nodal_organ("liver")
    (True, True, False)
    """
    return bool(_NODE_RE.match(organ.strip().lower()))


def organ_group(organ: str) -> str:
    """The organ a target counts against for the 2-per-organ rule (RECIST 1.1 §4.2; EORTC FAQ "paired organs").

    All lymph nodes are one organ; paired organs (lung, kidney, ovary) count as one whatever the side.

    >>> organ_group("left_lung"), organ_group("Lung right"), organ_group("lymph node"), organ_group("Liver")
    ('lung', 'lung', 'lymph_node', 'liver')
    """
    if is_nodal_organ(organ):
        return "lymph_node"
    tokens = [t for t in re.split(r"[\s_\-]+", organ.strip().lower()) if t]
    rest = [t for t in tokens if t not in _SIDE_TOKENS]
    if len(rest) == 1 and rest[0] in _PAIRED:
        return _PAIRED[rest[0]]
    return "_".join(tokens)


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetLesion:
    """One target lesion at one assessment.

    Parameters
    ----------
    lesion_id : str
        Identifier, the same at every assessment.
    organ : str
        Free text; ``lymph_node`` (see :func:`is_nodal_organ`) marks a node, measured by its short axis.
    diameter_mm : Decimal, int, float, str or None
        Long axis in mm (short axis for nodes); 0 if the lesion disappeared; ``None`` if not evaluated (or with
        ``too_small``). Stored as an exact :class:`~decimal.Decimal`.
    too_small : bool
        "Too small to measure": counts as 5 mm.
    """

    lesion_id: str
    organ: str = ""
    diameter_mm: DiameterLike = None
    too_small: bool = False

    def __post_init__(self) -> None:
        if self.diameter_mm is not None:
            value = to_decimal(self.diameter_mm)
            if value < 0:
                raise ValueError(f"target lesion {self.lesion_id!r}: diameter_mm is negative ({value})")
            object.__setattr__(self, "diameter_mm", value)
        if self.too_small and self.diameter_mm is not None:
            raise ValueError(
                f"target lesion {self.lesion_id!r}: too_small with a diameter ({self.diameter_mm} mm); "
                "give either the measured value or too_small"
            )

    @property
    def nodal(self) -> bool:
        """True for a lymph node (short axis measured)."""
        return is_nodal_organ(self.organ)

    @property
    def value_mm(self) -> Decimal | None:
        """The value entering the sum: the diameter, 5 mm if too small, ``None`` if not evaluated."""
        if self.too_small:
            return TOO_SMALL_MM
        if self.diameter_mm is None:
            return None
        return to_decimal(self.diameter_mm)


@dataclass(frozen=True, slots=True, kw_only=True)
class NonTargetLesion:
    """One non-target lesion (or group, e.g. "multiple liver metastases") at one assessment."""

    lesion_id: str
    organ: str = ""
    status: NonTargetStatus | str = NonTargetStatus.PRESENT

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", NonTargetStatus(self.status))


@dataclass(frozen=True, slots=True, kw_only=True)
class NewLesion:
    """A new lesion (absent at baseline) at one assessment: ``present`` (unequivocal) or ``equivocal``."""

    lesion_id: str
    organ: str = ""
    status: NewLesionStatus | str = NewLesionStatus.PRESENT

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", NewLesionStatus(self.status))


@dataclass(frozen=True, slots=True, kw_only=True)
class Assessment:
    """All lesions recorded at one imaging date. A baseline target missing at a follow-up is not evaluated."""

    date: datetime.date
    targets: tuple[TargetLesion, ...] = ()
    non_targets: tuple[NonTargetLesion, ...] = ()
    new_lesions: tuple[NewLesion, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "non_targets", tuple(self.non_targets))
        object.__setattr__(self, "new_lesions", tuple(self.new_lesions))


def _num(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class TimepointResponse:
    """The RECIST assessment of one follow-up time point.

    ``sum_of_diameters_mm`` is ``None`` when a target was not evaluated or there are no targets; changes are in
    percent (rounded half up to 0.01; thresholds are decided on exact values) and mm (exact). ``notes`` explain
    rule applications that a reader could not infer from the numbers (carried PR, reappearance, back-dated PD).
    """

    date: datetime.date
    sum_of_diameters_mm: Decimal | None
    change_from_baseline_percent: Decimal | None
    change_from_nadir_percent: Decimal | None
    change_from_nadir_mm: Decimal | None
    nadir_mm: Decimal | None
    target_response: Response
    non_target_response: Response
    new_lesions: NewLesionFinding
    overall_response: Response
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (keys of ``hepavol recist --json``)."""
        return {
            "date": self.date.isoformat(),
            "sum_of_diameters_mm": _num(self.sum_of_diameters_mm),
            "change_from_baseline_percent": _num(self.change_from_baseline_percent),
            "change_from_nadir_percent": _num(self.change_from_nadir_percent),
            "change_from_nadir_mm": _num(self.change_from_nadir_mm),
            "target_response": self.target_response.value,
            "non_target_response": self.non_target_response.value,
            "new_lesions": self.new_lesions.value,
            "overall_response": self.overall_response.value,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientAssessment:
    """RECIST 1.1 assessment of one patient: every follow-up time point, best overall response, PD date."""

    patient_id: str
    baseline_date: datetime.date
    baseline_sum_mm: Decimal | None
    best_overall_response: Response
    progression_date: datetime.date | None
    warnings: tuple[str, ...]
    timepoints: tuple[TimepointResponse, ...]
    confirm: bool = False
    sd_min_days: int = SD_MIN_DAYS
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (one element of ``patients`` in ``hepavol recist --json``)."""
        return {
            "patient_id": self.patient_id,
            "baseline_date": self.baseline_date.isoformat(),
            "baseline_sum_mm": _num(self.baseline_sum_mm),
            "best_overall_response": self.best_overall_response.value,
            "progression_date": None if self.progression_date is None else self.progression_date.isoformat(),
            "warnings": list(self.warnings),
            "timepoints": [tp.to_dict() for tp in self.timepoints],
        }


# ---------------------------------------------------------------------------------------------------------------
# Exact threshold tests


def is_target_pr(sum_mm: Decimal | Fraction | int, baseline_mm: Decimal | Fraction | int) -> bool:
    """PR by size: sum at least 30 % below the baseline sum, compared exactly (``>=``, inclusive).

    >>> is_target_pr(Decimal("63"), Decimal("90")), is_target_pr(Decimal("63.1"), Decimal("90"))
    (True, False)
    """
    base = Fraction(baseline_mm)
    if base <= 0:
        return False
    return (base - Fraction(sum_mm)) >= PR_DECREASE * base


def is_target_pd(sum_mm: Decimal | Fraction | int, nadir_mm: Decimal | Fraction | int) -> bool:
    """PD by size: sum at least 20 % **and** at least 5 mm above the nadir, compared exactly (inclusive).

    >>> is_target_pd(Decimal("36"), Decimal("30")), is_target_pd(Decimal("24"), Decimal("20"))
    (True, False)
    """
    s, n = Fraction(sum_mm), Fraction(nadir_mm)
    return (s - n) >= PD_ABSOLUTE_MM and (s - n) >= PD_INCREASE * n


def _percent(value: Fraction, reference: Fraction) -> Decimal | None:
    if reference == 0:
        return None
    # Hundredths of a percent rounded half up (away from zero) in exact integer arithmetic: Decimal.quantize
    # would raise InvalidOperation once the result has more digits than the context precision (28).
    hundredths = (value - reference) * 10000 / reference
    n = math.floor(abs(hundredths) + Fraction(1, 2))
    return Decimal((1 if hundredths < 0 else 0, tuple(int(d) for d in str(n)), -2))


# ---------------------------------------------------------------------------------------------------------------
# Validation


def _validate(assessments: Sequence[Assessment], patient_id: str) -> list[str]:
    """Raise :class:`RecistDataError` on contradictions; return warnings."""
    who = f"patient {patient_id!r}: " if patient_id else ""
    warnings: list[str] = []
    categories: dict[str, str] = {}
    baseline = assessments[0]
    for i, a in enumerate(assessments):
        if i and a.date == assessments[i - 1].date:
            raise RecistDataError(
                f"{who}two assessments on {a.date.isoformat()}; merge the lesions of one date into one assessment",
                patient_id=patient_id,
                date=a.date,
            )
        seen: set[str] = set()
        rows: list[tuple[str, str]] = [(t.lesion_id, "target") for t in a.targets]
        rows += [(t.lesion_id, "non_target") for t in a.non_targets]
        rows += [(t.lesion_id, "new") for t in a.new_lesions]
        for lesion_id, category in rows:
            if not lesion_id:
                raise RecistDataError(f"{who}a lesion without lesion_id on {a.date.isoformat()}", date=a.date)
            if lesion_id in seen:
                raise RecistDataError(
                    f"{who}lesion {lesion_id!r} is recorded twice on {a.date.isoformat()}; "
                    "give each lesion one row per date",
                    patient_id=patient_id,
                    date=a.date,
                    lesion_id=lesion_id,
                )
            seen.add(lesion_id)
            previous = categories.setdefault(lesion_id, category)
            if previous != category:
                raise RecistDataError(
                    f"{who}lesion {lesion_id!r} is {category!r} on {a.date.isoformat()} but {previous!r} earlier; "
                    "a lesion keeps its category (record a new lesion under a new lesion_id)",
                    patient_id=patient_id,
                    date=a.date,
                    lesion_id=lesion_id,
                )
            if i == 0 and category == "new":
                raise RecistDataError(
                    f"{who}lesion {lesion_id!r} is a new lesion at baseline ({a.date.isoformat()}); lesions seen "
                    "at baseline are target or non_target",
                    patient_id=patient_id,
                    date=a.date,
                    lesion_id=lesion_id,
                )
            if i > 0 and category == "target" and lesion_id not in {t.lesion_id for t in baseline.targets}:
                raise RecistDataError(
                    f"{who}target lesion {lesion_id!r} first appears on {a.date.isoformat()}, after baseline "
                    f"({baseline.date.isoformat()}); targets are chosen at baseline, record it as category new",
                    patient_id=patient_id,
                    date=a.date,
                    lesion_id=lesion_id,
                )
            if i > 0 and category == "non_target" and lesion_id not in {t.lesion_id for t in baseline.non_targets}:
                warnings.append(
                    f"non-target lesion {lesion_id!r} first recorded on {a.date.isoformat()}, not at baseline; "
                    "a lesion absent at baseline is a new lesion"
                )

    for t in baseline.targets:
        if t.value_mm is None:
            raise RecistDataError(
                f"{who}baseline target lesion {t.lesion_id!r} has no diameter on {baseline.date.isoformat()}; "
                "every target must be measured at baseline",
                patient_id=patient_id,
                date=baseline.date,
                lesion_id=t.lesion_id,
            )
        if t.too_small:
            warnings.append(f"baseline target {t.lesion_id!r} is too small to measure (counted as 5 mm)")
            continue
        value = t.value_mm
        if t.nodal and value < MEASURABLE_NODE_SHORT_AXIS_MM:
            warnings.append(
                f"baseline target {t.lesion_id!r} (lymph node) has short axis {value} mm, below the "
                f"measurable {MEASURABLE_NODE_SHORT_AXIS_MM} mm"
            )
        elif not t.nodal and value < MEASURABLE_NON_NODAL_MM:
            warnings.append(
                f"baseline target {t.lesion_id!r} measures {value} mm, below the measurable "
                f"{MEASURABLE_NON_NODAL_MM} mm"
            )
    if len(baseline.targets) > MAX_TARGETS:
        warnings.append(f"{len(baseline.targets)} target lesions; RECIST 1.1 allows at most {MAX_TARGETS}")
    per_organ: dict[str, list[str]] = {}
    for t in baseline.targets:
        per_organ.setdefault(organ_group(t.organ), []).append(t.lesion_id)
    for organ, ids in per_organ.items():
        if len(ids) > MAX_TARGETS_PER_ORGAN:
            warnings.append(
                f"{len(ids)} target lesions in organ {organ!r} ({', '.join(ids)}); RECIST 1.1 allows at most "
                f"{MAX_TARGETS_PER_ORGAN} per organ (lymph nodes and paired organs count as one)"
            )
    for nt in baseline.non_targets:
        if nt.status != NonTargetStatus.PRESENT:
            warnings.append(
                f"non-target lesion {nt.lesion_id!r} is {str(nt.status)!r} at baseline; expected 'present'"
            )
    if not baseline.targets and not baseline.non_targets:
        warnings.append("no target or non-target lesion at baseline; time points are NE unless new lesions appear")
    return warnings


# ---------------------------------------------------------------------------------------------------------------
# The engine


def _confirmed_equivocal_dates(assessments: Sequence[Assessment]) -> dict[datetime.date, list[str]]:
    """Dates of first appearance of equivocal new lesions that are unequivocal later (same lesion_id)."""
    first_equivocal: dict[str, datetime.date] = {}
    out: dict[datetime.date, list[str]] = {}
    for a in assessments[1:]:
        for new in a.new_lesions:
            if new.status == NewLesionStatus.EQUIVOCAL:
                first_equivocal.setdefault(new.lesion_id, a.date)
            elif new.lesion_id in first_equivocal:
                out.setdefault(first_equivocal.pop(new.lesion_id), []).append(new.lesion_id)
    return out


def _sum(values: Iterable[Decimal]) -> Decimal:
    return sum(values, Decimal(0))


def assess_patient(
    assessments: Iterable[Assessment],
    *,
    patient_id: str = "",
    confirm: bool = False,
    sd_min_days: int = SD_MIN_DAYS,
    confirm_min_days: int = CONFIRM_MIN_DAYS,
) -> PatientAssessment:
    """RECIST 1.1 assessment of one patient from all their assessments (any order; baseline = earliest).

    Parameters
    ----------
    assessments : iterable of Assessment
        One per imaging date.
    patient_id : str
        Echoed in the result and in error messages.
    confirm : bool
        Require confirmation of CR/PR (RECIST 1.1 Table 3), for non-randomised trials with response as the
        primary endpoint. Off by default (randomised trials and PFS endpoints need none).
    sd_min_days : int
        Minimum days from baseline for SD (and NON_CR_NON_PD) to count as best overall response.
    confirm_min_days : int
        Minimum days between a CR/PR and its confirmation (RECIST: 4 weeks).

    Returns
    -------
    PatientAssessment

    Raises
    ------
    RecistDataError
        On contradictory data (see the module docstring); the exception carries ``date`` and ``lesion_id``.
    """
    items = sorted(assessments, key=lambda a: a.date)
    if not items:
        raise RecistDataError(f"patient {patient_id!r} has no assessment", patient_id=patient_id)
    if sd_min_days < 0 or confirm_min_days < 0:
        raise ValueError(f"sd_min_days and confirm_min_days must be >= 0, got {sd_min_days}, {confirm_min_days}")
    warnings = _validate(items, patient_id)
    baseline = items[0]
    base_targets = {t.lesion_id: t for t in baseline.targets}
    base_nodal = {t.lesion_id: t.nodal for t in baseline.targets}
    base_non_targets = [nt.lesion_id for nt in baseline.non_targets]
    has_targets = bool(base_targets)
    has_non_targets = bool(base_non_targets)
    baseline_sum = _sum(t.value_mm for t in baseline.targets if t.value_mm is not None) if has_targets else None
    backdated = _confirmed_equivocal_dates(items)

    nadir = baseline_sum
    last_evaluable_overall: Response | None = None
    pr_established = False
    streak_start: datetime.date | None = None  # first PR/CR of the current run (confirmation mode)
    timepoints: list[TimepointResponse] = []

    for a in items[1:]:
        notes: list[str] = []
        after_cr = last_evaluable_overall == Response.CR
        # --- targets -------------------------------------------------------------------------------------
        by_id = {t.lesion_id: t for t in a.targets}
        values: dict[str, Decimal | None] = {}
        for lesion_id in base_targets:
            t = by_id.get(lesion_id)
            values[lesion_id] = None if t is None else t.value_mm
        measured = {k: v for k, v in values.items() if v is not None}
        complete = len(measured) == len(values)
        reappeared = [
            k
            for k, v in measured.items()
            if after_cr and ((base_nodal[k] and v >= NODE_NORMAL_SHORT_AXIS_MM) or (not base_nodal[k] and v > 0))
        ]
        sum_t: Decimal | None = _sum(measured.values()) if has_targets and complete else None
        if not has_targets:
            target = Response.ND
        elif complete:
            assert sum_t is not None
            assert nadir is not None
            assert baseline_sum is not None
            cr = all((v < NODE_NORMAL_SHORT_AXIS_MM) if base_nodal[k] else (v == 0) for k, v in measured.items())
            if cr and not reappeared:
                target = Response.CR
            elif is_target_pd(sum_t, nadir):
                target = Response.PD
            elif reappeared:
                target = Response.PD
                notes.append(f"target lesion(s) {', '.join(reappeared)} reappeared after CR: PD")
            elif is_target_pr(sum_t, baseline_sum):
                target = Response.PR
            else:
                target = Response.SD
        else:
            assert nadir is not None
            partial = _sum(measured.values())
            missing = [k for k, v in values.items() if v is None]
            if is_target_pd(partial, nadir):
                target = Response.PD
                notes.append(
                    f"target(s) {', '.join(missing)} not evaluated, but the measured ones ({partial} mm) already "
                    f"meet PD vs nadir {nadir} mm"
                )
            elif reappeared:
                target = Response.PD
                notes.append(f"target lesion(s) {', '.join(reappeared)} reappeared after CR: PD")
            else:
                target = Response.NE
                notes.append(f"target(s) {', '.join(missing)} not evaluated")
        if target == Response.SD and pr_established:
            target = Response.PR
            notes.append("PR maintained until PD (EORTC FAQ): SD vs baseline but not PD vs nadir")

        # --- non-targets ---------------------------------------------------------------------------------
        nt_status = {nt.lesion_id: nt.status for nt in a.non_targets}
        ids = list(dict.fromkeys([*base_non_targets, *nt_status]))
        if not ids:
            non_target = Response.ND
        else:
            statuses = [nt_status.get(k) for k in ids]
            if NonTargetStatus.PROGRESSION in statuses:
                non_target = Response.PD
            elif after_cr and NonTargetStatus.PRESENT in statuses:
                non_target = Response.PD
                back = [k for k in ids if nt_status.get(k) == NonTargetStatus.PRESENT]
                notes.append(f"non-target lesion(s) {', '.join(back)} reappeared after CR: PD")
            elif not has_non_targets:
                non_target = Response.ND  # only non-targets first recorded after baseline (warned)
            elif None in statuses:
                non_target = Response.NE
            elif all(s == NonTargetStatus.ABSENT for s in statuses):
                non_target = Response.CR
            else:
                non_target = Response.NON_CR_NON_PD

        # --- new lesions ---------------------------------------------------------------------------------
        statuses_new = {n.status for n in a.new_lesions}
        if NewLesionStatus.PRESENT in statuses_new:
            new = NewLesionFinding.UNEQUIVOCAL
        elif NewLesionStatus.EQUIVOCAL in statuses_new:
            new = NewLesionFinding.EQUIVOCAL
        else:
            new = NewLesionFinding.NONE
        confirmed_here = backdated.get(a.date, [])

        # --- overall (RECIST 1.1 Tables 1 and 2) ---------------------------------------------------------
        if Response.PD in (target, non_target) or new == NewLesionFinding.UNEQUIVOCAL:
            overall = Response.PD
        elif confirmed_here:
            overall = Response.PD
            notes.append(
                f"equivocal new lesion(s) {', '.join(confirmed_here)} confirmed later: PD dated to this scan"
            )
        elif has_targets:
            if target == Response.NE:
                overall = Response.NE
            elif target == Response.CR:
                overall = Response.CR if non_target in (Response.CR, Response.ND) else Response.PR
            elif target == Response.PR:
                overall = Response.PR
            else:
                overall = Response.SD
        elif non_target in (Response.CR, Response.NON_CR_NON_PD, Response.NE):
            overall = non_target
        else:
            overall = Response.NE

        # --- bookkeeping ---------------------------------------------------------------------------------
        nadir_before = nadir
        timepoints.append(
            TimepointResponse(
                date=a.date,
                sum_of_diameters_mm=sum_t,
                change_from_baseline_percent=(
                    None
                    if sum_t is None or baseline_sum is None
                    else _percent(Fraction(sum_t), Fraction(baseline_sum))
                ),
                change_from_nadir_percent=(
                    None if sum_t is None or nadir is None else _percent(Fraction(sum_t), Fraction(nadir))
                ),
                change_from_nadir_mm=None if sum_t is None or nadir is None else sum_t - nadir,
                nadir_mm=nadir_before,
                target_response=target,
                non_target_response=non_target,
                new_lesions=new,
                overall_response=overall,
                notes=tuple(notes),
            )
        )
        if sum_t is not None and nadir is not None and overall != Response.PD:
            nadir = min(nadir, sum_t)
        if overall != Response.NE:
            last_evaluable_overall = overall
        if target == Response.PD:
            pr_established, streak_start = False, None
        elif target in (Response.PR, Response.CR):
            if not confirm:
                pr_established = True
            elif streak_start is None:
                streak_start = a.date
            elif (a.date - streak_start).days >= confirm_min_days:
                pr_established = True
        elif target == Response.SD:
            streak_start = None

    progression_date = next((tp.date for tp in timepoints if tp.overall_response == Response.PD), None)
    bor = _best_overall_response(
        timepoints,
        baseline.date,
        confirm=confirm,
        sd_min_days=sd_min_days,
        confirm_min_days=confirm_min_days,
        non_target_only=not has_targets and has_non_targets,
    )
    return PatientAssessment(
        patient_id=patient_id,
        baseline_date=baseline.date,
        baseline_sum_mm=baseline_sum,
        best_overall_response=bor,
        progression_date=progression_date,
        warnings=tuple(warnings),
        timepoints=tuple(timepoints),
        confirm=confirm,
        sd_min_days=sd_min_days,
    )


def _confirmed(tps: Sequence[TimepointResponse], i: int, accepted: set[Response], confirm_min_days: int) -> bool:
    """True if the response at ``i`` is followed, ``confirm_min_days`` or more later, by one in ``accepted``."""
    start = tps[i].date
    for tp in tps[i + 1 :]:
        if tp.overall_response == Response.NE:
            continue
        if tp.overall_response not in accepted:
            return False
        if (tp.date - start).days >= confirm_min_days:
            return True
    return False


def _best_overall_response(
    timepoints: Sequence[TimepointResponse],
    baseline_date: datetime.date,
    *,
    confirm: bool,
    sd_min_days: int,
    confirm_min_days: int,
    non_target_only: bool,
) -> Response:
    tps: list[TimepointResponse] = []
    progressed = False
    for tp in timepoints:
        tps.append(tp)
        if tp.overall_response == Response.PD:
            progressed = True
            break
    responses = [tp.overall_response for tp in tps]
    if not confirm:
        if Response.CR in responses:
            return Response.CR
        if Response.PR in responses:
            return Response.PR
    else:
        for i, r in enumerate(responses):
            if r == Response.CR and _confirmed(tps, i, {Response.CR}, confirm_min_days):
                return Response.CR
        for i, r in enumerate(responses):
            if r in (Response.CR, Response.PR) and _confirmed(
                tps, i, {Response.CR, Response.PR}, confirm_min_days
            ):
                return Response.PR
    stable = {Response.CR, Response.PR, Response.SD, Response.NON_CR_NON_PD}
    if any(tp.overall_response in stable and (tp.date - baseline_date).days >= sd_min_days for tp in tps):
        return Response.NON_CR_NON_PD if non_target_only else Response.SD
    return Response.PD if progressed else Response.NE
