"""Agreement statistics against published examples, hand calculations and a Monte Carlo (hepavol.agreement.stats).

R's psych/base-R values on a simulated study are compared in tests/test_agreement_r.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hepavol.agreement.stats import Z95, bland_altman, cohen_kappa, icc, proportion, within_subject

# Shrout & Fleiss, Psychol Bull 1979;86:420-428, Table 2: 6 targets rated by 4 judges.
SF = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]


def test_icc_shrout_fleiss_table_4() -> None:
    """Shrout & Fleiss 1979 Table 4: ICC(2,1) = .29, ICC(3,1) = .71; their Table 3 mean squares BMS 11.24,
    JMS 32.49, EMS 1.02. The CIs are those printed by psych::ICC for this example (psych's help page:
    ICC2 [0.019, 0.76], ICC3 [0.34, 0.95])."""
    r = icc(SF)
    assert r.icc_2_1.value == pytest.approx(0.29, abs=0.005)
    assert r.icc_3_1.value == pytest.approx(0.71, abs=0.005)
    assert (r.ms_subjects, r.ms_raters, r.ms_error) == pytest.approx((11.24, 32.49, 1.02), abs=0.005)
    assert r.icc_2_1.ci95 == pytest.approx((0.019, 0.76), abs=0.005)
    assert r.icc_3_1.ci95 == pytest.approx((0.34, 0.95), abs=0.005)


def test_icc_rater_offset_lowers_icc2_only() -> None:
    """A constant offset of the second rater is a column effect: ICC(3,1) stays 1, ICC(2,1) drops below 1."""
    x = np.array([[v, v + 2.0] for v in (10.0, 12.0, 15.0, 19.0, 30.0)])
    r = icc(x)
    assert r.icc_3_1.value == pytest.approx(1.0)
    assert r.icc_2_1.value is not None
    assert r.icc_2_1.value < 0.97
    assert r.icc_3_1.ci95 is None
    assert "agree exactly" in (r.icc_3_1.reason or "")


def test_icc_undefined_cases_have_reasons() -> None:
    one = icc([[1.0, 1.2]])
    assert one.icc_2_1.value is None
    assert "at least 2 subjects" in (one.icc_2_1.reason or "")
    const = icc([[5.0, 5.0], [5.0, 5.0], [5.0, 5.0]])
    assert const.icc_3_1.value is None
    assert "same value" in (const.icc_3_1.reason or "")
    with pytest.raises(ValueError, match="complete rows"):
        icc([[1.0, float("nan")], [2.0, 2.0]])


def test_bland_altman_hand_calculation() -> None:
    """Differences 1, −1, 2, 1: mean 0.75, SD √(4.75/3) (squared deviations 1/16 + 49/16 + 25/16 + 1/16); limits mean ± 1.96·SD; bias CI with t(3) = 3.182446;
    limit CI half-width t·SD·√(1/4 + 1.96²/6) (Bland & Altman 1999, §4.2)."""
    r = bland_altman([10, 20, 30, 40], [11, 19, 32, 41])
    sd = math.sqrt(4.75 / 3)
    assert (r.bias, r.sd) == pytest.approx((0.75, sd))
    assert r.loa95 == pytest.approx((0.75 - Z95 * sd, 0.75 + Z95 * sd))
    t3 = 3.182446305284263  # qt(0.975, 3)
    assert r.bias_ci95 == pytest.approx((0.75 - t3 * sd / 2, 0.75 + t3 * sd / 2))
    half = t3 * sd * math.sqrt(0.25 + Z95**2 / 6)
    assert r.upper_loa_ci95 == pytest.approx((0.75 + Z95 * sd - half, 0.75 + Z95 * sd + half))


def test_bland_altman_log_scale_is_a_ratio() -> None:
    """Second reader always 10 % larger: log bias ln 1.1, ratio 1.1, limits equal to the bias (SD 0)."""
    r = bland_altman([1.0, 5.0, 20.0], [1.1, 5.5, 22.0], log=True)
    assert r.bias == pytest.approx(math.log(1.1))
    d = r.to_dict()
    assert d["ratio"]["bias"] == pytest.approx(1.1)
    assert d["percent"]["loa95"] == pytest.approx([10.0, 10.0])
    assert bland_altman([1.0], [1.1]).reason == "needs at least 2 pairs, got 1"


def test_within_subject_log_scale() -> None:
    """Log differences ±0.1 alternately: s_w² = 0.01/2 = 0.005, wCV = √(e^0.005 − 1) = 7.080 %,
    RC = 1.96·√2·√0.005 = 0.19600 (log) = −17.80 % / +21.65 %."""
    a = np.array([1.0, 2.0, 4.0, 8.0])
    b = a * np.exp([0.1, -0.1, 0.1, -0.1])
    r = within_subject(np.column_stack([a, b]), log=True)
    assert r.sw == pytest.approx(math.sqrt(0.005))
    assert r.wcv_percent == pytest.approx(100 * math.sqrt(math.expm1(0.005)))
    assert r.repeatability_coefficient == pytest.approx(Z95 * math.sqrt(2 * 0.005))
    lo, hi = r.rc_percent_limits() or (0, 0)
    assert (lo, hi) == pytest.approx((100 * math.expm1(-0.196), 100 * math.expm1(0.196)), abs=0.01)


def test_within_subject_linear_wcv_needs_positive_means() -> None:
    r = within_subject([[-5.0, -3.0], [10.0, 12.0]])
    assert r.wcv_percent is None
    assert "positive" in (r.wcv_reason or "")
    assert r.repeatability_coefficient == pytest.approx(Z95 * math.sqrt(2) * math.sqrt(2.0))


def test_kappa_hand_calculation() -> None:
    """2 × 2 table [[20, 5], [10, 15]]: p_o = 0.7, p_e = 0.5·0.6 + 0.5·0.4 = 0.5, κ = 0.4; with two categories
    quadratic weights are the identity, so weighted κ = κ."""
    first = ["a"] * 25 + ["b"] * 25
    second = ["a"] * 20 + ["b"] * 5 + ["a"] * 10 + ["b"] * 15
    r = cohen_kappa(first, second, ["a", "b"])
    assert r.kappa.value == pytest.approx(0.4)
    assert r.weighted_kappa.value == pytest.approx(0.4)
    assert r.weighted_kappa.ci95 == pytest.approx(r.kappa.ci95)
    assert r.table == ((20, 5), (10, 15))


def test_kappa_undefined_with_one_category() -> None:
    r = cohen_kappa(["SD"] * 5, ["SD"] * 5, ["CR", "PR", "SD", "PD"])
    assert r.kappa.value is None
    assert "same category" in (r.kappa.reason or "")
    assert cohen_kappa([], [], ["CR"]).kappa.reason == "no subject was categorised by both raters"


def test_weighted_kappa_variance_matches_monte_carlo() -> None:
    """The Fleiss–Cohen–Everitt (1969) SE of quadratic-weighted κ equals the spread of κ_w over multinomial
    samples from a fixed 4 × 4 table (n = 150, 3000 samples, seed 1): within 10 %. (psych 2.2.9's formula gives
    about 0.004 here against an empirical 0.052.)"""
    cats = ["CR", "PR", "SD", "PD"]
    p = np.array([[3, 2, 1, 0], [2, 15, 5, 1], [0, 6, 40, 4], [0, 1, 5, 15]], dtype=float)
    p /= p.sum()
    rng = np.random.default_rng(1)
    values, ses, ses_u, values_u = [], [], [], []
    for _ in range(3000):
        counts = rng.multinomial(150, p.ravel()).reshape(4, 4)
        first = [cats[i] for i in range(4) for j in range(4) for _ in range(counts[i, j])]
        second = [cats[j] for i in range(4) for j in range(4) for _ in range(counts[i, j])]
        r = cohen_kappa(first, second, cats)
        assert r.weighted_kappa.value is not None
        assert r.weighted_kappa.ci95 is not None
        values.append(r.weighted_kappa.value)
        ses.append((r.weighted_kappa.ci95[1] - r.weighted_kappa.ci95[0]) / (2 * Z95))
        assert r.kappa.value is not None
        assert r.kappa.ci95 is not None
        values_u.append(r.kappa.value)
        ses_u.append((r.kappa.ci95[1] - r.kappa.ci95[0]) / (2 * Z95))
    assert float(np.mean(ses)) == pytest.approx(float(np.std(values)), rel=0.10)
    assert float(np.mean(ses_u)) == pytest.approx(float(np.std(values_u)), rel=0.10)


def test_proportion_clopper_pearson() -> None:
    """R: binom.test(3, 20)$conf.int = 0.03207 0.37893; 0 of 10: upper 1 − 0.025^(1/10) = 0.30850."""
    assert proportion(3, 20).ci95 == pytest.approx((0.032071, 0.378927), abs=1e-6)
    assert proportion(0, 10).ci95 == pytest.approx((0.0, 1 - 0.025 ** (1 / 10)))
    assert proportion(0, 0).reason == "no patient to compare"
