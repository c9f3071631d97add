"""Statistics that cannot be estimated: what R says and what ``hepavol cohort`` reports (issue 19).

Each case is run live in R (``Rscript``, Debian ``r-base-core r-cran-survival``) next to hepavol on the same
numbers. R either refuses (an error), returns NA/NaN, or, for a Cox model with a monotone likelihood, warns and
prints a finite coefficient that only says where its Newton–Raphson iterations stopped. hepavol reports ``null``
with a reason in every case (README, "Degenerate cohorts"), keeps going with the rest of the analysis, and puts
the reason in ``results.json``, the report and on the console.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from tests._r_helpers import run_r

from hepavol.cli import main
from hepavol.cohort.stats import (
    concordance_comparison,
    cox_univariable,
    logrank_two_groups,
    mann_whitney,
    monotone_likelihood,
    spearman,
)

# Six patients; every event (t = 5, 8, 20) has the highest x of the patients still at risk: the partial
# likelihood increases for ever with the coefficient.
MONO_T = [5, 8, 12, 20, 25, 30]
MONO_E = [1, 1, 0, 1, 0, 0]
MONO_X = [3.0, 2.5, 1.0, 2.0, 0.5, 1.5]
# The same with x of the patients at t = 8 and t = 25 swapped: one event no longer has the highest value, the
# maximum is finite.
FINITE_X = [3.0, 0.5, 1.0, 2.0, 2.5, 1.5]

R_SCRIPT = r"""
suppressMessages(library(survival))
say <- function(key, value) cat(key, "\t", value, "\n", sep = "")
run <- function(key, expr) {
  r <- withCallingHandlers(
    tryCatch(expr, error = function(e) { say(paste0(key, ".error"), conditionMessage(e)); NULL }),
    warning = function(w) { say(paste0(key, ".warning"), conditionMessage(w)); invokeRestart("muffleWarning") })
  r
}
d <- data.frame(t = c(5, 8, 12, 20, 25, 30), e = c(1, 1, 0, 1, 0, 0),
                x = c(3, 2.5, 1, 2, 0.5, 1.5), xf = c(3, 0.5, 1, 2, 2.5, 1.5))
f <- run("mono", coxph(Surv(t, e) ~ x, data = d, ties = "efron"))
say("mono.coef", sprintf("%.10g", coef(f))); say("mono.se", sprintf("%.10g", sqrt(f$var[1, 1])))
f <- run("mono_neg", coxph(Surv(t, e) ~ I(-x), data = d, ties = "efron"))
say("mono_neg.coef", sprintf("%.10g", coef(f)))
f <- run("finite", coxph(Surv(t, e) ~ xf, data = d, ties = "efron"))
say("finite.coef", sprintf("%.10g", coef(f))); say("finite.se", sprintf("%.10g", sqrt(f$var[1, 1])))
d$high <- d$t < 21
f <- run("binary", coxph(Surv(t, e) ~ high, data = d, ties = "efron"))
say("binary.coef", sprintf("%.10g", coef(f)))
c0 <- run("c_no_events", concordance(Surv(t, e) ~ x, data = data.frame(t = c(1, 2, 3), e = c(0, 0, 0),
                                     x = c(1, 2, 3)), reverse = TRUE))
say("c_no_events.c", c0$concordance)
c1 <- run("c_no_pairs", concordance(Surv(t, e) ~ x, data = data.frame(t = c(1, 2, 3), e = c(0, 0, 1),
                                    x = c(1, 2, 3)), reverse = TRUE))
