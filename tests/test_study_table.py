"""The one CSV reader of the study tables (hepavol.study.table), through each table that uses it: a scan manifest,
a segmentation list, a patient list, clinical data. Expected values are the cells as written in each file."""

from __future__ import annotations

from pathlib import Path

import pytest

from hepavol.errors import TableError
from hepavol.study.importer import read_scan_manifest
from hepavol.study.pacs_import import read_patient_list
from hepavol.study.table import read_table


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_excel_exports_read_as_written(tmp_path: Path) -> None:
    """European Excel: semicolons, a byte-order mark, headers with spaces and capitals, a blank line."""
    (tmp_path / "ct.nii.gz").write_bytes(b"")
    manifest = _write(
        tmp_path / "m.csv",
        "\ufeffPatient ID;Date;Image\n\nP1 ; 2020-01-02;ct.nii.gz\n",
    )
    (row,) = read_scan_manifest(manifest)
    assert (row.patient_id, row.date.isoformat(), row.image.name) == ("P1", "2020-01-02", "ct.nii.gz")
    assert row.source == f"{manifest}, line 3"
    (request,) = read_patient_list(_write(tmp_path / "p.csv", "PATIENT_ID\tModality\nQX-7\tct\n"))
    assert (request.line, request.patient_id, request.modalities) == (2, "QX-7", ("CT",))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"is empty; expected a header line"),
        ("date,image\n2020-01-01,a,b\n", r"line 2: 3 cells but the header has 2 columns; put quotes"),
        (
            'date,image\n"2020-01-01,a\n',
            r"line 2: not valid CSV \(unexpected end of data\); check the double quotes",
        ),
        ('date,image\n"2020-01-01\n",a\n', r"line 2: a value runs over several lines"),
        ("date\n2020-01-01\n", r"missing column\(s\) 'image'; a scan manifest has date,image.*\(found: 'date'\)"),
    ],
)
def test_the_same_errors_for_every_table(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path / "m.csv", text)
    with pytest.raises(TableError, match=message):
        read_scan_manifest(path)


def test_encoding_and_missing_files(tmp_path: Path) -> None:
    # Not UTF-8: read as Windows-1252 (Excel's plain "CSV" on Western-European Windows), a superset of Latin-1.
    latin = _write(tmp_path / "l.csv", "patient_id,note\nA,caf\u00e9 \u2013 \u20ac\n", encoding="cp1252")
    table = read_table(latin, "patient list")
    assert (table.encoding, table.records()) == (
        "windows-1252",
        [(2, {"patient_id": "A", "note": "caf\u00e9 \u2013 \u20ac"})],
    )
    workbook = _write(tmp_path / "w.csv", "PK\x03\x04 rest of a zip", encoding="latin-1")
    with pytest.raises(
        TableError, match=r"w\.csv is a ZIP file \(an Excel \.xlsx .*save the sheet as 'CSV UTF-8'"
    ):
        read_patient_list(workbook)
    with pytest.raises(TableError, match=r"manifest file .*nothere\.csv does not exist; check the path"):
        read_scan_manifest(tmp_path / "nothere.csv")
    table = read_table(_write(tmp_path / "t.csv", "a,a,b\n1,2,\n"), "example")
    assert table.records() == [(2, {"a": "1", "b": ""})]  # the first of two same-named columns wins
