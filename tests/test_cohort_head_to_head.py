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


# ---- the head-to-head comparison -------------------------------------------------------------------------------

from hepavol.cohort.headtohead import head_to_head  # noqa: E402
from hepavol.cohort.uncertainty import repeatability, with_repeatability  # noqa: E402


def _criteria(h2h, population: str) -> dict:  # type: ignore[no-untyped-def]
    return {c.criterion: c for p in h2h.populations if p.population == population for c in p.criteria}


def test_volume_change_beats_recist_when_the_truth_says_so() -> None:
    """simulate_table's hazard depends on the true volume change (HR 1.3 per +10 pp); the sum of diameters is a
    noisy cube-root view of it and RECIST a coarse category of that. The C-index comparison must show volume
    change ahead of RECIST (paired bootstrap CI above 0) and ahead of the SLD change."""
    table = simulate_table(
        300, seed=21, true_hr_per_10pct=1.3, sd_log_ratio=0.4, sld_noise_sd=0.1, mr_fraction=0.0
    )
    h2h = head_to_head(derive(table), resamples=200, seed=1)
    ct = _criteria(h2h, "CT")
    vol, sld = ct["total_volume_change_percent"], ct["sld_change_percent"]
    diff = vol.cindex_difference_vs_recist
    assert diff is not None
    assert diff.ci95 is not None
    assert diff.difference > 0.05, diff
    assert diff.ci95[0] > 0, diff
    assert vol.cindex.c > sld.cindex.c > ct["recist_category"].cindex.c  # type: ignore[union-attr]
    assert vol.cox.hr_per(10.0)[1][0] < 1.3 < vol.cox.hr_per(10.0)[1][1]  # type: ignore[index, union-attr]


def test_only_ct_missing_target_volumes_and_a_criterion_nobody_meets_are_honest_nulls(tmp_path: Path) -> None:
    """A CT-only table without the optional columns, where nobody reaches RECIST PR: no crash; MR is null with
    its reason, the target-volume and 3-metastasis criteria say which columns are missing, and the RECIST cut-off
    says nobody meets it."""
    table = simulate_table(40, seed=2, mr_fraction=0.0, sd_log_ratio=0.1)
    path = tmp_path / "ct.csv"
    text = path.parent / "full.csv"
    write_cohort_table(table, text)
    lines = text.read_text().splitlines()
    keep = len(COLUMNS)
    path.write_text("\n".join(",".join(line.split(",")[:keep]) for line in lines) + "\n")
    from hepavol.cli import main

    assert main(["cohort", str(path), "--out", str(tmp_path / "out"), "--bootstrap", "20", "--no-pdf"]) == 0
    import json

    h2h = json.loads((tmp_path / "out" / "results.json").read_text())["head_to_head"]
    mr = h2h["populations"]["MR"]
    assert mr["criteria"] is None
    assert mr["note"] == "not estimable: no MR patient in the table"
    ct = h2h["populations"]["CT"]["criteria"]
    target = ct["target_volume_change_percent"]
    assert target["n"] == 0
    assert target["cox"] is None
    assert target["cindex"] is None
    assert target["note"] == (
        "not estimable: no landmark patient has baseline_target_volume_ml and early_target_volume_ml"
    )
    assert ct["three_largest_size_rule"]["note"].startswith(
        "not estimable: no landmark patient has baseline_three"
    )
    recist = ct["recist_category"]
    assert recist["n_low"] == 0
    assert recist["cox_cutoff"]["hr"] is None
    assert "nobody meets it" in recist["note"]
    assert recist["progression_12_months"]["low"]["proportion"] is None
    assert ct["total_volume_change_percent"]["cindex"]["c"] is not None
    report = (tmp_path / "out" / "report.html").read_text()
    assert "Head to head: every early criterion" in report
    assert "no MR patient in the table" in report
    assert (tmp_path / "out" / "figures" / "h2h_forest.png").exists()
    assert (tmp_path / "out" / "figures" / "h2h_cindex.svg").exists()


def test_repeatability_intervals_and_smallest_detectable_change() -> None:
    """CV 10 %: σ = √ln(1.01), RC = 1.96·√2·σ = 0.2764915 (computed by hand). A patient at +10 % in 91 days:
    1.1·exp(±RC) = 1.4503454 and 0.8342840, i.e. −16.57 % to +45.03 %; TGR_V interval
    100·(exp((ln 1.1 ± RC)/(91/30.4375)) − 1) = −5.880147 to 13.242291 %/month; |ln 1.1| < RC: below the SDC."""
    table = read_cohort_table_text(
        [HEADER, ROW_P1, "P2,CT,2020-01-01,2020-04-01,100,150,50,60,3,1500,0,2021-06-01,2.5,120,0,G1"]
    )
    p1, p2 = with_repeatability(derive(table), 10.0)
    assert repeatability(10.0).rc_log == pytest.approx(0.2764915413705361, rel=1e-12)
    assert p1.volume_change_ci95_low_percent == pytest.approx(-16.57159620854638, rel=1e-9)
    assert p1.volume_change_ci95_high_percent == pytest.approx(45.03453800034853, rel=1e-9)
    assert p1.tgr_volume_ci95_low_percent_per_month == pytest.approx(-5.88014695010215, rel=1e-9)
    assert p1.tgr_volume_ci95_high_percent_per_month == pytest.approx(13.242290869615925, rel=1e-9)
    assert p1.volume_change_below_sdc is True
    assert p2.volume_change_below_sdc is False  # ln 1.5 = 0.405 > RC
    assert p1.target_volume_change_below_sdc is None  # no target volumes in this table


