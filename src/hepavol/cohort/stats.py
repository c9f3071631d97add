"""The statistical building blocks of the cohort analysis, as thin wrappers over lifelines, scikit-survival and
scipy, plus the two things they lack: a Spearman confidence interval and a paired bootstrap of two Harrell's C.

Each function takes plain arrays and returns a frozen result whose :meth:`to_dict` is what ``results.json``
shows. A result that cannot be computed (too few patients, no events, a single group) carries ``None`` values and
a ``note`` saying why, rather than raising: a cohort report must show every analysis, including the empty ones.

Conventions (checked against R in ``tests/test_cohort_stats.py``):

- Cox models: lifelines ``CoxPHFitter`` (Efron ties, as R ``coxph``); Wald CI and p.
- Proportional hazards: the score test of R ``cox.zph(transform = "km")`` (survival ≥ 3.0), implemented here
  (:func:`schoenfeld_test_km`) because lifelines' ``proportional_hazard_test`` follows the pre-3.0 version.
- Log-rank: lifelines ``logrank_test`` (R ``survdiff``).
- Harrell's C: pairs comparable when the shorter time is an event (an event and a censoring at the same time are
  comparable), tied scores count ½, higher score = higher risk (scikit-survival ``concordance_index_censored``).
- Time-dependent AUC: cumulative/dynamic with IPCW, scikit-survival ``cumulative_dynamic_auc``.
- Spearman: scipy ``spearmanr`` (p from the t approximation, as R ``cor.test(method="spearman", exact=FALSE)``);
  Fisher-z CI with the Bonett–Wright SE √((1 + ρ²/2)/(n − 3)) by default (statpsych ``ci.spear``).
- Mann–Whitney: scipy ``mannwhitneyu`` with continuity correction and the normal approximation, as R
  ``wilcox.test(x, y, exact=FALSE, correct=TRUE)``; U is that of the first sample (R's W).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Z975 = 1.959963984540054  # standard normal 97.5 % quantile
#: Newton–Raphson settings for lifelines' CoxPHFitter that reproduce R ``coxph`` to 6 decimals (SCIENCE.md §5.3);
#: r_precision 1e-14 replaces the relative log-likelihood stop of 1e-9 (R's default eps), which leaves weakly
#: informative fits (one small group) ~1e-5 short of the maximum (so does a step-norm stop of 1e-10).
COX_FIT_OPTIONS: dict[str, Any] = {"precision": 1e-12, "r_precision": 1e-14, "max_steps": 200}


def _num(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


class _Result:
    """Mixin: ``to_dict`` with tuples as lists."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class CoxResult(_Result):
    """A univariable Cox model: coefficient per ``unit`` of the covariate, hazard ratio with Wald 95 % CI."""

    covariate: str
    unit: str
    coef: float | None
    se: float | None
    hr: float | None
    ci95: tuple[float, float] | None
    z: float | None
    p: float | None
    n: int
    events: int
    ph_chisq: float | None = None  # PH test of R cox.zph(transform = "km"), survival >= 3.0
    ph_p: float | None = None
    note: str | None = None

    def hr_per(self, units: float) -> tuple[float, tuple[float, float]] | None:
        """HR and 95 % CI for ``units`` of the covariate (e.g. 10 percentage points); None when not estimable or
        when a bound does not fit in a float."""
        if self.coef is None or self.se is None:
            return None
        c = self.coef * units
        h = abs(self.se * units) * Z975
        if abs(c) + h > _MAX_EXP:
            return None
        return math.exp(c), (math.exp(c - h), math.exp(c + h))


#: Largest argument of math.exp that gives a finite float (exp(709.78) is the largest double).
_MAX_EXP = 709.0