say("c_no_pairs.c", c1$concordance)
run("logrank_one_group", survdiff(Surv(t, e) ~ high, data = d[d$high, ]))
sd <- run("logrank_separated", survdiff(Surv(t, e) ~ high, data = d))
say("logrank_separated.chisq", sprintf("%.10g", sd$chisq))
s2 <- run("spearman_n2", cor.test(c(1, 2), c(3, 5), method = "spearman", exact = FALSE))
say("spearman_n2.rho", s2$estimate); say("spearman_n2.p", s2$p.value)
run("spearman_n1", cor.test(1, 3, method = "spearman", exact = FALSE))
sc <- run("spearman_constant", cor.test(c(1, 2, 3, 4), c(7, 7, 7, 7), method = "spearman", exact = FALSE))
say("spearman_constant.rho", sc$estimate)
run("wilcox_empty", wilcox.test(c(1.5, 2, 3), numeric(0), exact = FALSE, correct = TRUE))
"""


@pytest.fixture(scope="module")
def r_out(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    stdout = run_r(R_SCRIPT, tmp_path_factory.mktemp("degenerate_r"))
    out: dict[str, str] = {}
    for line in stdout.splitlines():
        key, _, value = line.partition("\t")
        out[key] = (out[key] + " | " + value) if key in out else value
    return out


@pytest.mark.external
def test_monotone_likelihood_r_warns_and_prints_a_number_hepavol_says_null(r_out: dict[str, str]) -> None:
    """R survival 3.5-3: ``coxph(Surv(t, e) ~ x)`` warns "Ran out of iterations and did not converge" and prints
    coef 38.79, se 18784 (exp(coef) ≈ 7e16: the value is where the 20 iterations stopped, not an estimate).
    hepavol: coef, SE, HR, CI and p are null and the note says the likelihood is monotone (+infinity)."""
    assert "did not converge" in r_out["mono.warning"] or "infinite" in r_out["mono.warning"]
    r_coef, r_se = float(r_out["mono.coef"]), float(r_out["mono.se"])
    assert r_coef > 10
    assert r_se > 100 * r_coef
    r = cox_univariable(MONO_T, MONO_E, MONO_X, covariate="x", unit="per 1")
    assert (r.coef, r.se, r.hr, r.ci95, r.z, r.p) == (None,) * 6
    assert r.note is not None
    assert r.note.startswith("not estimable: monotone likelihood")
    assert "+infinity" in r.note
    assert "R coxph warns" in r.note
    # The other direction: R's coefficient is as large and negative; hepavol says -infinity (HR 0).
    assert float(r_out["mono_neg.coef"]) < -10
    neg = cox_univariable(MONO_T, MONO_E, [-v for v in MONO_X], covariate="x", unit="per 1")
    assert neg.coef is None
    assert neg.note is not None
    assert "-infinity" in neg.note
    # A binary covariate (the log-rank HR): every event in the 'high' group while low patients are at risk.
    assert "binary.warning" in r_out
    assert float(r_out["binary.coef"]) > 10
    assert monotone_likelihood(MONO_T, MONO_E, [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]) == "+"


@pytest.mark.external
def test_finite_maximum_is_estimated_as_r(r_out: dict[str, str]) -> None:
    """Break the separation at one event: R converges without a warning and hepavol gives R's coefficient and SE
    (the monotone check does not over-trigger)."""
    assert "finite.warning" not in r_out
    r = cox_univariable(MONO_T, MONO_E, FINITE_X, covariate="x", unit="per 1", ph_test=False)
    assert r.note is None
    assert r.coef == pytest.approx(float(r_out["finite.coef"]), rel=1e-6)
    assert r.se == pytest.approx(float(r_out["finite.se"]), rel=1e-6)


@pytest.mark.external
def test_cindex_without_comparable_pairs(r_out: dict[str, str]) -> None:
    """R ``concordance(..., reverse = TRUE)`` gives NaN (0 concordant, 0 discordant) with no events, and with one
    event at the last time; hepavol: c null, the note names the reason."""
    assert r_out["c_no_events.c"] == "NaN"
    assert r_out["c_no_pairs.c"] == "NaN"
    res, diff = concordance_comparison([1, 2, 3], [0, 0, 0], {"a": [1, 2, 3], "b": [3, 2, 1]}, resamples=50)
    assert res["a"].c is None
    assert res["a"].ci95 is None
    assert res["a"].comparable_pairs == 0
    assert res["a"].note is not None
    assert "no comparable pairs (no events among 3 patient(s))" in res["a"].note
    assert diff.difference is None
    assert diff.note is not None
    assert diff.note.startswith("not estimable")
    res, _ = concordance_comparison([1, 2, 3], [0, 0, 1], {"a": [1, 2, 3]}, resamples=50)
    assert res["a"].c is None
    assert res["a"].note is not None
    assert "no patient was followed longer than a patient with an event" in res["a"].note


@pytest.mark.external
def test_logrank_with_one_empty_group(r_out: dict[str, str]) -> None:
    """R ``survdiff`` refuses: "There is only 1 group"; hepavol: chisq and p null, note names the empty group."""
    assert r_out["logrank_one_group.error"] == "There is only 1 group"
    r = logrank_two_groups(MONO_T, MONO_E, [True] * 6)
    assert (r.chisq, r.p, r.hr) == (None, None, None)
    assert r.note == "not estimable: the low group is empty (all 6 patient(s) in one group)"
    r = logrank_two_groups(MONO_T, MONO_E, [False] * 6)
    assert r.chisq is None
    assert r.note is not None
    assert "high group is empty" in r.note


@pytest.mark.external
def test_logrank_with_a_separated_hr_keeps_the_test(r_out: dict[str, str]) -> None:
    """Log-rank is defined when every event is in one group: hepavol's χ² is R ``survdiff``'s; only the Cox HR
    is infinite (R: a warning and coef > 10) and is null with the reason."""
    r = logrank_two_groups(MONO_T, MONO_E, [True, True, True, True, False, False])
    assert r.chisq == pytest.approx(float(r_out["logrank_separated.chisq"]), rel=1e-9)
    assert r.p is not None
    assert r.hr is None
    assert r.hr_ci95 is None
    assert r.note is not None
    assert r.note.startswith("Cox HR high vs low not estimable: monotone likelihood")


@pytest.mark.external
def test_spearman_too_few_or_constant(r_out: dict[str, str]) -> None:
    """R ``cor.test(method = "spearman")``: 2 pairs give rho = 1 with p NaN; 1 pair is refused ("not enough finite
    observations"); a constant variable gives NA with the warning "the standard deviation is zero". hepavol:
    rho, CI and p null for all three (a rank correlation of 2 points is ±1 by construction)."""
    assert float(r_out["spearman_n2.rho"]) == 1.0
    assert r_out["spearman_n2.p"] == "NaN"
    assert "not enough finite observations" in r_out["spearman_n1.error"]
    assert r_out["spearman_constant.rho"] == "NA"
    assert "standard deviation is zero" in r_out["spearman_constant.warning"]
    for x, y, why in (
        ([1, 2], [3, 5], "2 patient(s) with both a and b (3 needed"),
        ([1], [3], "1 patient(s) with both a and b"),
        ([1, 2, 3, 4], [7, 7, 7, 7], "b has the same value for all 4 patients"),
        ([1, 2, np.nan, 4], [7, 8, 9, np.nan], "2 patient(s) with both a and b"),
    ):
        r = spearman(x, y, x_name="a", y_name="b")
        assert (r.rho, r.ci95, r.p) == (None, None, None)
        assert r.note is not None
        assert r.note.startswith("not estimable")
        assert why in r.note


@pytest.mark.external
def test_mann_whitney_with_an_empty_group(r_out: dict[str, str]) -> None:
    """R ``wilcox.test(x, numeric(0))`` refuses ("not enough 'y' observations"); hepavol: U and p null."""
    assert "not enough 'y' observations" in r_out["wilcox_empty.error"]
    r = mann_whitney([1.5, 2, 3], [])
    assert (r.u, r.p, r.rank_biserial) == (None, None, None)
    assert r.note is not None
    assert "the second group is empty (n = 3 vs 0" in r.note
    # All values equal: R gives W with p = NA; hepavol gives U with p null.
    r = mann_whitney([1, 1], [1, 1, 1])
    assert r.u == 3.0
    assert r.p is None
    assert r.note is not None
    assert r.note.startswith("p not estimable")


# A 3-patient cohort (the rows `hepavol simulate --patients 3 --seed 4` writes): the TTP Cox model on log2
# baseline volume is monotone (the largest tumour progresses first, and so on), every landmark patient has a
# volumetric TGR above 0.8 %/month (the low group is empty) and the RECIST-TGR groups separate the events.
THREE = """patient_id,modality,baseline_date,early_date,baseline_volume_ml,early_volume_ml,baseline_sld_mm,early_sld_mm,lesion_count,liver_volume_ml,pfs_event,pfs_date,ki67_percent,cga_ug_l,extra_abdominal,grade
SIM-001,CT,2022-01-13,2022-07-14,57.329649,61.779566,67.8,69.7,12.0,1469.8,1,2023-02-28,5.4,521.0,0,G2
SIM-002,CT,2016-07-29,2016-12-24,17.418551,18.319682,52.0,52.6,5.0,1468.5,1,2019-05-01,0.8,54.0,0,G1
SIM-003,CT,2018-08-03,2019-01-29,38.040317,46.788727,53.3,57.0,13.0,2145.0,1,2020-07-11,11.7,206.0,1,G2
"""


def test_three_patient_cohort_runs_with_nulls_and_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was ``internal error: OverflowError: math range error``. Now exit 0; each statistic that cannot be
    estimated is null in results.json with a reason, a line in the report and a warning on the console; the
    others are computed."""
    table = tmp_path / "three.csv"
    table.write_text(THREE)
    out = tmp_path / "out"
    assert main(["cohort", str(table), "--out", str(out), "--bootstrap", "50", "--pdf-engine", "matplotlib"]) == 0
    captured = capsys.readouterr()
    res = json.loads((out / "results.json").read_text())
    ttp = res["cox_log2_baseline_volume_ttp"]
    assert ttp["coef"] is None
    assert ttp["hr"] is None
    assert ttp["ci95"] is None
    assert ttp["note"].startswith("not estimable: monotone likelihood")
    lv = res["logrank_tgr_volume_0_8"]
    assert lv["chisq"] is None
    assert lv["note"].startswith("not estimable: the low group is empty")
    lr = res["logrank_tgr_recist_0_8"]
    assert lr["chisq"] is not None
    assert lr["hr"] is None
    assert "monotone likelihood" in lr["note"]
    # The rest goes on: the primary Cox models are finite (3 events, non-separated).
    assert res["cox_volume_change"]["coef"] is not None
    assert math.isfinite(res["cox_volume_change"]["hr"])
    assert res["cindex_volume_change"]["c"] is not None
    # Console: one warning line per null, and the headline lists them.
    for key in ("cox_log2_baseline_volume_ttp", "logrank_tgr_volume_0_8", "logrank_tgr_recist_0_8"):
        assert f"warning: {key}: " in captured.err
        assert any(w.startswith(f"{key}: ") for w in res["warnings"])
    assert "not estimable (null in results.json, reason in the warnings): " in captured.out
    assert "logrank_tgr_volume_0_8" in captured.out
    assert "cox_log2_baseline_volume_ttp" in captured.out
    assert "internal error" not in captured.err
    # Report: a "Not estimable" line under the tables, with the reason.
    html = (out / "report.html").read_text()
    assert "Not estimable (shown as –)" in html
    assert "<b>log2 baseline volume</b>: not estimable: monotone likelihood" in html
    assert "<b>Log-rank, volumetric TGR</b>: not estimable: the low group is empty" in html
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"


def test_cohort_without_events_or_variation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every patient censored, one modality, constant CgA and everyone with extra-abdominal disease: Cox models,
    C-index, log-rank, the CgA correlations and Mann–Whitney are all null with reasons; exit 0."""
    rows = THREE.splitlines()
    header, body = rows[0], rows[1:]
    lines = [header]
    for i, row in enumerate(body * 2):
        cells = row.split(",")
        cells[0] = f"P{i}"
        cells[10] = "0"  # censored
        cells[13] = "100"  # CgA constant
        cells[14] = "1"  # extra-abdominal for all
        lines.append(",".join(cells))
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    assert (
        main(["cohort", str(tmp_path / "t.csv"), "--out", str(tmp_path / "o"), "--bootstrap", "20", "--no-pdf"])
        == 0
    )
    err = capsys.readouterr().err
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["landmark_events"] == 0
    for key in ("cox_volume_change", "cox_sld_change", "cox_log2_baseline_volume_ttp"):
        assert res[key]["coef"] is None
        assert res[key]["note"] == "not estimable: 6 patients, 0 events"
    assert res["cindex_volume_change"]["c"] is None
    assert "no events among 6 patient(s)" in res["cindex_volume_change"]["note"]
    assert res["logrank_tgr_recist_0_8"]["chisq"] is None
    sp = res["spearman_baseline_volume_vs_cga"]
    assert sp["rho"] is None
    assert "cga_ug_l has the same value for all 6 patients" in sp["note"]
    mw = res["mannwhitney_baseline_volume_by_extra_abdominal"]
    assert mw["u"] is None
    assert mw["note"].startswith("not estimable: 6 patient(s) with and 0 without")
    assert "warning: mannwhitney_baseline_volume_by_extra_abdominal: not estimable" in err
    assert "warning: spearman_baseline_volume_vs_cga: not estimable" in err
