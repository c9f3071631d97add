"""Tumour growth rate (TGR) after Ferté et al., Clin Cancer Res 2014;20:246-252.

TGR is the percent change of tumour volume per month, assuming exponential growth:

- from sums of diameters (RECIST, sphere assumption V ∝ D³): ``100·(exp(3·ln(D_t/D_0)/t) − 1)``;
- from measured volumes: ``100·(exp(ln(V_t/V_0)/t) − 1)``;

with ``t`` in months = days / 30.4375 (Ferté's reference code: ``difftime(...) * 12/365.25``).

Undefined cases return ``percent_per_month=None`` with a ``reason`` (never an exception or an infinity):
a baseline of 0 or less, an interval of 0 days or less, a negative follow-up value. A tumour that has vanished
(follow-up 0, baseline > 0) gives the limit value −100 %/month.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DAYS_PER_MONTH = 365.25 / 12  # 30.4375, as in Ferté's TGR_calculator.R


@dataclass(frozen=True, slots=True)
class GrowthRate:
    """A tumour growth rate in percent of volume per month, or ``None`` with the reason it is undefined."""

    percent_per_month: float | None
    reason: str | None = None

    @property
    def defined(self) -> bool:
        return self.percent_per_month is not None


def _tgr(ratio_exponent: float, baseline: float, followup: float, days: float, what: str) -> GrowthRate:
    if not (math.isfinite(baseline) and math.isfinite(followup) and math.isfinite(days)):
        return GrowthRate(
            None, f"{what}: non-finite input (baseline={baseline}, follow-up={followup}, days={days})"
        )
    if days <= 0:
        return GrowthRate(None, f"{what}: interval of {days:g} days; the follow-up must be after the baseline")
    if baseline <= 0:
        return GrowthRate(None, f"{what}: baseline is {baseline:g}; a growth rate needs a baseline above 0")
    if followup < 0:
        return GrowthRate(None, f"{what}: follow-up is negative ({followup:g})")
    if followup == 0:
        return GrowthRate(-100.0, None)
    months = days / DAYS_PER_MONTH
    tg = ratio_exponent * math.log(followup / baseline) / months
    return GrowthRate(100.0 * math.expm1(tg), None)


def tgr_recist(sum_baseline_mm: float, sum_followup_mm: float, days: float) -> GrowthRate:
    """TGR (%/month) from two RECIST sums of diameters ``days`` apart (Ferté 2014, sphere assumption).

    Examples
    --------
    SCIENCE.md §2.4, 50 → 60 mm in 91.3125 days (3.000 months) is +20 %/month:

    >>> round(tgr_recist(50, 60, 91.3125).percent_per_month, 6)
    20.0
    """
    return _tgr(3.0, float(sum_baseline_mm), float(sum_followup_mm), float(days), "TGR (RECIST)")


def tgr_volume(volume_baseline: float, volume_followup: float, days: float) -> GrowthRate:
    """TGR (%/month) from two total tumour volumes (any one unit) ``days`` apart.

    Examples
    --------
    SCIENCE.md §2.4, 100 → 110 mL in 91 days:

    >>> round(tgr_volume(100, 110, 91).percent_per_month, 6)
    3.239274
    """
    return _tgr(1.0, float(volume_baseline), float(volume_followup), float(days), "TGR (volume)")
