"""The GREPONET replication (Lamarca et al., Oncologist 2019; SCIENCE.md §2.3): diameter TGR at 3 ± 1 months as a
predictor of progression within 12 months, with the ROC curve, its AUC (DeLong CI) and the Youden-optimal cut-off
(bootstrap CI), next to the published 0.8 %/month (AUC 0.74).

- TGR3m: TGR from the RECIST sums of diameters of the patients whose early scan is 3 ± 1 months after baseline
  (61–121 days: 2 and 4 months of 30.4375 days); patients progressing at that scan are included (GREPONET's
  TGR3m population is every patient with a 3-month scan).
- Outcome: progression or death within 12 months (365.25 days) of the baseline scan; patients censored before
  12 months are left out (their status is unknown) and counted.
- ROC: case = progressed; a patient is called positive when TGR > threshold. AUC = the Mann–Whitney probability
  P(TGR_case > TGR_control) + ½ P(tie); its variance by DeLong, DeLong & Clarke-Pearson (Biometrics
  1988;44:837-45) in the structural-components form of Sun & Xu (IEEE Signal Process Lett 2014;21:1389-93); the
  95 % CI is AUC ± 1.96·SE clipped to [0, 1], as R ``pROC::ci.auc(method = "delong")``.
- Youden: thresholds halfway between consecutive distinct values (as ``pROC::coords``), the one maximising
  sensitivity + specificity − 1 (the lowest of tied maxima); its CI is the percentile interval over bootstrap
  resamples of patients (NumPy ``default_rng(seed)``) in which both groups occur.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from hepavol.cohort.derive import DerivedPatient
from hepavol.cohort.stats import Z975
from hepavol.response.growth import DAYS_PER_MONTH

#: GREPONET's published cut-off and AUC (Lamarca 2019, The Oncologist).
PUBLISHED_CUTOFF_PERCENT_PER_MONTH = 0.8
PUBLISHED_AUC = 0.74
WINDOW_DAYS = (math.ceil(2 * DAYS_PER_MONTH), math.floor(4 * DAYS_PER_MONTH))  # (61, 121)
TWELVE_MONTHS_DAYS = 12 * DAYS_PER_MONTH


@dataclass(frozen=True, slots=True, kw_only=True)
class DeLongAUC:
    auc: float
    se: float
    ci95: tuple[float, float]
    n_cases: int
    n_controls: int


def delong_auc(scores: ArrayLike, cases: ArrayLike) -> DeLongAUC:
    """AUC of ``scores`` for ``cases`` (True = case; higher score = case) with DeLong's variance.

    Examples
    --------
    Hanley & McNeil (Radiology 1982;143:29-36, Table 1) rating data are in the tests; a perfect split:

    >>> r = delong_auc([1, 2, 3, 4], [False, False, True, True])
    >>> r.auc, r.se
    (1.0, 0.0)
    """
    s = np.asarray(scores, dtype=float)
    c = np.asarray(cases, dtype=bool)
    x, y = s[c], s[~c]  # cases, controls
    m, n = int(x.size), int(y.size)
    if m == 0 or n == 0:
        raise ValueError(f"the AUC needs cases and controls, but there are {m} case(s) and {n} control(s)")
    psi = (x[:, None] > y[None, :]).astype(float) + 0.5 * (x[:, None] == y[None, :])
    auc = float(psi.mean())
    v10 = psi.mean(axis=1)  # per case
    v01 = psi.mean(axis=0)  # per control
    s10 = float(np.var(v10, ddof=1)) if m > 1 else 0.0
    s01 = float(np.var(v01, ddof=1)) if n > 1 else 0.0
    se = math.sqrt(s10 / m + s01 / n)
    return DeLongAUC(
        auc=auc, se=se, ci95=(max(0.0, auc - Z975 * se), min(1.0, auc + Z975 * se)), n_cases=m, n_controls=n
    )


def youden_cutoff(scores: ArrayLike, cases: ArrayLike) -> tuple[float, float, float]:
    """The threshold maximising Youden's index (positive = score > threshold): (threshold, sensitivity,
    specificity). Thresholds are halfway between consecutive distinct scores, as R ``pROC::coords``.

    Examples
    --------
    >>> youden_cutoff([1, 2, 3, 4, 5], [False, False, True, False, True])
    (2.5, 1.0, 0.6666666666666666)
    """
    s = np.asarray(scores, dtype=float)
    c = np.asarray(cases, dtype=bool)
    u = np.unique(s)
    if u.size < 2:
        raise ValueError("the Youden cut-off needs at least two distinct scores")
    thresholds = (u[:-1] + u[1:]) / 2.0
    pos = s[None, :] > thresholds[:, None]
    sens = (pos & c).sum(axis=1) / c.sum()
    spec = (~pos & ~c).sum(axis=1) / (~c).sum()
    k = int(np.argmax(sens + spec))
    return float(thresholds[k]), float(sens[k]), float(spec[k])


def greponet_population(
    patients: Sequence[DerivedPatient], *, resamples: int = 1000, seed: int = 20181
) -> dict[str, Any]:
    """The GREPONET analysis of one population (``results.json``: ``head_to_head.greponet.populations.<pop>``)."""
    lo, hi = WINDOW_DAYS
    in_window = [
        p for p in patients
        if p.interval_days is not None and lo <= p.interval_days <= hi and p.tgr_recist_percent_per_month is not None
    ]  # fmt: skip
    known = [p for p in in_window if p.pfs_event or p.ttp_days > TWELVE_MONTHS_DAYS]
    out: dict[str, Any] = {
        "window_days": [lo, hi],
        "with_scan_in_window": len(in_window),
        "censored_before_12_months": len(in_window) - len(known),
        "n": len(known),
        "progressed": 0,
        "roc": None,
        "youden": None,
        "published_cutoff": None,
        "note": None,
    }
    if not known:
        out["note"] = "not estimable: no patient with a diameter TGR at 3 ± 1 months and a known 12-month status"
        return out
    tgr = np.array([p.tgr_recist_percent_per_month for p in known], dtype=float)
    case = np.array([p.pfs_event and p.ttp_days <= TWELVE_MONTHS_DAYS for p in known], dtype=bool)
    out["progressed"] = int(case.sum())
    if case.all() or not case.any():
        out["note"] = (
            f"not estimable: {int(case.sum())} of {len(known)} patient(s) progressed within 12 months "
            "(the ROC needs both)"
        )
        return out
    r = delong_auc(tgr, case)
    out["roc"] = {"auc": r.auc, "se": r.se, "ci95": list(r.ci95), "n_cases": r.n_cases, "n_controls": r.n_controls}
    pub = tgr > PUBLISHED_CUTOFF_PERCENT_PER_MONTH
    out["published_cutoff"] = {
        "cutoff": PUBLISHED_CUTOFF_PERCENT_PER_MONTH,
        "published_auc": PUBLISHED_AUC,
        "sensitivity": float((pub & case).sum() / case.sum()),
        "specificity": float((~pub & ~case).sum() / (~case).sum()),
    }
    if np.unique(tgr).size < 2:
        out["note"] = "Youden cut-off not estimable: every patient has the same TGR"
        return out
    cut, sens, spec = youden_cutoff(tgr, case)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(resamples):
        idx = rng.integers(0, len(known), len(known))
        if case[idx].all() or not case[idx].any() or np.unique(tgr[idx]).size < 2:
            continue
        boot.append(youden_cutoff(tgr[idx], case[idx])[0])
    ci = None
    note = None
    if len(boot) >= 20:
        lo_b, hi_b = np.percentile(boot, [2.5, 97.5])
        ci = [float(lo_b), float(hi_b)]
    else:
        note = f"Youden cut-off CI not estimable: {len(boot)} of {resamples} resamples usable (20 needed)"
    out["youden"] = {
        "cutoff": cut, "sensitivity": sens, "specificity": spec, "ci95": ci, "resamples": resamples, "seed": seed,
    }  # fmt: skip
    out["note"] = note
    return out
