"""Read and validate a cohort table: one row per patient, the columns of ``hepavol study export``.

The reader is strict about what would make an analysis wrong (unparseable numbers or dates, negative volumes,
scans out of order, duplicated patients) and names the file, the line, the column and the value in every error.
Cells that are empty (or ``NA``/``NaN``/``NULL``) are missing values; only the columns in
:data:`REQUIRED_VALUES` must be filled on every row. Secondary variables (Ki-67, CgA, ...) may be missing, in
which case the patient is left out of that one analysis and the report says so.

Units: volumes in mL, sums of diameters in mm, Ki-67 in %, chromogranin A in µg/L, dates as ISO ``YYYY-MM-DD``.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hepavol.errors import TableError
from hepavol.table import future_date_warning, read_table

#: Columns every cohort table must have (``hepavol study export`` writes them in this order).
COLUMNS: tuple[str, ...] = (
    "patient_id",
    "modality",
    "baseline_date",
    "early_date",
    "baseline_volume_ml",
    "early_volume_ml",
    "baseline_sld_mm",
    "early_sld_mm",
    "lesion_count",
    "liver_volume_ml",
    "pfs_event",
    "pfs_date",
    "ki67_percent",
    "cga_ug_l",
    "extra_abdominal",
    "grade",
)

#: Optional columns (issue 22): read when present, missing values when absent, so older tables still work.
#: ``*_target_volume_ml``: the RECIST 1.1 target lesions' volumes summed (the registry's "volume of the two
#: RECIST target lesions"); ``*_three_largest_diameter_sum_mm``: the sum of the longest axial diameters of the
#: three largest liver metastases at baseline (by longest diameter), measured on the same (tracked) lesions at the
#: early scan, 0 for a lesion that disappeared (the ≥ 10 % size-decrease rule, J Neuroendocrinol 2023;35:e13311).
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "baseline_target_volume_ml",
    "early_target_volume_ml",
    "baseline_three_largest_diameter_sum_mm",
    "early_three_largest_diameter_sum_mm",
)

#: The registry's yearly time points (NCT03689231: baseline, 3-6 months, then yearly): months after the baseline
#: scan, and the half-width of the window in which the nearest scan is taken (12 ± 3, 24 ± 3, 36 ± 3 months;
#: months = days / 30.4375, both ends inclusive, the earlier of two equally near scans).
YEARLY_MONTHS: tuple[int, ...] = (12, 24, 36)
YEARLY_WINDOW_MONTHS = 3.0
#: Per yearly time point: ``month{k}_date``, the total liver tumour volume (mL), the RECIST target lesions'
#: volumes summed (mL), the number of liver lesions and the RECIST 1.1 overall response of that scan. Optional
#: columns, empty when the patient had no scan in the window.
YEARLY_FIELDS: tuple[str, ...] = ("date", "volume_ml", "target_volume_ml", "lesion_count", "recist_response")
YEARLY_COLUMNS: tuple[str, ...] = tuple(f"month{k}_{f}" for k in YEARLY_MONTHS for f in YEARLY_FIELDS)
RECIST_CATEGORIES: tuple[str, ...] = ("CR", "PR", "SD", "PD", "NE")

#: Columns that must have a value on every row (the others may be empty = missing).
REQUIRED_VALUES: tuple[str, ...] = (
    "patient_id",
    "modality",
    "baseline_date",
    "baseline_volume_ml",
    "pfs_event",
    "pfs_date",
)

_MISSING = {"", "na", "nan", "null", "none", "n/a", "."}

_VOLUME_HINT = "give volumes in mL (1 mL = 1000 mm³), 0 for no tumour"
_SLD_HINT = "give sums of diameters in mm, 0 when every target lesion disappeared"
#: Plausible ranges of the measured values, (smallest positive, largest, unit, fix): values outside them are unit or
#: typing errors (50 L is more than any liver; 1e-6 mL = 0.001 mm³ is less than a hundredth of the smallest CT
#: voxel) and would overflow the % changes and growth rates.
_RANGES: dict[str, tuple[float, float, str, str]] = {
    "baseline_volume_ml": (1e-6, 50_000.0, "mL", _VOLUME_HINT),
    "early_volume_ml": (1e-6, 50_000.0, "mL", _VOLUME_HINT),
    "liver_volume_ml": (1e-6, 50_000.0, "mL", _VOLUME_HINT),
    "baseline_sld_mm": (1e-3, 5_000.0, "mm", _SLD_HINT),
    "early_sld_mm": (1e-3, 5_000.0, "mm", _SLD_HINT),
    "baseline_target_volume_ml": (1e-6, 50_000.0, "mL", _VOLUME_HINT),
    "early_target_volume_ml": (1e-6, 50_000.0, "mL", _VOLUME_HINT),
    "baseline_three_largest_diameter_sum_mm": (1e-3, 5_000.0, "mm", _SLD_HINT),
    "early_three_largest_diameter_sum_mm": (1e-3, 5_000.0, "mm", _SLD_HINT),
}
_MODALITIES = {"ct": "CT", "mr": "MR", "mri": "MR"}
_TRUE = {"1", "yes", "y", "true", "t"}
_FALSE = {"0", "no", "n", "false", "f"}


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientRecord:
    """One validated row of a cohort table (units in the field names; ``None`` = missing)."""

    line: int  # line number in the CSV file (the header is line 1)
    patient_id: str
    modality: str  # "CT" or "MR"
    baseline_date: dt.date
    early_date: dt.date | None
    baseline_volume_ml: float
    early_volume_ml: float | None
    baseline_sld_mm: float | None
    early_sld_mm: float | None
    lesion_count: float | None  # ordinal; may be capped (e.g. 10 for ">10")
    liver_volume_ml: float | None
    pfs_event: bool  # True = RECIST progression or death on pfs_date; False = censored on pfs_date
    pfs_date: dt.date
    ki67_percent: float | None
    cga_ug_l: float | None
    extra_abdominal: bool | None
    grade: str | None
    baseline_target_volume_ml: float | None = None
    early_target_volume_ml: float | None = None
    baseline_three_largest_diameter_sum_mm: float | None = None
    early_three_largest_diameter_sum_mm: float | None = None
    #: The yearly time points (:data:`YEARLY_COLUMNS`): column name → value (date, float or category);
    #: only the columns with a value.
    yearly: dict[str, Any] = field(default_factory=dict)

    def at_month(self, months: int, name: str) -> Any:
        """The value of ``month{months}_{name}`` (``None`` when missing)."""
        return self.yearly.get(f"month{months}_{name}")


@dataclass(frozen=True, slots=True)
class CohortTable:
    """A validated cohort table: the rows in file order and the file they came from."""

    patients: tuple[PatientRecord, ...]
    source: str = ""
    warnings: tuple[str, ...] = ()  # from reading the table (dates after today)

    def __len__(self) -> int:
        return len(self.patients)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities present, sorted (``("CT",)``, ``("CT", "MR")``...)."""
        return tuple(sorted({p.modality for p in self.patients}))

    def subset(self, modality: str) -> CohortTable:
        """The patients of one modality (``"CT"`` or ``"MR"``)."""
        return CohortTable(tuple(p for p in self.patients if p.modality == modality), self.source, self.warnings)

    def to_rows(self) -> list[dict[str, Any]]:
        """The records as dicts (field name → value), e.g. for ``pandas.DataFrame``."""
        return [
            {f.name: getattr(p, f.name) for f in fields(PatientRecord) if f.name != "yearly"}
            | {c: p.yearly.get(c) for c in YEARLY_COLUMNS}
            for p in self.patients
        ]


