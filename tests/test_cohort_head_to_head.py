"""Issue 22: the optional per-patient columns (target-lesion volume, the three largest metastases' diameters),
the head-to-head comparison of every early criterion, measurement uncertainty and the GREPONET replication."""

from __future__ import annotations

from pathlib import Path

import pytest

from hepavol.cohort import derive, read_cohort_table, simulate_table, write_cohort_table
from hepavol.cohort.table import COLUMNS, OPTIONAL_COLUMNS
from hepavol.errors import TableError

HEADER = ",".join(COLUMNS)
OPT_HEADER = HEADER + "," + ",".join(OPTIONAL_COLUMNS)
# P1: 100 -> 110 mL total, targets 40 -> 30 mL (-25 %), three largest 90 -> 81 mm (-10 %): computed by hand.
ROW_P1 = "P1,CT,2020-01-01,2020-04-01,100,110,50,55,3,1500,1,2021-01-01,2.5,120,0,G1"


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "cohort.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_optional_columns_are_read_and_derived(tmp_path: Path) -> None:
    table = read_cohort_table(_write(tmp_path, [OPT_HEADER, ROW_P1 + ",40,30,90,81"]))
    (p,) = table.patients
    assert (p.baseline_target_volume_ml, p.early_target_volume_ml) == (40.0, 30.0)
    assert (p.baseline_three_largest_diameter_sum_mm, p.early_three_largest_diameter_sum_mm) == (90.0, 81.0)
    (d,) = derive(table)
    assert d.target_volume_change_percent == pytest.approx(-25.0)  # 100·(30/40 − 1)
    assert d.three_largest_diameter_change_percent == pytest.approx(-10.0)  # 100·(81/90 − 1)


def test_older_tables_without_the_optional_columns_still_work(tmp_path: Path) -> None:
    (d,) = derive(read_cohort_table(_write(tmp_path, [HEADER, ROW_P1])))
    assert d.target_volume_change_percent is None
    assert d.three_largest_diameter_change_percent is None
    assert d.volume_change_percent == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("cells", "pattern"),
    [
        (",140,30,90,81", r"column 'baseline_target_volume_ml': value '140'.*larger than the total tumour volume"),
        (",40,-3,90,81", r"column 'early_target_volume_ml': value '-3'.*cannot be negative"),
        (",40,30,abc,81", r"column 'baseline_three_largest_diameter_sum_mm': value 'abc' is not a number"),
        (",40,30,9000,81", r"column 'baseline_three_largest_diameter_sum_mm': value '9000'.*plausible range"),
    ],
)
def test_bad_optional_values_name_line_column_value(tmp_path: Path, cells: str, pattern: str) -> None:
    with pytest.raises(TableError, match=pattern):
        read_cohort_table(_write(tmp_path, [OPT_HEADER, ROW_P1 + cells]))


def test_an_early_value_without_an_early_scan_is_refused(tmp_path: Path) -> None:
    row = "P4,MR,2020-03-01,,12,,22,,1,1600,0,2020-05-01,1,50,no,,10,5,30,"
    with pytest.raises(TableError, match=r"'early_target_volume_ml': value '5'.*needs an 'early_date'"):
        read_cohort_table(_write(tmp_path, [OPT_HEADER, row]))


def test_simulated_table_round_trips_with_the_optional_columns(tmp_path: Path) -> None:
    table = simulate_table(30, seed=4)
    write_cohort_table(table, tmp_path / "t.csv")
    header = (tmp_path / "t.csv").read_text().splitlines()[0].split(",")
    assert header == [*COLUMNS, *OPTIONAL_COLUMNS]
    again = read_cohort_table(tmp_path / "t.csv")
    for a, b in zip(table.patients, again.patients):
        assert [getattr(a, c) for c in OPTIONAL_COLUMNS] == [getattr(b, c) for c in OPTIONAL_COLUMNS]
    assert sum(p.early_target_volume_ml is None for p in table.patients) == sum(
        p.early_date is None for p in table.patients
    )
    # the optional columns come from a second generator: the other columns are unchanged by them
    assert [p.early_volume_ml for p in table.patients][:3] == [
        p.early_volume_ml for p in simulate_table(3, seed=4).patients
    ]