def monotone_likelihood(time: ArrayLike, event: ArrayLike, x: ArrayLike) -> Literal["+", "-", "flat"] | None:
    """Whether the Cox partial likelihood of ``x`` has no finite maximum (monotone likelihood).

    For one covariate the log partial likelihood (Breslow or Efron ties) is concave; it increases without bound
    towards β = +∞ exactly when every patient with an event has the highest ``x`` of the patients still at risk at
    that time (and someone at risk has a lower value at one event time at least), and towards −∞ when every
    patient with an event has the lowest. The maximum-likelihood coefficient is then infinite: Newton–Raphson
    runs until its iteration or tolerance limit and prints a large, arbitrary number (R ``coxph`` warns "Loglik
    converged before variable 1; coefficient may be infinite" or "Ran out of iterations and did not converge").

    Returns
    -------
    ``"+"`` (coefficient +∞), ``"-"`` (−∞), ``"flat"`` (``x`` is the same for everyone at risk at every event
    time: the likelihood does not depend on β), or None (a finite maximum exists, or there is no event).

    Examples
    --------
    The two patients with an event are the two exposed ones (x = 1), each failing while unexposed patients are
    still at risk:

    >>> monotone_likelihood([5, 8, 12, 20], [1, 1, 0, 0], [1, 1, 0, 0])
    '+'
    >>> monotone_likelihood([5, 8, 12, 20], [1, 1, 1, 0], [1, 0, 1, 0]) is None
    True
    """
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=bool)
    xv = np.asarray(x, dtype=float)
    if not e.any():
        return None
    all_max = all_min = True
    varies = False
    for u in np.unique(t[e]):
        at_risk = xv[t >= u]
        dead = xv[(t == u) & e]
        hi, lo = at_risk.max(), at_risk.min()
        varies = varies or hi > lo
        all_max = all_max and bool(np.all(dead == hi))
        all_min = all_min and bool(np.all(dead == lo))
    if not varies:
        return "flat"
    if all_max:
        return "+"
    if all_min:
        return "-"
    return None


def cox_univariable(
    time: ArrayLike, event: ArrayLike, x: ArrayLike, *, covariate: str, unit: str, ph_test: bool = True
) -> CoxResult:
    """Univariable Cox model (Efron ties) of ``(time, event)`` on ``x``.

    Parameters
    ----------
    time : array_like of float
        Follow-up times (> 0), in days.
    event : array_like of bool
        True for an event, False for censoring.
    x : array_like of float
        The covariate; the coefficient is per 1 unit of it.
    covariate, unit : str
        Name and unit of ``x`` for the report.
    ph_test : bool
        Also run the proportional-hazards test (:func:`schoenfeld_test_km`).

    Examples
    --------
    R ``coxph(Surv(time, status) ~ sex, data = lung)``: coef −0.5310, se 0.1672 (SCIENCE.md §5.2).

    >>> from lifelines.datasets import load_lung
    >>> d = load_lung()
    >>> r = cox_univariable(d.time, d.status, d.sex, covariate="sex", unit="F vs M", ph_test=False)
    >>> round(r.coef, 4), round(r.se, 4)
    (-0.531, 0.1672)
    """
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=bool)
    xv = np.asarray(x, dtype=float)
    n, events = int(t.size), int(e.sum())
    empty = CoxResult(
        covariate=covariate, unit=unit, coef=None, se=None, hr=None, ci95=None, z=None, p=None, n=n, events=events
    )
    if n < 3 or events < 1:
        return _with_note(empty, f"not estimable: {n} patients, {events} events")
    if np.ptp(xv) == 0:
        return _with_note(empty, "not estimable: the covariate has the same value for every patient")
    direction = monotone_likelihood(t, e, xv)
    if direction == "flat":
        return _with_note(
            empty, "not estimable: the covariate has the same value for every patient at risk at each event time"
        )
    if direction is not None:
        side = "highest" if direction == "+" else "lowest"
        return _with_note(
            empty,
            f"not estimable: monotone likelihood (each of the {events} event(s) had the {side} value of {covariate} "
            f"among the patients still at risk), so the maximum-likelihood coefficient is {direction}infinity and the hazard "
            f"ratio {'infinite' if direction == '+' else '0'}; R coxph warns and prints a large finite coefficient "
            "that only reflects where its iterations stopped. More events, or Firth's penalised Cox model (R "
            "coxphf), give a finite estimate",
        )
    import pandas as pd
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError, ConvergenceWarning

    df = pd.DataFrame({"T": t, "E": e.astype(int), "x": xv})
    cph = CoxPHFitter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # lifelines' default stops leave weak fits ~1e-5 from the maximum; COX_FIT_OPTIONS reach it (as R, tight eps).
            cph.fit(df, duration_col="T", event_col="E", fit_options=COX_FIT_OPTIONS)
    except ConvergenceError as exc:
        return _with_note(empty, f"not estimable: the Cox model did not converge ({str(exc).splitlines()[0]})")
    row = cph.summary.loc["x"]
    coef, se = float(row["coef"]), float(row["se(coef)"])
    failed = [
        w for w in caught if issubclass(w.category, ConvergenceWarning) and "failed to converge" in str(w.message)
    ]
    if failed or not (math.isfinite(coef) and math.isfinite(se) and se > 0) or abs(coef) + Z975 * se > _MAX_EXP:
        return _with_note(
            empty,
            f"not estimable: the Cox model did not converge to a finite estimate (coefficient {coef:.4g}, "
            f"SE {se:.4g} after {COX_FIT_OPTIONS['max_steps']} Newton-Raphson steps at most)",
        )
    ph_chisq = ph_p = None
    if ph_test and events >= 3:
        ph_chisq, ph_p = schoenfeld_test_km(t, e, xv, coef)
    return CoxResult(
        covariate=covariate,
        unit=unit,
        coef=coef,
        se=se,
        hr=math.exp(coef),
        ci95=(math.exp(coef - Z975 * se), math.exp(coef + Z975 * se)),
        z=float(row["z"]),
        p=float(row["p"]),
        n=n,
        events=events,
        ph_chisq=ph_chisq,
        ph_p=ph_p,
    )


