"""Read a RECIST read table (CSV) into assessments, with errors that name the file, the line and the value.

Columns (header required, any order, extra columns ignored)::

    patient_id,date,lesion_id,organ,category,diameter_mm,status

One row per lesion per assessment. ``date`` is ``YYYY-MM-DD``; ``organ`` is free text, ``lymph_node`` marks a
node; ``category`` is ``target``, ``non_target`` or ``new``; ``diameter_mm`` is for targets only (long axis, short
axis for nodes; ``0`` if disappeared; empty with status ``too_small`` = too small to measure, counted as 5 mm;
empty with empty status = not evaluated); ``status`` is empty or ``too_small`` for targets, ``present``,
``absent`` or ``progression`` for non-targets, ``present`` (unequivocal) or ``equivocal`` for new lesions.
Category and status are case-insensitive. A non-target lymph node whose short axis is below 10 mm is
``absent`` (normal), as RECIST's non-target CR requires. Line numbers in messages are those of the file (header = line 1).
The file is read by :func:`hepavol.table.read_table`, the reader of every table hepavol takes (UTF-8 or
Windows-1252; ``,``, ``;`` or tab; column names in any case).

Examples
--------
>>> import io
>>> text = '''patient_id,date,lesion_id,organ,category,diameter_mm,status
... P1,2024-01-02,L1,liver,target,30,
... P1,2024-03-01,L1,liver,target,36,
... '''
>>> [r.best_overall_response.value for r in assess_table(read_recist_table(io.StringIO(text), name="t.csv"))]
['PD']
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TextIO

from hepavol.errors import TableError
from hepavol.response.recist import (
    SD_MIN_DAYS,
    Assessment,
    NewLesion,
    NewLesionStatus,
    NonTargetLesion,
    NonTargetStatus,
    PatientAssessment,
    RecistDataError,
    TargetLesion,
    assess_patient,
)
from hepavol.table import Table, future_date_warning, read_table

__all__ = ["COLUMNS", "PatientReads", "RecistRow", "assess_table", "read_recist_table"]

COLUMNS = ("patient_id", "date", "lesion_id", "organ", "category", "diameter_mm", "status")
CATEGORIES = ("target", "non_target", "new")
_STATUSES = {
    "target": ("", "too_small"),
    "non_target": tuple(s.value for s in NonTargetStatus),
    "new": tuple(s.value for s in NewLesionStatus),
}
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class RecistRow:
    """One parsed row of the read table, with its line number."""

    line: int
    patient_id: str
    date: datetime.date
    lesion_id: str
    organ: str
    category: str
    diameter_mm: Decimal | None
    status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientReads:
    """All rows of one patient, grouped into assessments, and the file they came from."""

    patient_id: str
    source: str
    rows: tuple[RecistRow, ...]
    warnings: tuple[str, ...] = ()  # dates after today (kept as given)

    def assessments(self) -> list[Assessment]:
        """The rows as one :class:`Assessment` per date (in date order)."""
        by_date: dict[datetime.date, list[RecistRow]] = {}
        for r in self.rows:
            by_date.setdefault(r.date, []).append(r)
        out = []
        for date in sorted(by_date):
            rows = by_date[date]
            out.append(
                Assessment(
                    date=date,
                    targets=tuple(
                        TargetLesion(
                            lesion_id=r.lesion_id,
                            organ=r.organ,
                            diameter_mm=r.diameter_mm,
                            too_small=r.status == "too_small",
                        )
                        for r in rows
                        if r.category == "target"
                    ),
                    non_targets=tuple(
                        NonTargetLesion(lesion_id=r.lesion_id, organ=r.organ, status=r.status)
                        for r in rows
                        if r.category == "non_target"
                    ),
                    new_lesions=tuple(
                        NewLesion(lesion_id=r.lesion_id, organ=r.organ, status=r.status)
                        for r in rows
                        if r.category == "new"
                    ),
                )
            )
        return out

    def line_of(self, date: datetime.date | None, lesion_id: str | None, *, last: bool = False) -> int | None:
        """The line of the row of ``lesion_id`` on ``date`` (the last such row with ``last=True``)."""
        hits = [
            r.line
            for r in self.rows
            if (date is None or r.date == date) and (lesion_id is None or r.lesion_id == lesion_id)
        ]
        if not hits:
            return None
        return hits[-1] if last else hits[0]


def _fail(source: str, line: int, message: str) -> TableError:
    return TableError(f"{source}, line {line}: {message}")


def _parse_date(text: str, source: str, line: int) -> datetime.date:
    if not _DATE_RE.match(text):
        raise _fail(source, line, f"date {text!r} is not a date in YYYY-MM-DD form (e.g. 2024-03-01)")
    try:
        return datetime.date.fromisoformat(text)
    except ValueError as exc:
        raise _fail(source, line, f"date {text!r} is not a valid date ({exc})") from None


def _parse_diameter(text: str, source: str, line: int) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _fail(source, line, f"diameter_mm {text!r} is not a number (use a decimal point: 12.5)") from None
    if not value.is_finite():
        raise _fail(source, line, f"diameter_mm {text!r} is not a finite number")
    if value < 0:
        raise _fail(source, line, f"diameter_mm {text!r} is negative; use 0 for a lesion that disappeared")
    if value > MAX_DIAMETER_MM:
        raise _fail(
            source,
            line,
            f"column 'diameter_mm': value {text!r} is more than {MAX_DIAMETER_MM} mm, not a lesion diameter; give "
            "the diameter in millimetres (e.g. 23.5)",
        )
    return value


#: The largest diameter_mm a read table may hold: no lesion is a metre long; a larger value is a unit or typing
#: error (and 1e308 would overflow the percentages).
MAX_DIAMETER_MM = Decimal(1000)


def _rows(table: Table) -> Iterator[RecistRow]:
    source = table.source
    missing = [c for c in COLUMNS if c not in table.keys]
    if missing:
        raise _fail(
            source,
            table.header_line,
            f"missing column(s) {', '.join(missing)} in header {','.join(table.header)!r}; expected "
            f"{','.join(COLUMNS)}",
        )
    for line, record in table.records():
        cell = {c: record[c] for c in COLUMNS}
        for name in ("patient_id", "date", "lesion_id", "category"):
            if not cell[name]:
                raise _fail(source, line, f"{name} is empty")
        date = _parse_date(cell["date"], source, line)
        category = cell["category"].lower()
        if category not in CATEGORIES:
            raise _fail(
                source, line, f"unknown category {cell['category']!r}; expected one of {', '.join(CATEGORIES)}"
            )
        status = cell["status"].lower()
        if status not in _STATUSES[category]:
            allowed = ", ".join(repr(s) if s else "empty" for s in _STATUSES[category])
            raise _fail(
                source, line, f"unknown status {cell['status']!r} for category {category}; expected {allowed}"
            )
        diameter: Decimal | None = None
        if cell["diameter_mm"]:
            if category != "target":
                raise _fail(
                    source,
                    line,
                    f"diameter_mm {cell['diameter_mm']!r} given for a {category} lesion; only targets are "
                    "measured, leave it empty",
                )
            diameter = _parse_diameter(cell["diameter_mm"], source, line)
            if status == "too_small":
                raise _fail(
                    source,
                    line,
                    f"diameter_mm {cell['diameter_mm']!r} with status too_small; give the measured value or "
                    "too_small with an empty diameter",
                )
        yield RecistRow(
            line=line,
            patient_id=cell["patient_id"],
            date=date,
            lesion_id=cell["lesion_id"],
            organ=cell["organ"],
            category=category,
            diameter_mm=diameter,
            status=status,
        )


def read_recist_table(
    source: str | os.PathLike[str] | TextIO, *, name: str | None = None, today: datetime.date | None = None
) -> list[PatientReads]:
    """Parse a RECIST read table into one :class:`PatientReads` per patient (in order of first appearance).

    The file is read by :func:`hepavol.table.read_table` (UTF-8 or Windows-1252, separator ``,`` ``;`` or tab).
    Checks here (each a :class:`~hepavol.errors.TableError` naming the file, line and value): missing columns,
    no rows, empty identifiers, unparseable dates and numbers, a diameter above :data:`MAX_DIAMETER_MM`, unknown
    categories and statuses, a diameter on a non-target or new lesion, a diameter with ``too_small``, the same
    lesion twice on one date, a target lesion that first appears after the patient's baseline.
    :func:`assess_table` adds the engine's checks. A date after ``today`` (default: the computer's date) is kept
    with a warning in :attr:`PatientReads.warnings`.

    Raises
    ------
    TableError
        The file cannot be read, or a bad row.
    """
    table = read_table(source, "RECIST read table", name=name)
    label = table.source
    rows = list(_rows(table))
    if not rows:
        raise TableError(
            f"{label}, line {table.header_line}: the table has a header but no rows; add one row per lesion per "
            f"assessment ({','.join(COLUMNS)})"
        )
    patients: dict[str, list[RecistRow]] = {}
    for r in rows:
        patients.setdefault(r.patient_id, []).append(r)
    out = []
    for patient_id, prows in patients.items():
        seen: dict[tuple[datetime.date, str], int] = {}
        for r in prows:
            key = (r.date, r.lesion_id)
            if key in seen:
                raise _fail(
                    label,
                    r.line,
                    f"lesion {r.lesion_id!r} of patient {patient_id!r} appears twice on {r.date.isoformat()} "
                    f"(first on line {seen[key]}); give each lesion one row per date",
                )
            seen[key] = r.line
        baseline = min(r.date for r in prows)
        baseline_targets = {r.lesion_id for r in prows if r.date == baseline and r.category == "target"}
        for r in sorted(prows, key=lambda r: (r.date, r.line)):
            if r.category == "target" and r.lesion_id not in baseline_targets:
                raise _fail(
                    label,
                    r.line,
                    f"target lesion {r.lesion_id!r} of patient {patient_id!r} first appears on "
                    f"{r.date.isoformat()}, after the baseline {baseline.isoformat()}; targets are chosen at "
                    "baseline: record a lesion that appears later as category new",
                )
        warnings: list[str] = []
        for date in sorted({r.date for r in prows}):
            first_line = min(r.line for r in prows if r.date == date)
            warning = future_date_warning(f"{label}, line {first_line}", "date", date, today=today)
            if warning:
                warnings.append(warning)
        out.append(PatientReads(patient_id=patient_id, source=label, rows=tuple(prows), warnings=tuple(warnings)))
    return out


def assess_table(
    patients: Iterable[PatientReads], *, confirm: bool = False, sd_min_days: int = SD_MIN_DAYS
) -> list[PatientAssessment]:
    """Run :func:`~hepavol.response.recist.assess_patient` on every patient of a read table.

    Engine errors are re-raised as :class:`~hepavol.errors.TableError` with the file and line of the row.
    """
    out = []
    for p in patients:
        try:
            result = assess_patient(
                p.assessments(), patient_id=p.patient_id, confirm=confirm, sd_min_days=sd_min_days
            )
        except RecistDataError as exc:
            line = p.line_of(exc.date, exc.lesion_id, last=True)
            where = f"{p.source}, line {line}" if line is not None else p.source
            raise TableError(f"{where}: {exc}") from None
        if p.warnings:
            result = dataclasses.replace(result, warnings=(*p.warnings, *result.warnings))
        out.append(result)
    return out
