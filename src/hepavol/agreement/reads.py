"""The reads of one reader: lesion measurements per scan, from a paired-measurement table or from a workspace.

The table of ``hepavol agreement`` has one row per reader, scan and lesion::

    patient_id,date,reader,lesion_id,volume_ml,long_axis_mm[,target]

- ``date`` is the scan date (ISO ``YYYY-MM-DD``); a scan is (``patient_id``, ``date``).
- ``lesion_id`` names the same lesion for both readers and at every scan of a patient (matching lesions between
  readers and over time is done before this table is written).
- ``volume_ml`` ≥ 0 and ``long_axis_mm`` ≥ 0 (RECIST long axis); 0 means the lesion has disappeared. An empty
  ``long_axis_mm`` is a lesion whose diameter was not measured (a target without it is "not evaluated").
- A row with an empty ``lesion_id`` (and empty measurements) records a scan that the reader read and found no
  lesion on; a scan with no row at all was not read by that reader.
- ``target`` (optional, ``yes``/``no``) marks the lesions whose long axes make the sum of diameters; it is read at
  the patient's baseline scan. Without the column every lesion of the baseline scan is a target.
- Repeated reads by one reader (intra-reader agreement) are named ``NAME#2``, ``NAME#3``... in ``reader``:
  ``A`` and ``A#2`` are two reads of reader ``A``.

Phase 2 (the study workspace) builds :class:`ReaderReads` from each reader's stored segmentations with
:func:`reads_from_rows`; everything downstream (:mod:`hepavol.agreement.analysis`) takes ``ReaderReads``.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hepavol.errors import TableError

__all__ = [
    "AGREEMENT_COLUMNS",
    "LesionRead",
    "ReaderReads",
    "base_reader",
    "read_agreement_table",
    "reads_from_rows",
]

AGREEMENT_COLUMNS = ("patient_id", "date", "reader", "lesion_id", "volume_ml", "long_axis_mm")
_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0", ""}

ScanKey = tuple[str, dt.date]


@dataclass(frozen=True, slots=True, kw_only=True)
class LesionRead:
    """One lesion as one reader measured it on one scan (``line``: input line, 0 when not from a file)."""

    patient_id: str
    date: dt.date
    reader: str
    lesion_id: str
    volume_ml: float
    long_axis_mm: float | None
    target: bool | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class ReaderReads:
    """Everything one reader read: scan → lesions (an empty tuple: read, no lesion found).

    ``targets_marked`` is True when the reads say which lesions are targets (the ``target`` column).
    """

    reader: str
    scans: Mapping[ScanKey, tuple[LesionRead, ...]]
    targets_marked: bool
    source: str = ""

    def patients(self) -> list[str]:
        """Patient ids in first-seen order."""
        return list(dict.fromkeys(p for p, _ in self.scans))

    def dates(self, patient_id: str) -> list[dt.date]:
        """The patient's scan dates read by this reader, sorted."""
        return sorted(d for p, d in self.scans if p == patient_id)


def base_reader(name: str) -> str:
    """The reader behind a read name: ``A#2`` → ``A`` (a repeated read), ``A`` → ``A``.

    >>> base_reader("A#2"), base_reader("Dr Smith")
    ('A', 'Dr Smith')
    """
    head, sep, tail = name.rpartition("#")
    return head if sep and tail.isdigit() and head else name


def reads_from_rows(
    reader: str, rows: Iterable[LesionRead], *, targets_marked: bool, source: str = ""
) -> ReaderReads:
    """A :class:`ReaderReads` from lesion rows (rows with an empty ``lesion_id`` only mark a scan as read).

    Raises
    ------
    TableError
        The same lesion twice on one scan.
    """
    scans: dict[ScanKey, list[LesionRead]] = {}
    seen: dict[tuple[str, dt.date, str], int] = {}
    for r in rows:
        key = (r.patient_id, r.date)
        scans.setdefault(key, [])
        if not r.lesion_id:
            continue
        lk = (r.patient_id, r.date, r.lesion_id)
        if lk in seen:
            where = f"{source}, lines {seen[lk]} and {r.line}" if source else "two rows"
            raise TableError(
                f"{where}: reader {reader!r} has lesion {r.lesion_id!r} twice on patient {r.patient_id!r}'s scan of "
                f"{r.date.isoformat()}; give each lesion one row per reader and scan"
            )
        seen[lk] = r.line
        scans[key].append(r)
    ordered = {k: tuple(v) for k, v in sorted(scans.items(), key=lambda kv: (kv[0][0], kv[0][1]))}
    return ReaderReads(reader, ordered, targets_marked, source)


