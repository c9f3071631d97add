"""The CSV tables a study reads (clinical data, treatments, scan manifests, segmentation lists, patient lists):
one reader, so every table gets the same checks and the same messages.

- UTF-8 (with or without the byte-order mark Excel writes); another encoding is refused with the fix.
- The separator is the most frequent of ``,``, ``;`` (European Excel) and tab on the header line.
- Leading blank lines and blank rows are skipped; cells are stripped; a short row is padded with empty cells.
- A row with more non-empty cells than the header, or a value running over several lines (an unmatched quote),
  is refused with its line number.
- Column names are compared in canonical form (:func:`normalise_name`): ``Patient ID``, ``patient_id`` and
  ``PATIENT-ID`` are the same column.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hepavol.errors import TableError


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
    """A CSV table as read: ``header`` as written, ``keys`` its canonical names, ``rows`` (line number, cells)."""

    source: str
    header: tuple[str, ...]
    keys: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str, ...]], ...]

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
                f"{self.source}: missing column(s) {', '.join(repr(c) for c in missing)}; {expected} "
                f"(found: {', '.join(repr(h) for h in self.header) or 'no header'})."
            )


def read_table(path: str | os.PathLike[str], what: str) -> Table:
    """Read a CSV table (see the module docstring); ``what`` names it in messages (``"clinical"``, ...).

    Raises
    ------
    TableError
        Missing or unreadable file, not UTF-8, empty, ragged or badly quoted rows; the message names the line.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("Patient ID;Date\\n\\nA1; 2020-01-01\\n", encoding="utf-8")
    >>> read_table(p, "example").records()
    [(3, {'patient_id': 'A1', 'date': '2020-01-01'})]
    """
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise TableError(f"{what} file {source} does not exist; check the path") from None
    except OSError as exc:
        raise TableError(f"cannot read {what} file {source}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise TableError(
            f"{source} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as 'CSV UTF-8' "
            "(Excel: File > Save As > CSV UTF-8)"
        ) from None
    lines = text.splitlines(keepends=True)
    first = next((i for i, s in enumerate(lines) if s.strip()), None)
    if first is None:
        raise TableError(f"{what} file {source} is empty; expected a header line")
    counts = {sep: lines[first].count(sep) for sep in (",", ";", "\t")}
    delimiter = max(counts, key=lambda s: counts[s]) if any(counts.values()) else ","
    reader = csv.reader(lines[first:], delimiter=delimiter, strict=True)
    rows: list[tuple[int, tuple[str, ...]]] = []
    line = first + 1
    try:
        header = tuple(h.strip() for h in next(reader))
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
                    f"{source}, line {line}: a value runs over several lines (an unmatched double quote?); remove "
                    "line breaks and stray quotes from the cells"
                )
            if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
                raise TableError(
                    f"{source}, line {line}: {len(cells)} cells but the header has {len(header)} columns; "
                    f"put quotes around values that contain the separator {delimiter!r}"
                )
            cells = cells[: len(header)] + [""] * (len(header) - len(cells))
            rows.append((line, tuple(c.strip() for c in cells)))
    except csv.Error as exc:
        raise TableError(
            f"{source}, line {line}: not valid CSV ({exc}); check the double quotes on this line: a quoted value "
            'must be quoted as a whole, with "" for a quote inside it'
        ) from None
    return Table(source, header, keys, tuple(rows))
