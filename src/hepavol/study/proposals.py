"""Segmentation state: what hepavol proposed, what a reader accepted, what is signed off.

Every segmentation of a scan is either

- **proposed**: made by ``hepavol study segment`` (source ``hepavol-segment``), with its method, parameters and
  the seeds it used in ``provenance``; or
- **accepted**: an imported expert mask (``study import``, ``import-scans``, ``import-seg``), a version a reader
  saved in the review app, or a proposal a reader accepted (:func:`accept_segmentation`: who and when are kept).

A scan is *signed off* when its patient's read is signed off (``study review --sign-off``) and its segmentation
is accepted. Nothing proposed ever overwrites or deactivates an accepted mask: a proposal is only made for a scan
without an accepted segmentation, and stored inactive if one appeared meanwhile. ``study run`` measures accepted
segmentations, and proposals only with ``--accept-proposed`` (:func:`hepavol.study.runner.scan_input`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hepavol.errors import InputError
from hepavol.study import audit
from hepavol.study.models import (
    ACCEPTED,
    PROPOSED,
    ImagingStudy,
    Patient,
    ReviewDecision,
    Segmentation,
    Series,
    utcnow,
)
from hepavol.study.review import require_open, signed_off
from hepavol.study.workspace import Workspace

__all__ = [
    "NONE",
    "SCAN_STATES",
    "SIGNED_OFF",
    "Acceptance",
    "accept_segmentation",
    "active_segmentation",
    "add_proposal",
    "scan_segmentation_state",
    "segmentation_state_counts",
]

NONE, SIGNED_OFF = "none", "signed off"
#: ``segmentations.source`` of a proposal of ``study segment``.
PROPOSAL_SOURCE = "hepavol-segment"
#: The states ``study status`` counts scans by, in this order.
SCAN_STATES = (NONE, PROPOSED, ACCEPTED, SIGNED_OFF)


@dataclass(frozen=True, slots=True)
class Acceptance:
    """A proposal a reader accepted: the scan's date and the segmentation's id."""

    date: dt.date
    segmentation_pk: int


def active_segmentation(study: ImagingStudy) -> Segmentation | None:
    """The active segmentation of a study's chosen series (the one measured), if any."""
    chosen = next((s for s in study.series if s.chosen), None)
    if chosen is None:
        return None
    return next((g for g in reversed(chosen.segmentations) if g.active), None)


def scan_segmentation_state(study: ImagingStudy, *, patient_signed_off: bool) -> str:
    """``none``, ``proposed``, ``accepted`` or ``signed off`` (module docstring)."""
    seg = active_segmentation(study)
    if seg is None:
        return NONE
    if seg.state == PROPOSED:
        return PROPOSED
    return SIGNED_OFF if patient_signed_off else ACCEPTED


def segmentation_state_counts(session: Session) -> dict[str, int]:
    """The number of scans (imaging studies) in each of :data:`SCAN_STATES`."""
    counts = dict.fromkeys(SCAN_STATES, 0)
    for patient in session.scalars(select(Patient)):
        signed = signed_off(session, patient.id) is not None
        for study in patient.studies:
            counts[scan_segmentation_state(study, patient_signed_off=signed)] += 1
    return counts


def add_proposal(
    session: Session,
    series: Series,
    *,
    path: str,
    content_hash: str,
    liver_label: int,
    tumor_labels: Sequence[int],
    provenance: dict[str, Any],
    pseudonym: str,
) -> tuple[Segmentation, bool]:
    """Store a segmentation hepavol proposes for a series (in the caller's transaction); (row, is_new).

    The proposal becomes the series' active segmentation only when the series has no accepted one: an accepted
    mask is never deactivated (the proposal is then stored inactive, for the record). The same content already on
    the series is returned as it is.
    """
    same = next((g for g in series.segmentations if g.content_hash == content_hash), None)
    if same is not None:
        return same, False
    accepted = any(g.active and g.state != PROPOSED for g in series.segmentations)
    if not accepted:
        for other in series.segmentations:
            other.active = False
    seg = Segmentation(
        series_id=series.id,
        source=PROPOSAL_SOURCE,
        path=path,
        content_hash=content_hash,
        sop_instance_uid=None,
        liver_label=liver_label,
        tumor_labels=list(tumor_labels),
        active=not accepted,
        state=PROPOSED,
        provenance=provenance,
    )
    session.add(seg)
    session.flush()
    audit.record(
        session,
        "propose-segmentation",
        entity="patient",
        key=pseudonym,
        details={
            "series": series.series_uid,
            "segmentation": seg.id,
            "content_hash": content_hash,
            "active": seg.active,
            "method": provenance.get("method"),
        },
    )
    return seg, True