def _with_note(result: Any, note: str) -> Any:
    import dataclasses

    return dataclasses.replace(result, note=note)


def schoenfeld_test_km(
    time: ArrayLike, event: ArrayLike, x: ArrayLike, coef: float
) -> tuple[float | None, float | None]:
    """Proportional-hazards test of a univariable Cox model, as R ``cox.zph(fit, transform = "km")`` (survival
    ≥ 3.0).

    The score test, at (β̂, γ = 0), of adding ``x·g(t)`` to the model, where g(t) = 1 − S(t−) is the left-continuous
    Kaplan–Meier estimate (centred over the events, which does not change the test), with Efron's handling of
    tied event times. χ² on 1 df = U_γ² / (I_γγ − I_γβ²/I_ββ). lifelines' ``proportional_hazard_test`` implements
    the older (survival < 3.0) approximation and gives different numbers (Rossi ``age``: 5.83 vs R's 6.06).

    Parameters
    ----------
    time, event, x : array_like
        Follow-up times, event indicators and the covariate of the fitted model.
    coef : float
        The fitted Cox coefficient β̂ (Efron ties).

    Returns
    -------
    (chisq, p) : tuple of float, or (None, None) if the test is degenerate.
    """
    from scipy import stats

    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=bool)
    xv = np.asarray(x, dtype=float)
    event_times = np.unique(t[e])
    if event_times.size < 2:
        return None, None
    # 1 - S(t-) at every observation time (Kaplan-Meier of the whole sample, left-continuous).
    at_risk = np.array([np.sum(t >= u) for u in event_times], dtype=float)
    deaths = np.array([np.sum((t == u) & e) for u in event_times], dtype=float)
    surv = np.concatenate([[1.0], np.cumprod(1.0 - deaths / at_risk)])
    g_obs = 1.0 - surv[np.searchsorted(event_times, t, side="left")]
    g_obs = g_obs - g_obs[e].mean()
    w = np.exp(coef * (xv - xv.mean()))
    u_gamma = i_bb = i_bg = i_gg = 0.0
    for u in event_times:
        risk = t >= u
        dead = (t == u) & e
        d = int(dead.sum())
        g = float(g_obs[dead][0])
        sw, swx, swx2 = w[risk].sum(), (w * xv)[risk].sum(), (w * xv * xv)[risk].sum()
        dw, dwx, dwx2 = w[dead].sum(), (w * xv)[dead].sum(), (w * xv * xv)[dead].sum()
        u_gamma += g * float(xv[dead].sum())
        for k in range(d):  # Efron: the tied deaths leave the risk set in d equal steps
            f = k / d
            den = sw - f * dw
            mean = (swx - f * dwx) / den
            var = (swx2 - f * dwx2) / den - mean * mean
            u_gamma -= g * mean
            i_bb += var
            i_bg += g * var
            i_gg += g * g * var
    if i_bb <= 0:
        return None, None
    info = i_gg - i_bg * i_bg / i_bb
    if not info > 0:
        return None, None
    chisq = u_gamma * u_gamma / info
    return float(chisq), float(stats.chi2.sf(chisq, 1))


