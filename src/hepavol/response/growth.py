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
    try:
        return GrowthRate(100.0 * math.expm1(tg), None)
    except OverflowError:
        return GrowthRate(
            None, f"{what}: growth from {baseline:g} to {followup:g} in {days:g} days overflows (check units)"
        )


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


@dataclass(frozen=True, slots=True)
class DoublingTime:
    """A volume doubling time in days (negative: halving time of a shrinking tumour), or ``None`` with a reason."""

    days: float | None
    reason: str | None = None

    @property
    def months(self) -> float | None:
        """The doubling time in months of 30.4375 days."""
        return None if self.days is None else self.days / DAYS_PER_MONTH


def _doubling(exponent: float, baseline: float, followup: float, days: float, what: str) -> DoublingTime:
    if not (math.isfinite(baseline) and math.isfinite(followup) and math.isfinite(days)):
        return DoublingTime(
            None, f"{what}: non-finite input (baseline={baseline}, follow-up={followup}, days={days})"
        )
    if days <= 0:
        return DoublingTime(None, f"{what}: interval of {days:g} days; the follow-up must be after the baseline")
    if baseline <= 0:
        return DoublingTime(None, f"{what}: baseline is {baseline:g}; a doubling time needs a baseline above 0")
    if followup <= 0:
        return DoublingTime(None, f"{what}: follow-up is {followup:g}; the tumour vanished (no doubling time)")
    if followup == baseline:
        return DoublingTime(
            None, f"{what}: no change ({baseline:g} → {followup:g}); the doubling time is infinite"
        )
    return DoublingTime(days * math.log(2.0) / (exponent * math.log(followup / baseline)), None)


def volume_doubling_time(volume_baseline: float, volume_followup: float, days: float) -> DoublingTime:
    """Volume doubling time (days) under exponential growth: ``days·ln 2 / ln(V_t/V_0)``.

    Negative for a shrinking tumour (the halving time with a minus sign); ``None`` with a reason when undefined
    (no change, vanished tumour, baseline 0, interval of 0 days or less).

    Examples
    --------
    A volume that doubles in 60 days (analytic):

    >>> volume_doubling_time(10.0, 20.0, 60).days
    60.0
    """
    return _doubling(1.0, float(volume_baseline), float(volume_followup), float(days), "doubling time (volume)")


def volume_doubling_time_recist(sum_baseline_mm: float, sum_followup_mm: float, days: float) -> DoublingTime:
    """Volume doubling time (days) from two sums of diameters, sphere assumption V ∝ D³ (as TGR, Ferté 2014).

    >>> round(volume_doubling_time_recist(50, 50 * 2 ** (1 / 3), 90).days, 9)
    90.0
    """
    return _doubling(3.0, float(sum_baseline_mm), float(sum_followup_mm), float(days), "doubling time (RECIST)")


def doubling_time_from_tgr(tgr_percent_per_month: float) -> DoublingTime:
    """Volume doubling time (days) of a growth rate in %/month: ``ln 2 / ln(1 + TGR/100)`` months.

    SCIENCE.md §2.2: TGR 0.8 %/month doubles in 87.0 months (2648 days).

    >>> round(doubling_time_from_tgr(0.8).months, 1), round(doubling_time_from_tgr(0.8).days)
    (87.0, 2648)
    """
    if not math.isfinite(tgr_percent_per_month) or tgr_percent_per_month <= -100:
        return DoublingTime(None, f"TGR of {tgr_percent_per_month} %/month has no doubling time")
    if tgr_percent_per_month == 0:
        return DoublingTime(None, "TGR is 0: the doubling time is infinite")
    months = math.log(2.0) / math.log1p(tgr_percent_per_month / 100.0)
    return DoublingTime(months * DAYS_PER_MONTH, None)
