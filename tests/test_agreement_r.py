"""``hepavol agreement`` against R run live (Debian ``r-base-core``, ``r-cran-psych``).

A simulated two-reader study (the simulator's reader model, 30 patients) is analysed by hepavol; the R script
below recomputes every continuous figure of ``results.json`` from ``pairs.csv`` and every κ from
``categories.csv``: ``psych::ICC(x, lmer = FALSE)`` (ICC2/ICC3 and their bounds), base R for Bland–Altman
(``mean``, ``sd``, ``t.test``, ``qnorm``/``qt``), the within-subject SD, RC and wCV, ``psych::cohen.kappa`` and
``binom.test``. The weighted κ's CI is not compared with psych: psych 2.2.9 computes its variance with
``p_j. Σ_k w_jk`` in place of ``Σ_i p_i. w_ij`` (Fleiss, Cohen & Everitt 1969) and gives intervals about ten times
too narrow; it is compared with ``vcd::Kappa`` (Debian ``r-cran-vcd``), an independent implementation of the
published asymptotic SE, and ``tests/test_agreement_stats.py`` checks it against a Monte Carlo.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests._agreement_helpers import write_reads_table
from tests._r_helpers import parse_r_values, run_r

from hepavol.cli import main
from hepavol.simulate.readers import default_reads

pytestmark = pytest.mark.external

R_SCRIPT = r"""
suppressMessages(library(psych))
args <- commandArgs(trailingOnly = TRUE)
p <- read.csv(args[1], stringsAsFactors = FALSE)
k <- read.csv(args[2], stringsAsFactors = FALSE)
prog <- as.integer(args[3:6])
out <- function(key, value) cat(key, sprintf("%.12g", value), "\n")
z <- qnorm(0.975)
for (q in unique(p$quantity)) {
  s <- p[p$quantity == q, ]
  lg <- q %in% c("lesion_volume_ml", "total_tumor_volume_ml")
  x <- cbind(s$first, s$second)
  if (lg) x <- log(x)
  n <- nrow(x)
  r <- ICC(x, lmer = FALSE)$results
  out(paste0(q, ".icc_2_1.value"), r["Single_random_raters", "ICC"])
  out(paste0(q, ".icc_2_1.ci_low"), r["Single_random_raters", "lower bound"])
  out(paste0(q, ".icc_2_1.ci_high"), r["Single_random_raters", "upper bound"])
  out(paste0(q, ".icc_3_1.value"), r["Single_fixed_raters", "ICC"])
  out(paste0(q, ".icc_3_1.ci_low"), r["Single_fixed_raters", "lower bound"])
  out(paste0(q, ".icc_3_1.ci_high"), r["Single_fixed_raters", "upper bound"])
  d <- x[, 2] - x[, 1]
  m <- mean(d); sdd <- sd(d)
  out(paste0(q, ".bland_altman.bias"), m)
  out(paste0(q, ".bland_altman.sd_of_differences"), sdd)
  out(paste0(q, ".bland_altman.loa_low"), m - z * sdd)
  out(paste0(q, ".bland_altman.loa_high"), m + z * sdd)
  ci <- t.test(d)$conf.int
  out(paste0(q, ".bland_altman.bias_ci_low"), ci[1]); out(paste0(q, ".bland_altman.bias_ci_high"), ci[2])
  se <- sdd * sqrt(1 / n + z^2 / (2 * (n - 1))); tq <- qt(0.975, n - 1)
  out(paste0(q, ".bland_altman.lower_loa_ci_low"), m - z * sdd - tq * se)
  out(paste0(q, ".bland_altman.upper_loa_ci_high"), m + z * sdd + tq * se)
  v <- apply(x, 1, var)
  sw <- sqrt(mean(v))
  out(paste0(q, ".repeatability_coefficient.within_subject_sd"), sw)
  out(paste0(q, ".repeatability_coefficient.value"), z * sqrt(2) * sw)
  if (lg) {
    out(paste0(q, ".wcv.value"), 100 * sqrt(exp(sw^2) - 1))
  } else if (all(rowMeans(x) > 0)) {
    out(paste0(q, ".wcv.value"), 100 * sqrt(mean(v / rowMeans(x)^2)))
  }
}
lev <- c("CR", "PR", "SD", "PD")
for (crit in c("recist_response", "volumetric_response")) {
  s <- k[k$criteria == crit & k$first %in% lev & k$second %in% lev, c("first", "second")]
  r <- cohen.kappa(s, levels = lev)
  out(paste0(crit, ".n"), nrow(s))
  out(paste0(crit, ".kappa.value"), r$kappa)
  out(paste0(crit, ".kappa.ci_low"), r$confid[1, 1]); out(paste0(crit, ".kappa.ci_high"), r$confid[1, 3])
  out(paste0(crit, ".weighted_kappa.value"), r$weighted.kappa)
}
b <- binom.test(prog[1], prog[2])$conf.int
out("progression_date_changes.recist.ci_low", b[1]); out("progression_date_changes.recist.ci_high", b[2])
b <- binom.test(prog[3], prog[4])$conf.int
out("progression_date_changes.volumetric.ci_low", b[1]); out("progression_date_changes.volumetric.ci_high", b[2])
"""


@pytest.fixture(scope="module")
def agreement_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict[str, float]]:
    tmp = tmp_path_factory.mktemp("agreement_r")
    table = write_reads_table(tmp / "readers.csv", patients=30, seed=7, reads=default_reads(2))
    out = tmp / "out"
    assert main(["agreement", str(table), "--out", str(out), "--no-pdf"]) == 0
    results = json.loads((out / "results.json").read_text())
    pc = results["progression_date_changes"]
    counts = [str(pc[c][f]) for c in ("recist", "volumetric") for f in ("count", "n")]
    stdout = run_r(R_SCRIPT, tmp, str(out / "pairs.csv"), str(out / "categories.csv"), *counts,
                   packages="r-cran-psych r-cran-vcd")  # fmt: skip
    return results, parse_r_values(stdout)


def _get(results: dict, dotted: str) -> float:
    parts = dotted.split(".")
    node = results
    for part in parts[:-1]:
        node = node[part]
    field = parts[-1]
    pairs = {
        "ci_low": ("ci95", 0),
        "ci_high": ("ci95", 1),
        "loa_low": ("loa95", 0),
        "loa_high": ("loa95", 1),
        "bias_ci_low": ("bias_ci95", 0),
        "bias_ci_high": ("bias_ci95", 1),
        "lower_loa_ci_low": ("lower_loa_ci95", 0),
        "upper_loa_ci_high": ("upper_loa_ci95", 1),
    }
    if field in pairs:
        key, i = pairs[field]
        return float(node[key][i])
    return float(node[field])


def test_every_r_figure_matches(agreement_run: tuple[dict, dict[str, float]]) -> None:
    """R psych::ICC(lmer = FALSE), psych::cohen.kappa(levels = CR..PD), t.test, binom.test and the Bland-Altman,
    s_w, RC and wCV formulas in base R agree with results.json to 1e-6 (relative): 6 quantities × 16 figures,
    4 wCVs (none for the two % changes), 2 × 5 κ figures and 4 binomial bounds."""
    results, r_values = agreement_run
    assert len(r_values) == 6 * 16 + 4 + 2 * 5 + 4
    mismatches = []
    for key, r_value in r_values.items():
        ours = _get(results, key)
        if ours != pytest.approx(r_value, rel=1e-6, abs=1e-9):
            mismatches.append(f"{key}: hepavol {ours!r} vs R {r_value!r}")
    assert not mismatches, "\n".join(mismatches)


def test_the_comparison_covers_real_disagreement(agreement_run: tuple[dict, dict[str, float]]) -> None:
    """The simulated reads disagree (so the R comparison is not of trivial numbers): κ < 1, bias ≠ 0, every
    quantity has pairs, and the κ tables use at least three categories."""
    results, _ = agreement_run
    for key in ("lesion_volume_ml", "total_tumor_volume_ml", "sum_of_diameters_mm", "volume_change_percent"):
        assert results[key]["n"] >= 20
        assert results[key]["bland_altman"]["bias"] != 0
    for crit in ("recist_response", "volumetric_response"):
        k = results[crit]
        assert k["kappa"]["value"] < 1
        assert sum(1 for row, col in zip(k["table"], zip(*k["table"])) if sum(row) + sum(col)) >= 3


def test_shrout_fleiss_example_in_r(tmp_path: Path) -> None:
    """Shrout & Fleiss (1979) Table 2 through psych::ICC: the same ICC(2,1)/ICC(3,1) and bounds as hepavol's."""
    from hepavol.agreement.stats import icc

    sf = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    stdout = run_r(
        "suppressMessages(library(psych))\n"
        "x <- matrix(c(" + ",".join(str(v) for row in sf for v in row) + "), 6, byrow = TRUE)\n"
        "r <- ICC(x, lmer = FALSE)$results\n"
        'cat(sprintf("%.12g", unlist(r[c(2, 3), c("ICC", "lower bound", "upper bound")])), "\\n")\n',
        tmp_path,
        packages="r-cran-psych",
    )
    i2, i3, l2, l3, u2, u3 = (float(v) for v in stdout.split())
    ours = icc(sf)
    assert ours.icc_2_1.value == pytest.approx(i2, rel=1e-9)
    assert ours.icc_3_1.value == pytest.approx(i3, rel=1e-9)
    assert ours.icc_2_1.ci95 == pytest.approx((l2, u2), rel=1e-9)
    assert ours.icc_3_1.ci95 == pytest.approx((l3, u3), rel=1e-9)