def _where(source: str, line: int, column: str, raw: str) -> str:
    return f"{source}, line {line}, column '{column}': value {raw!r}"


def _parse_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _parse_date(raw: str) -> dt.date:
    return dt.date.fromisoformat(raw)


def _parse_bool(raw: str) -> bool:
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError("not a yes/no value")


def _parse_modality(raw: str) -> str:
    try:
        return _MODALITIES[raw.lower()]
    except KeyError:
        raise ValueError("not a modality") from None


_EXPECTED: dict[str, str] = {
    "float": "a number (decimal point '.')",
    "date": "an ISO date YYYY-MM-DD",
    "bool": "0/1 (or yes/no, true/false)",
    "modality": "CT or MR (MRI is read as MR)",
    "recist": "a RECIST 1.1 category (CR, PR, SD, PD or NE)",
}


def _parse_recist(raw: str) -> str:
    value = raw.strip().upper()
    if value not in RECIST_CATEGORIES:
        raise ValueError("not a RECIST category")
    return value


def read_cohort_table(path: str | os.PathLike[str], *, today: dt.date | None = None) -> CohortTable:
    """Read and validate a cohort CSV (read by :func:`hepavol.table.read_table`: UTF-8 or Windows-1252, ``,``
    ``;`` or tab). A date after ``today`` (default: the computer's date) is kept with a warning in
    :attr:`CohortTable.warnings`.

    Parameters
    ----------
    path : str or path-like
        The CSV file with the columns of :data:`COLUMNS` (extra columns are ignored; order is free).

    Returns
    -------
    CohortTable
        The validated rows.

    Raises
    ------
    TableError
        If the file cannot be read, a column is missing, a required value is empty, a value cannot be parsed,
        a volume/diameter/count is negative, the early scan or the PFS date is before the baseline scan, or a
        patient id occurs twice. The message names the file, the line, the column and the value.
    """
    data = read_table(path, "cohort table")
    source = data.source
    missing = [c for c in COLUMNS if c not in data.keys]
    if missing:
        raise TableError(
            f"{source}, line {data.header_line}: missing column(s) {', '.join(repr(m) for m in missing)}. A cohort "
            f"table needs the columns {', '.join(COLUMNS)} (the output of 'hepavol study export')."
        )
    index = {name: data.keys.index(name) for name in COLUMNS}
    optional = {name: data.keys.index(name) for name in (*OPTIONAL_COLUMNS, *YEARLY_COLUMNS) if name in data.keys}
    patients: list[PatientRecord] = []
    warnings: list[str] = []
    seen: dict[str, int] = {}
    for line, cells in data.rows:
        raw = {name: cells[i] for name, i in index.items()}
        raw.update({name: cells[i] if i < len(cells) else "" for name, i in optional.items()})
        raw.update({name: "" for name in (*OPTIONAL_COLUMNS, *YEARLY_COLUMNS) if name not in optional})
        values: dict[str, Any] = {}

        def get(
            name: str, kind: str, parse: Callable[[str], Any], *, line: int = line, raw: dict[str, str] = raw
        ) -> Any:
            text_value = raw[name]
            if text_value.lower() in _MISSING:
                if name in REQUIRED_VALUES:
                    raise TableError(
                        f"{_where(source, line, name, text_value)}: '{name}' is required on every row; "
                        f"fill it in or remove the patient from the table"
                    )
                return None
            try:
                return parse(text_value)
            except ValueError:
                raise TableError(
                    f"{_where(source, line, name, text_value)} is not {_EXPECTED[kind]}; correct the cell"
                ) from None

        values["patient_id"] = get("patient_id", "str", str)
        values["modality"] = get("modality", "modality", _parse_modality)
        for name in ("baseline_date", "early_date", "pfs_date"):
            values[name] = get(name, "date", _parse_date)
        for name in (
            "baseline_volume_ml",
            "early_volume_ml",
            "baseline_sld_mm",
            "early_sld_mm",
            "lesion_count",
            "liver_volume_ml",
            "ki67_percent",
            "cga_ug_l",
            *OPTIONAL_COLUMNS,
        ):
            values[name] = get(name, "float", _parse_float)
            if values[name] is not None and values[name] < 0:
                raise TableError(
                    f"{_where(source, line, name, raw[name])}: '{name}' cannot be negative; correct the cell"
                )
            if name in _RANGES and values[name] is not None:
                low, high, unit, hint = _RANGES[name]
                if values[name] > high or 0 < values[name] < low:
                    raise TableError(
                        f"{_where(source, line, name, raw[name])}: outside the plausible range (0, or {low:g} to "
                        f"{high:g} {unit}); {hint}"
                    )
        if values["ki67_percent"] is not None and values["ki67_percent"] > 100:
            raise TableError(
                f"{_where(source, line, 'ki67_percent', raw['ki67_percent'])}: Ki-67 is a percentage (0-100)"
            )
        values["pfs_event"] = get("pfs_event", "bool", _parse_bool)
        values["extra_abdominal"] = get("extra_abdominal", "bool", _parse_bool)
        values["grade"] = raw["grade"] if raw["grade"].lower() not in _MISSING else None
        baseline: dt.date = values["baseline_date"]
        early: dt.date | None = values["early_date"]
        if early is not None and early <= baseline:
            raise TableError(
                f"{_where(source, line, 'early_date', raw['early_date'])}: the early scan must be after the "
                f"baseline scan ({baseline.isoformat()}); correct the dates"
            )
        if values["pfs_date"] <= baseline:
            raise TableError(
                f"{_where(source, line, 'pfs_date', raw['pfs_date'])}: the PFS date (progression, death or last "
                f"adequate scan) must be after the baseline scan ({baseline.isoformat()}); correct the dates"
            )
        liver = values["liver_volume_ml"]
        if liver is not None and values["baseline_volume_ml"] > liver:
            raise TableError(
                f"{_where(source, line, 'liver_volume_ml', raw['liver_volume_ml'])}: the liver volume is smaller "
                f"than the baseline tumour volume ({raw['baseline_volume_ml']} mL); 'liver_volume_ml' must be the "
                "whole organ including the tumours"
            )
        if (early is None) != (values["early_volume_ml"] is None):
            name = "early_volume_ml" if early is not None else "early_date"
            raise TableError(
                f"{_where(source, line, name, raw[name])}: an early scan needs both 'early_date' and "
                f"'early_volume_ml' (or neither, if the patient had no early scan)"
            )
        for name in ("baseline_date", "early_date", "pfs_date"):
            if values[name] is not None:
                warning = future_date_warning(f"{source}, line {line}", name, values[name], today=today)
                if warning:
                    warnings.append(warning)
        for base_name, early_name in (
            ("baseline_target_volume_ml", "early_target_volume_ml"),
            ("baseline_three_largest_diameter_sum_mm", "early_three_largest_diameter_sum_mm"),
        ):
            if values[early_name] is not None and early is None:
                raise TableError(
                    f"{_where(source, line, early_name, raw[early_name])}: a value at the early scan needs an "
                    "'early_date'; fill in the date or empty the cell"
                )
            if (
                base_name == "baseline_target_volume_ml"
                and values[base_name] is not None
                and values[base_name] > values["baseline_volume_ml"] * (1 + 1e-6) + 1e-9
            ):
                raise TableError(
                    f"{_where(source, line, base_name, raw[base_name])}: the target lesions' volume is larger "
                    f"than the total tumour volume ({raw['baseline_volume_ml']} mL); the targets are part of "
                    "the total"
                )
        values["yearly"] = _yearly_values(raw, get, source, line, baseline)
        pid = values["patient_id"]
        if pid in seen:
            raise TableError(
                f"{_where(source, line, 'patient_id', raw['patient_id'])}: patient id already used on line "
                f"{seen[pid]}; a cohort table has one row per patient"
            )
        seen[pid] = line
        patients.append(PatientRecord(line=line, **values))
    if not patients:
        raise TableError(f"{source} has a header but no patient rows")
    return CohortTable(tuple(patients), source, tuple(warnings))


