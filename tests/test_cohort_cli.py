"""``hepavol cohort``: reading the table, derived variables, the end-to-end run on a simulated cohort whose true
effect is known, the report files, and clear errors on bad input."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest

from hepavol.cli import main
from hepavol.cohort import RESULT_KEYS, derive, read_cohort_table, simulate_table, write_cohort_table
from hepavol.cohort.stats import cox_univariable
from hepavol.errors import TableError

HEADER = (
    "patient_id,modality,baseline_date,early_date,baseline_volume_ml,early_volume_ml,baseline_sld_mm,"
    "early_sld_mm,lesion_count,liver_volume_ml,pfs_event,pfs_date,ki67_percent,cga_ug_l,extra_abdominal,grade"
)
ROWS = [
    "P1,CT,2020-01-01,2020-04-01,100,110,50,55,3,1500,1,2021-01-01,2.5,120,0,G1",
    "P2,MR,2020-02-01,2020-05-15,40,30,30,28,2,1400,0,2022-02-01,5,80,1,G2",
    "P3,CT,2020-03-01,2020-06-01,10,20,20,30,1,1600,1,2020-06-01,,,,",
    "P4,MRI,2020-03-01,,12,,22,,1,1600,0,2020-05-01,1,50,no,",
]


def _write(tmp_path: Path, rows: list[str], header: str = HEADER) -> Path:
    path = tmp_path / "cohort.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_read_table_and_derived_variables(tmp_path: Path) -> None:
    """Values parse with their units; derived changes and TGR follow the formulas (checked by hand)."""
    table = read_cohort_table(_write(tmp_path, ROWS))
    assert len(table) == 4
    assert table.modalities == ("CT", "MR")
    p1, p2, p3, p4 = derive(table)
    # P1: 100 -> 110 mL in 91 days: +10 %, TGR_V 3.239274 %/month (SCIENCE.md §2.4); SLD 50 -> 55: +10 %.
    assert p1.volume_change_percent == pytest.approx(10.0)
    assert p1.sld_change_percent == pytest.approx(10.0)
    assert p1.tgr_volume_percent_per_month == pytest.approx(3.239274, abs=5e-7)
    assert p1.tgr_recist_percent_per_month == pytest.approx(10.036009, abs=5e-7)  # 50 -> 55 mm, 91 days
    assert p1.interval_days == 91
    assert (p1.landmark, p1.landmark_days, p1.ttp_days) == (True, 275, 366)  # 2020-04-01 -> 2021-01-01
    assert p1.hepatic_tumor_load_percent == pytest.approx(100 / 15)
    assert p1.hepatic_tumor_load_class == "<=10"
    assert (p1.volumetric_response, p1.recist_response) == ("SD", "SD")
    assert p2.volume_change_percent == pytest.approx(-25.0)
    assert p2.extra_abdominal is True
    # P3 progressed at its early scan: outside the landmark set; +100 % volume (PD), SLD +50 % & +10 mm (PD).
    assert not p3.landmark
    assert p3.landmark_exclusion == "progression or death on or before the early scan"
    assert (p3.volumetric_response, p3.recist_response) == ("PD", "PD")
    assert p3.ki67_percent is None
    # P4: no early scan; 'MRI' is read as MR; 'no' as False.
    assert (p4.modality, p4.landmark_exclusion, p4.extra_abdominal) == ("MR", "no early scan", False)
    assert p4.volume_change_percent is None


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    table = simulate_table(15, seed=3)
    write_cohort_table(table, tmp_path / "t.csv")
    again = read_cohort_table(tmp_path / "t.csv")
    assert [p.patient_id for p in again.patients] == [p.patient_id for p in table.patients]
    assert [p.early_date for p in again.patients] == [p.early_date for p in table.patients]
    assert [p.pfs_event for p in again.patients] == [p.pfs_event for p in table.patients]


@pytest.mark.parametrize(
    ("header", "row", "pattern"),
    [
        (HEADER.replace(",cga_ug_l", ",cga"), None, r"cohort\.csv, line 1: missing column\(s\) 'cga_ug_l'"),
        (
            HEADER,
            ROWS[0].replace("2020-04-01", "2020-13-45"),
            r"line 3, column 'early_date': value '2020-13-45' is not an ISO date",
        ),
        (
            HEADER,
            ROWS[0].replace("2020-04-01", "2019-12-01"),
            r"line 3, column 'early_date': value '2019-12-01'.*must be after the baseline",
        ),
        (
            HEADER,
            ROWS[0].replace(",100,110,", ",-100,110,"),
            r"line 3, column 'baseline_volume_ml': value '-100'.*cannot be negative",
        ),
        (
            HEADER,
            ROWS[0].replace(",1,2021-01-01,", ",2,2021-01-01,"),
            r"line 3, column 'pfs_event': value '2' is not 0/1",
        ),
        (HEADER, ROWS[0].replace("P1,CT", "P1,PET"), r"line 3, column 'modality': value 'PET' is not CT or MR"),
        (
            HEADER,
            ROWS[0].replace("P1,", "P2,"),
            r"line 3, column 'patient_id': value 'P2'.*already used on line 2",
        ),
        (HEADER, ROWS[0].replace("2021-01-01", ""), r"line 3, column 'pfs_date': value ''.*required"),
        (
            HEADER,
            ROWS[0].replace(",1500,", ",50,"),
            r"line 3, column 'liver_volume_ml': value '50'.*including the tumours",
        ),
        (
            HEADER,
            ROWS[0].replace(",110,50", ",abc,50"),
            r"line 3, column 'early_volume_ml': value 'abc' is not a number",
        ),
    ],
)
def test_bad_table_names_file_line_column_value(
    tmp_path: Path, header: str, row: str | None, pattern: str
) -> None:
    rows = [ROWS[1]] + ([row] if row else [])
    path = _write(tmp_path, rows, header)
    with pytest.raises(TableError, match=pattern):
        read_cohort_table(path)


@pytest.mark.parametrize(
    ("replace", "value"),
    [
        (("2020-04-01", "01/04/2020"), "01/04/2020"),
        (("2020-04-01", "2019-12-01"), "2019-12-01"),
        ((",100,110,", ",-5,110,"), "-5"),
    ],
)
def test_cli_bad_input_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], replace: tuple[str, str], value: str
) -> None:
    path = _write(tmp_path, [ROWS[0].replace(*replace)])
    assert main(["cohort", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert str(path) in err
    assert "line 2" in err
    assert repr(value) in err
    assert not (tmp_path / "out" / "results.json").exists()


def test_cli_missing_column_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, ROWS, HEADER.replace("pfs_date", "pfs"))
    assert main(["cohort", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "missing column(s) 'pfs_date'" in capsys.readouterr().err
    assert main(["cohort", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.csv does not exist; check the path" in capsys.readouterr().err


def test_cox_ci_covers_the_true_hr_in_repeated_simulations() -> None:
    """Coverage of the Wald 95 % CI of the landmark Cox model over 100 simulated cohorts of 80 patients
    (true HR 1.3 per +10 pp). Binomial(100, 0.95): P(X <= 88) < 0.5 %, so >= 89 covering CIs is required."""
    truth = math.log(1.3) / 10.0
    covered = 0
    for seed in range(100):
        pts = [p for p in derive(simulate_table(80, seed=1000 + seed)) if p.landmark]
        r = cox_univariable(
            [p.landmark_days for p in pts],
            [p.pfs_event for p in pts],
            [p.volume_change_percent for p in pts],
            covariate="v",
            unit="pp",
            ph_test=False,
        )
        assert r.coef is not None
        assert r.se is not None
        covered += abs(r.coef - truth) <= 1.959964 * r.se
    assert covered >= 89


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    tmp = tmp_path_factory.mktemp("cohort_e2e")
    table = tmp / "cohort.csv"
    write_cohort_table(simulate_table(200, seed=5, true_hr_per_10pct=1.3), table)
    out = tmp / "out"
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(["cohort", str(table), "--out", str(out), "--bootstrap", "300", "--pdf-engine", "matplotlib"])
    assert code == 0
    return out, json.loads((out / "results.json").read_text()), buf.getvalue()


def test_end_to_end_recovers_the_true_effect(e2e: tuple[Path, dict, str]) -> None:
    """Simulated cohort, true HR 1.3 per +10 pp of volume change: the CI of results.json covers it."""
    _, results, stdout = e2e
    cox = results["cox_volume_change"]
    truth_per_pp = 1.3 ** (1 / 10)
    assert cox["ci95"][0] <= truth_per_pp <= cox["ci95"][1]
    assert cox["hr"] == pytest.approx(math.exp(cox["coef"]))
    assert "landmark set:" in stdout
    assert "report:" in stdout


def test_results_json_has_exactly_the_issue_keys(e2e: tuple[Path, dict, str]) -> None:
    _, results, _ = e2e
    assert list(results) == [*RESULT_KEYS, "warnings", "by_modality", "head_to_head", "time_points"]  # issue 22
    for key in RESULT_KEYS[2:]:
        assert isinstance(results[key], dict), key
    for key in ("cox_volume_change", "cox_sld_change", "cox_log2_baseline_volume_ttp"):
        assert {"coef", "se", "hr", "ci95", "p"} <= set(results[key])
    for key in ("cindex_volume_change", "cindex_sld_change"):
        assert {"c", "ci95", "auc_12_months", "auc_24_months"} <= set(results[key])
    assert {"difference", "ci95"} <= set(results["cindex_difference"])
    for key in ("logrank_tgr_volume_0_8", "logrank_tgr_recist_0_8"):
        assert {"chisq", "p", "n_high"} <= set(results[key])
    for key in RESULT_KEYS:
        if key.startswith("spearman"):
            assert {"rho", "ci95", "p", "n"} <= set(results[key])
            assert "Bonett" in results[key]["ci_method"]
    assert {"u", "p"} <= set(results["mannwhitney_baseline_volume_by_extra_abdominal"])
    assert sorted(results["by_modality"]) == ["CT", "MR"]
    assert list(results["by_modality"]["CT"]) == [*RESULT_KEYS, "warnings"]
    n_ct, n_mr = (results["by_modality"][m]["landmark_n"] for m in ("CT", "MR"))
    assert n_ct + n_mr == results["landmark_n"]
    assert any("left out of the landmark analysis" in w for w in results["warnings"])


def test_results_consistent_with_derived_csv(e2e: tuple[Path, dict, str]) -> None:
    """landmark_n/events and the log-rank group sizes can be recounted from derived.csv."""
    import csv

    out, results, _ = e2e
    rows = list(csv.DictReader((out / "derived.csv").open()))
    assert "patient_id" not in rows[0]  # nothing identifying is exported
    lm = [r for r in rows if r["landmark"] == "True"]
    assert results["landmark_n"] == len(lm)
    assert results["landmark_events"] == sum(r["pfs_event"] == "True" for r in lm)
    high = sum(float(r["tgr_volume_percent_per_month"]) >= 0.8 for r in lm if r["tgr_volume_percent_per_month"])
    assert results["logrank_tgr_volume_0_8"]["n_high"] == high


def test_report_files(e2e: tuple[Path, dict, str]) -> None:
    out, results, _ = e2e
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 8  # self-contained (6 + the 2 head-to-head figures)
    assert "http://" not in html
    assert "https://" not in html
    for heading in (
        "Patient flow",
        "Baseline characteristics",
        "Number at risk",
        "Methods",
        "Limitations",
        "Incorporation bias",
        "Events per variable",
    ):
        assert heading in html or heading in _png_text(out), heading
    for test in (
        "Cox",
        "Efron",
        "log-rank",
        "Harrell",
        "bootstrap",
        "cumulative/dynamic AUC",
        "Spearman",
        "Mann–Whitney",
        "Schoenfeld",
        "Fisher-z",
    ):
        assert test in html, test
    assert f"{results['landmark_n']}</b> patients in the landmark set" in html
    for name in ("km_tgr", "km_response", "forest", "cindex", "waterfall", "correlations"):
        assert (out / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (out / "figures" / f"{name}.svg").read_bytes()[:400]
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"


def _png_text(out: Path) -> str:
    # "Number at risk" is drawn inside the KM figures; the SVGs keep text as text (svg.fonttype none).
    return (out / "figures" / "km_tgr.svg").read_text()


@pytest.mark.external
def test_pdf_with_headless_chromium(tmp_path: Path) -> None:
    """The PDF is printed by Debian's headless Chromium (installed by make test) and has several pages."""
    if shutil.which("chromium") is None:
        pytest.fail("chromium is missing: install the Debian package chromium (make test does)")
    from hepavol.cohort.pipeline import run_cohort

    run = run_cohort(simulate_table(60, seed=2), tmp_path / "out", options=None, pdf=True)
    assert run.pdf_method == "chromium"
    data = run.report_pdf.read_bytes() if run.report_pdf else b""
    assert data[:5] == b"%PDF-"
    pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
    assert pages >= 5