@dataclass(frozen=True, slots=True, kw_only=True)
class LogrankResult(_Result):
    """Two-group log-rank test, plus the Cox HR of the 'high' group vs the 'low' group."""

    chisq: float | None
    p: float | None
    n_high: int
    n_low: int
    events_high: int
    events_low: int
    hr: float | None = None
    hr_ci95: tuple[float, float] | None = None
    note: str | None = None


def logrank_two_groups(time: ArrayLike, event: ArrayLike, high: ArrayLike) -> LogrankResult:
    """Log-rank test between ``high`` (True) and the rest (R ``survdiff``), with the Cox HR high vs low.

    Examples
    --------
    Freireich 6-MP vs placebo, R ``survdiff``: χ² = 16.79294 (SCIENCE.md §5.4); see the tests.
    """
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=bool)
    h = np.asarray(high, dtype=bool)
    nh, nl = int(h.sum()), int((~h).sum())
    eh, el = int(e[h].sum()), int(e[~h].sum())
    if nh == 0 or nl == 0:
        which = "low" if nl == 0 else "high"
        return LogrankResult(
            chisq=None, p=None, n_high=nh, n_low=nl, events_high=eh, events_low=el,
            note=f"not estimable: the {which} group is empty (all {nh + nl} patient(s) in one group)",
        )  # fmt: skip
    if eh + el == 0:
        return LogrankResult(
            chisq=None, p=None, n_high=nh, n_low=nl, events_high=eh, events_low=el, note="not estimable: no events"
        )
    from lifelines.statistics import logrank_test

    res = logrank_test(t[h], t[~h], event_observed_A=e[h], event_observed_B=e[~h])
    cox = cox_univariable(t, e, h.astype(float), covariate="high_group", unit="high vs low", ph_test=False)
    return LogrankResult(
        chisq=float(res.test_statistic),
        p=float(res.p_value),
        n_high=nh,
        n_low=nl,
        events_high=eh,
        events_low=el,
        hr=cox.hr,
        hr_ci95=cox.ci95,
        note=None if cox.note is None else f"Cox HR high vs low {cox.note}",
    )


def _pair_matrices(
    time: NDArray[np.float64], event: NDArray[np.bool_], score: NDArray[np.float64], tied_tol: float = 1e-8
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Harrell's pair matrices: ``A[i, j]`` = 1 if (i, j) is comparable with i the earlier event,
    ``K[i, j]`` = 1 if concordant (score_i > score_j), ½ if the scores tie."""
    ti, tj = time[:, None], time[None, :]
    comparable = event[:, None] & ((ti < tj) | ((ti == tj) & ~event[None, :]))
    diff = score[:, None] - score[None, :]
    ties = np.abs(diff) <= tied_tol
    credit = np.where(ties, 0.5, (diff > 0).astype(float))
    a = comparable.astype(float)
    return a, a * credit


@dataclass(frozen=True, slots=True, kw_only=True)
class ConcordanceResult(_Result):
    """Harrell's C of a risk score (higher = worse) with a bootstrap percentile 95 % CI, and AUC(t)."""

    score: str
    c: float | None
    ci95: tuple[float, float] | None
    comparable_pairs: int
    n: int
    events: int
    auc_12_months: float | None
    auc_24_months: float | None
    note: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConcordanceDifference(_Result):
    """C(first) − C(second) on the same patients, with a paired bootstrap percentile 95 % CI."""

    first: str
    second: str
    difference: float | None
    ci95: tuple[float, float] | None
    p_bootstrap: float | None  # two-sided: 2·min(P*(Δ ≤ 0), P*(Δ ≥ 0)), capped at 1
    resamples: int
    seed: int
    n: int
    note: str | None = None


def harrell_c(time: ArrayLike, event: ArrayLike, score: ArrayLike) -> tuple[float, int]:
    """Harrell's C (higher score = higher risk) and the number of comparable pairs.

    Same definition as scikit-survival's ``concordance_index_censored`` (tests check it on the veteran data).

    Examples
    --------
    Three patients, the riskiest fails first: every comparable pair is concordant.

    >>> harrell_c([1, 2, 3], [True, True, False], [3.0, 2.0, 1.0])
    (1.0, 3)
    """
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=bool)
    s = np.asarray(score, dtype=float)
    a, k = _pair_matrices(t, e, s)
    pairs = float(a.sum())
    if pairs == 0:
        return float("nan"), 0
    return float(k.sum() / pairs), int(pairs)


