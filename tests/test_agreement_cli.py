"""``hepavol agreement``: outputs, reader choice and bad input (clear errors, or null with a reason)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests._agreement_helpers import write_rows

from hepavol.cli import main

HEADER = "patient_id,date,reader,lesion_id,volume_ml,long_axis_mm,target"


def _two_patients(readers: tuple[str, str] = ("A", "B")) -> list[str]:
    """Two patients, baseline and a 120-day scan, two lesions; B measures 5-10 % larger."""
    a, b = readers
    rows = []
    for pid, v1, v2, scale in (("P1", 10.0, 2.0, 1.05), ("P2", 30.0, 4.0, 1.10)):
        for date, growth in (("2020-01-01", 1.0), ("2020-04-30", 1.3)):
            for reader, s in ((a, 1.0), (b, scale)):
                rows.append(f"{pid},{date},{reader},L1,{v1 * growth * s:.4f},{25 * growth * s:.1f},yes")
                rows.append(f"{pid},{date},{reader},L2,{v2 * growth * s:.4f},{12 * growth * s:.1f},no")
    return rows


def _run(tmp_path: Path, rows: list[str], *extra: str, header: str = HEADER) -> tuple[int, dict | None]:
    table = write_rows(tmp_path / "t.csv", header, rows)
    out = tmp_path / "out"
    code = main(["agreement", str(table), "--out", str(out), "--no-pdf", *extra])
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else None
    return code, results


def test_outputs_and_issue_keys(tmp_path: Path) -> None:
    """results.json has, for each per-scan and per-patient quantity, icc_2_1/icc_3_1 {value, ci95},
    bland_altman {bias, loa95}, wcv and repeatability_coefficient; the other files are written."""
    code, res = _run(tmp_path, _two_patients())
    assert code == 0
    assert res is not None
    for key in ("total_tumor_volume_ml", "sum_of_diameters_mm", "volume_change_percent", "sld_change_percent"):
        q = res[key]
        assert {"icc_2_1", "icc_3_1", "bland_altman", "wcv", "repeatability_coefficient"} <= set(q)
        assert {"value", "ci95"} <= set(q["icc_2_1"])
        assert {"value", "ci95"} <= set(q["icc_3_1"])
        assert {"bias", "loa95"} <= set(q["bland_altman"])
    # B is 5 % and 10 % larger in volume at every scan: log bias = mean(ln 1.05, ln 1.10) over 4 scans
    import math

    assert res["total_tumor_volume_ml"]["bland_altman"]["bias"] == pytest.approx(
        (math.log(1.05) + math.log(1.10)) / 2, abs=2e-4
    )
    # the same growth by both readers: no volume change difference
    assert res["volume_change_percent"]["bland_altman"]["bias"] == pytest.approx(0.0, abs=0.01)
    assert res["design"] == "inter-reader"
    assert res["readers"] == {"first": "A", "second": "B"}
    assert res["early_window_days"] == [91, 183]
    for name in ("pairs.csv", "categories.csv", "report.html", "figures/bland_altman.png"):
        assert (tmp_path / "out" / name).exists()


def test_repeat_read_is_intra_reader(tmp_path: Path) -> None:
    rows = _two_patients(("A", "A#2")) + [r.replace(",A,", ",B,") for r in _two_patients() if ",A," in r]
    code, res = _run(tmp_path, rows, "--repeat", "A")
    assert code == 0
    assert res is not None
    assert res["design"] == "intra-reader"
    assert res["readers"] == {"first": "A", "second": "A#2"}


def test_one_reader_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [r for r in _two_patients() if ",A," in r]
    code, _ = _run(tmp_path, rows)
    assert code == 2
    assert "one reader only ('A')" in capsys.readouterr().err


def test_three_readers_need_a_choice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _two_patients() + [r.replace(",A,", ",C,") for r in _two_patients() if ",A," in r]
    code, _ = _run(tmp_path, rows)
    assert code == 2
    assert "choose two with --readers A,B" in capsys.readouterr().err
    code, res = _run(tmp_path, rows, "--readers", "A,C")
    assert code == 0
    assert res is not None
    assert res["readers"]["second"] == "C"
    code, _ = _run(tmp_path, rows, "--readers", "A,X")
    assert code == 2
    assert "reader(s) 'X' not in" in capsys.readouterr().err


def test_no_common_scans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [r for r in _two_patients() if ",A," in r]
    rows += [r.replace(",A,", ",B,").replace("2020-", "2021-") for r in rows]
    code, _ = _run(tmp_path, rows)
    assert code == 2
    assert "have no scan (patient_id and date) in common" in capsys.readouterr().err


def test_single_patient_gives_null_with_reason(tmp_path: Path) -> None:
    rows = [r for r in _two_patients() if r.startswith("P1,")]
    code, res = _run(tmp_path, rows)
    assert code == 0
    assert res is not None
    vc = res["volume_change_percent"]
    assert vc["n"] == 1
    assert vc["icc_2_1"]["value"] is None
    assert "at least 2 subjects" in vc["icc_2_1"]["reason"]
    assert vc["bland_altman"]["bias"] is None
    assert "at least 2 pairs" in vc["bland_altman"]["reason"]
    assert any("one patient only" in w for w in res["warnings"])


def test_constant_values_give_null_with_reason(tmp_path: Path) -> None:
    """Every scan 5 mL and 20 mm for both readers: no variance, ICC undefined (null + reason), bias 0."""
    rows = [
        f"P{p},{d},{r},L1,5,20,yes" for p in (1, 2, 3) for d in ("2020-01-01", "2020-05-01") for r in ("A", "B")
    ]
    code, res = _run(tmp_path, rows)
    assert code == 0
    assert res is not None
    q = res["total_tumor_volume_ml"]
    assert q["icc_3_1"]["value"] is None
    assert "same value" in q["icc_3_1"]["reason"]
    assert q["bland_altman"]["bias"] == 0.0
    k = res["recist_response"]["kappa"]
    assert k["value"] is None
    assert "same category" in k["reason"]


def test_scan_without_lesions_and_missed_lesion(tmp_path: Path) -> None:
    """A row without lesion_id is a scan read with no lesion (total 0, left out of the log scale); a lesion
    only B found at follow-up is a new lesion for B (RECIST PD), counted in lesion detection."""
    rows = [
        "P1,2020-01-01,A,L1,10,25,yes",
        "P1,2020-01-01,B,L1,10.5,26,yes",
        "P1,2020-04-30,A,L1,10,25,yes",
        "P1,2020-04-30,B,L1,10.2,25,yes",
        "P1,2020-04-30,B,L9,0.3,6,no",
        "P2,2020-01-01,A,L1,8,22,yes",
        "P2,2020-01-01,B,L1,8.4,23,yes",
        "P2,2020-04-30,A,,,,",
        "P2,2020-04-30,B,,,,",
    ]
    code, res = _run(tmp_path, rows)
    assert code == 0
    assert res is not None
    assert res["lesion_detection"]["found_by_second_only"] == 1
    assert res["total_tumor_volume_ml"]["excluded"] == {"total volume 0 in a read: not on the log scale": 1}
    table = res["recist_response"]["table"]  # rows A, columns B over CR, PR, SD, PD
    assert table[2][3] == 1  # P1: A SD, B PD (new lesion)
    assert table[0][0] == 1  # P2: both CR
    assert res["progression_date_changes"]["recist"]["count"] == 1


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        ("patient_id,date,reader,lesion_id,volume_ml", "P1,2020-01-01,A,L1,3", "missing column(s) 'long_axis_mm'"),
        (HEADER, "P1,01.02.2020,A,L1,3,10,yes", "line 2: date '01.02.2020' is not an ISO date"),
        (HEADER, "P1,2020-01-01,A,L1,-3,10,yes", "line 2: volume_ml must be a number >= 0"),
        (HEADER, "P1,2020-01-01,A,L1,3,10,maybe", "line 2: target must be yes or no, but it is 'maybe'"),
        (HEADER, "P1,2020-01-01,A,,3,10,yes", "line 2: measurements without a lesion_id"),
        (HEADER, "P1,2020-01-01,,L1,3,10,yes", "line 2: reader is empty"),
    ],
)
def test_bad_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str], header: str, row: str, message: str) -> None:
    code, _ = _run(tmp_path, [row], header=header)
    assert code == 2
    assert message in capsys.readouterr().err


def test_duplicate_lesion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = ["P1,2020-01-01,A,L1,3,10,yes", "P1,2020-01-01,A,L1,4,11,yes", "P1,2020-01-01,B,L1,3,10,yes"]
    code, _ = _run(tmp_path, rows)
    assert code == 2
    assert "lines 2 and 3: reader 'A' has lesion 'L1' twice" in capsys.readouterr().err


def test_without_target_column_every_baseline_lesion_is_a_target(tmp_path: Path) -> None:
    rows = [r.rsplit(",", 1)[0] for r in _two_patients()]
    code, res = _run(tmp_path, rows, header=HEADER.rsplit(",", 1)[0])
    assert code == 0
    assert res is not None
    first = res["sum_of_diameters_mm"]["mean_first"]
    assert first == pytest.approx((25 + 12 + 25 * 1.3 + 12 * 1.3) / 2, abs=0.1)


def test_report_section_for_the_cohort_report(tmp_path: Path) -> None:
    """render_section gives the same content as the report, headings one level down, for embedding."""
    from hepavol.agreement import analyse_agreement, read_agreement_table
    from hepavol.agreement.report import render_html, render_section

    reads = read_agreement_table(write_rows(tmp_path / "t.csv", HEADER, _two_patients()))
    a = analyse_agreement(reads["A"], reads["B"])
    section = render_section(a, [])
    assert "<html" not in section
    assert "<style>" not in section
    assert section.count("<h2>") == 1
    assert "<h3>1. Continuous measurements</h3>" in section
    assert "<h2>1. Continuous measurements</h2>" in render_html(a, [])


def test_dates_after_today_are_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A scan dated after today (a typo such as 2099) is read, with one warning naming the file and line."""
    rows = [r.replace("2020-04-30", "2099-04-30") for r in _two_patients()]
    code, _ = _run(tmp_path, rows)
    err = capsys.readouterr().err
    assert code == 0
    assert err.count("warning:") == 1
    assert "t.csv, line 6" in err
    assert "2099-04-30" in err
