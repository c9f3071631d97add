"""Agreement statistics for continuous measurements and categories (numpy/scipy only, no hepavol imports).

Every function returns a frozen result; a quantity that cannot be estimated from the data is ``None`` with a
``reason`` saying why (too few subjects, no variance, ...). Nothing here raises on data it cannot use.

- :func:`icc`: ICC(2,1) (two-way random effects, absolute agreement, single rater) and ICC(3,1) (two-way mixed,
  consistency, single rater) from the two-way ANOVA of an ``n subjects × k raters`` matrix, with the F-based 95 %
  confidence intervals of Shrout & Fleiss (Psychol Bull 1979;86:420-428) and McGraw & Wong (Psychol Methods
  1996;1:30-46), computed as R ``psych::ICC`` does (its ICC(2,1) interval uses Satterthwaite's degrees of freedom).
- :func:`bland_altman`: bias and 95 % limits of agreement of the paired differences (second − first; on the log
  scale for volumes, where they are ratios), with the t-based CI of the bias and the approximate CIs of the limits
  of Bland & Altman (Stat Methods Med Res 1999;8:135-160, §4.2): SE(limit) = s·√(1/n + z²/(2(n − 1))).
- :func:`within_subject`: within-subject SD ``s_w`` (the root mean within-subject variance, i.e. √MS(within) of the
  one-way ANOVA), the repeatability coefficient RC = z·√2·s_w = 2.77·s_w (Bland & Altman, BMJ 1996;313:744), and
  the within-subject coefficient of variation: on the log scale √(exp(s_w²) − 1) (Bland & Altman, BMJ
  1996;313:41; the usual estimate when the error is proportional to the size), on the linear scale the root mean
  square of the per-subject CVs (Hyslop & White, Am J Neuroradiol 2009;30:E125).
- :func:`cohen_kappa`: Cohen's κ and weighted κ (quadratic weights by default, as ``psych::cohen.kappa``) with
  the large-sample variances of Fleiss, Cohen & Everitt (Psychol Bull 1969;72:323-327) and normal 95 % CIs.
- :func:`proportion`: a share with its exact Clopper–Pearson 95 % CI (as R ``binom.test``).

z = Φ⁻¹(0.975) = 1.959964 throughout (so RC = 2.7718·s_w).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

__all__ = [
    "Z95",
    "BlandAltman",
    "Estimate",
    "IntraclassCorrelation",
    "Kappa",
    "Proportion",
    "WithinSubject",
    "bland_altman",
    "cohen_kappa",
    "icc",
    "proportion",
    "within_subject",
]

Z95 = float(stats.norm.ppf(0.975))
"""Two-sided 95 % normal quantile, 1.959964."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """A value with its 95 % CI; ``value is None`` with a ``reason`` when it cannot be estimated."""

    value: float | None
    ci95: tuple[float, float] | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"value": self.value, "ci95": None if self.ci95 is None else list(self.ci95)}
        if self.reason:
            out["reason"] = self.reason
        return out


def _matrix(values: ArrayLike) -> NDArray[np.float64]:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected an n subjects × k raters matrix, got an array of shape {x.shape}")
    return x


# ---------------------------------------------------------------------------------------------------------------
# Intraclass correlation


@dataclass(frozen=True, slots=True, kw_only=True)
class IntraclassCorrelation:
    """ICC(2,1) and ICC(3,1) of ``n_subjects`` rated by ``n_raters`` (the two-way ANOVA mean squares too)."""

    n_subjects: int
    n_raters: int
    icc_2_1: Estimate
    icc_3_1: Estimate
    ms_subjects: float | None = None
    ms_raters: float | None = None
    ms_error: float | None = None


def icc(values: ArrayLike, *, alpha: float = 0.05) -> IntraclassCorrelation:
    """ICC(2,1) and ICC(3,1) with F-based CIs, as R ``psych::ICC(x, lmer = FALSE)``.

    Parameters
    ----------
    values : array of shape (n, k)
        One row per subject, one column per rater (complete cases only: a row with a NaN is an error).
    alpha : float
        1 − confidence level of the intervals.

    Examples
    --------
    Shrout & Fleiss (1979), Table 2 (6 targets, 4 judges): ICC(2,1) = .29 and ICC(3,1) = .71 (their Table 4).

    >>> sf = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    >>> r = icc(sf)
    >>> round(r.icc_2_1.value, 2), round(r.icc_3_1.value, 2)
    (0.29, 0.71)
    """
    x = _matrix(values)
    n, k = x.shape
    if np.isnan(x).any():
        raise ValueError("icc needs complete rows (every subject rated by every rater); drop rows with NaN first")
    if n < 2 or k < 2:
        reason = f"needs at least 2 subjects and 2 raters, got {n} subject(s) and {k} rater(s)"
        return IntraclassCorrelation(
            n_subjects=n, n_raters=k, icc_2_1=Estimate(None, reason=reason), icc_3_1=Estimate(None, reason=reason)
        )
    grand = float(x.mean())
    ss_total = float(((x - grand) ** 2).sum())
    ss_rows = k * float(((x.mean(axis=1) - grand) ** 2).sum())
    ss_cols = n * float(((x.mean(axis=0) - grand) ** 2).sum())
    ss_error = max(ss_total - ss_rows - ss_cols, 0.0)
    df_rows, df_cols, df_error = n - 1, k - 1, (n - 1) * (k - 1)
    msr, msc, mse = ss_rows / df_rows, ss_cols / df_cols, ss_error / df_error
    scale = max(abs(grand), float(np.abs(x).max()), 1e-300)
    tiny = (1e-12 * scale) ** 2  # rounding noise of the sums of squares
    ms = {"ms_subjects": msr, "ms_raters": msc, "ms_error": mse}
    if msr <= tiny and mse <= tiny:
        reason = "all subjects have the same value: between-subject and error variance are both 0"
        return IntraclassCorrelation(
            n_subjects=n,
            n_raters=k,
            icc_2_1=Estimate(None, reason=reason),
            icc_3_1=Estimate(None, reason=reason),
            **ms,
        )
    icc3 = (msr - mse) / (msr + (k - 1) * mse)
    icc2 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    if mse <= tiny:
        reason = "the raters agree exactly on every subject (error variance 0): the F-based CI is undefined"
        return IntraclassCorrelation(
            n_subjects=n,
            n_raters=k,
            icc_2_1=Estimate(icc2, None, reason),
            icc_3_1=Estimate(icc3, None, reason),
            **ms,
        )
    q = 1.0 - alpha / 2.0
    f = msr / mse
    fl = f / float(stats.f.ppf(q, df_rows, df_error))
    fu = f * float(stats.f.ppf(q, df_error, df_rows))
    ci3 = ((fl - 1.0) / (fl + k - 1.0), (fu - 1.0) / (fu + k - 1.0))
    # ICC(2,1): Satterthwaite's approximate degrees of freedom (McGraw & Wong 1996, Table 7; psych::ICC)
    fj = msc / mse
    vn = (k - 1) * (n - 1) * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
    vd = (n - 1) * k**2 * icc2**2 * fj**2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
    v = vn / vd
    f3u = float(stats.f.ppf(q, n - 1, v))
    f3l = float(stats.f.ppf(q, v, n - 1))
    lo2 = n * (msr - f3u * mse) / (f3u * (k * msc + (k * n - k - n) * mse) + n * msr)
    hi2 = n * (f3l * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f3l * msr)
    return IntraclassCorrelation(
        n_subjects=n,
        n_raters=k,
        icc_2_1=Estimate(icc2, (lo2, hi2)),
        icc_3_1=Estimate(icc3, ci3),
        **ms,
    )


# ---------------------------------------------------------------------------------------------------------------
# Bland-Altman


@dataclass(frozen=True, slots=True, kw_only=True)
class BlandAltman:
    """Bias and 95 % limits of agreement of ``second − first`` (log units on the log scale)."""

    n: int
    scale: str  # "log" or "linear"
    bias: float | None
    sd: float | None
    loa95: tuple[float, float] | None
    bias_ci95: tuple[float, float] | None = None
    lower_loa_ci95: tuple[float, float] | None = None
    upper_loa_ci95: tuple[float, float] | None = None
    reason: str | None = None

    def ratio(self) -> dict[str, object] | None:
        """On the log scale: bias and limits as ratios second/first (exp of the log values)."""
        if self.scale != "log" or self.bias is None or self.loa95 is None:
            return None
        return {"bias": math.exp(self.bias), "loa95": [math.exp(self.loa95[0]), math.exp(self.loa95[1])]}

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "n": self.n,
            "scale": self.scale,
            "bias": self.bias,
            "loa95": None if self.loa95 is None else list(self.loa95),
            "sd_of_differences": self.sd,
            "bias_ci95": None if self.bias_ci95 is None else list(self.bias_ci95),
            "lower_loa_ci95": None if self.lower_loa_ci95 is None else list(self.lower_loa_ci95),
            "upper_loa_ci95": None if self.upper_loa_ci95 is None else list(self.upper_loa_ci95),
        }
        ratio = self.ratio()
        if ratio is not None:
            out["ratio"] = ratio
            out["percent"] = {
                "bias": 100.0 * (float(ratio["bias"]) - 1.0),  # type: ignore[arg-type]
                "loa95": [100.0 * (r - 1.0) for r in ratio["loa95"]],  # type: ignore[attr-defined]
            }
        if self.reason:
            out["reason"] = self.reason
        return out


def bland_altman(first: ArrayLike, second: ArrayLike, *, log: bool = False) -> BlandAltman:
    """Bland–Altman bias and 95 % limits of agreement of ``second − first`` (``log``: of ln(second/first)).

    Limits are bias ± 1.96·SD of the differences; the bias CI is t-based (as R ``t.test``), the CI of each limit
    uses SE = SD·√(1/n + 1.96²/(2(n − 1))) with the t quantile (Bland & Altman 1999, §4.2).

    Examples
    --------
    >>> r = bland_altman([10, 20, 30, 40], [11, 19, 32, 41])
    >>> r.bias, round(r.sd, 4), [round(v, 3) for v in r.loa95]
    (0.75, 1.2583, [-1.716, 3.216])
    """
    a = np.asarray(first, dtype=np.float64).ravel()
    b = np.asarray(second, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"first and second must have the same length, got {a.size} and {b.size}")
    scale = "log" if log else "linear"
    n = int(a.size)
    if log:
        if (a <= 0).any() or (b <= 0).any():
            raise ValueError("the log scale needs values > 0; drop zero volumes first")
        d = np.log(b) - np.log(a)
    else:
        d = b - a
    if n < 2:
        return BlandAltman(
            n=n, scale=scale, bias=None, sd=None, loa95=None, reason=f"needs at least 2 pairs, got {n}"
        )
    bias = float(d.mean())
    sd = float(d.std(ddof=1))
    loa = (bias - Z95 * sd, bias + Z95 * sd)
    t = float(stats.t.ppf(0.975, n - 1))
    se_bias = sd / math.sqrt(n)
    se_loa = sd * math.sqrt(1.0 / n + Z95**2 / (2.0 * (n - 1)))
    return BlandAltman(
        n=n,
        scale=scale,
        bias=bias,
        sd=sd,
        loa95=loa,
        bias_ci95=(bias - t * se_bias, bias + t * se_bias),
        lower_loa_ci95=(loa[0] - t * se_loa, loa[0] + t * se_loa),
        upper_loa_ci95=(loa[1] - t * se_loa, loa[1] + t * se_loa),
    )


# ---------------------------------------------------------------------------------------------------------------
# Within-subject SD, repeatability coefficient, wCV


@dataclass(frozen=True, slots=True, kw_only=True)
class WithinSubject:
    """Within-subject SD (``scale`` units), repeatability coefficient and within-subject CV (percent)."""

    n_subjects: int
    scale: str
    sw: float | None
    repeatability_coefficient: float | None
    wcv_percent: float | None
    reason: str | None = None
    wcv_reason: str | None = None

    def rc_percent_limits(self) -> tuple[float, float] | None:
        """On the log scale: the RC as percent changes (−, +): 100·(exp(∓RC) − 1)."""
        if self.scale != "log" or self.repeatability_coefficient is None:
            return None
        rc = self.repeatability_coefficient
        return (100.0 * math.expm1(-rc), 100.0 * math.expm1(rc))

    def wcv_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "value": self.wcv_percent,
            "unit": "%",
            "method": "log: sqrt(exp(sw^2) - 1)" if self.scale == "log" else "root mean square of per-subject CVs",
        }
        reason = self.reason or self.wcv_reason
        if self.wcv_percent is None and reason:
            out["reason"] = reason
        return out

    def rc_dict(self, unit: str) -> dict[str, object]:
        out: dict[str, object] = {
            "value": self.repeatability_coefficient,
            "unit": "log" if self.scale == "log" else unit,
            "within_subject_sd": self.sw,
        }
        limits = self.rc_percent_limits()
        if limits is not None:
            out["percent"] = list(limits)
        if self.repeatability_coefficient is None and self.reason:
            out["reason"] = self.reason
        return out


def within_subject(values: ArrayLike, *, log: bool = False) -> WithinSubject:
    """Within-subject SD, RC = 1.96·√2·s_w and wCV of an ``n × k`` matrix of repeated measurements.

    ``s_w² `` is the mean over subjects of the per-subject variance (ddof 1), the within-subject mean square of
    the one-way ANOVA; with two readers it is mean(d²)/2, so a systematic difference between them counts as error.
    With ``log`` the values are log-transformed first (they must be > 0); the wCV is √(exp(s_w²) − 1) and the RC
    is in log units (:meth:`WithinSubject.rc_percent_limits` gives it as percent). On the linear scale the wCV is
    the root mean square of per-subject SD/mean and needs positive means (``None`` otherwise, with a reason).

    Examples
    --------
    Two readers, differences 1, −1, 2, 1 → s_w² = (1 + 1 + 4 + 1)/8 = 0.875, RC = 2.7718·√0.875:

    >>> r = within_subject([[10, 11], [20, 19], [30, 32], [40, 41]])
    >>> round(r.sw**2, 6), round(r.repeatability_coefficient, 4)
    (0.875, 2.5928)
    """
    x = _matrix(values)
    n, k = x.shape
    scale = "log" if log else "linear"
    if np.isnan(x).any():
        raise ValueError("within_subject needs complete rows; drop rows with NaN first")
    if n < 1 or k < 2:
        reason = f"needs at least 1 subject measured at least twice, got {n} subject(s) × {k} measurement(s)"
        return WithinSubject(
            n_subjects=n, scale=scale, sw=None, repeatability_coefficient=None, wcv_percent=None, reason=reason
        )
    if log:
        if (x <= 0).any():
            raise ValueError("the log scale needs values > 0; drop zero volumes first")
        x = np.log(x)
    var_i = x.var(axis=1, ddof=1)
    sw = math.sqrt(float(var_i.mean()))
    rc = Z95 * math.sqrt(2.0) * sw
    wcv: float | None
    wcv_reason = None
    if log:
        wcv = 100.0 * math.sqrt(math.expm1(sw**2))
    else:
        means = x.mean(axis=1)
        if (means <= 0).any():
            wcv = None
            wcv_reason = "a coefficient of variation needs positive values; this quantity can be zero or negative"
        else:
            wcv = 100.0 * math.sqrt(float((var_i / means**2).mean()))
    return WithinSubject(
        n_subjects=n, scale=scale, sw=sw, repeatability_coefficient=rc, wcv_percent=wcv, wcv_reason=wcv_reason
    )


# ---------------------------------------------------------------------------------------------------------------
# Cohen's kappa


@dataclass(frozen=True, slots=True, kw_only=True)
class Kappa:
    """Cohen's κ and weighted κ of two raters over ``categories`` (ordered), with 95 % CIs."""

    n: int
    categories: tuple[str, ...]
    table: tuple[tuple[int, ...], ...]  # rows: first rater, columns: second rater
    observed_agreement: float | None
    kappa: Estimate
    weighted_kappa: Estimate
    weights: str

    def to_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "categories": list(self.categories),
            "table": [list(r) for r in self.table],
            "observed_agreement": self.observed_agreement,
            "kappa": self.kappa.to_dict(),
            "weighted_kappa": self.weighted_kappa.to_dict() | {"weights": self.weights},
        }