def _auc_at(
    time: NDArray[np.float64], event: NDArray[np.bool_], score: NDArray[np.float64], times_days: list[float]
) -> tuple[list[float | None], str | None]:
    from sksurv.metrics import cumulative_dynamic_auc
    from sksurv.util import Surv

    y = Surv.from_arrays(event=event, time=time)
    out: list[float | None] = []
    notes = []
    for td in times_days:
        # cumulative_dynamic_auc needs events before and patients at risk after td.
        if not (np.any(event & (time <= td)) and np.any(time > td)):
            out.append(None)
            notes.append(
                f"AUC at {td / 30.4375:.0f} months not estimable (no event before or no patient beyond it)"
            )
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                auc, _ = cumulative_dynamic_auc(y, y, score, [td])
            out.append(_num(auc[0]))
        except ValueError as exc:
            out.append(None)
            notes.append(f"AUC at {td / 30.4375:.0f} months not estimable ({exc})")
    return out, ("; ".join(notes) or None)


def _no_pairs_note(n: int, events: int) -> str:
    if events == 0:
        why = f"no events among {n} patient(s)"
    elif n < 2:
        why = f"{n} patient(s)"
    else:
        why = "no patient was followed longer than a patient with an event"
    return f"not estimable: no comparable pairs ({why}); Harrell's C is 0/0 (R concordance gives NaN)"


def _bootstrap_note(usable: int, resamples: int) -> str:
    if resamples == 0:
        return "95 % CI not computed (0 bootstrap resamples asked)"
    return f"95 % CI not estimable: {usable} of {resamples} bootstrap resamples had comparable pairs (20 needed)"