def accept_segmentation(
    ws: Workspace,
    pseudonym: str,
    date: str,
    *,
    reader: str | None = None,
    reason: str | None = None,
    study_pk: int | None = None,
) -> list[Acceptance]:
    """A reader accepts the proposed segmentation of one scan (``date`` YYYY-MM-DD, or ``study_pk``) or of every
    scan of the patient (``date`` ``"all"``). Each acceptance is a review decision and an audit entry, in one
    transaction; the next ``study run`` measures the accepted masks (and recomputes a patient run on proposals).

    Raises
    ------
    InputError
        Unknown patient or date, no proposal to accept (none made, or already accepted), or the read is signed off.
    """
    who = reader or Workspace.actor()
    with ws.db.transaction() as session:
        patient = session.scalar(select(Patient).where(Patient.pseudonym == pseudonym))
        if patient is None:
            raise InputError(f"no patient '{pseudonym}' in this study: give the pseudonym (P-...).")
        require_open(session, patient, "accepting its segmentations")
        studies = list(patient.studies)
        dates = ", ".join(s.study_date.isoformat() for s in studies) or "none"
        if study_pk is not None:
            studies = [s for s in studies if s.id == study_pk]
            if not studies:
                raise InputError(f"scan {study_pk} is not a scan of {pseudonym}: reload the patient.")
        elif date != "all":
            try:
                day = dt.date.fromisoformat(date)
            except ValueError:
                raise InputError(
                    f"--accept-segmentation '{date}' is not a scan date (YYYY-MM-DD) or 'all'."
                ) from None
            studies = [s for s in studies if s.study_date == day]
            if not studies:
                raise InputError(f"{pseudonym} has no scan on {date} (scans: {dates}).")
        proposals = [(s, g) for s in studies if (g := active_segmentation(s)) is not None and g.state == PROPOSED]
        if not proposals:
            which = "any scan" if study_pk is None and date == "all" else f"the scan of {studies[0].study_date}"
            states = {
                s.study_date.isoformat(): scan_segmentation_state(s, patient_signed_off=False) for s in studies
            }
            raise InputError(
                f"{pseudonym} has no proposed segmentation on {which} to accept (segmentation: "
                + ", ".join(f"{d} {state}" for d, state in states.items())
                + "). Proposals are made by hepavol study segment."
            )
        now = utcnow()
        accepted: list[Acceptance] = []
        for study, seg in proposals:
            seg.state = ACCEPTED
            seg.accepted_by = who
            seg.accepted_at = now
            day_text = study.study_date.isoformat()
            old = {"date": day_text, "segmentation": seg.id, "state": PROPOSED}
            new = {"date": day_text, "segmentation": seg.id, "state": ACCEPTED}
            session.add(
                ReviewDecision(
                    patient_id=patient.id,
                    field="segmentation",
                    old_value=old,
                    new_value=new,
                    reason=(reason or "").strip() or "proposed segmentation accepted",
                    reviewer=who,
                )
            )
            audit.record(
                session,
                "accept-segmentation",
                entity="patient",
                key=pseudonym,
                details={"scan": day_text, "segmentation": seg.id, "content_hash": seg.content_hash},
                actor=who,
            )
            accepted.append(Acceptance(study.study_date, seg.id))
        return accepted
