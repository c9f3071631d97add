"""Every early criterion head to head on the landmark set (issue 22): which early measurement predicts PFS best.

For each criterion of :data:`CRITERIA` and each population (CT, MR and, only when asked, the two pooled: the
registry keeps CT-only and MRI-only sub-cohorts), on the landmark set (PFS from the early scan, SCIENCE.md §4.2):

- ``cox``: univariable Cox model (Efron ties) of landmark PFS on the criterion's score (per ``unit``);
- ``cox_cutoff``: Cox HR of the high-risk side of the criterion's pre-specified cut-off vs the other side;
- ``cindex``: Harrell's C of the score (higher = riskier) with a bootstrap 95 % CI, and ``auc_12_months``
  (cumulative/dynamic, IPCW; scikit-survival ``cumulative_dynamic_auc``);
- ``cindex_difference_vs_recist``: C(criterion) − C(RECIST 1.1 category) on the patients with both, with a
  paired bootstrap 95 % CI (the same resamples for both C's);
- ``progression_12_months``: Kaplan–Meier proportion progressing by 12 months (365.25 days) after the early
  scan on each side of the cut-off, 1 − S(12 months) with R ``survfit``'s default log-scale Greenwood CI.

A criterion that cannot be estimated (nobody on one side of its cut-off, no patient with the optional columns,
no patient of a modality) keeps its place with ``null`` values and a ``note`` giving the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hepavol.cohort.derive import DerivedPatient
from hepavol.cohort.stats import (
    Z975,
    ConcordanceDifference,
    ConcordanceResult,
    CoxResult,
    _Result,
    concordance_comparison,
    cox_univariable,
)
from hepavol.response.growth import DAYS_PER_MONTH

#: RECIST 1.1 target categories as an ordinal risk score (higher = worse).
RECIST_ORDER = {"CR": 0.0, "PR": 1.0, "SD": 2.0, "PD": 3.0}
#: Hepatic tumour load classes as an ordinal score (ENETS: <=10, 11-25, 26-50, >50 %).
HTB_ORDER = {"<=10": 0.0, "11-25": 1.0, "26-50": 2.0, ">50": 3.0}
#: 12 months in days (months = days / 30.4375, Ferté's convention).
TWELVE_MONTHS_DAYS = 12 * DAYS_PER_MONTH


@dataclass(frozen=True, slots=True, kw_only=True)
class Criterion:
    """An early criterion: a risk score (higher = worse) per patient, and a pre-specified cut-off."""

    key: str
    label: str
    unit: str  # of the score, for the Cox coefficient
    hr_units: float  # the report shows the HR per this many units of the score
    cutoff: str  # the high-risk side, in words
    source: str  # where the cut-off comes from
    score: Callable[[DerivedPatient], float | None]
    high: Callable[[float], bool]  # True = high-risk side of the cut-off
    needs: str = ""  # what a patient must have for the score (for the note when nobody has it)


def _attr(name: str) -> Callable[[DerivedPatient], float | None]:
    def get(p: DerivedPatient) -> float | None:
        v = getattr(p, name)
        return None if v is None else float(v)

    return get


def _ordinal(name: str, order: dict[str, float]) -> Callable[[DerivedPatient], float | None]:
    def get(p: DerivedPatient) -> float | None:
        v = getattr(p, name)
        return None if v is None else order[v]

    return get


def _volume_change(key: str, what: str, attr: str, column: str) -> Criterion:
    """A % change of a volume against the volumetric PR threshold (-65 %, the sphere equivalent of -30 %)."""
    return Criterion(
        key=key, label=f"% change of {what} volume", unit="per 1 pp", hr_units=10.0,
        cutoff="> -65 % (no volumetric response)", source="sphere equivalent of RECIST PR (SCIENCE.md §3.1)",
        score=_attr(attr), high=lambda s: s > -65.0, needs=f"baseline_{column} and early_{column}",
    )  # fmt: skip


def criteria(*, tgr_cutoff_percent_per_month: float = 0.8) -> tuple[Criterion, ...]:
    """The criteria of issue 22, in report order (RECIST 1.1 category first: every C is compared with it)."""
    cut = tgr_cutoff_percent_per_month
    return (
        Criterion(
            key="recist_category", label="RECIST 1.1 category", unit="per category (CR<PR<SD<PD)", hr_units=1.0,
            cutoff="SD or PD (no response)", source="Eisenhauer 2009 (PR at -30 % SLD)",
            score=_ordinal("recist_response", RECIST_ORDER), high=lambda s: s >= 2.0,
            needs="baseline_sld_mm and early_sld_mm",
        ),
        _volume_change("total_volume_change_percent", "total tumour", "volume_change_percent", "volume_ml"),
        _volume_change("target_volume_change_percent", "target-lesion", "target_volume_change_percent",
                       "target_volume_ml"),
        Criterion(
            key="sld_change_percent", label="% change of the sum of diameters", unit="per 1 pp", hr_units=10.0,
            cutoff="> -30 % (no RECIST PR)", source="Eisenhauer 2009",
            score=_attr("sld_change_percent"), high=lambda s: s > -30.0,
            needs="baseline_sld_mm and early_sld_mm",
        ),
        Criterion(
            key="tgr_volume_percent_per_month", label="TGR from volumes", unit="per 1 %/month", hr_units=1.0,
            cutoff=f">= {cut:g} %/month", source="GREPONET (Lamarca 2019), diameter TGR cut-off",
            score=_attr("tgr_volume_percent_per_month"), high=lambda s: s >= cut,
            needs="baseline_volume_ml and early_volume_ml",
        ),
        Criterion(
            key="tgr_recist_percent_per_month", label="TGR from diameters", unit="per 1 %/month", hr_units=1.0,
            cutoff=f">= {cut:g} %/month", source="GREPONET (Lamarca 2019)",
            score=_attr("tgr_recist_percent_per_month"), high=lambda s: s >= cut,
            needs="baseline_sld_mm and early_sld_mm",
        ),
        Criterion(
            key="three_largest_size_rule", label="3 largest metastases' size", unit="per 1 pp", hr_units=10.0,
            cutoff="> -10 % (no >= 10 % decrease)", source="J Neuroendocrinol 2023;35:e13311",
            score=_attr("three_largest_diameter_change_percent"), high=lambda s: s > -10.0,
            needs="baseline_three_largest_diameter_sum_mm and early_three_largest_diameter_sum_mm",
        ),
        Criterion(
            key="hepatic_tumor_load_class", label="hepatic tumour load class", unit="per class", hr_units=1.0,
            cutoff="> 25 % of the liver", source="ENETS classes; Dromain 2019 (CLARINET)",
            score=_ordinal("hepatic_tumor_load_class", HTB_ORDER), high=lambda s: s >= 2.0,
            needs="liver_volume_ml",
        ),
    )  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressionProportion(_Result):
    """Kaplan–Meier proportion progressing by ``months`` on one side of a cut-off (1 − S, log-scale CI)."""

    side: str
    n: int
    events_by_then: int
    proportion: float | None
    ci95: tuple[float, float] | None
    at_risk_at_then: int
    note: str | None = None


def progression_by(time: Sequence[float] | np.ndarray, event: Sequence[bool] | np.ndarray, *, side: str,
                   days: float = TWELVE_MONTHS_DAYS) -> ProgressionProportion:  # fmt: skip
    """Kaplan–Meier 1 − S(``days``) with R ``survfit``'s default CI (``conf.type = "log"``: S·exp(±1.96·SE),
    Greenwood SE of log S, capped at 1), returned as the proportion progressing and its CI.

    Examples
    --------
    Four patients, events at 100 and 200 days, censored at 300 and 500: S(365.25) = 3/4 · 2/3 = 1/2.

    >>> r = progression_by([100, 200, 300, 500], [True, True, False, False], side="all")
    >>> round(r.proportion, 6)
    0.5
    """
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=bool)
    n = int(t.size)
    if n == 0:
        return ProgressionProportion(
            side=side, n=0, events_by_then=0, proportion=None, ci95=None, at_risk_at_then=0,
            note=f"not estimable: nobody on the {side} side of the cut-off",
        )  # fmt: skip
    s, greenwood = 1.0, 0.0
    for u in np.unique(t[e & (t <= days)]):
        at_risk = int((t >= u).sum())
        d = int(((t == u) & e).sum())
        s *= 1.0 - d / at_risk
        greenwood += d / (at_risk * (at_risk - d)) if at_risk > d else math.inf
    events = int((e & (t <= days)).sum())
    at_risk_then = int((t > days).sum())
    note = None
    if at_risk_then == 0:
        note = f"nobody on the {side} side was followed beyond 12 months: the proportion is that at the last follow-up"
    ci: tuple[float, float] | None = None
    if s > 0 and math.isfinite(greenwood):
        h = Z975 * math.sqrt(greenwood)
        lo_s, hi_s = s * math.exp(-h), min(1.0, s * math.exp(h))
        ci = (1.0 - hi_s, 1.0 - lo_s)
    return ProgressionProportion(
        side=side, n=n, events_by_then=events, proportion=1.0 - s, ci95=ci, at_risk_at_then=at_risk_then, note=note
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CriterionResult:
    """One criterion on one population (``results.json``: ``head_to_head.<population>.criteria.<key>``)."""

    criterion: str
    label: str
    cutoff: str
    cutoff_source: str
    n: int
    events: int
    n_high: int
    n_low: int
    cox: CoxResult | None
    cox_cutoff: CoxResult | None
    cindex: ConcordanceResult | None
    cindex_difference_vs_recist: ConcordanceDifference | None
    auc_12_months: float | None
    progression_12_months: dict[str, ProgressionProportion]
    note: str | None = None
    hr_units: float = 1.0
    unit: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion,
            "label": self.label,
            "cutoff": self.cutoff,
            "cutoff_source": self.cutoff_source,
            "n": self.n,
            "events": self.events,
            "n_high": self.n_high,
            "n_low": self.n_low,
            "cox": None if self.cox is None else self.cox.to_dict(),
            "cox_cutoff": None if self.cox_cutoff is None else self.cox_cutoff.to_dict(),
            "cindex": None if self.cindex is None else self.cindex.to_dict(),
            "cindex_difference_vs_recist": None
            if self.cindex_difference_vs_recist is None
            else self.cindex_difference_vs_recist.to_dict(),
            "auc_12_months": self.auc_12_months,
            "progression_12_months": {k: v.to_dict() for k, v in self.progression_12_months.items()},
            "note": self.note,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PopulationHeadToHead:
    """Every criterion on one population (``CT``, ``MR`` or ``pooled``)."""

    population: str
    landmark_n: int
    landmark_events: int
    criteria: tuple[CriterionResult, ...]
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "landmark_n": self.landmark_n,
            "landmark_events": self.landmark_events,
            "criteria": {c.criterion: c.to_dict() for c in self.criteria} if self.criteria else None,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadToHead:
    """The head-to-head section: one entry per population, in order CT, MR (, pooled)."""

    populations: tuple[PopulationHeadToHead, ...]
    pooled: bool
    resamples: int
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)  # repeatability and GREPONET sections

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "populations": {p.population: p.to_dict() for p in self.populations},
            "pooled_modalities": self.pooled,
            "bootstrap_resamples": self.resamples,
            "seed": self.seed,
            "reference": "recist_category",
        }
        out.update(self.extra)
        return out


def _side_note(crit: Criterion, n_high: int, n_low: int) -> str | None:
    if n_high == 0 and n_low == 0:
        return None
    if n_low == 0:
        return f"not estimable: every patient is on the high-risk side of the cut-off ({crit.cutoff}); nobody meets it"
    if n_high == 0:
        return f"not estimable: nobody is on the high-risk side of the cut-off ({crit.cutoff})"
    return None


def criterion_result(
    crit: Criterion,
    landmark: Sequence[DerivedPatient],
    *,
    resamples: int,
    seed: int,
    recist: Criterion | None,
) -> CriterionResult:
    """One criterion on the landmark patients ``landmark`` (``recist``: the reference criterion, None for RECIST)."""
    scores = [crit.score(p) for p in landmark]
    pts = [p for p, s in zip(landmark, scores) if s is not None]
    x = np.array([s for s in scores if s is not None], dtype=float)
    t = np.array([float(p.landmark_days or 0) for p in pts], dtype=float)  # landmark patients: always set
    e = np.array([p.pfs_event for p in pts], dtype=bool)
    high = np.array([crit.high(v) for v in x], dtype=bool)
    n, events, n_high = len(pts), int(e.sum()), int(high.sum())
    base: dict[str, Any] = {
        "criterion": crit.key, "label": crit.label, "cutoff": crit.cutoff, "cutoff_source": crit.source,
        "n": n, "events": events, "n_high": n_high, "n_low": n - n_high, "hr_units": crit.hr_units,
        "unit": crit.unit,
    }  # fmt: skip
    if n == 0:
        why = (
            f"not estimable: no landmark patient has {crit.needs}"
            if landmark
            else "not estimable: no patient in the landmark set"
        )
        return CriterionResult(
            **base, cox=None, cox_cutoff=None, cindex=None, cindex_difference_vs_recist=None, auc_12_months=None,
            progression_12_months={}, note=why,
        )  # fmt: skip
    notes = []
    if n < len(landmark):
        notes.append(f"{len(landmark) - n} landmark patient(s) without {crit.needs} left out")
    cox = cox_univariable(t, e, x, covariate=crit.key, unit=crit.unit)
    cox_cut = cox_univariable(
        t, e, high.astype(float), covariate=f"{crit.key}_high", unit="high vs low", ph_test=False
    )
    side = _side_note(crit, n_high, n - n_high)
    if side:
        cox_cut = _note(cox_cut, side)
        notes.append(side)
    own, _ = concordance_comparison(t, e, {crit.key: x}, resamples=resamples, seed=seed)
    cidx = own[crit.key]
    diff: ConcordanceDifference | None = None
    if recist is not None:
        ref = [recist.score(p) for p in pts]
        both = np.array([r is not None for r in ref], dtype=bool)
        if both.sum() == 0:
            diff = ConcordanceDifference(
                first=crit.key, second=recist.key, difference=None, ci95=None, p_bootstrap=None,
                resamples=resamples, seed=seed, n=0,
                note=f"not estimable: no patient has both this criterion and a RECIST category ({recist.needs})",
            )  # fmt: skip
        else:
            r = np.array([v if v is not None else np.nan for v in ref], dtype=float)
            _, diff = concordance_comparison(
                t[both], e[both], {crit.key: x[both], recist.key: r[both]}, resamples=resamples, seed=seed
            )
    prog = {
        "high": progression_by(t[high], e[high], side="high-risk"),
        "low": progression_by(t[~high], e[~high], side="low-risk"),
    }
    return CriterionResult(
        **base, cox=cox, cox_cutoff=cox_cut, cindex=cidx, cindex_difference_vs_recist=diff,
        auc_12_months=cidx.auc_12_months, progression_12_months=prog, note="; ".join(notes) or None,
    )  # fmt: skip


def _note(result: CoxResult, note: str) -> CoxResult:
    import dataclasses

    return dataclasses.replace(result, note=note if result.note is None else f"{note} ({result.note})")


def population_head_to_head(
    patients: Sequence[DerivedPatient],
    population: str,
    *,
    tgr_cutoff_percent_per_month: float = 0.8,
    resamples: int = 1000,
    seed: int = 20181,
    exclude: Callable[[DerivedPatient], bool] | None = None,
) -> PopulationHeadToHead:
    """Every criterion on the landmark patients of ``patients`` (``exclude``: patients to leave out)."""
    landmark = [p for p in patients if p.landmark and not (exclude is not None and exclude(p))]
    crits = criteria(tgr_cutoff_percent_per_month=tgr_cutoff_percent_per_month)
    if not patients:
        return PopulationHeadToHead(
            population=population, landmark_n=0, landmark_events=0, criteria=(),
            note=f"not estimable: no {population} patient in the table",
        )  # fmt: skip
    results = tuple(
        criterion_result(c, landmark, resamples=resamples, seed=seed, recist=None if i == 0 else crits[0])
        for i, c in enumerate(crits)
    )
    return PopulationHeadToHead(
        population=population,
        landmark_n=len(landmark),
        landmark_events=sum(p.pfs_event for p in landmark),
        criteria=results,
        note=None if landmark else f"not estimable: no {population} patient in the landmark set",
    )


#: The criteria whose score is a volume change, and the flag that marks a change below the smallest detectable one.
VOLUME_CRITERIA: dict[str, str] = {
    "total_volume_change_percent": "volume_change_below_sdc",
    "tgr_volume_percent_per_month": "volume_change_below_sdc",
    "target_volume_change_percent": "target_volume_change_below_sdc",
}


def _repeatability_section(
    patients: Sequence[DerivedPatient], populations: Sequence[str], cv_percent: float, kw: dict[str, Any]
) -> dict[str, Any]:
    """Per population: how many landmark patients' change is below the SDC, and the volume criteria's cut-off
    analyses repeated without them."""
    from hepavol.cohort.uncertainty import repeatability

    r = repeatability(cv_percent)
    crits = {c.key: c for c in criteria(tgr_cutoff_percent_per_month=kw["tgr_cutoff_percent_per_month"])}
    out: dict[str, Any] = {**r.to_dict(), "populations": {}}
    for pop in populations:
        group = [p for p in patients if pop == "pooled" or p.modality == pop]
        landmark = [p for p in group if p.landmark]
        entry: dict[str, Any] = {
            "landmark_n": len(landmark),
            "volume_change_below_sdc": sum(p.volume_change_below_sdc is True for p in landmark),
            "target_volume_change_below_sdc": sum(p.target_volume_change_below_sdc is True for p in landmark),
            "without_below_sdc": {},
        }
        for key, flag in VOLUME_CRITERIA.items():
            kept = [p for p in landmark if getattr(p, flag) is False]
            res = criterion_result(
                crits[key], kept, resamples=kw["resamples"], seed=kw["seed"], recist=crits["recist_category"]
            )
            entry["without_below_sdc"][key] = {
                "n": res.n,
                "events": res.events,
                "n_high": res.n_high,
                "n_low": res.n_low,
                "left_out": len(landmark) - len(kept),
                "cox_cutoff": None if res.cox_cutoff is None else res.cox_cutoff.to_dict(),
                "progression_12_months": {k: v.to_dict() for k, v in res.progression_12_months.items()},
                "note": res.note,
            }
        out["populations"][pop] = entry
    return out


def head_to_head(
    patients: Sequence[DerivedPatient],
    *,
    pool_modalities: bool = False,
    tgr_cutoff_percent_per_month: float = 0.8,
    resamples: int = 1000,
    seed: int = 20181,
    repeatability_cv_percent: float | None = None,
) -> HeadToHead:
    """The head-to-head comparison on CT and MR separately, plus the pooled cohort when ``pool_modalities``.

    With ``repeatability_cv_percent``, ``patients`` should carry the below-SDC flags
    (:func:`hepavol.cohort.uncertainty.with_repeatability`; applied here when they do not).
    """
    kw: dict[str, Any] = {"tgr_cutoff_percent_per_month": tgr_cutoff_percent_per_month, "resamples": resamples,
                          "seed": seed}  # fmt: skip
    pops = [population_head_to_head([p for p in patients if p.modality == m], m, **kw) for m in ("CT", "MR")]
    if pool_modalities:
        pops.append(population_head_to_head(list(patients), "pooled", **kw))
    from hepavol.cohort.greponet import greponet_population

    extra: dict[str, Any] = {
        "greponet": {
            "predictor": "tgr_recist_percent_per_month",
            "populations": {
                pop.population: greponet_population(
                    [p for p in patients if pop.population == "pooled" or p.modality == pop.population],
                    resamples=resamples,
                    seed=seed,
                )
                for pop in pops
            },
        }
    }
    if repeatability_cv_percent is not None:
        from hepavol.cohort.uncertainty import with_repeatability

        if all(p.volume_change_below_sdc is None for p in patients):
            patients = with_repeatability(patients, repeatability_cv_percent)
        extra["repeatability"] = _repeatability_section(
            patients, [p.population for p in pops], repeatability_cv_percent, kw
        )
    return HeadToHead(populations=tuple(pops), pooled=pool_modalities, resamples=resamples, seed=seed, extra=extra)
