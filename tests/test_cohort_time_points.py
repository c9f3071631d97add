"""Issue 22: the registry's yearly time points (``month12_*``, ``month24_*``, ``month36_*``) in the cohort table,
described per time point in results.json and the report; values worked by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hepavol.cli import main
from hepavol.cohort import read_cohort_table, simulate_table, write_cohort_table
from hepavol.cohort.table import COLUMNS, YEARLY_COLUMNS
from hepavol.errors import TableError

Y12 = ["month12_date", "month12_volume_ml", "month12_target_volume_ml", "month12_lesion_count"]
HEADER = ",".join([*COLUMNS, *Y12, "month12_recist_response"])
BASE = "{pid},{mod},2020-01-01,2020-04-01,{v0},110,50,55,{n0},1500,1,2022-01-01,2.5,120,0,G1"


def _write(tmp_path: Path, rows: list[str], header: str = HEADER) -> Path:
    path = tmp_path / "cohort.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _row(pid: str, mod: str, v0: float, n0: int, year: str) -> str:
    return BASE.format(pid=pid, mod=mod, v0=v0, n0=n0) + "," + year


def test_yearly_columns_are_read(tmp_path: Path) -> None:
    table = read_cohort_table(
        _write(tmp_path, [_row("P1", "CT", 100, 3, "2021-01-05,80,30,2,pr"), _row("P2", "CT", 50, 1, ",,,,")])
    )
    p1, p2 = table.patients
    assert p1.at_month(12, "volume_ml") == 80.0
    assert p1.at_month(12, "target_volume_ml") == 30.0
    assert p1.at_month(12, "lesion_count") == 2.0
    assert p1.at_month(12, "recist_response") == "PR"  # read case-insensitively
    assert p1.at_month(12, "date").isoformat() == "2021-01-05"
    assert p1.at_month(24, "volume_ml") is None  # column absent: missing
    assert p2.yearly == {}


@pytest.mark.parametrize(
    ("year", "pattern"),
    [
        (",80,30,2,PR", r"column 'month12_volume_ml': value '80'.*needs 'month12_date'"),
        ("2019-12-01,80,30,2,PR", r"'month12_date': value '2019-12-01'.*after the baseline"),
        ("2021-01-05,80,90,2,PR", r"'month12_target_volume_ml': value '90'.*larger than the total"),
        ("2021-01-05,-1,,2,PR", r"'month12_volume_ml': value '-1'.*cannot be negative"),
        ("2021-01-05,80,30,2,XX", r"'month12_recist_response': value 'XX' is not a RECIST 1.1 category"),
    ],
)
def test_bad_yearly_values_name_line_column_value(tmp_path: Path, year: str, pattern: str) -> None:
    with pytest.raises(TableError, match=pattern):
        read_cohort_table(_write(tmp_path, [_row("P1", "CT", 100, 3, year)]))


def test_time_points_in_results_json_and_report(tmp_path: Path) -> None:
    # Three CT and one MR patient; the medians and quartiles worked by hand (linear quantiles, R type 7:
    # quantile(x, c(.25, .5, .75)) for x = 40, 80, 120 is 60, 80, 100).
    rows = [
        _row("P1", "CT", 100, 3, "2021-01-05,80,30,2,PR"),  # 370 days after 2020-01-01
        _row("P2", "CT", 50, 1, "2020-12-26,120,40,4,PD"),  # 360 days
        _row("P3", "CT", 150, 5, "2021-01-15,40,10,1,PR"),  # 380 days
        _row("P4", "MR", 60, 2, ",,,,"),
    ]
    out = tmp_path / "out"
    assert main(["cohort", str(_write(tmp_path, rows)), "--out", str(out), "--bootstrap", "0", "--no-pdf"]) == 0
    tp = json.loads((out / "results.json").read_text())["time_points"]
    assert "within ± 3 months" in tp["rule"]
    everyone, ct, mr = (tp["populations"][k] for k in ("All", "CT", "MR"))
    assert everyone["baseline"]["n"] == 4
    # baseline volumes 50, 60, 100, 150: median 80, Q1 57.5, Q3 112.5
    assert everyone["baseline"]["volume_ml"] == {"n": 4, "median": 80.0, "q1": 57.5, "q3": 112.5}
    assert everyone["month12"]["n"] == ct["month12"]["n"] == 3
    assert ct["month12"]["volume_ml"] == {"n": 3, "median": 80.0, "q1": 60.0, "q3": 100.0}
    assert ct["month12"]["target_volume_ml"] == {"n": 3, "median": 30.0, "q1": 20.0, "q3": 35.0}
    assert ct["month12"]["lesion_count"] == {"n": 3, "median": 2.0, "q1": 1.5, "q3": 3.0}
    assert ct["month12"]["days_from_baseline"] == {"n": 3, "median": 370.0, "q1": 365.0, "q3": 375.0}
    assert ct["month12"]["recist_response"] == {"PR": 2, "PD": 1}
    assert mr["month12"] == {
        "n": 0,
        "days_from_baseline": {"n": 0, "median": None, "q1": None, "q3": None},
        "volume_ml": {"n": 0, "median": None, "q1": None, "q3": None},
        "target_volume_ml": {"n": 0, "median": None, "q1": None, "q3": None},
        "lesion_count": {"n": 0, "median": None, "q1": None, "q3": None},
        "recist_response": {},
    }
    assert everyone["month24"]["n"] == 0
    html = (out / "report.html").read_text()
    assert "Time points of the registry" in html
    assert "80.0 [60.0–100.0], n=3" in html  # the CT 12-month total volume
    assert "PR: 2; PD: 1" in html


def test_older_tables_have_no_yearly_values_and_round_trip(tmp_path: Path) -> None:
    table = simulate_table(12, seed=3)
    assert all(p.yearly == {} for p in table.patients)
    write_cohort_table(table, tmp_path / "t.csv")
    header = (tmp_path / "t.csv").read_text().splitlines()[0].split(",")
    assert not set(header) & set(YEARLY_COLUMNS)
    path = _write(tmp_path, [_row("P1", "CT", 100, 3, "2021-01-05,80,30,2,PR")])
    write_cohort_table(read_cohort_table(path), tmp_path / "again.csv")
    again = read_cohort_table(tmp_path / "again.csv")
    assert again.patients[0].yearly == read_cohort_table(path).patients[0].yearly
