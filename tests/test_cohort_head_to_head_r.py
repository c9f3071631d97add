"""The head-to-head section of ``hepavol cohort`` against R run live (R 4.2 + survival, Debian ``r-base-core
r-cran-survival``).

A simulated cohort is analysed by ``hepavol cohort --pool-modalities``; the R script below recomputes, from the
derived table alone (its own RECIST and hepatic-tumour-load codings and cut-offs), for CT, MR and pooled and
each criterion: ``coxph`` (Efron) on the score and on the high-risk side of the cut-off, ``concordance`` (Harrell's
C), ``survfit`` 1 − S(12 months) with its default log CI on each side, and the cumulative/dynamic IPCW AUC at
12 months written out by hand (Uno et al., JASA 2007;102:1229-40; cases T ≤ t with an event weighted by
1/Ĝ(T), Ĝ the Kaplan–Meier estimate of censoring from ``survfit``; controls T > t; tied scores ½).
"""

from __future__ import annotations

import csv
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
d$pfs_event <- as.integer(d$pfs_event == "True")
d <- d[d$landmark == "True", ]
out <- function(key, value) cat(key, sprintf("%.12g", value), "\n")
# Converged past R's default eps = 1e-9 (which stops ~1e-5 short on weakly informative fits); a fit that warns
# (monotone likelihood: "coefficient may be infinite", "did not converge") is printed as NULL: hepavol reports null.
fit <- function(f, data, key) {
  g <- tryCatch(coxph(f, data = data, ties = "efron"), warning = function(w) NULL)
  if (is.null(g)) { cat(paste0(key, ".coef"), "NULL\n"); return(invisible()) }
  g <- suppressWarnings(coxph(f, data = data, ties = "efron", control = coxph.control(eps = 1e-13, iter.max = 50)))
  out(paste0(key, ".coef"), coef(g)[1]); out(paste0(key, ".se"), sqrt(vcov(g)[1, 1]))
}
d$recist_category <- c(CR = 0, PR = 1, SD = 2, PD = 3)[d$recist_response]
d$hepatic_tumor_load_class <- c("<=10" = 0, "11-25" = 1, "26-50" = 2, ">50" = 3)[d$hepatic_tumor_load_class]
d$total_volume_change_percent <- d$volume_change_percent
d$three_largest_size_rule <- d$three_largest_diameter_change_percent
high <- list(
  recist_category = function(s) s >= 2, total_volume_change_percent = function(s) s > -65,
  target_volume_change_percent = function(s) s > -65, sld_change_percent = function(s) s > -30,
  tgr_volume_percent_per_month = function(s) s >= 0.8, tgr_recist_percent_per_month = function(s) s >= 0.8,
  three_largest_size_rule = function(s) s > -10, hepatic_tumor_load_class = function(s) s >= 2)
