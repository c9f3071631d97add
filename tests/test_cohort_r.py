"""``hepavol cohort`` against R run live (R 4.2 + survival, Debian ``r-base-core r-cran-survival``).

A simulated cohort is analysed by hepavol and, independently, by the R script below on the same derived table
(``derived.csv``, which ``hepavol cohort`` writes). R computes every figure of ``results.json`` that R's base
and survival packages offer; the Spearman CI and the bootstrap are not in base R and are checked against
published examples in ``tests/test_cohort_stats.py``.
"""

from __future__ import annotations

import json

import pytest
from tests._r_helpers import parse_r_values, run_r

from hepavol.cli import main
from hepavol.cohort import simulate_table, write_cohort_table

pytestmark = pytest.mark.external

R_SCRIPT = r"""
suppressMessages(library(survival))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE)
d$pfs_event <- as.integer(d$pfs_event == "True" | d$pfs_event == "1" | d$pfs_event == "true")
out <- function(key, value) cat(key, sprintf("%.12g", value), "\n")
cox <- function(key, f, data) {
  s <- summary(coxph(f, data = data, ties = "efron"))
  out(paste0(key, ".coef"), s$coefficients[1, "coef"])
  out(paste0(key, ".se"), s$coefficients[1, "se(coef)"])
  out(paste0(key, ".p"), s$coefficients[1, "Pr(>|z|)"])
  out(paste0(key, ".ci_low"), s$conf.int[1, "lower .95"])
  out(paste0(key, ".ci_high"), s$conf.int[1, "upper .95"])
  z <- cox.zph(coxph(f, data = data, ties = "efron", x = TRUE, y = TRUE, model = TRUE), transform = "km")$table
  out(paste0(key, ".ph_chisq"), z[1, "chisq"])
  out(paste0(key, ".ph_p"), z[1, "p"])
}
lm <- d[d$landmark == "True", ]
cox("cox_volume_change", Surv(landmark_days, pfs_event) ~ volume_change_percent, lm)
lms <- lm[!is.na(lm$sld_change_percent), ]
cox("cox_sld_change", Surv(landmark_days, pfs_event) ~ sld_change_percent, lms)
out("cindex_volume_change.c",
    concordance(Surv(landmark_days, pfs_event) ~ volume_change_percent, data = lms, reverse = TRUE)$concordance)
out("cindex_sld_change.c",
    concordance(Surv(landmark_days, pfs_event) ~ sld_change_percent, data = lms, reverse = TRUE)$concordance)
for (v in c("tgr_volume_percent_per_month", "tgr_recist_percent_per_month")) {
  x <- lm[!is.na(lm[[v]]), ]
  x$high <- x[[v]] >= 0.8
  sd <- survdiff(Surv(landmark_days, pfs_event) ~ high, data = x)
  key <- if (v == "tgr_volume_percent_per_month") "logrank_tgr_volume_0_8" else "logrank_tgr_recist_0_8"
  out(paste0(key, ".chisq"), sd$chisq)
  out(paste0(key, ".p"), pchisq(sd$chisq, 1, lower.tail = FALSE))
  out(paste0(key, ".n_high"), sum(x$high))
}
cox("cox_log2_baseline_volume_ttp", Surv(ttp_days, pfs_event) ~ log2_baseline_volume, d)
sp <- function(key, x, y) {
  ok <- !is.na(x) & !is.na(y)
  r <- suppressWarnings(cor.test(x[ok], y[ok], method = "spearman", exact = FALSE))
  out(paste0(key, ".rho"), r$estimate); out(paste0(key, ".p"), r$p.value); out(paste0(key, ".n"), sum(ok))
}
sp("spearman_baseline_volume_vs_cga", d$baseline_volume_ml, d$cga_ug_l)
sp("spearman_lesion_count_vs_cga", d$lesion_count, d$cga_ug_l)
sp("spearman_tgr_volume_vs_ki67", d$tgr_volume_percent_per_month, d$ki67_percent)
sp("spearman_tgr_recist_vs_ki67", d$tgr_recist_percent_per_month, d$ki67_percent)
w <- wilcox.test(d$baseline_volume_ml[d$extra_abdominal == "True"],
                 d$baseline_volume_ml[d$extra_abdominal == "False"], exact = FALSE, correct = TRUE)
out("mannwhitney_baseline_volume_by_extra_abdominal.u", w$statistic)
out("mannwhitney_baseline_volume_by_extra_abdominal.p", w$p.value)
out("landmark_n", nrow(lm)); out("landmark_events", sum(lm$pfs_event))
"""


@pytest.fixture(scope="module")
def cohort_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict[str, float]]:
    tmp = tmp_path_factory.mktemp("cohort_r")
    table = tmp / "cohort.csv"
    write_cohort_table(simulate_table(120, seed=11, true_hr_per_10pct=1.25), table)
    assert main(["cohort", str(table), "--out", str(tmp / "out"), "--bootstrap", "50", "--no-pdf"]) == 0
    results = json.loads((tmp / "out" / "results.json").read_text())
    return results, parse_r_values(run_r(R_SCRIPT, tmp, str(tmp / "out" / "derived.csv")))


def _get(results: dict, dotted: str) -> float:
    key, _, field = dotted.partition(".")
    if not field:
        return float(results[key])
    if field in ("ci_low", "ci_high"):
        return float(results[key]["ci95"][0 if field == "ci_low" else 1])
    return float(results[key][field])


def test_every_r_figure_matches(cohort_run: tuple[dict, dict[str, float]]) -> None:
    """R: coxph (Efron), cox.zph(transform = "km"), survdiff, concordance(reverse = TRUE),
    cor.test(spearman, exact = FALSE), wilcox.test(exact = FALSE) on the derived table agree with results.json
    to 1e-6 (relative)."""
    results, r_values = cohort_run
    assert len(r_values) == 45
    mismatches = []
    for key, r_value in r_values.items():
        ours = _get(results, key)
        if ours != pytest.approx(r_value, rel=1e-6, abs=1e-9):
            mismatches.append(f"{key}: hepavol {ours!r} vs R {r_value!r}")
    assert not mismatches, "\n".join(mismatches)
