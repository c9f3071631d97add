"""``hepavol study import-clinical``: store validated clinical variables and treatments under pseudonyms.

The files are read and validated by :func:`hepavol.study.clinical.read_clinical` (every error names the file,
line, column and value). Each patient's record replaces the previous one in one transaction; the audit trail
keeps what changed (old and new values), so earlier values are never lost. A patient who is not yet in the study
is added (screened without scans: the eligibility step reports "no baseline scan").
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hepavol.study import audit
from hepavol.study import clinical as clin
from hepavol.study.importer import ImportSummary, patient_for
from hepavol.study.models import ClinicalRecord, Treatment
from hepavol.study.workspace import Workspace

__all__ = ["ClinicalImport", "import_clinical", "load_clinical_record"]

_FIELDS = (
    "tumour_type",
    "primary_site",
    "differentiation",
    "ki67_percent",
    "grade",
    "cga_ug_l",
    "extra_abdominal",
    "primary_resected",
)


@dataclass(slots=True)
class ClinicalImport:
    """What an import did."""

    patients: int = 0
    new_patients: int = 0
    changed: int = 0
    unchanged: int = 0
    treatments: int = 0
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"clinical data of {self.patients} patient(s) ({self.new_patients} not yet in the study): "
            f"{self.changed} new or changed, {self.unchanged} unchanged; {self.treatments} treatment(s)"
        )


def _snapshot(row: ClinicalRecord | None, treatments: list[Treatment]) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        **{f: getattr(row, f) for f in _FIELDS},
        "treatments_recorded": row.treatments_recorded,
        "undated_treatment_categories": list(row.undated_treatment_categories),
        "treatments": [
            {
                "kind": t.kind,
                "category": t.category,
                "start_date": t.start_date.isoformat(),
                "end_date": None if t.end_date is None else t.end_date.isoformat(),
            }
            for t in sorted(treatments, key=lambda t: (t.start_date, t.kind))
        ],
    }


def import_clinical(
    ws: Workspace, path: str | os.PathLike[str], *, treatments_path: str | os.PathLike[str] | None = None
) -> ClinicalImport:
    """Validate and store clinical data (see the module docstring)."""
    table = clin.read_clinical(path, treatments_path=treatments_path)
    pseudonymiser = ws.pseudonymiser()
    result = ClinicalImport(warnings=list(table.warnings))
    summary = ImportSummary()
    with ws.db.transaction() as session:
        for record in table.records:
            patient = patient_for(session, pseudonymiser, record.patient_id, summary)
            old = session.scalar(select(ClinicalRecord).where(ClinicalRecord.patient_id == patient.id))
            old_treatments = list(session.scalars(select(Treatment).where(Treatment.patient_id == patient.id)))
            before = _snapshot(old, old_treatments)
            if old is None:
                old = ClinicalRecord(patient_id=patient.id)
                session.add(old)
            for f in _FIELDS:
                setattr(old, f, getattr(record, f))
            old.treatments_recorded = record.treatments_recorded
            old.undated_treatment_categories = list(record.undated_treatment_categories)
            old.source_file = str(path)
            old.imported_at = dt.datetime.now(dt.UTC)
            session.execute(delete(Treatment).where(Treatment.patient_id == patient.id))
            new_treatments = [
                Treatment(
                    patient_id=patient.id,
                    kind=t.kind,
                    category=t.category,
                    start_date=t.start_date,
                    end_date=t.end_date,
                    line=t.line,
                )
                for t in record.treatments
            ]
            session.add_all(new_treatments)
            session.flush()
            after = _snapshot(old, new_treatments)
            result.patients += 1
            result.treatments += len(new_treatments)
            if before == after:
                result.unchanged += 1
                continue
            result.changed += 1
            audit.record(
                session,
                "import-clinical",
                entity="patient",
                key=patient.pseudonym,
                details={"file": str(path), "before": before, "after": after},
            )
        result.new_patients = summary.patients_new
    return result


def load_clinical_record(session: Session, patient_pk: int) -> clin.ClinicalRecord | None:
    """The stored clinical data of a patient as a :class:`hepavol.study.clinical.ClinicalRecord`."""
    row = session.scalar(select(ClinicalRecord).where(ClinicalRecord.patient_id == patient_pk))
    if row is None:
        return None
    treatments = session.scalars(
        select(Treatment).where(Treatment.patient_id == patient_pk).order_by(Treatment.start_date, Treatment.id)
    )
    return clin.ClinicalRecord(
        patient_id="",  # the original id is not needed (and not loaded) for eligibility
        line=0,
        **{f: getattr(row, f) for f in _FIELDS},
        treatments=tuple(
            clin.Treatment(kind=t.kind, start_date=t.start_date, end_date=t.end_date, line=t.line or 0)
            for t in treatments
        ),
        treatments_recorded=row.treatments_recorded,
        undated_treatment_categories=tuple(row.undated_treatment_categories),
    )
