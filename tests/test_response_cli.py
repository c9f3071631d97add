"""``hepavol recist`` as a user meets it: output formats (issue 3's exact JSON keys), options, every error path,
and the bundled demo read table."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from hepavol.cli import main
from hepavol.cli._demo_recist import run_recist_demo
from hepavol.cli.recist import CSV_COLUMNS

HEADER = "patient_id,date,lesion_id,organ,category,diameter_mm,status\n"
PATIENT_KEYS = {
    "patient_id",
    "baseline_date",
    "baseline_sum_mm",
    "best_overall_response",
    "progression_date",
    "warnings",
    "timepoints",
}
TIMEPOINT_KEYS = {
    "date",
    "sum_of_diameters_mm",
    "change_from_baseline_percent",
    "change_from_nadir_percent",
    "change_from_nadir_mm",
    "target_response",
    "non_target_response",
    "new_lesions",
    "overall_response",
}

# P1: R7 of SCIENCE.md §1.10 (100 -> 70 PR -> 84 PD); P2: nodal CR (R10) with a non-target; P3: not evaluated.
TABLE = (
    HEADER
    + """P1,2024-01-01,T1,liver,target,60,
P1,2024-01-01,T2,liver,target,40.0,
P1,2024-03-01,T1,liver,target,42,
P1,2024-03-01,T2,liver,target,28,
P1,2024-05-01,T1,liver,target,50.4,
P1,2024-05-01,T2,liver,target,33.6,
P2,2024-02-01,L1,liver,target,30,
P2,2024-02-01,N1,lymph_node,target,18,
P2,2024-02-01,NT,liver,non_target,,present
P2,2024-04-01,L1,liver,target,0,
P2,2024-04-01,N1,lymph_node,target,8,
P2,2024-04-01,NT,liver,non_target,,absent
P3,2024-01-10,L1,liver,target,25,
P3,2024-01-10,L2,liver,target,9,
P3,2024-03-10,L1,liver,target,,
P3,2024-03-10,L2,liver,target,,too_small
P3,2024-03-10,X1,bone,new,,equivocal
"""
)


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "reads.csv"
    path.write_text(TABLE, encoding="utf-8")
    return path


def test_json_keys_and_values_exactly_as_issue_3(table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recist", str(table), "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"patients"}
    p1, p2, p3 = data["patients"]
    for p in data["patients"]:
        assert set(p) == PATIENT_KEYS
        for tp in p["timepoints"]:
            assert set(tp) == TIMEPOINT_KEYS
    # P1 = SCIENCE.md §1.10 R7: 100 -> 70 (-30 %, PR) -> 84 (+20 %, +14 mm vs nadir 70: PD)
    assert p1["patient_id"] == "P1"
    assert p1["baseline_date"] == "2024-01-01"
    assert p1["baseline_sum_mm"] == 100.0
    assert p1["best_overall_response"] == "PR"
    assert p1["progression_date"] == "2024-05-01"
    assert p1["warnings"] == []
    assert p1["timepoints"] == [
        {
            "date": "2024-03-01",
            "sum_of_diameters_mm": 70.0,
            "change_from_baseline_percent": -30.0,
            "change_from_nadir_percent": -30.0,
            "change_from_nadir_mm": -30.0,
            "target_response": "PR",
            "non_target_response": "ND",
            "new_lesions": "none",
            "overall_response": "PR",
        },
        {
            "date": "2024-05-01",
            "sum_of_diameters_mm": 84.0,
            "change_from_baseline_percent": -16.0,
            "change_from_nadir_percent": 20.0,
            "change_from_nadir_mm": 14.0,
            "target_response": "PD",
            "non_target_response": "ND",
            "new_lesions": "none",
            "overall_response": "PD",
        },
    ]
    # P2 = R10: nodal CR, sum 8 mm; non-target absent -> overall CR
    (tp,) = p2["timepoints"]
    assert (tp["sum_of_diameters_mm"], tp["target_response"], tp["non_target_response"]) == (8.0, "CR", "CR")
    assert p2["best_overall_response"] == "CR"
    assert p2["progression_date"] is None
    # P3: a target not evaluated -> NE, sum null; a baseline target of 9 mm is below measurable size
    (tp,) = p3["timepoints"]
    assert tp["sum_of_diameters_mm"] is None
    assert tp["change_from_baseline_percent"] is None
    assert (tp["target_response"], tp["new_lesions"], tp["overall_response"]) == ("NE", "equivocal", "NE")
    assert p3["best_overall_response"] == "NE"
    assert any("'L2' measures 9 mm, below the measurable 10 mm" in w for w in p3["warnings"])


def test_default_output_is_a_readable_table(table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recist", str(table)]) == 0
    out = capsys.readouterr().out
    assert "patient P1: baseline 2024-01-01, SoD 100.0 mm, best overall response PR, progression 2024-05-01" in out
    assert "2024-05-01    84.0     -16.00      +20.00        +14.0      PD" in out
    assert "warning: baseline target 'L2' measures 9 mm" in out
    assert "note 2024-03-10: target(s) L1 not evaluated" in out


def test_csv_output_one_row_per_timepoint(table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_csv = tmp_path / "out" / "recist.csv"
    out_json = tmp_path / "out" / "recist.json"
    assert main(["recist", str(table), "--csv", str(out_csv), "--json", str(out_json)]) == 0
    assert "best overall response" in capsys.readouterr().out  # the table still goes to the terminal
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["patient_id"], r["date"], r["overall_response"]) for r in rows] == [
        ("P1", "2024-03-01", "PR"),
        ("P1", "2024-05-01", "PD"),
        ("P2", "2024-04-01", "CR"),
        ("P3", "2024-03-10", "NE"),
    ]
    assert rows[1]["change_from_nadir_mm"] == "14.0"
    assert rows[3]["sum_of_diameters_mm"] == ""
    assert rows[0]["progression_date"] == "2024-05-01"
    assert json.loads(out_json.read_text())["patients"][0]["best_overall_response"] == "PR"


def test_csv_to_stdout_and_patient_without_followup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "P,2024-01-01,T,liver,target,20,\n", encoding="utf-8")
    assert main(["recist", str(path), "--csv", "-"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1
    assert (rows[0]["best_overall_response"], rows[0]["date"]) == ("NE", "")


def test_confirm_and_sd_min_days_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        HEADER
        + "P,2024-01-01,T,liver,target,100,\nP,2024-02-05,T,liver,target,70,\nP,2024-04-01,T,liver,target,80,\n",
        encoding="utf-8",
    )

    def bor(*options: str) -> str:
        assert main(["recist", str(path), "--json", "-", *options]) == 0
        return str(json.loads(capsys.readouterr().out)["patients"][0]["best_overall_response"])

    assert bor() == "PR"
    assert bor("--confirm") == "SD"  # PR at day 35 unconfirmed (RECIST 1.1 Table 3: PR then SD -> SD)
    assert bor("--confirm", "--sd-min-days", "100") == "NE"  # SD at day 91 < 100, no progression


def _write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


BASE_ROW = "P,2024-01-01,T1,liver,target,20,\n"


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        (BASE_ROW + "P,2024-03-01,T1,liver,targt,20,\n", r"line 3: unknown category 'targt'"),
        (
            BASE_ROW + "P,2024-03-01,NT,liver,non_target,,gone\n",
            r"line 3: unknown status 'gone' for category non_target",
        ),
        (
            BASE_ROW + "P,2024-03-01,T1,liver,target,20,small\n",
            r"line 3: unknown status 'small' for category target",
        ),
        (BASE_ROW + "P,2024-03-01,N,liver,new,,maybe\n", r"line 3: unknown status 'maybe' for category new"),
        (
            BASE_ROW + "P,2024-03-01,T1,liver,target,20,\nP,2024-03-01,T2,liver,target,20,\n",
            r"line 4: target lesion 'T2' of patient 'P' first appears on 2024-03-01, after the baseline 2024-01-01",
        ),
        (
            BASE_ROW + "P,2024-03-01,T1,liver,target,20,\nP,2024-03-01,T1,liver,target,21,\n",
            r"line 4: lesion 'T1' of patient 'P' appears twice on 2024-03-01 \(first on line 3\)",
        ),
        (BASE_ROW + "P,2024-13-01,T1,liver,target,20,\n", r"line 3: date '2024-13-01' is not a valid date"),
        (
            BASE_ROW + "P,01/03/2024,T1,liver,target,20,\n",
            r"line 3: date '01/03/2024' is not a date in YYYY-MM-DD",
        ),
        (BASE_ROW + 'P,2024-03-01,T1,liver,target,"12,5",\n', r"line 3: diameter_mm '12,5' is not a number"),
        (BASE_ROW + "P,2024-03-01,T1,liver,target,abc,\n", r"line 3: diameter_mm 'abc' is not a number"),
        (BASE_ROW + "P,2024-03-01,T1,liver,target,-2,\n", r"line 3: diameter_mm '-2' is negative"),
        (BASE_ROW + "P,2024-03-01,T1,liver,target,inf,\n", r"line 3: diameter_mm 'inf' is not a finite number"),
        (
            BASE_ROW + "P,2024-03-01,NT,liver,non_target,4,present\n",
            r"line 3: diameter_mm '4' given for a non_target",
        ),
        (
            BASE_ROW + "P,2024-03-01,T1,liver,target,3,too_small\n",
            r"line 3: diameter_mm '3' with status too_small",
        ),
        (BASE_ROW + ",2024-03-01,T1,liver,target,3,\n", r"line 3: patient_id is empty"),
        (BASE_ROW + "P,2024-03-01,T1,liver,target,3,,extra\n", r"line 3: 8 cells but the header has 7 columns"),
        ("P,2024-01-01,N1,liver,new,,present\n", r"line 2: patient 'P': lesion 'N1' is a new lesion at baseline"),
        ("P,2024-01-01,T1,liver,target,,\n", r"line 2: patient 'P': baseline target lesion 'T1' has no diameter"),
        (
            BASE_ROW + "P,2024-03-01,T1,liver,non_target,,present\n",
            r"line 3: patient 'P': lesion 'T1' is 'non_target' on 2024-03-01 but 'target' earlier",
        ),
    ],
)
def test_error_paths_exit_2_with_file_line_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, pattern: str
) -> None:
    path = _write(tmp_path, body)
    assert main(["recist", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}, line ")
    assert err.count("\n") == 1  # one line, no traceback
    assert re.search(pattern, err), err


def test_header_and_file_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(
        tmp_path, "P,2024-01-01,T1,liver,target,20\n", header="patient_id,date,lesion_id,organ,category,size\n"
    )
    assert main(["recist", str(bad)]) == 2
    assert "line 1: missing column(s) diameter_mm, status" in capsys.readouterr().err
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    assert main(["recist", str(empty)]) == 2
    assert "empty.csv is empty; expected a header line" in capsys.readouterr().err
    assert main(["recist", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv does not exist; check the path" in capsys.readouterr().err
    good = _write(tmp_path, BASE_ROW)
    assert main(["recist", str(good), "--sd-min-days", "-1"]) == 2
    assert "--sd-min-days must be 0 or more, got -1" in capsys.readouterr().err
    assert main(["recist", str(good), "--json", "-", "--csv", "-"]) == 2
    assert "both write to standard output" in capsys.readouterr().err


def test_bom_crlf_case_and_blank_lines_are_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "excel.csv"
    text = "\ufeff" + HEADER + "P,2024-01-01,T1,Liver,TARGET,30,\n\nP,2024-03-01,T1,Liver,Target,36,\n"
    path.write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    assert main(["recist", str(path), "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["patients"][0]["progression_date"] == "2024-03-01"


def test_demo_prints_the_assessment_of_the_bundled_table() -> None:
    """The bundled demo (src/hepavol/data/demo_recist.csv): the expected responses follow from the rules:
    DEMO-01 56 -> 39.1 mm (-30.18 %, PR) -> 39.5 (SD vs baseline, +0.4 mm vs nadir: PR maintained);
    DEMO-02 new bone lesion -> PD; DEMO-03 45 -> 47 -> 49 mm: SD; DEMO-04 liver 30 -> 0, node 18 -> 8 mm: CR;
    DEMO-05 equivocal new lesion on 2023-08-07 confirmed on 2024-02-05: PD dated 2023-08-07."""
    out = io.StringIO()
    run_recist_demo(out)
    text = out.getvalue()
    assert "patient DEMO-01: baseline 2023-01-10, SoD 56.0 mm, best overall response PR, progression -" in text
    assert "best overall response SD, progression 2023-11-02" in text  # DEMO-02
    assert "patient DEMO-03: baseline 2023-03-15, SoD 45.0 mm, best overall response SD, progression -" in text
    assert "patient DEMO-04: baseline 2023-04-03, SoD 48.0 mm, best overall response CR, progression -" in text
    assert (
        "patient DEMO-05: baseline 2023-05-08, SoD 35.0 mm, best overall response PD, progression 2023-08-07"
        in text
    )
    assert "2023-07-03     8.0     -83.33      -83.33        -40.0      CR" in text
    assert "PR maintained until PD" in text
    assert "warning" not in text


def test_demo_table_is_package_data() -> None:
    from importlib import resources

    assert resources.files("hepavol").joinpath("data/demo_recist.csv").is_file()