def _yearly_values(
    raw: dict[str, str], get: Callable[..., Any], source: str, line: int, baseline: dt.date
) -> dict[str, Any]:
    """The yearly time points of one row (:data:`YEARLY_COLUMNS`), validated; only the cells with a value."""
    out: dict[str, Any] = {}
    for months in YEARLY_MONTHS:
        prefix = f"month{months}_"
        date = get(prefix + "date", "date", _parse_date)
        measured = {f: raw[prefix + f] for f in YEARLY_FIELDS[1:] if raw[prefix + f].lower() not in _MISSING}
        if date is None and measured:
            name = prefix + next(iter(measured))
            raise TableError(
                f"{_where(source, line, name, raw[name])}: a value at the {months}-month scan needs "
                f"'{prefix}date'; fill in the date or empty the cell"
            )
        if date is None:
            continue
        if date <= baseline:
            raise TableError(
                f"{_where(source, line, prefix + 'date', raw[prefix + 'date'])}: the {months}-month scan must be "
                f"after the baseline scan ({baseline.isoformat()}); correct the date"
            )
        out[prefix + "date"] = date
        for name in ("volume_ml", "target_volume_ml", "lesion_count"):
            value = get(prefix + name, "float", _parse_float)
            if value is None:
                continue
            if value < 0:
                raise TableError(
                    f"{_where(source, line, prefix + name, raw[prefix + name])}: '{prefix + name}' cannot be "
                    "negative; correct the cell"
                )
            if name != "lesion_count" and (value > 50_000.0 or 0 < value < 1e-6):
                raise TableError(
                    f"{_where(source, line, prefix + name, raw[prefix + name])}: outside the plausible range "
                    f"(0, or 1e-06 to 50000 mL); {_VOLUME_HINT}"
                )
            out[prefix + name] = value
        response = get(prefix + "recist_response", "recist", _parse_recist)
        if response is not None:
            out[prefix + "recist_response"] = response
        total, target = out.get(prefix + "volume_ml"), out.get(prefix + "target_volume_ml")
        if total is not None and target is not None and target > total * (1 + 1e-6) + 1e-9:
            name = prefix + "target_volume_ml"
            raise TableError(
                f"{_where(source, line, name, raw[name])}: the target lesions' volume is larger than the total "
                f"tumour volume ({raw[prefix + 'volume_ml']} mL); the targets are part of the total"
            )
    return out


def write_cohort_table(table: CohortTable, path: str | os.PathLike[str]) -> None:
    """Write a cohort table as CSV with the :data:`COLUMNS` and the :data:`OPTIONAL_COLUMNS` that have a value
    for some patient (atomically); the inverse of :func:`read_cohort_table`."""
    from hepavol._atomic import atomic_open

    with atomic_open(Path(path)) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        columns = (
            COLUMNS
            + tuple(c for c in OPTIONAL_COLUMNS if any(getattr(p, c) is not None for p in table.patients))
            + tuple(c for c in YEARLY_COLUMNS if any(c in p.yearly for p in table.patients))
        )
        writer.writerow(columns)
        for p in table.patients:
            row: list[str] = []
            for name in columns:
                v = p.yearly.get(name) if name in YEARLY_COLUMNS else getattr(p, name)
                if v is None:
                    row.append("")
                elif isinstance(v, bool):
                    row.append("1" if v else "0")
                elif isinstance(v, dt.date):
                    row.append(v.isoformat())
                elif isinstance(v, float):
                    row.append(repr(round(v, 6)))
                else:
                    row.append(str(v))
            writer.writerow(row)