def _kappa_ci(value: float, var: float) -> tuple[float, float]:
    se = math.sqrt(max(var, 0.0))
    return (max(-1.0, value - Z95 * se), min(1.0, value + Z95 * se))


def cohen_kappa(
    first: Sequence[str], second: Sequence[str], categories: Sequence[str], *, weights: str = "quadratic"
) -> Kappa:
    """Cohen's κ and weighted κ of two raters' categories, as R ``psych::cohen.kappa(x, levels = categories)``.

    Parameters
    ----------
    first, second : sequences of str
        The category each rater gave each subject (same length; every value in ``categories``).
    categories : sequence of str
        The ordered categories (the weights depend on their order and number).
    weights : {"quadratic", "linear"}
        Agreement weights 1 − (|i − j|/(c − 1))² (psych's default) or 1 − |i − j|/(c − 1).

    Notes
    -----
    Variances (Fleiss, Cohen & Everitt 1969), with p the cell proportions, p_i. and p_.j the margins, p_o and p_e
    the (weighted) observed and chance agreement, w̄_i. = Σ_j p_.j w_ij and w̄_.j = Σ_i p_i. w_ij:
    var(κ_w) = [Σ_ij p_ij (w_ij(1 − p_e) − (w̄_i. + w̄_.j)(1 − p_o))² − (p_o p_e − 2 p_e + p_o)²] / (n (1 − p_e)⁴),
    which for w = I is the unweighted variance. psych 2.2.9 uses ``p_j. Σ_k w_jk`` for w̄_.j, which differs
    unless the weights are the identity; hepavol follows the published formula (the unweighted κ, its CI and the
    weighted κ itself equal psych's; tests/test_agreement_r.py shows both).

    Examples
    --------
    >>> r = cohen_kappa(list("aabbab"), list("aabbba"), ["a", "b"])
    >>> round(r.kappa.value, 4), r.observed_agreement
    (0.3333, 0.6666666666666666)
    """
    if len(first) != len(second):
        raise ValueError(f"first and second must have the same length, got {len(first)} and {len(second)}")
    cats = tuple(categories)
    index = {c: i for i, c in enumerate(cats)}
    unknown = sorted({c for c in (*first, *second) if c not in index})
    if unknown:
        raise ValueError(f"categories {unknown} are not in {list(cats)}")
    c = len(cats)
    counts = np.zeros((c, c), dtype=np.int64)
    for a, b in zip(first, second):
        counts[index[a], index[b]] += 1
    table = tuple(tuple(int(v) for v in row) for row in counts)
    n = int(counts.sum())
    wname = weights
    if n == 0:
        reason = "no subject was categorised by both raters"
        return Kappa(
            n=0,
            categories=cats,
            table=table,
            observed_agreement=None,
            kappa=Estimate(None, reason=reason),
            weighted_kappa=Estimate(None, reason=reason),
            weights=wname,
        )
    p = counts / n
    rs, cs = p.sum(axis=1), p.sum(axis=0)
    po = float(np.trace(p))
    ii, jj = np.meshgrid(np.arange(c), np.arange(c), indexing="ij")
    if weights == "quadratic":
        w = 1.0 - (np.abs(ii - jj) / max(c - 1, 1)) ** 2
    elif weights == "linear":
        w = 1.0 - np.abs(ii - jj) / max(c - 1, 1)
    else:
        raise ValueError(f"weights must be 'quadratic' or 'linear', got {weights!r}")

    def kappa_of(wm: NDArray[np.float64]) -> Estimate:
        wpo = float((wm * p).sum())
        wpe = float((wm * np.outer(rs, cs)).sum())
        if wpe >= 1.0 - 1e-15:
            present = [cats[i] for i in range(c) if rs[i] > 0 or cs[i] > 0]
            return Estimate(
                None,
                reason=f"both raters gave every subject the same category ({', '.join(present)}): chance "
                "agreement is 1 and kappa is undefined",
            )
        value = (wpo - wpe) / (1.0 - wpe)
        wi = wm @ cs  # w̄_i. = Σ_j p_.j w_ij
        wj = rs @ wm  # w̄_.j = Σ_i p_i. w_ij
        inner = wm * (1.0 - wpe) - (wi[:, None] + wj[None, :]) * (1.0 - wpo)
        var = (float((p * inner**2).sum()) - (wpo * wpe - 2.0 * wpe + wpo) ** 2) / (n * (1.0 - wpe) ** 4)
        return Estimate(value, _kappa_ci(value, var))

    return Kappa(
        n=n,
        categories=cats,
        table=table,
        observed_agreement=po,
        kappa=kappa_of(np.eye(c)),
        weighted_kappa=kappa_of(w),
        weights=wname,
    )


# ---------------------------------------------------------------------------------------------------------------
# Proportions


@dataclass(frozen=True, slots=True)
class Proportion:
    """``count`` of ``n`` with the exact (Clopper–Pearson) 95 % CI of the share."""

    count: int
    n: int
    share: float | None
    ci95: tuple[float, float] | None
    reason: str | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "count": self.count,
            "n": self.n,
            "share": self.share,
            "ci95": None if self.ci95 is None else list(self.ci95),
        }
        if self.reason:
            out["reason"] = self.reason
        return out


def proportion(count: int, n: int) -> Proportion:
    """A share with its Clopper–Pearson 95 % CI (R ``binom.test(count, n)$conf.int``).

    >>> r = proportion(3, 20)
    >>> r.share, [round(v, 5) for v in r.ci95]
    (0.15, [0.03207, 0.37893])
    """
    if n <= 0:
        return Proportion(count, n, None, None, "no patient to compare")
    ci = stats.binomtest(count, n).proportion_ci(confidence_level=0.95, method="exact")
    return Proportion(count, n, count / n, (float(ci.low), float(ci.high)))
