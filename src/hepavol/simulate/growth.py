"""Growth laws of simulated lesions: exponential or Gompertz volume curves in months.

The growth rate is given the way NET papers report it, as a TGR in percent of volume per month (Ferté 2014,
SCIENCE.md §2.1-2.2): ``TGR = 100·(exp(g) − 1)`` with ``g`` the specific growth rate ``d ln V / dt`` per month.
For Gompertz growth the same ``g`` is the *initial* specific rate, ``V(t) = K·exp(ln(V0/K)·exp(−β t))`` with
``β = g / ln(K/V0)``, so that both laws start at the same TGR and Gompertz slows down towards ``K``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from hepavol.response.growth import DAYS_PER_MONTH

GrowthModel = Literal["exponential", "gompertz"]


def tgr_to_rate(tgr_percent_per_month: float) -> float:
    """Specific growth rate ``g`` (per month) from a TGR in %/month: ``ln(1 + TGR/100)``.

    Examples
    --------
    >>> round(tgr_to_rate(20.0), 6)  # SCIENCE.md §2.4: TG 0.182322 for TGR 20 %/month
    0.182322
    """
    return math.log1p(tgr_percent_per_month / 100.0)


def rate_to_tgr(rate_per_month: float) -> float:
    """TGR in %/month from a specific growth rate per month: ``100·(exp(g) − 1)``."""
    return 100.0 * math.expm1(rate_per_month)


@dataclass(frozen=True, slots=True, kw_only=True)
class GrowthLaw:
    """Volume of one lesion as a function of time since its onset.

    Parameters
    ----------
    volume0_ml : float
        Volume at onset (baseline for lesions present at baseline) in mL.
    rate_per_month : float
        Initial specific growth rate ``d ln V / dt`` per month (negative: regression).
    model : {"exponential", "gompertz"}
        Growth law. A Gompertz law with a rate ≤ 0 behaves exponentially (it has no meaning for regression).
    capacity_ml : float or None
        Gompertz carrying capacity in mL (must exceed ``volume0_ml``).

    Examples
    --------
    Exponential growth at TGR 20 %/month multiplies the volume by 1.2³ = 1.728 in 3 months (SCIENCE.md §2.4):

    >>> law = GrowthLaw(volume0_ml=100.0, rate_per_month=tgr_to_rate(20.0), model="exponential")
    >>> round(law.volume_ml(3 * DAYS_PER_MONTH), 6)
    172.8
    """

    volume0_ml: float
    rate_per_month: float
    model: GrowthModel = "exponential"
    capacity_ml: float | None = None

    def volume_ml(self, days: float) -> float:
        """Volume in mL ``days`` after onset (days ≥ 0)."""
        t = max(days, 0.0) / DAYS_PER_MONTH
        g = self.rate_per_month
        if (
            self.model == "gompertz"
            and g > 0
            and self.capacity_ml is not None
            and self.capacity_ml > self.volume0_ml
        ):
            k = self.capacity_ml
            log_ratio = math.log(self.volume0_ml / k)  # < 0
            beta = g / -log_ratio
            return k * math.exp(log_ratio * math.exp(-beta * t))
        return self.volume0_ml * math.exp(g * t)