t12 <- 12 * 365.25 / 12
auc_uno <- function(time, status, score, t) {
  cens <- survfit(Surv(time, 1 - status) ~ 1)
  G <- stepfun(cens$time, c(1, cens$surv))
  case <- time <= t & status == 1
  ctrl <- time > t
  w <- 1 / G(time[case])
  num <- 0
  for (k in seq_along(w)) {
    si <- score[case][k]
    num <- num + w[k] * (sum(si > score[ctrl]) + 0.5 * sum(si == score[ctrl]))
  }
  num / (sum(w) * sum(ctrl))
}
# --repeatability-cv 10: RC = 1.96·sqrt(2)·sqrt(log(1 + CV^2)) on the log scale (Bland & Altman 1986).
rc <- qnorm(0.975) * sqrt(2) * sqrt(log1p(0.1^2))
lr <- log1p(d$volume_change_percent / 100)
months <- d$interval_days / (365.25 / 12)
for (i in seq_len(nrow(d))) {
  key <- paste0("patient.", d$line[i])
  out(paste0(key, ".volume_change_ci95_low_percent"), 100 * expm1(lr[i] - rc))
  out(paste0(key, ".volume_change_ci95_high_percent"), 100 * expm1(lr[i] + rc))
  out(paste0(key, ".tgr_volume_ci95_low_percent_per_month"), 100 * expm1((lr[i] - rc) / months[i]))
  out(paste0(key, ".tgr_volume_ci95_high_percent_per_month"), 100 * expm1((lr[i] + rc) / months[i]))
}
for (pop in c("CT", "MR", "pooled")) {
  p <- if (pop == "pooled") d else d[d$modality == pop, ]
  below <- abs(log1p(p$volume_change_percent / 100)) < rc
  out(paste0("sdc.", pop, ".volume_change_below_sdc"), sum(below))
  x <- p[!below, ]
  for (crit in c("total_volume_change_percent", "tgr_volume_percent_per_month")) {
    x$high <- as.integer(high[[crit]](x[[crit]]))
    key <- paste0("sdc.", pop, ".", crit)
    out(paste0(key, ".n"), nrow(x))
    if (sum(x$high) > 0 && sum(x$high) < nrow(x)) fit(Surv(landmark_days, pfs_event) ~ high, x, paste0(key, ".cox_cutoff"))
  }
}
for (pop in c("CT", "MR", "pooled")) {
  p <- if (pop == "pooled") d else d[d$modality == pop, ]
  for (crit in names(high)) {
    x <- p[!is.na(p[[crit]]), ]
    x$score <- x[[crit]]
    x$high <- as.integer(high[[crit]](x$score))
    key <- paste0(pop, ".", crit)
    out(paste0(key, ".n"), nrow(x))
    out(paste0(key, ".n_high"), sum(x$high))
    fit(Surv(landmark_days, pfs_event) ~ score, x, paste0(key, ".cox"))
    if (sum(x$high) > 0 && sum(x$high) < nrow(x)) fit(Surv(landmark_days, pfs_event) ~ high, x, paste0(key, ".cox_cutoff"))
    out(paste0(key, ".cindex.c"),
        concordance(Surv(landmark_days, pfs_event) ~ score, data = x, reverse = TRUE)$concordance)
    out(paste0(key, ".auc_12_months"), auc_uno(x$landmark_days, x$pfs_event, x$score, t12))
    for (side in c("high", "low")) {
      y <- x[x$high == (side == "high"), ]
      if (nrow(y) == 0) next
      s <- summary(survfit(Surv(landmark_days, pfs_event) ~ 1, data = y), times = t12, extend = TRUE)
      out(paste0(key, ".progression_12_months.", side, ".proportion"), 1 - s$surv)
      if (s$surv < 1 && s$surv > 0) {  # R gives no log-scale CI at S = 0 (hepavol: null)
        out(paste0(key, ".progression_12_months.", side, ".ci_low"), 1 - s$upper)
        out(paste0(key, ".progression_12_months.", side, ".ci_high"), 1 - s$lower)
      }
    }
  }
}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict[str, float | None]]:
    tmp = tmp_path_factory.mktemp("h2h_r")
    table = tmp / "cohort.csv"
    write_cohort_table(simulate_table(160, seed=7, true_hr_per_10pct=1.3, sd_log_ratio=0.4), table)
    argv = ["cohort", str(table), "--out", str(tmp / "out"), "--bootstrap", "20", "--no-pdf", "--pool-modalities",
            "--repeatability-cv", "10"]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((tmp / "out" / "results.json").read_text())
    with open(tmp / "out" / "derived.csv", newline="") as fh:
        results["derived"] = {row["line"]: row for row in csv.DictReader(fh)}
    stdout = run_r(
        R_SCRIPT, tmp, str(tmp / "out" / "derived.csv"), packages="r-cran-survival r-cran-proc", timeout=300
    )
    return results, parse_r_values(stdout)


def _get_other(results: dict, dotted: str) -> float | None:
    """``patient.LINE.column`` from derived.csv; ``sdc.POP.…`` from head_to_head.repeatability."""
    kind, pop, *path = dotted.split(".")
    if kind == "patient":
        cell = results["derived"][pop][path[0]]
        return None if cell == "" else float(cell)
    entry = results["head_to_head"]["repeatability"]["populations"][pop]
    if len(path) == 1:
        return float(entry[path[0]])
    node = entry["without_below_sdc"][path[0]]
    for part in path[1:]:
        node = node[part]
    return node  # type: ignore[return-value]


