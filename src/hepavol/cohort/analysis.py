"""The cohort analysis of the VOLUNET endpoints (SCIENCE.md §4): landmark PFS, Cox, C-index, log-rank, TTP,
correlations, and the warnings a reviewing statistician would raise.

Primary endpoint (landmark analysis at the early scan, SCIENCE.md §4.2): patients whose ``pfs_date`` is after
their early scan; time = days from the early scan to ``pfs_date``. This removes the guarantee-time bias and
the part of the incorporation bias that comes from progression *at* the early scan.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np

from hepavol.cohort.derive import DerivedPatient
from hepavol.cohort.headtohead import HeadToHead, head_to_head
from hepavol.cohort.stats import (
    ConcordanceDifference,
    ConcordanceResult,
    CoxResult,
    LogrankResult,
    MannWhitneyResult,
    SpearmanResult,
    SpearmanSE,
    concordance_comparison,
    cox_univariable,
    logrank_two_groups,
    mann_whitney,
    spearman,
)


class BootstrapSettings(TypedDict):
    resamples: int
    seed: int
    auc_months: tuple[float, float]


#: The keys of ``results.json`` named by the issue, in order (plus ``warnings`` and ``by_modality``).
RESULT_KEYS: tuple[str, ...] = (
    "landmark_n",
    "landmark_events",
    "cox_volume_change",
    "cox_sld_change",
    "cindex_volume_change",
    "cindex_sld_change",
    "cindex_difference",
    "logrank_tgr_volume_0_8",
    "logrank_tgr_recist_0_8",
    "cox_log2_baseline_volume_ttp",
    "spearman_baseline_volume_vs_cga",
    "spearman_lesion_count_vs_cga",
    "spearman_tgr_volume_vs_ki67",
    "spearman_tgr_recist_vs_ki67",
    "mannwhitney_baseline_volume_by_extra_abdominal",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalysisOptions:
    """Settings of :func:`analyse_cohort` (all written into the report's methods section)."""

    tgr_cutoff_percent_per_month: float = 0.8  # GREPONET (Lamarca 2019)
    bootstrap_resamples: int = 1000
    seed: int = 20181
    auc_months: tuple[float, float] = (12.0, 24.0)
    spearman_se: SpearmanSE = "bonett-wright"
    ph_alpha: float = 0.05
    min_events_per_variable: float = 10.0  # Peduzzi 1995
    pool_modalities: bool = False  # head to head: also CT and MR pooled (the registry keeps them apart)
    repeatability_cv_percent: float | None = None  # within-patient CV of a volume measurement (issue 22)


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientFlow:
    """STROBE-style counts from the table to the landmark set (one analysis population)."""

    label: str
    total: int
    by_modality: dict[str, int]
    no_early_scan: int
    event_before_landmark: int  # progression/death on or before the early scan
    censored_before_landmark: int
    volume_change_undefined: int
    landmark_n: int
    landmark_events: int
    landmark_sld_available: int
    median_landmark_follow_up_days: float | None  # reverse Kaplan–Meier median


@dataclass(frozen=True, slots=True, kw_only=True)
class CohortAnalysis:
    """Every result of the cohort analysis of one population (all patients, or one modality)."""

    label: str
    options: AnalysisOptions
    flow: PatientFlow
    cox_volume_change: CoxResult
    cox_sld_change: CoxResult
    cindex_volume_change: ConcordanceResult
    cindex_sld_change: ConcordanceResult
    cindex_difference: ConcordanceDifference
    logrank_tgr_volume: LogrankResult
    logrank_tgr_recist: LogrankResult
    cox_log2_baseline_volume_ttp: CoxResult
    spearman_baseline_volume_vs_cga: SpearmanResult
    spearman_lesion_count_vs_cga: SpearmanResult
    spearman_tgr_volume_vs_ki67: SpearmanResult
    spearman_tgr_recist_vs_ki67: SpearmanResult
    mannwhitney_baseline_volume_by_extra_abdominal: MannWhitneyResult
    warnings: tuple[str, ...]
    by_modality: tuple[CohortAnalysis, ...] = field(default=())
    head_to_head: HeadToHead | None = None  # every early criterion on CT and MR (and pooled when asked)
    time_points: dict[str, Any] | None = None  # the registry's time points (hepavol.cohort.describe.time_points)
    repeatability_source: dict[str, Any] | None = None  # where the repeatability CV came from

    @property
    def landmark_n(self) -> int:
        return self.flow.landmark_n

    @property
    def landmark_events(self) -> int:
        return self.flow.landmark_events

    def results(self) -> dict[str, Any]:
        """The ``results.json`` content: the issue's keys, ``warnings``, and ``by_modality`` when CT and MR."""
        out: dict[str, Any] = {
            "landmark_n": self.landmark_n,
            "landmark_events": self.landmark_events,
            "cox_volume_change": self.cox_volume_change.to_dict(),
            "cox_sld_change": self.cox_sld_change.to_dict(),
            "cindex_volume_change": self.cindex_volume_change.to_dict(),
            "cindex_sld_change": self.cindex_sld_change.to_dict(),
            "cindex_difference": self.cindex_difference.to_dict(),
            "logrank_tgr_volume_0_8": self.logrank_tgr_volume.to_dict(),
            "logrank_tgr_recist_0_8": self.logrank_tgr_recist.to_dict(),
            "cox_log2_baseline_volume_ttp": self.cox_log2_baseline_volume_ttp.to_dict(),
            "spearman_baseline_volume_vs_cga": self.spearman_baseline_volume_vs_cga.to_dict(),
            "spearman_lesion_count_vs_cga": self.spearman_lesion_count_vs_cga.to_dict(),
            "spearman_tgr_volume_vs_ki67": self.spearman_tgr_volume_vs_ki67.to_dict(),
            "spearman_tgr_recist_vs_ki67": self.spearman_tgr_recist_vs_ki67.to_dict(),
            "mannwhitney_baseline_volume_by_extra_abdominal": (
                self.mannwhitney_baseline_volume_by_extra_abdominal.to_dict()
            ),
            "warnings": list(self.warnings),
        }
        if self.by_modality:
            out["by_modality"] = {sub.label: sub.results() for sub in self.by_modality}
        if self.head_to_head is not None:
            out["head_to_head"] = self.head_to_head.to_dict()
            if self.repeatability_source is not None and "repeatability" in out["head_to_head"]:
                out["head_to_head"]["repeatability"]["source"] = self.repeatability_source
        if self.time_points is not None:
            out["time_points"] = self.time_points
        return out


def _arr(patients: list[DerivedPatient], name: str) -> np.ndarray:
    return np.array([np.nan if getattr(p, name) is None else float(getattr(p, name)) for p in patients])


def _lines(patients: list[DerivedPatient]) -> str:
    lines = [str(p.line) for p in patients]
    if len(lines) > 12:
        return ", ".join(lines[:12]) + f", … ({len(lines)} in all)"
    return ", ".join(lines)


def _reverse_km_median(time: np.ndarray, event: np.ndarray) -> float | None:
    if time.size == 0:
        return None
    from lifelines import KaplanMeierFitter

    km = KaplanMeierFitter().fit(time, ~event.astype(bool))
    m = float(km.median_survival_time_)
    return m if math.isfinite(m) else None


def analyse_cohort(
    patients: tuple[DerivedPatient, ...] | list[DerivedPatient],
    *,
    options: AnalysisOptions | None = None,
    label: str = "all",
    by_modality: bool = True,
) -> CohortAnalysis:
    """Run every analysis of the issue on ``patients`` (and on each modality when CT and MR are both present).

    Parameters
    ----------
    patients : sequence of DerivedPatient
        The output of :func:`hepavol.cohort.derive.derive`.
    options : AnalysisOptions, optional
        Cut-off, bootstrap and CI settings (defaults: TGR 0.8 %/month, 1000 resamples, seed 20181).
    label : str
        Name of this population in the report ("all", "CT", "MR").
    by_modality : bool
        Also analyse each modality separately when more than one is present.
    """
    opts = options or AnalysisOptions()
    pts = list(patients)
    warns: list[str] = []
    prefix = "" if label == "all" else f"[{label}] "

    landmark = [p for p in pts if p.landmark]
    excluded = Counter(p.landmark_exclusion for p in pts if not p.landmark)
    for reason in sorted(r for r in excluded if r):
        group = [p for p in pts if p.landmark_exclusion == reason]
        warns.append(
            f"{prefix}{len(group)} patient(s) left out of the landmark analysis: {reason} (lines {_lines(group)})"
        )
    t_lm = _arr(landmark, "landmark_days")
    e_lm = np.array([p.pfs_event for p in landmark], dtype=bool)
    modalities = Counter(p.modality for p in pts)
    flow = PatientFlow(
        label=label,
        total=len(pts),
        by_modality=dict(sorted(modalities.items())),
        no_early_scan=excluded.get("no early scan", 0),
        event_before_landmark=excluded.get("progression or death on or before the early scan", 0),
        censored_before_landmark=excluded.get("censored on or before the early scan", 0),
        volume_change_undefined=excluded.get("volume change undefined (baseline volume 0)", 0),
        landmark_n=len(landmark),
        landmark_events=int(e_lm.sum()),
        landmark_sld_available=sum(p.sld_change_percent is not None for p in landmark),
        median_landmark_follow_up_days=_reverse_km_median(t_lm, e_lm),
    )
    if label == "all" and len(modalities) > 1:
        warns.append(
            "CT and MR patients are pooled in the top-level results; the protocol analyses them separately "
            "(see by_modality)"
        )

    # Primary: Cox of landmark PFS on the early % changes.
    x_vol = _arr(landmark, "volume_change_percent")
    cox_vol = cox_univariable(t_lm, e_lm, x_vol, covariate="volume_change_percent", unit="per 1 percentage point")
    sld_ok = np.isfinite(_arr(landmark, "sld_change_percent"))
    if (~sld_ok).any():
        missing = [p for p, ok in zip(landmark, sld_ok) if not ok]
        warns.append(
            f"{prefix}{len(missing)} landmark patient(s) without a sum of diameters at baseline or early scan are "
            f"left out of the SLD analyses and the paired C-index difference (lines {_lines(missing)}); "
            "cindex_volume_change uses every landmark patient"
        )
    x_sld = _arr(landmark, "sld_change_percent")
    cox_sld = cox_univariable(
        t_lm[sld_ok], e_lm[sld_ok], x_sld[sld_ok], covariate="sld_change_percent", unit="per 1 percentage point"
    )

    # Discrimination: the difference on the patients with both scores; each C on all patients with its score.
    boot = BootstrapSettings(resamples=opts.bootstrap_resamples, seed=opts.seed, auc_months=opts.auc_months)
    cidx, cdiff = concordance_comparison(
        t_lm[sld_ok],
        e_lm[sld_ok],
        {"volume_change_percent": x_vol[sld_ok], "sld_change_percent": x_sld[sld_ok]},
        **boot,
    )
    if not sld_ok.all():
        only_volume, _ = concordance_comparison(t_lm, e_lm, {"volume_change_percent": x_vol}, **boot)
        cidx["volume_change_percent"] = only_volume["volume_change_percent"]

    # TGR groups (GREPONET cut-off) on the landmark set.
    cut = opts.tgr_cutoff_percent_per_month
    logranks: dict[str, LogrankResult] = {}
    for name in ("tgr_volume_percent_per_month", "tgr_recist_percent_per_month"):
        tgr = _arr(landmark, name)
        ok = np.isfinite(tgr)
        logranks[name] = logrank_two_groups(t_lm[ok], e_lm[ok], tgr[ok] >= cut)

    # Secondary: TTP from baseline on log2 baseline volume (all patients with a volume > 0).
    ttp_pts = [p for p in pts if p.log2_baseline_volume is not None]
    if len(ttp_pts) < len(pts):
        dropped = [p for p in pts if p.log2_baseline_volume is None]
        warns.append(
            f"{prefix}{len(dropped)} patient(s) with a baseline volume of 0 left out of the TTP model (lines {_lines(dropped)})"
        )
    cox_ttp = cox_univariable(
        _arr(ttp_pts, "ttp_days"),
        np.array([p.pfs_event for p in ttp_pts], dtype=bool),
        _arr(ttp_pts, "log2_baseline_volume"),
        covariate="log2_baseline_volume",
        unit="per doubling of baseline tumour volume",
    )

    # Correlations and group comparison (all patients with both values).
    def sp(xn: str, yn: str) -> SpearmanResult:
        r = spearman(_arr(pts, xn), _arr(pts, yn), x_name=xn, y_name=yn, se=opts.spearman_se)
        if r.n < len(pts):
            warns.append(
                f"{prefix}Spearman {xn} vs {yn}: {len(pts) - r.n} patient(s) without both values left out"
            )
        return r

    sp_vol_cga = sp("baseline_volume_ml", "cga_ug_l")
    sp_les_cga = sp("lesion_count", "cga_ug_l")
    sp_tgrv_ki = sp("tgr_volume_percent_per_month", "ki67_percent")
    sp_tgrr_ki = sp("tgr_recist_percent_per_month", "ki67_percent")
    extra = [p.baseline_volume_ml for p in pts if p.extra_abdominal is True]
    no_extra = [p.baseline_volume_ml for p in pts if p.extra_abdominal is False]
    if len(extra) + len(no_extra) < len(pts):
        warns.append(
            f"{prefix}Mann–Whitney: {len(pts) - len(extra) - len(no_extra)} patient(s) without 'extra_abdominal' left out"
        )
    mw = mann_whitney(extra, no_extra)
    if mw.u is None:
        mw = dataclasses.replace(
            mw,
            note=f"not estimable: {len(extra)} patient(s) with and {len(no_extra)} without extra-abdominal disease "
            "(both groups are needed; R wilcox.test refuses an empty group)",
        )

    # Reviewer checks: events per variable and proportional hazards.
    for key, cox in (
        ("cox_volume_change", cox_vol),
        ("cox_sld_change", cox_sld),
        ("cox_log2_baseline_volume_ttp", cox_ttp),
    ):
        if cox.events < opts.min_events_per_variable:
            warns.append(
                f"{prefix}{key}: {cox.events} events for 1 parameter (events per variable < "
                f"{opts.min_events_per_variable:g}, Peduzzi 1995): the estimate may be biased and its CI unreliable"
            )
        if cox.ph_p is not None and cox.ph_p < opts.ph_alpha:
            warns.append(
                f"{prefix}{key}: proportional hazards rejected by the Schoenfeld residual test "
                f"(chi2 {cox.ph_chisq:.2f}, p {cox.ph_p:.3g}, R cox.zph transform='km'); report a time-varying effect "
                "or a restricted landmark window"
            )
        if cox.note:
            warns.append(f"{prefix}{key}: {cox.note}")
    for key, lr in (
        ("logrank_tgr_volume_0_8", logranks["tgr_volume_percent_per_month"]),
        ("logrank_tgr_recist_0_8", logranks["tgr_recist_percent_per_month"]),
    ):
        if lr.note:
            warns.append(f"{prefix}{key}: {lr.note}")
    for key, cr in (
        ("cindex_volume_change", cidx["volume_change_percent"]),
        ("cindex_sld_change", cidx["sld_change_percent"]),
    ):
        if cr.note:
            warns.append(f"{prefix}{key}: {cr.note}")
    if cdiff.note and (cdiff.difference is None or cdiff.ci95 is None):
        warns.append(f"{prefix}cindex_difference: {cdiff.note}")
    for key, spr in (
        ("spearman_baseline_volume_vs_cga", sp_vol_cga),
        ("spearman_lesion_count_vs_cga", sp_les_cga),
        ("spearman_tgr_volume_vs_ki67", sp_tgrv_ki),
        ("spearman_tgr_recist_vs_ki67", sp_tgrr_ki),
    ):
        if spr.rho is None and spr.note:
            warns.append(f"{prefix}{key}: {spr.note}")
    if mw.note:
        warns.append(f"{prefix}mannwhitney_baseline_volume_by_extra_abdominal: {mw.note}")

    subs: tuple[CohortAnalysis, ...] = ()
    if by_modality and len(modalities) > 1:
        subs = tuple(
            analyse_cohort([p for p in pts if p.modality == m], options=opts, label=m, by_modality=False)
            for m in sorted(modalities)
        )
    h2h = None
    if label == "all":
        h2h = head_to_head(
            pts,
            pool_modalities=opts.pool_modalities,
            tgr_cutoff_percent_per_month=cut,
            resamples=opts.bootstrap_resamples,
            seed=opts.seed,
            repeatability_cv_percent=opts.repeatability_cv_percent,
        )
    return CohortAnalysis(
        head_to_head=h2h,
        label=label,
        options=opts,
        flow=flow,
        cox_volume_change=cox_vol,
        cox_sld_change=cox_sld,
        cindex_volume_change=cidx["volume_change_percent"],
        cindex_sld_change=cidx["sld_change_percent"],
        cindex_difference=cdiff,
        logrank_tgr_volume=logranks["tgr_volume_percent_per_month"],
        logrank_tgr_recist=logranks["tgr_recist_percent_per_month"],
        cox_log2_baseline_volume_ttp=cox_ttp,
        spearman_baseline_volume_vs_cga=sp_vol_cga,
        spearman_lesion_count_vs_cga=sp_les_cga,
        spearman_tgr_volume_vs_ki67=sp_tgrv_ki,
        spearman_tgr_recist_vs_ki67=sp_tgrr_ki,
        mannwhitney_baseline_volume_by_extra_abdominal=mw,
        warnings=tuple(warns),
        by_modality=subs,
    )
