"""The one CSV reader for every table a user gives hepavol: RECIST read tables (``recist``), follow-up manifests
(``follow-up``), cohort tables (``cohort``) and the study tables (clinical data, treatments, scan manifests,
segmentation lists, patient lists). Every table gets the same rules and the same messages:

- Encoding: UTF-8, with or without the byte-order mark Excel writes; UTF-16 with a byte-order mark (Excel's
  "Unicode text"); any other file is read as Windows-1252 (what Excel's plain "CSV" writes on Western-European
  Windows; it includes every printable Latin-1 character), falling back to Latin-1 for the five bytes
  Windows-1252 leaves undefined. A valid UTF-8 file is always read as UTF-8. A spreadsheet (``.xlsx``/``.ods``,
  a ZIP file) or a file with NUL bytes is refused with the fix.
- Separator: the most frequent of ``,``, ``;`` (European Excel) and tab on the header line (outside quotes).
- Lines end with LF, CR LF or CR. Leading blank lines and blank rows are skipped; cells are stripped; a short row
  is padded with empty cells. A row with more non-empty cells than the header, a value running over several lines
  (an unmatched quote) or a badly quoted cell is refused with its line number.
- Line numbers are those of the file (an editor's; the header is line 1 unless blank lines come first).
- Column names are compared in canonical form (:func:`normalise_name`): ``Patient ID``, ``patient_id`` and
  ``PATIENT-ID`` are the same column.

Reading never raises anything but :class:`~hepavol.errors.TableError` on bad content (the property tests feed it
random bytes).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from hepavol.errors import TableError

__all__ = ["Table", "future_date_warning", "normalise_name", "read_table"]

SEPARATORS: tuple[str, ...] = (",", ";", "\t")


def normalise_name(text: str) -> str:
    """A header or category name in canonical form: lower case, ``µ`` → ``u``, ``%`` → ``percent``, runs of other
    characters → ``_``.

    Examples
    --------
    >>> normalise_name("CgA (µg/L)"), normalise_name("Ki-67 (%)"), normalise_name(" Radiofrequency ablation ")
    ('cga_ug_l', 'ki_67_percent', 'radiofrequency_ablation')
    """
    t = text.strip().lower().replace("µ", "u").replace("μ", "u").replace("%", " percent ")
    return re.sub(r"[^a-z0-9]+", "_", t).strip("_")


@dataclass(frozen=True, slots=True)
class Table:
    """A CSV table as read: ``header`` as written, ``keys`` its canonical names, ``rows`` (line number, cells),
    the line of the header, the encoding and the separator found."""

    source: str
    header: tuple[str, ...]
    keys: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str, ...]], ...]
    header_line: int = 1
    encoding: str = "utf-8"
    delimiter: str = ","

    def records(self) -> list[tuple[int, dict[str, str]]]:
        """(line number, {canonical column name: value}) per row; the first of two same-named columns wins."""
        out = []
        for line, cells in self.rows:
            record: dict[str, str] = {}
            for key, cell in zip(self.keys, cells):
                record.setdefault(key, cell)
            out.append((line, record))
        return out

    def require(self, columns: Iterable[str], expected: str) -> None:
        """Raise TableError naming the missing ``columns`` (canonical names) and what the table should hold."""
        missing = [c for c in columns if c not in self.keys]
        if missing:
            raise TableError(
                f"{self.source}, line {self.header_line}: missing column(s) {', '.join(repr(c) for c in missing)}; "
                f"{expected} (found: {', '.join(repr(h) for h in self.header) or 'no header'})."
            )


def decode_text(data: bytes, source: str) -> tuple[str, str]:
    """The text of a CSV file and the encoding used (see the module docstring).

    Examples
    --------
    >>> decode_text("Lésion;Ø\\n".encode("cp1252"), "t.csv")
    ('Lésion;Ø\\n', 'windows-1252')
    >>> decode_text("\\ufeffLésion\\n".encode("utf-8"), "t.csv")
    ('Lésion\\n', 'utf-8-sig')
    """
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise TableError(
                f"{source} starts with a UTF-8 byte-order mark but is not UTF-8 text (byte {exc.start + 3}: "
                f"{exc.reason}); save it again as 'CSV UTF-8' (Excel: File > Save As > CSV UTF-8)"
            ) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise TableError(
                f"{source} starts with a UTF-16 byte-order mark but is not UTF-16 text (byte {exc.start}: "
                f"{exc.reason}); save it again as 'CSV UTF-8' (Excel: File > Save As > CSV UTF-8)"
            ) from None
    if data.startswith(b"PK\x03\x04"):
        raise TableError(
            f"{source} is a ZIP file (an Excel .xlsx or LibreOffice .ods workbook?), not a CSV text table; save "
            "the sheet as 'CSV UTF-8' (Excel: File > Save As > CSV UTF-8)"
        )
    if b"\x00" in data:
        raise TableError(
            f"{source} contains NUL bytes (byte {data.index(0)}): it is not a CSV text table (a spreadsheet, or "
            "UTF-16 text without a byte-order mark?); save it as 'CSV UTF-8' (Excel: File > Save As > CSV UTF-8)"
        )
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _count_outside_quotes(line: str, sep: str) -> int:
    count, quoted = 0, False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            count += 1
    return count


def read_table(source: str | os.PathLike[str] | TextIO, what: str, *, name: str | None = None) -> Table:
    """Read a CSV table (see the module docstring); ``what`` names it in messages (``"clinical"``, ...).

    Parameters
    ----------
    source : path or text stream
        The file (read as bytes and decoded as the module docstring says) or an open text stream.
    what : str
        What the table is, for messages (``"RECIST read table"``, ``"cohort table"``...).
    name : str, optional
        The name used in messages instead of the path (default: the path, or the stream's ``name``).

    Raises
    ------
    TableError
        Missing or unreadable file, not a text table, empty, ragged or badly quoted rows; the message names the
        line.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("Patient ID;Date\\n\\nA1; 2020-01-01\\n", encoding="utf-8")
    >>> read_table(p, "example").records()
    [(3, {'patient_id': 'A1', 'date': '2020-01-01'})]
    """
    if isinstance(source, (str, os.PathLike)):
        label = name or str(source)
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise TableError(f"{what} file {label} does not exist; check the path") from None
        except IsADirectoryError:
            raise TableError(f"{what} file {label} is a folder; give the path of the CSV file") from None
        except OSError as exc:
            raise TableError(f"cannot read {what} file {label}: {exc.strerror or exc}") from None
        text, encoding = decode_text(data, label)
    else:
        label = name or str(getattr(source, "name", None) or "<table>")
        text, encoding = source.read(), "text"
        if "\x00" in text:
            raise TableError(f"{label} contains NUL characters: it is not a CSV text table")
        text = text.removeprefix("\ufeff")
    lines = io.StringIO(text, newline="").readlines()
    first = next((i for i, s in enumerate(lines) if s.strip()), None)
    if first is None:
        raise TableError(f"{what} file {label} is empty; expected a header line")
    counts = {sep: _count_outside_quotes(lines[first], sep) for sep in SEPARATORS}
    delimiter = max(counts, key=lambda s: counts[s]) if any(counts.values()) else ","
    reader = csv.reader(lines[first:], delimiter=delimiter, strict=True)
    rows: list[tuple[int, tuple[str, ...]]] = []
    line = first + 1
    try:
        header = tuple(h.strip() for h in next(reader))
        if reader.line_num > 1 or any("\n" in h or "\r" in h for h in header):
            raise TableError(
                f"{label}, line {line}: a column name runs over several lines (an unmatched double quote?); "
                "remove line breaks and stray quotes from the header"
            )
        keys = tuple(normalise_name(h) for h in header)
        while True:
            line = first + reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            if not cells or all(not c.strip() for c in cells):
                continue
            if any("\n" in c or "\r" in c for c in cells):
                raise TableError(
                    f"{label}, line {line}: a value runs over several lines (an unmatched double quote?); remove "
                    "line breaks and stray quotes from the cells"
                )
            if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
                raise TableError(
                    f"{label}, line {line}: {len(cells)} cells but the header has {len(header)} columns; "
                    f"put quotes around values that contain the separator {delimiter!r}"
                )
            cells = cells[: len(header)] + [""] * (len(header) - len(cells))
            rows.append((line, tuple(c.strip() for c in cells)))
    except csv.Error as exc:
        raise TableError(
            f"{label}, line {line}: not valid CSV ({exc}); check the double quotes on this line: a quoted value "
            'must be quoted as a whole, with "" for a quote inside it'
        ) from None
    return Table(label, header, keys, tuple(rows), header_line=first + 1, encoding=encoding, delimiter=delimiter)


def future_date_warning(where: str, column: str, date: dt.date, *, today: dt.date | None = None) -> str | None:
    """The warning for a date after today (``None`` if it is not): a typing error (2099 for 2019) or a planned
    date, which hepavol accepts but says so.

    Examples
    --------
    >>> future_date_warning("t.csv, line 3", "date", dt.date(2099, 1, 2), today=dt.date(2025, 1, 1))
    "t.csv, line 3, column 'date': 2099-01-02 is after today (2025-01-01); check the date (kept as given)"
    >>> future_date_warning("t.csv, line 3", "date", dt.date(2020, 1, 2)) is None
    True
    """
    now = today or dt.date.today()
    if date <= now:
        return None
    return f"{where}, column '{column}': {date.isoformat()} is after today ({now.isoformat()}); check the date (kept as given)"
