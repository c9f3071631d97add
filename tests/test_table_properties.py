"""Property tests (Hypothesis) for the one CSV reader (hepavol.table) and every reader built on it.

- Round trip: a random table written by Python's ``csv`` writer in each encoding (UTF-8, UTF-8 with BOM, UTF-16
  with BOM, Windows-1252), each separator (``,`` ``;`` tab) and each line ending reads back cell for cell (the
  reference is the table before writing, with cells stripped and blank rows dropped, as the reader documents).
- Robustness: random bytes, and a valid header followed by random text, never raise anything but hepavol's own
  errors (``error:`` + exit 2 on the command line), through ``read_table`` and the RECIST, cohort, follow-up and
  clinical readers.
"""

from __future__ import annotations

import contextlib
import csv
import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hepavol.cli import main
from hepavol.cohort.table import COLUMNS as COHORT_COLUMNS
from hepavol.cohort.table import read_cohort_table
from hepavol.errors import HepavolError, TableError
from hepavol.followup.pipeline import read_manifest
from hepavol.response.table import COLUMNS as RECIST_COLUMNS
from hepavol.response.table import read_recist_table
from hepavol.study.clinical import read_clinical
from hepavol.table import read_table

SETTINGS = settings(
    max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Cell text: any character but NUL and line breaks (a value over several lines is refused by design), from all
# of Unicode for the UTF encodings and from what Windows-1252 can encode for it.
_NOT_IN_CELLS = "\x00\r\n"
unicode_cells = st.text(
    st.characters(blacklist_characters=_NOT_IN_CELLS, blacklist_categories=("Cs",)), max_size=12
)
cp1252_chars = st.sampled_from(
    sorted(
        {
            c
            for c in (bytes([b]).decode("cp1252", errors="ignore") for b in range(256))
            if c and c not in _NOT_IN_CELLS
        }
    )
)
cp1252_cells = st.text(cp1252_chars, max_size=12)
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "cp1252")


def _names(cells: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    """2 to 6 column names with a visible character and no separator (the separator is found on the header)."""
    name = cells.filter(lambda s: s.strip() != "" and not any(c in s for c in ",;\t"))
    return st.lists(name, min_size=2, max_size=6)


@st.composite
def tables(draw: st.DrawFn) -> tuple[str, str, str, list[str], list[list[str]]]:
    encoding = draw(st.sampled_from(ENCODINGS))
    cells = cp1252_cells if encoding == "cp1252" else unicode_cells
    header = draw(_names(cells))
    rows = draw(st.lists(st.lists(cells, min_size=len(header), max_size=len(header)), max_size=8))
    return encoding, draw(st.sampled_from((",", ";", "\t"))), draw(st.sampled_from(("\n", "\r\n"))), header, rows


@SETTINGS
@given(tables(), st.booleans())
def test_random_tables_read_back_as_written(
    case: tuple[str, str, str, list[str], list[list[str]]], leading_blank_line: bool
) -> None:
    encoding, delimiter, newline, header, rows = case
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    text = (newline if leading_blank_line else "") + buf.getvalue()
    data = text.encode(encoding)
    if encoding == "cp1252":
        # The one ambiguity of the fallback: Windows-1252 bytes that are also valid UTF-8 ('Ã©' is the UTF-8 of
        # 'é') are read as UTF-8. Pure ASCII is the same text either way.
        try:
            data.decode("utf-8")
            assume(text.isascii())
        except UnicodeDecodeError:
            pass
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        path.write_bytes(data)
        table = read_table(path, "random table")
    assert table.delimiter == delimiter
    assert table.header == tuple(h.strip() for h in header)
    offset = 2 if leading_blank_line else 1
    expected = [
        (offset + 1 + i, tuple(c.strip() for c in row))
        for i, row in enumerate(rows)
        if any(c.strip() for c in row)
    ]
    assert list(table.rows) == expected
    assert table.header_line == offset
    if encoding != "cp1252" or not text.isascii():
        assert table.encoding == {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "utf-16": "utf-16"}.get(
            encoding, "windows-1252"
        )


def _readers(path: Path) -> None:
    """Every table reader on one file: each must return or raise a hepavol error."""
    for read in (
        lambda: read_table(path, "table"),
        lambda: read_recist_table(path),
        lambda: read_cohort_table(path),
        lambda: read_manifest(path),
        lambda: read_clinical(path),
        lambda: read_clinical(path, treatments_path=path),
    ):
        with contextlib.suppress(HepavolError):
            read()


@SETTINGS
@given(st.binary(max_size=600))
def test_random_bytes_give_a_table_or_a_hepavol_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "random.csv"
        path.write_bytes(data)
        try:
            table = read_table(path, "random")
        except TableError:
            pass
        else:
            assert all(len(cells) == len(table.header) for _, cells in table.rows)
        _readers(path)


_HEADERS = (
    ",".join(RECIST_COLUMNS),
    ",".join(COHORT_COLUMNS),
    "date,image,seg,patient_id",
    "patient_id,treatment,start_date,end_date,grade,ki67_percent,cga_ug_l",
)
# Rows made of pieces that look like the real thing, so the readers get past the header and into the cells.
_PIECES = st.sampled_from(
    ["P1", "2024-01-01", "2099-12-31", "0001-01-01", "1e308", "-1", "nan", "inf", "target", "new", "non_target",
     "too_small", "present", "CT", "MR", "1", "0", "yes", "30", "12,5", '"', '""', ",", ";", "\t", " ", "é", "\x85",
     "\u2028", "T1", "G2", "tace", "", "1e-400", "9" * 40, "NA"]
)  # fmt: skip


@SETTINGS
@given(st.sampled_from(_HEADERS), st.lists(st.lists(_PIECES, max_size=18).map("".join), max_size=6))
def test_valid_header_and_random_rows_give_a_result_or_a_hepavol_error(header: str, rows: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.csv"
        path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
        _readers(path)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.lists(_PIECES, max_size=18).map("".join), min_size=1, max_size=5))
def test_recist_command_exits_0_or_2_never_internal_error(rows: list[str]) -> None:
    """Through the command line: exit 0 or 2 with one ``error:`` line, never 1 (internal error)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reads.csv"
        path.write_text(",".join(RECIST_COLUMNS) + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
        err = io.StringIO()
        out = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(["recist", str(path)])
        assert code in (0, 2), err.getvalue()
        if code == 2:
            assert err.getvalue().startswith("error: ")
            assert err.getvalue().count("\n") == 1


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1"])
@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_recist_reads_every_encoding_and_separator(tmp_path: Path, encoding: str, delimiter: str) -> None:
    """The same read table (organ names with accents) in each encoding and separator gives the same PD."""
    rows = [RECIST_COLUMNS, ("Pé", "2024-01-02", "L1", "foie (segment Ⅳ)", "target", "30", ""),
            ("Pé", "2024-03-01", "L1", "foie (segment Ⅳ)", "target", "36", "")]  # fmt: skip
    if encoding in ("cp1252", "latin-1"):
        rows = [tuple(c.replace("Ⅳ", "IV") for c in r) for r in rows]
    text = "\r\n".join(delimiter.join(r) for r in rows) + "\r\n"
    path = tmp_path / "reads.csv"
    path.write_bytes(text.encode(encoding))
    (patient,) = read_recist_table(path)
    assert patient.patient_id == "Pé"
    assert patient.rows[0].organ.startswith("foie (segment ")