def test_small_cohort_gives_warnings_not_crashes(tmp_path: Path) -> None:
    """Eight patients: EPV < 10 is flagged; unestimable pieces are null with a note."""
    table = simulate_table(8, seed=4)
    write_cohort_table(table, tmp_path / "t.csv")
    assert (
        main(["cohort", str(tmp_path / "t.csv"), "--out", str(tmp_path / "o"), "--bootstrap", "20", "--no-pdf"])
        == 0
    )
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert any("events per variable < 10" in w for w in results["warnings"])
    assert results["cox_volume_change"]["n"] == results["landmark_n"] <= 8
    assert results["cox_volume_change"]["events"] == results["landmark_events"]


def test_demo_hook_writes_report_and_prints_headline(tmp_path: Path) -> None:
    """``hepavol demo`` calls run_cohort_demo: it returns the report path and prints it with the headline numbers."""
    import io

    from hepavol.cli._demo_cohort import run_cohort_demo

    buf = io.StringIO()
    report = run_cohort_demo(buf, tmp_path)
    text = buf.getvalue()
    assert report == tmp_path / "cohort_report" / "report.html"
    assert report.exists()
    assert str(report) in text
    assert re.search(r"landmark set: \d+ patients, \d+ events", text)
    assert re.search(r"Cox volume change: HR \d\.\d\d per \+10 pp \(95% CI \d\.\d\d-\d\.\d\d\)", text)
    assert "Harrell's C: volume" in text
    results = json.loads((tmp_path / "cohort_report" / "results.json").read_text())
    assert f"landmark set: {results['landmark_n']} patients, {results['landmark_events']} events" in text