def concordance_comparison(
    time: ArrayLike,
    event: ArrayLike,
    scores: dict[str, ArrayLike],
    *,
    resamples: int = 1000,
    seed: int = 20181,
    auc_months: tuple[float, float] = (12.0, 24.0),
) -> tuple[dict[str, ConcordanceResult], ConcordanceDifference]:
    """Harrell's C of one or two risk scores on the same patients, their bootstrap CIs and (for two) the paired
    bootstrap CI of the difference (first − second), plus time-dependent AUC at ``auc_months``
    (months = days / 30.4375).

    The bootstrap resamples patients with replacement ``resamples`` times (NumPy ``default_rng(seed)``) and
    recomputes both C's on each resample (percentile intervals). Pairs of two copies of one patient are never
    comparable, so the pair-matrix shortcut used here equals recomputing C on the resampled data.
    """
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=bool)
    names = list(scores)
    if len(names) not in (1, 2):
        raise ValueError(f"concordance_comparison needs one or two scores, got {names}")
    n, events = int(t.size), int(e.sum())
    mats = {k: _pair_matrices(t, e, np.asarray(v, dtype=float)) for k, v in scores.items()}
    rng = np.random.default_rng(seed)
    boot = np.full((resamples, len(names)), np.nan)
    if n >= 2 and resamples > 0:
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)
        for j, name in enumerate(names):
            a, k = mats[name]
            den = np.einsum("bi,ij,bj->b", w, a, w)
            num = np.einsum("bi,ij,bj->b", w, k, w)
            with np.errstate(invalid="ignore", divide="ignore"):
                boot[:, j] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    ok = np.all(np.isfinite(boot), axis=1)
    results: dict[str, ConcordanceResult] = {}
    point: dict[str, float | None] = {}
    for j, name in enumerate(names):
        a, k = mats[name]
        pairs = int(a.sum())
        c = float(k.sum() / pairs) if pairs else None
        point[name] = c
        aucs, note = _auc_at(t, e, np.asarray(scores[name], dtype=float), [m * 30.4375 for m in auc_months])
        ci = None
        if c is not None and ok.sum() >= 20:
            lo, hi = np.percentile(boot[ok, j], [2.5, 97.5])
            ci = (float(lo), float(hi))
        elif c is not None:
            note = "; ".join(x for x in (_bootstrap_note(int(ok.sum()), resamples), note) if x)
        if c is None:
            note = "; ".join(x for x in (_no_pairs_note(n, events), note) if x)
        results[name] = ConcordanceResult(
            score=name,
            c=c,
            ci95=ci,
            comparable_pairs=pairs,
            n=n,
            events=events,
            auc_12_months=aucs[0],
            auc_24_months=aucs[1],
            note=note,
        )
    if len(names) == 1:
        return results, ConcordanceDifference(
            first=names[0], second="", difference=None, ci95=None, p_bootstrap=None, resamples=resamples,
            seed=seed, n=n, note="only one score",
        )  # fmt: skip
    c1, c2 = point[names[0]], point[names[1]]
    diff = None if c1 is None or c2 is None else c1 - c2
    dci = p_boot = None
    note = None
    if diff is not None and ok.sum() >= 20:
        d = boot[ok, 0] - boot[ok, 1]
        lo, hi = np.percentile(d, [2.5, 97.5])
        dci = (float(lo), float(hi))
        p_boot = float(min(1.0, 2.0 * min(np.mean(d <= 0), np.mean(d >= 0))))
    elif diff is None:
        note = _no_pairs_note(n, events)
    else:
        note = _bootstrap_note(int(ok.sum()), resamples)
    return results, ConcordanceDifference(
        first=names[0],
        second=names[1],
        difference=diff,
        ci95=dci,
        p_bootstrap=p_boot,
        resamples=resamples,
        seed=seed,
        n=n,
        note=note,
    )


