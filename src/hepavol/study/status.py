"""``hepavol study status``: what a study holds and what is left to do, in counts (no patient identifiers)."""

from __future__ import annotations

from sqlalchemy import func, select

from hepavol.errors import InputError
from hepavol.study import reading
from hepavol.study.leases import Leases
from hepavol.study.models import (
    AuditEntry,
    ClinicalRecord,
    ImagingStudy,
    Patient,
    Segmentation,
    Series,
)
from hepavol.study.proposals import SCAN_STATES, segmentation_state_counts
from hepavol.study.redact import scan_labels
from hepavol.study.runner import latest_eligibility
from hepavol.study.workspace import Workspace

__all__ = ["path_labels", "study_status"]


def study_status(ws: Workspace) -> str:
    """A readable summary: counts per stage, patients not ready, failures, the last action."""
    lines = [f"study {ws.root}", f"database {ws.db.display_url} (schema {ws.db.revision()})"]
    with ws.db.transaction() as session:
        n_patients = session.scalar(select(func.count(Patient.id))) or 0
        n_studies = session.scalar(select(func.count(ImagingStudy.id))) or 0
        n_series = session.scalar(select(func.count(Series.id))) or 0
        n_chosen = session.scalar(select(func.count(Series.id)).where(Series.chosen)) or 0
        n_segs = session.scalar(select(func.count(Segmentation.id)).where(Segmentation.active)) or 0
        n_clinical = session.scalar(select(func.count(ClinicalRecord.id))) or 0
        decisions = latest_eligibility(session)
        eligible = [pk for pk, d in decisions.items() if d.eligible]
        lines.append(
            f"patients {n_patients}; scans {n_studies} ({n_series} series, {n_chosen} chosen, {n_segs} with a "
            f"segmentation); clinical records {n_clinical}"
        )
        states = segmentation_state_counts(session)
        lines.append("segmentations: " + ", ".join(f"{states[k]} {k}" for k in SCAN_STATES) + " (scans)")
        lines.append(
            f"eligibility: {len(decisions)} assessed, {len(eligible)} eligible, "
            f"{len(decisions) - len(eligible)} excluded, {n_patients - len(decisions)} not assessed"
        )
        rows = [r for r in reading.worklist_rows(session, ws) if r.eligibility == "eligible"]
        count = {state: sum(1 for r in rows if r.analysis == state) for state in reading.ANALYSIS_STATES}
        failing = [f"  {r.pseudonym}: {r.failed}" for r in rows if r.failed]
        lines.append(
            f"analyses: {count[reading.UP_TO_DATE]} up to date, {count[reading.STALE]} to redo (inputs changed), "
            f"{count[reading.NEVER]} never run, {count[reading.NOT_READY]} not ready, {len(failing)} failed on "
            "their current inputs"
        )
        lines += failing
        last = session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))
        if last is not None:
            lines.append(f"last action: {last.action} by {last.actor} at {last.at:%Y-%m-%d %H:%M:%S} UTC")
    running = Leases(ws.db).holders()
    if running:
        owners = sorted(set(running.values()))
        lines.append(f"running now: {len(running)} patient(s) leased by {', '.join(owners)}")
    return "\n".join(lines)


def path_labels(ws: Workspace, pseudonyms: list[str] | None = None) -> list[tuple[str, str]]:
    """(label, path) for the files behind the labels that messages, failures and the audit log show.

    For the user who owns the study, on the console only: this is never stored, exported or audited, since paths
    may hold names. ``pseudonyms`` limits it to those patients (all when ``None``). The labels are built as the
    runner builds them (:func:`hepavol.study.redact.scan_labels`), from each scan's chosen series and active
    segmentation.
    """
    rows: list[tuple[str, str]] = []
    with ws.db.transaction() as session:
        query = select(Patient).order_by(Patient.pseudonym)
        if pseudonyms:
            query = query.where(Patient.pseudonym.in_(pseudonyms))
        patients = list(session.scalars(query))
        missing = sorted(set(pseudonyms or ()) - {p.pseudonym for p in patients})
        if missing:
            raise InputError(
                f"no patient {', '.join(missing)} in the study {ws.root}; 'hepavol study status' lists the "
                "counts and 'hepavol study export' the pseudonyms"
            )
        for patient in patients:
            scans: list[tuple[str, str | None, str | None]] = []
            for study in patient.studies:
                chosen = next((s for s in study.series if s.chosen), None)
                seg = None
                if chosen is not None:
                    seg = next((g.path for g in chosen.segmentations if g.active), None)
                scans.append((study.study_date.isoformat(), chosen.path if chosen else None, seg))
            labels = scan_labels(patient.pseudonym, scans)
            rows += sorted(((label, path) for path, label in labels.items()), key=lambda r: (r[0], r[1]))
    return rows