def test_missing_secondary_columns_and_single_modality(tmp_path: Path) -> None:
    """CT only, no sums of diameters, no CgA, no extra-abdominal status: the volume analyses still run on every
    landmark patient; the SLD pieces are null with a note; no by_modality."""
    import dataclasses

    from hepavol.cohort import CohortTable

    t = simulate_table(40, seed=3, mr_fraction=0.0)
    pts = tuple(
        dataclasses.replace(p, baseline_sld_mm=None, early_sld_mm=None, extra_abdominal=None, cga_ug_l=None)
        for p in t.patients
    )
    write_cohort_table(CohortTable(pts, "x"), tmp_path / "t.csv")
    assert (
        main(["cohort", str(tmp_path / "t.csv"), "--out", str(tmp_path / "o"), "--bootstrap", "50", "--no-pdf"])
        == 0
    )
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert list(results) == [*RESULT_KEYS, "warnings", "head_to_head", "time_points"]
    assert results["cindex_volume_change"]["n"] == results["landmark_n"]
    assert results["cindex_volume_change"]["c"] is not None
    assert results["cindex_sld_change"]["c"] is None
    assert results["cindex_difference"]["difference"] is None
    assert results["cox_sld_change"]["coef"] is None
    assert results["spearman_baseline_volume_vs_cga"]["n"] == 0
    assert results["mannwhitney_baseline_volume_by_extra_abdominal"]["u"] is None
    assert any("without a sum of diameters" in w for w in results["warnings"])