def _get(h2h: dict, dotted: str) -> float | None:
    pop, crit, *path = dotted.split(".")
    node = h2h["populations"][pop]["criteria"][crit]
    *inner, last = path
    for part in inner:
        node = node[part]
    if last in ("ci_low", "ci_high"):
        ci = node["ci95"]
        return None if ci is None else ci[0 if last == "ci_low" else 1]
    return node[last]


def test_every_head_to_head_figure_matches_r(run: tuple[dict, dict[str, float | None]]) -> None:
    """R coxph, concordance, survfit and the hand-written IPCW AUC agree with results.json to 1e-6; the Cox fits
    R warns about (monotone likelihood) are null in hepavol. With --repeatability-cv 10, each landmark patient's
    95 % intervals (derived.csv), the count below the smallest detectable change and the cut-off Cox models
    without those patients agree too."""
    results, r_values = run
    h2h = results["head_to_head"]
    assert set(h2h["populations"]) == {"CT", "MR", "pooled"}
    assert len(r_values) > 250
    assert any(v is None for v in r_values.values())  # the test data include a monotone likelihood
    assert (
        sum(k.startswith("sdc.") and k.endswith(".cox_cutoff.coef") for k in r_values) == 3
    )  # TGR_V; -65 % nobody meets
    assert sum(k.startswith("patient.") for k in r_values) == 4 * results["landmark_n"]
    mismatches = []
    for key, r_value in r_values.items():
        ours = _get_other(results, key) if key.startswith(("patient.", "sdc.")) else _get(h2h, key)
        if r_value is None:
            if ours is not None:
                mismatches.append(f"{key}: hepavol {ours!r}, R warns (infinite coefficient)")
        elif ours is None or ours != pytest.approx(r_value, rel=1e-6, abs=1e-9):
            mismatches.append(f"{key}: hepavol {ours!r} vs R {r_value!r}")
    assert not mismatches, "\n".join(mismatches)


PROC_SCRIPT = r"""
suppressMessages(library(pROC))
d <- read.csv(commandArgs(trailingOnly = TRUE)[1])
r <- roc(d$case, d$score, levels = c(0, 1), direction = "<", quiet = TRUE)
ci <- ci.auc(r, method = "delong")
cat("auc", sprintf("%.12g", as.numeric(r$auc)), "\n")
cat("ci_low", sprintf("%.12g", ci[1]), "\n"); cat("ci_high", sprintf("%.12g", ci[3]), "\n")
cat("se", sprintf("%.12g", sqrt(var(r, method = "delong"))), "\n")
b <- coords(r, "best", best.method = "youden", ret = c("threshold", "sensitivity", "specificity"))
cat("threshold", sprintf("%.12g", b$threshold[1]), "\n")
cat("sensitivity", sprintf("%.12g", b$sensitivity[1]), "\n")
cat("specificity", sprintf("%.12g", b$specificity[1]), "\n")
"""


def test_greponet_roc_delong_and_youden_match_proc(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """hepavol's DeLong AUC, SE and CI and the Youden cut-off against R pROC 1.18 (Debian r-cran-proc), run live,
    on the 3 ± 1-month diameter TGR of a simulated cohort (with ties between cases and controls)."""
    import numpy as np

    from hepavol.cohort.greponet import delong_auc, youden_cutoff

    rng = np.random.default_rng(5)
    case = rng.random(90) < 0.4
    score = np.round(rng.normal(0.0, 2.0, 90) + 1.5 * case, 1)  # rounded: ties occur
    path = tmp_path / "roc.csv"
    path.write_text("score,case\n" + "".join(f"{float(s)!r},{int(c)}\n" for s, c in zip(score, case)))
    r = parse_r_values(run_r(PROC_SCRIPT, tmp_path, str(path), packages="r-cran-proc"))
    ours = delong_auc(score, case)
    assert ours.auc == pytest.approx(r["auc"], rel=1e-9)
    assert ours.se == pytest.approx(r["se"], rel=1e-9)
    assert ours.ci95 == pytest.approx((r["ci_low"], r["ci_high"]), rel=1e-9)
    assert youden_cutoff(score, case) == pytest.approx((r["threshold"], r["sensitivity"], r["specificity"]))
