"""Choi criteria (Choi H et al., J Clin Oncol 2007;25:1753-1759): size **or** CT density for response.

Proposed for GIST on imatinib; an option here because NET liver metastases are hypervascular and may respond by
losing enhancement before they shrink (SCIENCE.md §3.3; table at
https://pmc.ncbi.nlm.nih.gov/articles/PMC5658474/table/Tab2):

- CR: all target lesions gone, no new lesions.
- PR: sum of longest diameters down at least 10 % **or** mean density (HU) down at least 15 %, no new lesions,
  no obvious progression of non-measurable disease.
- PD: sum up at least 10 % **and** not PR by density; or new lesions; or new or growing intratumoral nodules
  (or unequivocal non-target progression).
- SD: none of the above.

Choices (*ours*): size changes for PR are vs baseline and for PD vs the nadir (smallest sum so far, default the
baseline), as in RECIST; density changes are relative to the baseline mean HU, which must be above 0 HU for the
density criterion to apply (otherwise only size decides, and a note says so). Fix the contrast phase (portal
venous in Choi's study) throughout. Thresholds are parameters, compared exactly and inclusively.

Examples
--------
Size 100 → 95 mm (−5 %) but density 120 → 100 HU (−16.7 %): PR by density.

>>> choi_response(sum_mm=95, baseline_sum_mm=100, density_hu=100, baseline_density_hu=120).response.value
'PR'
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from hepavol.errors import InputError
from hepavol.response.recist import Response, to_decimal

__all__ = ["ChoiAssessment", "choi_response"]

Number = float | int | Decimal | str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChoiAssessment:
    """Choi response of one time point with the size and density changes (percent, rounded for display)."""

    response: Response
    size_change_from_baseline_percent: float | None
    size_change_from_nadir_percent: float | None
    density_change_percent: float | None
    notes: tuple[str, ...] = ()


def _pct(value: Fraction, reference: Fraction) -> float | None:
    return None if reference == 0 else round(float((value - reference) * 100 / reference), 2)


def choi_response(
    *,
    sum_mm: Number,
    baseline_sum_mm: Number,
    density_hu: Number | None = None,
    baseline_density_hu: Number | None = None,
    nadir_sum_mm: Number | None = None,
    new_lesions: bool = False,
    non_target_progression: bool = False,
    new_intratumoral_nodules: bool = False,
    size_percent: Number = 10,
    density_percent: Number = 15,
) -> ChoiAssessment:
    """Choi response of one follow-up time point.

    Parameters
    ----------
    sum_mm, baseline_sum_mm : number
        Sum of longest diameters of the target lesions now and at baseline, in mm.
    density_hu, baseline_density_hu : number, optional
        Mean CT attenuation of the target lesions in HU, same contrast phase; without them only size counts.
    nadir_sum_mm : number, optional
        Smallest sum so far (baseline included), reference for PD; default the baseline sum.
    new_lesions, non_target_progression, new_intratumoral_nodules : bool
        Findings that make PD (or, for non-target progression, forbid PR).
    size_percent, density_percent : number
        Thresholds in percent (default 10 and 15), inclusive.

    Examples
    --------
    >>> choi_response(sum_mm=90, baseline_sum_mm=100).response.value  # -10 % size: PR
    'PR'
    >>> choi_response(sum_mm=110, baseline_sum_mm=100, density_hu=90, baseline_density_hu=100).response.value
    'PD'
    """
    s, b = Fraction(to_decimal(sum_mm)), Fraction(to_decimal(baseline_sum_mm))
    n = b if nadir_sum_mm is None else Fraction(to_decimal(nadir_sum_mm))
    if s < 0 or b <= 0 or n < 0:
        raise InputError(
            f"sums must be >= 0 with a baseline above 0, got sum_mm={sum_mm}, baseline_sum_mm={baseline_sum_mm}, "
            f"nadir_sum_mm={nadir_sum_mm}"
        )
    size_t, density_t = Fraction(to_decimal(size_percent)) / 100, Fraction(to_decimal(density_percent)) / 100
    notes: list[str] = []
    density_change: Fraction | None = None
    if density_hu is not None and baseline_density_hu is not None:
        d, d0 = Fraction(to_decimal(density_hu)), Fraction(to_decimal(baseline_density_hu))
        if d0 > 0:
            density_change = (d - d0) / d0
        else:
            notes.append(f"baseline density {baseline_density_hu} HU is not above 0: density criterion not used")
    elif density_hu is not None or baseline_density_hu is not None:
        notes.append("density given at one time point only: density criterion not used")
    pr_by_size = b - s >= size_t * b
    pr_by_density = density_change is not None and -density_change >= density_t
    pd_by_size = s - n >= size_t * n and s > n
    if new_lesions or new_intratumoral_nodules or non_target_progression:
        response = Response.PD
    elif s == 0:
        response = Response.CR
    elif pd_by_size and not pr_by_density:
        response = Response.PD
    elif pr_by_size or pr_by_density:
        response = Response.PR
    else:
        response = Response.SD
    return ChoiAssessment(
        response=response,
        size_change_from_baseline_percent=_pct(s, b),
        size_change_from_nadir_percent=_pct(s, n),
        density_change_percent=None if density_change is None else round(float(density_change * 100), 2),
        notes=tuple(notes),
    )
