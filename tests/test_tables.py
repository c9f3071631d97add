"""The table items of issues 19 and 23 through the command line: one CSV reader for every table (encodings,
separators, line-numbered errors), a diameter of 1e308, a header-only read table, and dates after today (a
warning everywhere, never an error).

Expected values: the responses follow from RECIST 1.1 on the numbers written in each table (30 → 36 mm is +20 %
and +6 mm: PD); the messages are the ones documented in the README ("Tables").
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from tests._io_helpers import label_phantom, phantom

from hepavol.cli import main
from hepavol.cohort import read_cohort_table
from hepavol.followup.pipeline import read_manifest
from hepavol.io import write_image
from hepavol.response.table import read_recist_table
from hepavol.study.clinical import read_clinical
from hepavol.table import read_table

HEADER = "patient_id,date,lesion_id,organ,category,diameter_mm,status"
PD_ROWS = ["Pé,2024-01-02,L1,foie segment VIII,target,30,", "Pé,2024-03-01,L1,foie segment VIII,target,36,"]


def _recist(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes, *argv: str) -> tuple[int, str, str]:
    path = tmp_path / "reads.csv"
    path.write_bytes(data)
    capsys.readouterr()
    code = main(["recist", str(path), *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("encoding", "delimiter"), [("cp1252", ","), ("cp1252", ";"), ("latin-1", "\t"), ("utf-8-sig", ";")]
)
def test_recist_reads_a_windows_1252_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], encoding: str, delimiter: str
) -> None:
    """Was 'cannot be read as UTF-8 text'. The same table saved by Excel in each encoding and separator: PD."""
    text = "\r\n".join([HEADER, *PD_ROWS]).replace(",", delimiter) + "\r\n"
    code, out, err = _recist(tmp_path, capsys, text.encode(encoding), "--json", "-")
    assert (code, err) == (0, "")
    (patient,) = json.loads(out)["patients"]
    assert (patient["patient_id"], patient["best_overall_response"]) == ("Pé", "PD")
    assert patient["progression_date"] == "2024-03-01"


def test_every_table_reader_reads_the_same_windows_1252_bytes(tmp_path: Path) -> None:
    """recist, follow-up, cohort and the study tables decode the same file the same way (one reader)."""
    path = tmp_path / "t.csv"
    path.write_bytes("patient_id;note\r\nH1;Lésion été – 5 µg/L\r\n".encode("cp1252"))
    table = read_table(path, "example")
    assert (table.encoding, table.delimiter) == ("windows-1252", ";")
    assert table.records() == [(2, {"patient_id": "H1", "note": "Lésion été – 5 µg/L"})]
    clinical = read_clinical(path)
    assert [r.patient_id for r in clinical.records] == ["H1"]


def test_diameter_1e308_is_an_error_naming_file_line_column_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was 'internal error: decimal.InvalidOperation' (the percentage of 1e308 mm overflows Decimal's 28 digits)."""
    data = "\n".join([HEADER, PD_ROWS[0], "Pé,2024-03-01,L1,liver,target,1e308,"]).encode()
    code, out, err = _recist(tmp_path, capsys, data)
    assert (code, out) == (2, "")
    assert err == (
        f"error: {tmp_path / 'reads.csv'}, line 3: column 'diameter_mm': value '1e308' is more than 1000 mm, not a "
        "lesion diameter; give the diameter in millimetres (e.g. 23.5)\n"
    )


def test_engine_percentages_with_extreme_sums_do_not_overflow() -> None:
    """The engine on its own (no table check) with sums Decimal cannot quantize at 28 digits: exact rounding."""
    from decimal import Decimal

    from hepavol.response.recist import Assessment, TargetLesion, assess_patient

    a = [
        Assessment(
            date=dt.date(2024, 1, 1), targets=(TargetLesion(lesion_id="T", organ="liver", diameter_mm=20),)
        ),
        Assessment(
            date=dt.date(2024, 3, 1), targets=(TargetLesion(lesion_id="T", organ="liver", diameter_mm="1e40"),)
        ),
    ]
    (tp,) = assess_patient(a).timepoints
    assert tp.change_from_baseline_percent == Decimal(5 * 10**40 - 100)  # (1e40 - 20) / 20 * 100, exactly
    assert tp.target_response.value == "PD"


def test_header_only_read_table_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Was: nothing printed, exit 0. Now an error, as the cohort and clinical tables already did."""
    code, out, err = _recist(tmp_path, capsys, (HEADER + "\n\n").encode())
    assert (code, out) == (2, "")
    assert err == (
        f"error: {tmp_path / 'reads.csv'}, line 1: the table has a header but no rows; add one row per lesion per "
        f"assessment ({HEADER})\n"
    )


def test_recist_future_date_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A read dated 2099 is assessed as given, with a warning on the console and in the JSON."""
    data = "\n".join([HEADER, PD_ROWS[0], "Pé,2099-03-01,L1,liver,target,36,"]).encode()
    code, out, err = _recist(tmp_path, capsys, data)
    assert (code, err) == (0, "")
    pattern = (
        rf"  warning: {re.escape(str(tmp_path / 'reads.csv'))}, line 3, column 'date': 2099-03-01 is after today "
        r"\(\d{4}-\d\d-\d\d\); check the date \(kept as given\)"
    )
    assert re.search(pattern, out), out
    assert "best overall response PD, progression 2099-03-01" in out
    (patient,) = read_recist_table(tmp_path / "reads.csv", today=dt.date(2025, 6, 1))
    assert patient.warnings == (
        f"{tmp_path / 'reads.csv'}, line 3, column 'date': 2099-03-01 is after today (2025-06-01); check the date "
        "(kept as given)",
    )