def _number(text: str, *, source: str, line: int, column: str, required: bool) -> float | None:
    if text == "":
        if required:
            raise TableError(
                f"{source}, line {line}: {column} is empty; give a number (0 for a disappeared lesion)"
            )
        return None
    try:
        value = float(text.replace(",", ".")) if text.count(",") == 1 and "." not in text else float(text)
    except ValueError:
        raise TableError(f"{source}, line {line}: {column} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise TableError(f"{source}, line {line}: {column} must be a number >= 0, but it is {text!r}")
    return value


def read_agreement_table(path: str | os.PathLike[str]) -> dict[str, ReaderReads]:
    """Read a paired-measurement table (module docstring) into one :class:`ReaderReads` per reader.

    Readers are returned in the order they first appear in the table.

    Raises
    ------
    TableError
        Missing columns, a bad date or number, a bad ``target`` value, measurements on a row without lesion id,
        the same lesion twice on one scan by one reader; the message names the file and line.
    """
    import warnings

    from hepavol.table import future_date_warning, read_table

    table = read_table(path, "agreement")
    table.require(AGREEMENT_COLUMNS, "expected patient_id,date,reader,lesion_id,volume_ml,long_axis_mm[,target]")
    has_target = "target" in table.keys
    src = table.source
    rows: dict[str, list[LesionRead]] = {}
    for line, rec in table.records():
        patient = rec["patient_id"]
        reader = rec["reader"]
        if not patient:
            raise TableError(f"{src}, line {line}: patient_id is empty")
        if not reader:
            raise TableError(
                f"{src}, line {line}: reader is empty; name the reader (e.g. A, B, or A#2 for a repeat)"
            )
        try:
            date = dt.date.fromisoformat(rec["date"])
        except ValueError:
            raise TableError(
                f"{src}, line {line}: date {rec['date']!r} is not an ISO date; write it as YYYY-MM-DD"
            ) from None
        lesion = rec["lesion_id"]
        target: bool | None = None
        if has_target:
            flag = rec.get("target", "").strip().lower()
            if flag in _YES:
                target = True
            elif flag in _NO:
                target = False
            else:
                raise TableError(f"{src}, line {line}: target must be yes or no, but it is {rec['target']!r}")
        if not lesion:
            if rec["volume_ml"] or rec["long_axis_mm"]:
                raise TableError(
                    f"{src}, line {line}: measurements without a lesion_id; give the lesion an id, or leave "
                    "volume_ml and long_axis_mm empty to record a scan without lesions"
                )
            volume: float | None = 0.0
            axis: float | None = None
        else:
            volume = _number(rec["volume_ml"], source=src, line=line, column="volume_ml", required=True)
            axis = _number(rec["long_axis_mm"], source=src, line=line, column="long_axis_mm", required=False)
        rows.setdefault(reader, []).append(
            LesionRead(
                patient_id=patient,
                date=date,
                reader=reader,
                lesion_id=lesion,
                volume_ml=float(volume or 0.0),
                long_axis_mm=axis,
                target=target,
                line=line,
            )
        )
    if not rows:
        raise TableError(
            f"{src}: the table has a header but no rows; expected one row per reader, scan and lesion"
        )
    first_line: dict[dt.date, int] = {}
    for r in (r for reads in rows.values() for r in reads):
        first_line[r.date] = min(r.line, first_line.get(r.date, r.line))
    for date, line in sorted(first_line.items()):
        if message := future_date_warning(f"{src}, line {line}", "date", date):
            warnings.warn(message, UserWarning, stacklevel=2)  # the command line prints it as "warning: ..."
    return {name: reads_from_rows(name, r, targets_marked=has_target, source=src) for name, r in rows.items()}