SpearmanSE = Literal["bonett-wright", "fisher", "fieller"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SpearmanResult(_Result):
    """Spearman's ρ with a Fisher-z 95 % CI (``ci_method`` names the SE) and the p value of H0: ρ = 0."""

    x: str
    y: str
    rho: float | None
    ci95: tuple[float, float] | None
    p: float | None
    n: int
    ci_method: str
    note: str | None = None


_SE_TEXT = {
    "bonett-wright": "Fisher z, SE sqrt((1 + rho^2/2)/(n - 3)) (Bonett & Wright 2000)",
    "fisher": "Fisher z, SE 1/sqrt(n - 3)",
    "fieller": "Fisher z, SE sqrt(1.06/(n - 3)) (Fieller, Hartley & Pearson 1957)",
}


def spearman(
    x: ArrayLike, y: ArrayLike, *, x_name: str = "x", y_name: str = "y", se: SpearmanSE = "bonett-wright"
) -> SpearmanResult:
    """Spearman's rank correlation with a Fisher-z confidence interval.

    Pairs with a missing (NaN) value are dropped. The CI is ``tanh(atanh(ρ) ± 1.96·SE)``; the SE is chosen by
    ``se``. The p value is scipy's (t approximation with n − 2 degrees of freedom, as R
    ``cor.test(x, y, method = "spearman", exact = FALSE)``).

    Examples
    --------
    statpsych ``ci.spear(.05, y, x)`` example (SCIENCE.md §5.5): ρ 0.8699639, CI 0.5840951–0.9638297.

    >>> yv = [21, 4, 9, 12, 35, 18, 10, 22, 24, 1, 6, 8, 13, 16, 19]
    >>> xv = [67, 28, 30, 28, 52, 40, 25, 37, 44, 10, 14, 20, 28, 40, 51]
    >>> r = spearman(yv, xv)
    >>> round(r.rho, 7), [round(v, 7) for v in r.ci95]
    (0.8699639, [0.5840951, 0.9638297])
    """
    from scipy import stats

    xv = np.asarray(x, dtype=float)
    yv = np.asarray(y, dtype=float)
    keep = np.isfinite(xv) & np.isfinite(yv)
    xv, yv = xv[keep], yv[keep]
    n = int(xv.size)
    base = SpearmanResult(x=x_name, y=y_name, rho=None, ci95=None, p=None, n=n, ci_method=_SE_TEXT[se])
    if n < 3:
        return _with_note(
            base,
            f"not estimable: {n} patient(s) with both {x_name} and {y_name} (3 needed; R cor.test gives rho = ±1 "
            "with no p value for 2 and refuses 1 or 0)",
        )
    constant = [name for name, v in ((x_name, xv), (y_name, yv)) if np.ptp(v) == 0]
    if constant:
        return _with_note(
            base,
            f"not estimable: {' and '.join(constant)} has the same value for all {n} patients (a correlation "
            "needs both variables to vary; R cor.test gives NA with the warning 'the standard deviation is zero')",
        )
    res = stats.spearmanr(xv, yv)
    rho, p = float(res.statistic), float(res.pvalue)
    ci = None
    note = None
    if n > 3 and abs(rho) < 1:
        se_z = {
            "bonett-wright": math.sqrt((1.0 + rho * rho / 2.0) / (n - 3)),
            "fisher": 1.0 / math.sqrt(n - 3),
            "fieller": math.sqrt(1.06 / (n - 3)),
        }[se]
        z = math.atanh(rho)
        ci = (math.tanh(z - Z975 * se_z), math.tanh(z + Z975 * se_z))
    else:
        note = "CI not estimable (n ≤ 3 or |rho| = 1)"
    if n < 25 and note is None:
        note = "n < 25: the Fisher-z interval may under-cover"
    return SpearmanResult(x=x_name, y=y_name, rho=rho, ci95=ci, p=p, n=n, ci_method=_SE_TEXT[se], note=note)


@dataclass(frozen=True, slots=True, kw_only=True)
class MannWhitneyResult(_Result):
    """Mann–Whitney U of the first group (R's W) with the normal-approximation p (continuity corrected)."""

    u: float | None
    p: float | None
    n_first: int
    n_second: int
    median_first: float | None
    median_second: float | None
    rank_biserial: float | None  # 2U/(n1·n2) − 1: P(first > second) − P(first < second)
    note: str | None = None


def mann_whitney(first: ArrayLike, second: ArrayLike) -> MannWhitneyResult:
    """Two-sided Mann–Whitney U test as R ``wilcox.test(first, second, exact = FALSE, correct = TRUE)``.

    Examples
    --------
    R ``?wilcox.test`` permeability example (SCIENCE.md §5.5): W = 35, asymptotic two-sided p = 0.2446.

    >>> x = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
    >>> y = [1.15, 0.88, 0.90, 0.74, 1.21]
    >>> r = mann_whitney(x, y)
    >>> r.u, round(r.p, 6)
    (35.0, 0.244624)
    """
    from scipy import stats

    a = np.asarray(first, dtype=float)
    b = np.asarray(second, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    n1, n2 = int(a.size), int(b.size)
    if n1 == 0 or n2 == 0:
        which = "first" if n1 == 0 else "second"
        return MannWhitneyResult(
            u=None, p=None, n_first=n1, n_second=n2, median_first=None, median_second=None, rank_biserial=None,
            note=f"not estimable: the {which} group is empty (n = {n1} vs {n2}; R wilcox.test refuses it: "
            "'not enough observations')",
        )  # fmt: skip
    res = stats.mannwhitneyu(a, b, use_continuity=True, alternative="two-sided", method="asymptotic")
    u = float(res.statistic)
    all_equal = not np.ptp(np.concatenate([a, b])) > 0
    return MannWhitneyResult(
        u=u,
        p=None if all_equal else _num(res.pvalue),
        n_first=n1,
        n_second=n2,
        median_first=float(np.median(a)),
        median_second=float(np.median(b)),
        rank_biserial=2.0 * u / (n1 * n2) - 1.0,
        note=None
        if not all_equal
        else "p not estimable: all values are equal (the normal approximation has variance 0; R wilcox.test gives "
        "p = NA)",
    )