def read_cohort_table_text(lines: list[str]):  # type: ignore[no-untyped-def]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return read_cohort_table(_write(Path(tmp), lines))


def test_repeatability_cli_counts_and_repeats_the_cutoff_analyses(tmp_path: Path) -> None:
    table = simulate_table(80, seed=9)
    write_cohort_table(table, tmp_path / "t.csv")
    from hepavol.cli import main

    argv = ["cohort", str(tmp_path / "t.csv"), "--out", str(tmp_path / "out"), "--bootstrap", "20", "--no-pdf"]
    assert main([*argv, "--repeatability-cv", "8", "--pool-modalities"]) == 0
    import csv
    import json
    import math

    h2h = json.loads((tmp_path / "out" / "results.json").read_text())["head_to_head"]
    rep = h2h["repeatability"]
    rc = 1.959963984540054 * math.sqrt(2.0) * math.sqrt(math.log1p(0.08**2))
    with open(tmp_path / "out" / "derived.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    lm = [r for r in rows if r["landmark"] == "True"]
    below = sum(abs(math.log1p(float(r["volume_change_percent"]) / 100)) < rc for r in lm)
    assert rep["populations"]["pooled"]["volume_change_below_sdc"] == below > 0
    total = rep["populations"]["pooled"]["without_below_sdc"]["total_volume_change_percent"]
    assert total["n"] == len(lm) - below
    assert total["left_out"] == below
    assert all(r["volume_change_ci95_low_percent"] != "" for r in lm)
    assert "below the smallest detectable change" in (tmp_path / "out" / "report.html").read_text()
    assert main([*argv, "--repeatability-cv", "0"]) == 2


def test_greponet_section_is_in_results_json(tmp_path: Path) -> None:
    from hepavol.cohort.greponet import WINDOW_DAYS

    assert WINDOW_DAYS == (61, 121)  # 2 and 4 months of 30.4375 days
    h2h = head_to_head(derive(simulate_table(200, seed=3, sd_log_ratio=0.4)), resamples=50, pool_modalities=True)
    g = h2h.extra["greponet"]["populations"]["pooled"]
    assert g["n"] + g["censored_before_12_months"] == g["with_scan_in_window"] > 0
    assert 0.5 < g["roc"]["auc"] <= 1
    assert g["roc"]["ci95"][0] < g["roc"]["auc"] < g["roc"]["ci95"][1]
    assert g["youden"]["ci95"][0] <= g["youden"]["cutoff"] <= g["youden"]["ci95"][1]
    assert g["published_cutoff"]["cutoff"] == 0.8


def test_greponet_on_a_table_worked_by_hand(tmp_path: Path) -> None:
    """Six CT patients, baseline 2020-01-01. In the 3 ± 1-month window (early scan day 91): P1 (SLD 50 → 55, PD on
    day 200), P2 (50 → 52, PD day 300), P3 (censored day 200: 12-month status unknown, left out), P4 (50 → 53,
    PD day 500: no progression within 12 months), P5 (50 → 48, censored day 800). P6's early scan is on day 150
    (outside). Cases {P1, P2}, controls {P4, P5}; TGR order P5 < P2 < P4 < P1, so 3 of the 4 case-control pairs
    are concordant: AUC 0.75. DeLong: per-case components (1, ½), per-control (½, 1), each variance 1/8, SE
    √(1/8·½ + 1/8·½) = 0.3535534. Youden: J = ½ halfway between P5 and P2 (sens 1, spec ½) and between P4 and P1
    (sens ½, spec 1); the lower threshold is reported. All computed by hand."""
    import datetime as dt

    from hepavol.cohort.greponet import greponet_population
    from hepavol.response.growth import tgr_recist

    base = dt.date(2020, 1, 1)

    def day(n: int) -> str:
        return (base + dt.timedelta(days=n)).isoformat()

    spec = [("P1", 91, 55, 1, 200), ("P2", 91, 52, 1, 300), ("P3", 91, 51, 0, 200), ("P4", 91, 53, 1, 500),
            ("P5", 91, 48, 0, 800), ("P6", 150, 60, 1, 300)]  # fmt: skip
    rows = [
        f"{pid},CT,{day(0)},{day(early)},100,100,50,{sld},3,1500,{event},{day(pfs)},2,100,0,G1"
        for pid, early, sld, event, pfs in spec
    ]
    patients = derive(read_cohort_table(_write(tmp_path, [HEADER, *rows])))
    g = greponet_population(patients, resamples=200, seed=3)
    assert (g["with_scan_in_window"], g["censored_before_12_months"], g["n"], g["progressed"]) == (5, 1, 4, 2)
    assert g["roc"]["auc"] == pytest.approx(0.75)
    assert g["roc"]["se"] == pytest.approx(0.3535534, abs=1e-7)
    t2, t5 = tgr_recist(50, 52, 91).percent_per_month, tgr_recist(50, 48, 91).percent_per_month
    assert g["youden"]["cutoff"] == pytest.approx((t2 + t5) / 2)
    assert (g["youden"]["sensitivity"], g["youden"]["specificity"]) == (1.0, 0.5)
    # the published 0.8 %/month: P1, P4 and P2 (TGR ≈ 4, 6 and 10 %/month) are above it, P5 below
    assert g["published_cutoff"]["sensitivity"] == 1.0
    assert g["published_cutoff"]["specificity"] == 0.5
