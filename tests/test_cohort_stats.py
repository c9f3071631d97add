"""The statistics of ``hepavol cohort`` against published and R reference values (SCIENCE.md §5).

Each expected value has its source and the R call that produces it beside it. The data sets come offline from
lifelines.datasets and sksurv.datasets (R ``survival::lung`` and ``survival::veteran``; Rossi from Fox's
appendix, which R ships in ``carData``). Values marked "R 4.2.2 / survival 3.5-3" were re-run on this machine
(``tests/test_cohort_r.py`` re-runs R live on further data).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from lifelines.datasets import load_lung, load_rossi
from sksurv.datasets import load_veterans_lung_cancer
from sksurv.metrics import concordance_index_censored

from hepavol.cohort.stats import (
    COX_FIT_OPTIONS,
    concordance_comparison,
    cox_univariable,
    harrell_c,
    logrank_two_groups,
    mann_whitney,
    schoenfeld_test_km,
    spearman,
)


def _veteran() -> pd.DataFrame:
    x, y = load_veterans_lung_cancer()
    return pd.DataFrame(
        {
            "time": y["Survival_in_days"],
            "status": y["Status"].astype(int),
            "trt": (x.Treatment == "test").astype(int),
            "smallcell": (x.Celltype == "smallcell").astype(int),
            "adeno": (x.Celltype == "adeno").astype(int),
            "large": (x.Celltype == "large").astype(int),
            "age": x.Age_in_years,
        }
    )


def test_datasets_load_offline() -> None:
    """The reference data sets ship with the packages (no download): sizes as SCIENCE.md §5 states."""
    rossi, lung, vet = load_rossi(), load_lung(), _veteran()
    assert (len(rossi), int(rossi.arrest.sum())) == (432, 114)
    assert (len(lung), int(lung.status.sum())) == (228, 165)
    assert (len(vet), int(vet.status.sum())) == (137, 128)


def test_rossi_cox_coefficients_match_r() -> None:
    """Fox's Rossi model, Efron ties. R (carData::Rossi):
    ``coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio, data = Rossi)``
    coef / se from SCIENCE.md §5.1 (fin row cited from SurPyval's R-derived test)."""
    expected = {  # covariate: (coef, exp(coef), se, z, p)
        "fin": (-0.37942, 0.68426, 0.19138, -1.98256, 0.04742),
        "age": (-0.05744, 0.94418, 0.02200, -2.61087, 0.00903),
        "race": (0.31390, 1.36875, 0.30799, 1.01918, 0.30812),
        "wexp": (-0.14980, 0.86088, 0.21222, -0.70584, 0.48029),
        "mar": (-0.43370, 0.64810, 0.38187, -1.13574, 0.25606),
        "paro": (-0.08487, 0.91863, 0.19576, -0.43355, 0.66461),
        "prio": (0.09150, 1.09581, 0.02865, 3.19378, 0.00140),
    }
    cph = CoxPHFitter().fit(load_rossi(), "week", "arrest", fit_options=COX_FIT_OPTIONS)
    s = cph.summary
    for name, (coef, hr, se, z, p) in expected.items():
        assert s.loc[name, "coef"] == pytest.approx(coef, abs=5e-6)
        assert s.loc[name, "exp(coef)"] == pytest.approx(hr, abs=5e-6)
        assert s.loc[name, "se(coef)"] == pytest.approx(se, abs=5e-6)
        assert s.loc[name, "z"] == pytest.approx(z, abs=5e-6)
        assert s.loc[name, "p"] == pytest.approx(p, abs=5e-6)
    # R: logLik -658.748; LR test 33.266 on 7 df, p = 2.362e-05; concordance 0.6403.
    assert cph.log_likelihood_ == pytest.approx(-658.748, abs=5e-4)
    lr = cph.log_likelihood_ratio_test()
    assert lr.test_statistic == pytest.approx(33.266, abs=5e-4)
    assert lr.p_value == pytest.approx(2.362e-5, rel=5e-4)
    # Our Harrell's C on the linear predictor = R concordance(fit) 0.6403.
    rossi = load_rossi()
    c, _ = harrell_c(rossi.week, rossi.arrest, cph.predict_log_partial_hazard(rossi))
    assert c == pytest.approx(0.6403, abs=5e-5)


def test_rossi_fin_univariable_wrapper() -> None:
    """Our wrapper on one covariate equals lifelines and gives the Wald CI exp(coef ± 1.96 se)."""
    rossi = load_rossi()
    r = cox_univariable(rossi.week, rossi.arrest, rossi.fin, covariate="fin", unit="yes vs no")
    ref = CoxPHFitter().fit(rossi[["week", "arrest", "fin"]], "week", "arrest", fit_options=COX_FIT_OPTIONS)
    assert r.coef == pytest.approx(ref.params_["fin"], abs=1e-10)
    assert r.ci95 == pytest.approx(tuple(np.exp(ref.confidence_intervals_.loc["fin"])), abs=1e-10)
    assert r.n == 432
    assert r.events == 114


def test_lung_logrank_by_sex_matches_r() -> None:
    """R: ``survdiff(Surv(time, status) ~ sex, data = lung)``: Chisq = 10.3267, p = 0.00131116 (SCIENCE.md §5.2;
    Packt R cookbook printout); observed 112 (M) / 53 (F)."""
    lung = load_lung()
    r = logrank_two_groups(lung.time, lung.status, lung.sex == 2)
    assert r.chisq == pytest.approx(10.3267, abs=5e-5)
    assert r.p == pytest.approx(0.00131116, abs=5e-9)
    assert (r.n_high, r.n_low, r.events_high, r.events_low) == (90, 138, 53, 112)


def test_lung_cox_by_sex_matches_r() -> None:
    """R: ``coxph(Surv(time, status) ~ sex, data = lung)``: coef -0.5310, exp(coef) 0.5880, se 0.1672,
    z -3.176, p 0.00149 (SCIENCE.md §5.2, cited printout)."""
    lung = load_lung()
    r = cox_univariable(lung.time, lung.status, lung.sex, covariate="sex", unit="F vs M")
    assert r.coef == pytest.approx(-0.5310, abs=5e-5)
    assert r.hr == pytest.approx(0.5880, abs=5e-5)
    assert r.se == pytest.approx(0.1672, abs=5e-5)
    assert r.z == pytest.approx(-3.176, abs=5e-4)
    assert r.p == pytest.approx(0.00149, abs=5e-6)
    assert r.ci95 == pytest.approx((0.4237, 0.8160), abs=5e-5)  # exp(confint(fit))


# Freireich et al. 1963, 6-MP vs placebo remission times in weeks ("+" = censored), SCIENCE.md §5.4.
_MP6 = [
    6,
    6,
    6,
    "6+",
    7,
    "9+",
    10,
    "10+",
    "11+",
    13,
    16,
    "17+",
    "19+",
    "20+",
    22,
    23,
    "25+",
    "32+",
    "32+",
    "34+",
    "35+",
]
_PLACEBO = [1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23]


def test_freireich_logrank_matches_r() -> None:
    """R: ``survdiff(Surv(time, status) ~ group)`` on the Freireich data: Chisq 16.79294, p 4.168809e-05
    (fastlogranktest documentation, SCIENCE.md §5.4)."""
    times = [float(str(v).rstrip("+")) for v in _MP6 + _PLACEBO]
    events = [not str(v).endswith("+") for v in _MP6 + _PLACEBO]
    group = [True] * len(_MP6) + [False] * len(_PLACEBO)
    r = logrank_two_groups(times, events, group)
    assert r.chisq == pytest.approx(16.79294, abs=5e-6)
    assert r.p == pytest.approx(4.168809e-05, rel=5e-7)
    assert (r.events_high, r.events_low) == (9, 21)


def test_veteran_cox_matches_r() -> None:
    """R: ``coxph(Surv(time, status) ~ trt + celltype + age, data = veteran)`` (SCIENCE.md §5.3, cited):
    trt 0.179011 (0.201404), smallcell 1.080310 (0.274647), adeno 1.170470 (0.294727), large 0.292624 (0.285504),
    age 0.004097 (0.009581); concordance 0.619 (R 4.2.2: 0.6185824625); LR 26.04 on 5 df."""
    vet = _veteran()
    cph = CoxPHFitter().fit(vet, "time", "status", fit_options=COX_FIT_OPTIONS)
    expected = {
        "trt": (0.179011, 0.201404),
        "smallcell": (1.080310, 0.274647),
        "adeno": (1.170470, 0.294727),
        "large": (0.292624, 0.285504),
        "age": (0.004097, 0.009581),
    }
    for name, (coef, se) in expected.items():
        assert cph.params_[name] == pytest.approx(coef, abs=5e-7)
        assert cph.standard_errors_[name] == pytest.approx(se, abs=5e-7)
    assert cph.log_likelihood_ratio_test().test_statistic == pytest.approx(26.04, abs=5e-3)
    lp = cph.predict_log_partial_hazard(vet).to_numpy()
    c, _ = harrell_c(vet.time, vet.status, lp)
    assert c == pytest.approx(0.6185824625, abs=1e-10)  # R: concordance(fit)
    sk = concordance_index_censored(vet.status.astype(bool).to_numpy(), vet.time.to_numpy(float), lp)
    assert c == pytest.approx(sk[0], abs=1e-12)
    # R: coxph(Surv(time, status) ~ trt, data = veteran): coef 0.01774, se 0.18066 (STA6257 slides, cited).
    r = cox_univariable(vet.time, vet.status, vet.trt, covariate="trt", unit="test vs standard")
    assert r.coef == pytest.approx(0.01774, abs=5e-6)
    assert r.se == pytest.approx(0.18066, abs=5e-6)


def test_spearman_ci_statpsych_example() -> None:
    """statpsych ``ci.spear(.05, y, x)`` (Bonett & Wright SE; https://dgbonett.github.io/statpsych/):
    rho 0.8699639, SE 0.08241326, CI 0.5840951-0.9638297 (SCIENCE.md §5.5)."""
    y = [21, 4, 9, 12, 35, 18, 10, 22, 24, 1, 6, 8, 13, 16, 19]
    x = [67, 28, 30, 28, 52, 40, 25, 37, 44, 10, 14, 20, 28, 40, 51]
    r = spearman(y, x)
    assert r.rho == pytest.approx(0.8699639, abs=5e-8)
    assert r.ci95 == pytest.approx((0.5840951, 0.9638297), abs=5e-8)
    se_rho = (1 - r.rho**2) * np.sqrt((1 + r.rho**2 / 2) / (len(x) - 3))
    assert se_rho == pytest.approx(0.08241326, abs=5e-9)
    assert r.n == 15
    assert "Bonett" in r.ci_method
    # SCIENCE.md §5.5: the Fieller SE would give 0.6354-0.9575.
    assert spearman(y, x, se="fieller").ci95 == pytest.approx((0.6354, 0.9575), abs=5e-5)


def test_spearman_ci_plain_fisher_example() -> None:
    """Fisher z with SE 1/sqrt(n-3): rho 0.684848, CI 0.097071-0.918445 (SCIENCE.md §5.5, cited);
    R: ``cor.test(a, b, method = "spearman", exact = FALSE)``: rho 0.6848485, p-value 0.02888 (R 4.2.2)."""
    a = [4, 10, 3, 1, 9, 2, 6, 7, 8, 5]
    b = [5, 8, 6, 2, 10, 3, 9, 4, 7, 1]
    r = spearman(a, b, se="fisher")
    assert r.rho == pytest.approx(0.684848, abs=5e-7)
    # The cited CI uses z = 1.96; we use the exact 1.959964, which moves the limits by 1.4e-5.
    assert r.ci95 == pytest.approx((0.097071, 0.918445), abs=2e-5)
    z, se = np.arctanh(r.rho), 1 / np.sqrt(7)
    assert (np.tanh(z - 1.96 * se), np.tanh(z + 1.96 * se)) == pytest.approx(
        (0.097071, 0.918445), abs=1e-6
    )  # cited digits truncated
    assert r.p == pytest.approx(0.02888, abs=5e-6)


def test_mann_whitney_r_help_example() -> None:
    """R ``?wilcox.test`` permeability data (Hollander & Wolfe): ``wilcox.test(x, y, exact = FALSE)``:
    W = 35, p-value = 0.2446 (R 4.2.2; SCIENCE.md §5.5 gives 0.244624)."""
    x = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
    y = [1.15, 0.88, 0.90, 0.74, 1.21]
    r = mann_whitney(x, y)
    assert r.u == 35.0
    assert r.p == pytest.approx(0.244624, abs=5e-7)
    assert (r.n_first, r.n_second) == (10, 5)
    assert r.rank_biserial == pytest.approx(2 * 35 / 50 - 1)
    # U of the other group is n1*n2 - U (R: wilcox.test(y, x) gives W = 15), same p.
    swapped = mann_whitney(y, x)
    assert swapped.u == 15.0
    assert swapped.p == pytest.approx(r.p)


def test_paired_bootstrap_equals_recomputing_c_on_resamples() -> None:
    """The pair-matrix bootstrap equals recomputing scikit-survival's C on explicitly resampled data."""
    vet = _veteran()
    t, e = vet.time.to_numpy(float), vet.status.astype(bool).to_numpy()
    s1, s2 = vet.age.to_numpy(float), vet.large.to_numpy(float) + 0.01 * vet.trt.to_numpy(float)
    cidx, diff = concordance_comparison(t, e, {"age": s1, "other": s2}, resamples=50, seed=3)
    rng = np.random.default_rng(3)
    w = rng.multinomial(len(t), np.full(len(t), 1 / len(t)), size=50)
    idx = np.repeat(np.tile(np.arange(len(t)), (50, 1)), 1, axis=0)
    boot = []
    for b in range(50):
        take = np.repeat(idx[b], w[b])
        c1 = concordance_index_censored(e[take], t[take], s1[take])[0]
        c2 = concordance_index_censored(e[take], t[take], s2[take])[0]
        boot.append(c1 - c2)
    assert diff.ci95 == pytest.approx(tuple(np.percentile(boot, [2.5, 97.5])), abs=1e-12)
    assert cidx["age"].c == pytest.approx(concordance_index_censored(e, t, s1)[0], abs=1e-12)
    assert diff.difference == pytest.approx(cidx["age"].c - cidx["other"].c)


def test_time_dependent_auc_matches_sksurv_on_veteran() -> None:
    """AUC(t) is scikit-survival's cumulative_dynamic_auc: on the veteran Cox predictor at 30/90/180 days,
    0.6091 / 0.7212 / 0.7679 (SCIENCE.md §5.3, regression values)."""
    from hepavol.cohort.stats import _auc_at

    vet = _veteran()
    cph = CoxPHFitter().fit(vet, "time", "status")
    lp = cph.predict_log_partial_hazard(vet).to_numpy()
    aucs, note = _auc_at(vet.time.to_numpy(float), vet.status.astype(bool).to_numpy(), lp, [30.0, 90.0, 180.0])
    assert note is None
    assert aucs == pytest.approx([0.6091, 0.7212, 0.7679], abs=5e-5)


def test_unestimable_results_carry_a_note() -> None:
    """No events, one group, constant covariate: None values with the reason, never an exception."""
    assert cox_univariable([1, 2, 3], [0, 0, 0], [1, 2, 3], covariate="x", unit="u").note is not None
    assert cox_univariable([1, 2, 3], [1, 1, 0], [5, 5, 5], covariate="x", unit="u").coef is None
    assert logrank_two_groups([1, 2, 3], [1, 1, 1], [True, True, True]).chisq is None
    assert spearman([1, 2], [3, 4]).rho is None
    assert mann_whitney([], [1.0]).u is None


@pytest.mark.parametrize(
    ("covariate", "chisq", "p"),
    [("age", 6.060609, 0.013823), ("wexp", 4.209354, 0.04020165), ("fin", 0.0301154, 0.8622286)],
)
def test_ph_test_matches_r_cox_zph_on_rossi(covariate: str, chisq: float, p: float) -> None:
    """R 4.2.2 / survival 3.5-3, Rossi written from lifelines to CSV:
    ``cox.zph(coxph(Surv(week, arrest) ~ age, data = rossi), transform = "km")$table`` → chisq 6.060609,
    p 0.013823 (wexp 4.209354 / 0.04020165; fin 0.0301154 / 0.8622286). lifelines' proportional_hazard_test
    gives 5.826 for age (the pre-3.0 approximation), so it is not used."""
    rossi = load_rossi()
    r = cox_univariable(rossi.week, rossi.arrest, rossi[covariate], covariate=covariate, unit="")
    assert r.ph_chisq == pytest.approx(chisq, rel=2e-6)
    assert r.ph_p == pytest.approx(p, rel=2e-5)


def test_ph_test_lung_sex_and_degenerate_input() -> None:
    """R: ``cox.zph(coxph(Surv(time, status) ~ sex, data = lung), transform = "km")``: chisq 2.863235,
    p 0.09062506 (R 4.2.2)."""
    lung = load_lung()
    r = cox_univariable(lung.time, lung.status, lung.sex, covariate="sex", unit="")
    assert r.ph_chisq == pytest.approx(2.863235, rel=2e-6)
    assert r.ph_p == pytest.approx(0.09062506, rel=2e-5)
    assert schoenfeld_test_km([1.0, 2.0, 3.0], [True, False, False], [1.0, 2.0, 3.0], 0.1) == (None, None)
