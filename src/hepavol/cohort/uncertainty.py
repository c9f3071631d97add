"""Measurement uncertainty of the early volume change (issue 22): 95 % intervals and the smallest detectable change.

A volume measured twice on the same patient varies with a within-patient coefficient of variation ``CV`` (from
a reader-agreement analysis, or given with ``--repeatability-cv``). Volumes are log-normal to a good
approximation, so the within-patient SD of ln V is σ = √(ln(1 + CV²)), and a ratio of two independent
measurements V₁/V₀ has SD √2·σ on the log scale. The repeatability coefficient on the log scale is
**RC = 1.96·√2·σ** (Bland & Altman, Lancet 1986; QIBA: Raunig et al., Stat Methods Med Res 2015;24:27–67, "RC =
2.77·wSD"). Then, for a patient with measured log ratio L = ln(V₁/V₀) over t months:

- 95 % interval of the true volume change: 100·(exp(L ± RC) − 1) %;
- 95 % interval of the volumetric TGR: 100·(exp((L ± RC)/t) − 1) %/month (TGR_V = 100·(exp(L/t) − 1));
- the change is **below the smallest detectable change** when |L| < RC, i.e. between 100·(exp(−RC) − 1) %
  and 100·(exp(RC) − 1) %: it cannot be told apart from measurement noise at the 95 % level.

The CV is that of a volume; the diameter-based criteria are left as they are.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from hepavol.cohort.derive import DerivedPatient
from hepavol.cohort.stats import Z975
from hepavol.response.growth import DAYS_PER_MONTH


@dataclass(frozen=True, slots=True, kw_only=True)
class Repeatability:
    """The repeatability coefficient of a volume ratio for a within-patient CV (in %)."""

    cv_percent: float
    sd_log: float  # σ = √(ln(1 + CV²))
    rc_log: float  # 1.96·√2·σ
    sdc_increase_percent: float  # 100·(exp(RC) − 1)
    sdc_decrease_percent: float  # 100·(exp(−RC) − 1), negative

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def repeatability(cv_percent: float) -> Repeatability:
    """The repeatability coefficient for a within-patient CV of ``cv_percent`` %.

    Examples
    --------
    CV 10 %: σ = √ln(1.01) = 0.099751, RC = 2.771808·σ = 0.276492 (computed), so a change between −24.2 % and
    +31.8 % is within measurement noise.

    >>> r = repeatability(10.0)
    >>> round(r.sd_log, 6), round(r.rc_log, 6), round(r.sdc_increase_percent, 2), round(r.sdc_decrease_percent, 2)
    (0.099751, 0.276492, 31.85, -24.16)
    """
    if not 0 < cv_percent < 100:
        raise ValueError(f"cv_percent must be between 0 and 100, but it is {cv_percent}")
    sd = math.sqrt(math.log1p((cv_percent / 100.0) ** 2))
    rc = Z975 * math.sqrt(2.0) * sd
    return Repeatability(
        cv_percent=cv_percent,
        sd_log=sd,
        rc_log=rc,
        sdc_increase_percent=100.0 * math.expm1(rc),
        sdc_decrease_percent=100.0 * math.expm1(-rc),
    )


def _log_ratio(change_percent: float | None) -> float | None:
    if change_percent is None or change_percent <= -100.0:
        return None
    return math.log1p(change_percent / 100.0)


def with_repeatability(patients: Sequence[DerivedPatient], cv_percent: float) -> tuple[DerivedPatient, ...]:
    """The patients with their 95 % intervals of volume change and volumetric TGR and the below-SDC flags.

    A volume change of −100 % (every lesion gone) has no log ratio: its interval and flag stay None (a
    disappearance is not measurement noise).
    """
    r = repeatability(cv_percent)
    out = []
    for p in patients:
        values: dict[str, float | bool | None] = {}
        lr = _log_ratio(p.volume_change_percent)
        if lr is not None:
            values["volume_change_ci95_low_percent"] = 100.0 * math.expm1(lr - r.rc_log)
            values["volume_change_ci95_high_percent"] = 100.0 * math.expm1(lr + r.rc_log)
            values["volume_change_below_sdc"] = abs(lr) < r.rc_log
            if p.interval_days:
                months = p.interval_days / DAYS_PER_MONTH
                values["tgr_volume_ci95_low_percent_per_month"] = 100.0 * math.expm1((lr - r.rc_log) / months)
                values["tgr_volume_ci95_high_percent_per_month"] = 100.0 * math.expm1((lr + r.rc_log) / months)
        tr = _log_ratio(p.target_volume_change_percent)
        if tr is not None:
            values["target_volume_change_below_sdc"] = abs(tr) < r.rc_log
        out.append(dataclasses.replace(p, **values))  # type: ignore[arg-type]
    return tuple(out)