def test_weighted_kappa_se_equals_vcd(tmp_path: Path) -> None:
    """The weighted κ and its CI against R ``vcd::Kappa`` (Fleiss, Cohen & Everitt 1969 ASE; ``Fleiss-Cohen``
    weights = quadratic, ``Equal-Spacing`` = linear) on a 4×4 table with disagreement off the diagonal:
    CI half-width = 1.959964 × ASE. vcd 1.4-11 printed ASE 0.06174639 (quadratic), 0.05877445 (linear) and
    unweighted 0.06434523 for this table."""
    from hepavol.agreement.stats import cohen_kappa

    table = [[20, 5, 2, 1], [4, 15, 6, 2], [1, 5, 18, 4], [0, 2, 3, 12]]
    stdout = run_r(
        "suppressMessages(library(vcd))\n"
        "t <- matrix(c(" + ",".join(str(v) for row in table for v in row) + "), 4, byrow = TRUE)\n"
        'q <- Kappa(t, weights = "Fleiss-Cohen"); l <- Kappa(t, weights = "Equal-Spacing")\n'
        'cat(sprintf("%.12g", c(q$Unweighted, q$Weighted, l$Weighted)), "\\n")\n',
        tmp_path,
        packages="r-cran-vcd",
    )
    k, k_se, qk, q_se, lk, l_se = (float(v) for v in stdout.split())
    cats = ["a", "b", "c", "d"]
    first = [cats[i] for i in range(4) for j in range(4) for _ in range(table[i][j])]
    second = [cats[j] for i in range(4) for j in range(4) for _ in range(table[i][j])]
    z = 1.959963984540054
    for weights, value, se in (("quadratic", qk, q_se), ("linear", lk, l_se)):
        ours = cohen_kappa(first, second, cats, weights=weights)
        assert ours.kappa.value == pytest.approx(k, rel=1e-9)
        assert ours.kappa.ci95 == pytest.approx((k - z * k_se, k + z * k_se), rel=1e-6)
        assert ours.weighted_kappa.value == pytest.approx(value, rel=1e-9)
        assert ours.weighted_kappa.ci95 == pytest.approx((value - z * se, value + z * se), rel=1e-6)