COHORT_HEADER = (
    "patient_id,modality,baseline_date,early_date,baseline_volume_ml,early_volume_ml,baseline_sld_mm,early_sld_mm,"
    "lesion_count,liver_volume_ml,pfs_event,pfs_date,ki67_percent,cga_ug_l,extra_abdominal,grade"
)


def test_cohort_future_pfs_date_is_a_warning_and_the_table_is_windows_1252(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [COHORT_HEADER]
    for i in range(6):
        pfs = "2099-05-01" if i == 0 else f"202{i % 3}-0{i + 1}-15"
        rows.append(f"Pé{i};CT;2019-01-0{i + 1};2019-06-0{i + 1};{20 + 7 * i};{24 + 5 * i};50;{52 + i};3;1500;"
                    f"{i % 2};{pfs};{2 + i};{100 + 10 * i};{i % 2};G1".replace(";", ","))  # fmt: skip
    path = tmp_path / "cohort.csv"
    path.write_bytes(("\r\n".join(rows).replace(",", ";") + "\r\n").encode("cp1252"))
    table = read_cohort_table(path, today=dt.date(2025, 6, 1))
    assert table.warnings == (
        f"{path}, line 2, column 'pfs_date': 2099-05-01 is after today (2025-06-01); check the date (kept as given)",
    )
    assert main(["cohort", str(path), "--out", str(tmp_path / "o"), "--bootstrap", "20", "--no-pdf"]) == 0
    err = capsys.readouterr().err
    assert re.search(
        rf"warning: {re.escape(str(path))}, line 2, column 'pfs_date': 2099-05-01 is after today", err
    )
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert "2099-05-01 is after today" in results["warnings"][0]
    assert "2099-05-01 is after today" in (tmp_path / "o" / "report.html").read_text()


def test_follow_up_manifest_future_date_is_a_warning(tmp_path: Path) -> None:
    write_image(phantom(), tmp_path / "a.nii.gz")
    write_image(label_phantom(), tmp_path / "a_seg.nii.gz")
    (tmp_path / "m.csv").write_text(
        "date,image,seg\n2024-01-01,a.nii.gz,a_seg.nii.gz\n2099-01-01,a.nii.gz,a_seg.nii.gz\n"
    )
    manifest = read_manifest(tmp_path / "m.csv", today=dt.date(2025, 6, 1))
    assert manifest.warnings == (
        f"{tmp_path / 'm.csv'}, line 3, column 'date': 2099-01-01 is after today (2025-06-01); check the date "
        "(kept as given)",
    )


def test_study_treatment_and_scan_dates_after_today_are_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """import-clinical (treatments.csv) and import-scans (manifest) keep a 2099 date and say so."""
    study = tmp_path / "study"
    assert main(["study", "init", str(study)]) == 0
    (tmp_path / "clinical.csv").write_bytes("patient_id;grade\r\nHé1;G1\r\n".encode("cp1252"))
    (tmp_path / "treatments.csv").write_text(
        "patient_id,treatment,start_date,end_date\nHé1,octreotide,2020-01-01,2099-12-31\n", encoding="utf-8"
    )
    capsys.readouterr()
    argv = [
        "study",
        "import-clinical",
        str(tmp_path / "clinical.csv"),
        "--treatments",
        str(tmp_path / "treatments.csv"),
    ]
    assert main([*argv, "--study", str(study)]) == 0
    err = capsys.readouterr().err
    assert re.search(
        rf"warning: {re.escape(str(tmp_path / 'treatments.csv'))}, line 2, column 'end_date': 2099-12-31 is after "
        r"today \(\d{4}-\d\d-\d\d\); check the date \(kept as given\)",
        err,
    ), err
    assert "Hé1" not in err  # messages give lines, never the hospital id
    write_image(phantom(), tmp_path / "ct.nii.gz")
    (tmp_path / "scans.csv").write_text("patient_id,date,image,modality\nHé1,2099-02-03,ct.nii.gz,CT\n")
    assert main(["study", "import-scans", str(tmp_path / "scans.csv"), "--study", str(study)]) == 0
    err = capsys.readouterr().err
    assert re.search(
        rf"warning: {re.escape(str(tmp_path / 'scans.csv'))}, line 2, column 'date': 2099-02-03 is after today",
        err,
    ), err
