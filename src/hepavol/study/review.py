"""``hepavol study review``: a reviewer's decisions on a patient, stored with who, when and why.

Two decisions a radiologist or the study team takes by hand:

- **targets**: the RECIST 1.1 target lesions, chosen by hand instead of automatically (baseline lesion ids as
  the run reports them: ``L1`` = the largest baseline lesion). They become part of the patient's run parameters,
  so the next ``study run`` recomputes that patient; ``--targets auto`` goes back to the automatic choice.
- **eligibility**: include or exclude a patient whatever the criteria say (a reason is required); ``auto`` removes
  the override. ``study eligibility`` keeps the override and records the criteria's own verdict beside it.

- **lesion links**: the reader relinks the tracking of a follow-up scan by hand (``--link DATE:L2=L3``: merge,
  split, new, disappeared; :mod:`hepavol.tracking`). The links of a scan hold for the segmentation they were made on:
  once the scan is segmented again, the next run ignores them with a warning until the reader links again.

Every decision is a new row of ``review_decisions`` (old value, new value, reason, reviewer, time) and an audit
entry; nothing is overwritten, so the history of a patient's review can always be read back
(:func:`review_history`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hepavol.errors import InputError
from hepavol.study import audit
from hepavol.study.models import EligibilityDecision, Patient, ReviewDecision
from hepavol.study.workspace import Workspace

__all__ = [
    "OVERRIDE_CODE",
    "REOPENED",
    "SIGNED",
    "current_override",
    "latest_review",
    "lesion_links",
    "reader_marks",
    "record_review",
    "require_open",
    "review_history",
    "signed_off",
    "with_override",
]

FIELDS = ("targets", "eligibility", "sign-off")
SIGNED, REOPENED = "signed", "reopened"


def signed_off(session: Session, patient_pk: int) -> ReviewDecision | None:
    """The sign-off in force on a patient's read (None when the read is open)."""
    row = latest_review(session, patient_pk, "sign-off")
    return row if row is not None and row.new_value == SIGNED else None


def require_open(session: Session, patient: Patient, what: str) -> None:
    """Refuse ``what`` (an edit of the read) when the patient's read is signed off."""
    row = signed_off(session, patient.id)
    if row is not None:
        raise InputError(
            f"{patient.pseudonym}'s read was signed off by {row.reviewer} at {row.decided_at:%Y-%m-%d %H:%M} UTC: "
            f"{what} is locked. Reopen the read with a reason first (hepavol study review {patient.pseudonym} "
            "--reopen --reason TEXT, or Reopen in the app)."
        )


def latest_review(session: Session, patient_pk: int, field: str) -> ReviewDecision | None:
    """The latest review decision on ``field`` for a patient, if any."""
    return session.scalar(
        select(ReviewDecision)
        .where(ReviewDecision.patient_id == patient_pk, ReviewDecision.field == field)
        .order_by(ReviewDecision.id.desc())
        .limit(1)
    )


def current_override(session: Session, patient_pk: int, field: str) -> Any:
    """The value of the latest review decision on ``field`` for a patient (None when there is none or 'auto')."""
    row = latest_review(session, patient_pk, field)
    return None if row is None else row.new_value


def _patient(session: Session, pseudonym: str) -> Patient:
    patient = session.scalar(select(Patient).where(Patient.pseudonym == pseudonym))
    if patient is None:
        raise InputError(
            f"no patient '{pseudonym}' in the study: give the pseudonym (P-...) as 'hepavol study export' or "
            "'hepavol study eligibility --json -' shows it."
        )
    return patient


def record_review(
    ws: Workspace,
    pseudonym: str,
    *,
    targets: Sequence[str] | str | None = None,
    eligibility: str | None = None,
    sign_off: str | None = None,
    non_target: Sequence[str] = (),
    new_lesions: Sequence[str] = (),
    links: Sequence[str] = (),
    reason: str | None = None,
    reviewer: str | None = None,
) -> list[ReviewDecision]:
    """Store one or two review decisions for a patient (see the module docstring).

    ``targets``: lesion ids (``["L1", "L3"]``) or ``"auto"``. ``eligibility``: ``"include"``, ``"exclude"`` or
    ``"auto"``. ``sign_off``: ``"signed"`` (the read is complete: its segmentations and targets are locked) or
    ``"reopened"``. ``non_target``: ``DATE=CALL`` items (CALL ``present``, ``absent``, ``progression`` or
    ``auto``), the reader's non-target status on a scan date; ``new_lesions``: ``L6=CALL`` items (CALL
    ``equivocal``, ``unequivocal`` or ``auto``). Both are kept as one ``recist-marks`` decision holding every current
    mark (the next ``study run`` passes them to the follow-up as :class:`hepavol.followup.pipeline.ReaderMarks`).
    ``links``: ``DATE:KEY=VALUE`` items relinking the lesions of a follow-up scan (``2024-05-01:L2=L3``,
    ``:L2=new``, ``:L4=L4+L5``, ``:none=L3``, or ``:L2=auto`` to remove a link; :func:`hepavol.tracking.parse_link`),
    kept as one ``lesion-links`` decision with every current link and the segmentation each scan's links were made on.
    ``reason`` is required and must not be empty, except to sign off.

    Raises
    ------
    InputError
        Unknown patient, empty reason, malformed targets, unknown eligibility value, nothing to record.
    """
    only_signing = (
        sign_off == SIGNED
        and targets is None
        and eligibility is None
        and not non_target
        and not new_lesions
        and not links
    )
    if not only_signing and (not reason or not reason.strip()):
        raise InputError("a review needs a reason (--reason TEXT): it is stored with the decision.")
    reason = (reason or "").strip() or "signed off"
    changes: list[tuple[str, Any]] = []
    if targets is not None:
        if targets == "auto" or targets == ["auto"]:
            changes.append(("targets", None))
        else:
            ids = [t.strip() for t in (targets.split(",") if isinstance(targets, str) else targets) if t.strip()]
            bad = [t for t in ids if not (t.startswith("L") and t[1:].isdigit())]
            if not ids or bad:
                raise InputError(
                    f"targets {bad or ids} are not baseline lesion ids: give e.g. --targets L1,L3 (L1 = largest "
                    "baseline lesion, as the run's lesion table shows) or --targets auto."
                )
            if len(ids) > 5:
                raise InputError(f"{len(ids)} targets given; RECIST 1.1 allows at most 5 (2 per organ).")
            changes.append(("targets", ids))
    if eligibility is not None:
        if eligibility not in ("include", "exclude", "auto"):
            raise InputError(f"eligibility '{eligibility}' must be include, exclude or auto.")
        changes.append(("eligibility", None if eligibility == "auto" else eligibility))
    if sign_off is not None:
        if sign_off not in (SIGNED, REOPENED):
            raise InputError(f"sign-off '{sign_off}' must be {SIGNED} or {REOPENED}.")
        changes.append(("sign-off", sign_off))
    mark_items = [("non_target", item) for item in non_target] + [("new_lesions", item) for item in new_lesions]
    link_items = [_link_item(item) for item in links]
    if not changes and not mark_items and not link_items:
        raise InputError(
            "nothing to review: give --targets, --include/--exclude/--auto-eligibility, --non-target, --new-lesion, "
            "--link, --sign-off or --reopen."
        )
    who = reviewer or Workspace.actor()
    rows = []
    with ws.db.transaction() as session:
        patient = _patient(session, pseudonym)
        state = signed_off(session, patient.id)
        if mark_items:
            changes.append(
                ("recist-marks", _merged_marks(current_override(session, patient.id, "recist-marks"), mark_items))
            )
        if link_items:
            current = current_override(session, patient.id, "lesion-links")
            changes.append(("lesion-links", _merged_links(session, patient, current, link_items)))
        for field, value in changes:
            if field == "lesion-links":
                require_open(session, patient, "relinking lesions")
            if field == "targets":
                require_open(session, patient, "choosing targets")
            if field == "recist-marks":
                require_open(session, patient, "marking non-target or new-lesion calls")
            if field == "sign-off" and (value == SIGNED) == (state is not None):
                raise InputError(
                    f"{pseudonym}'s read is {'signed off' if state is not None else 'open'} already: nothing to "
                    f"{'sign off' if value == SIGNED else 'reopen'}."
                )
            old = current_override(session, patient.id, field)
            row = ReviewDecision(
                patient_id=patient.id,
                field=field,
                old_value=old,
                new_value=value,
                reason=reason,
                reviewer=who,
            )
            session.add(row)
            audit.record(
                session,
                "review",
                entity="patient",
                key=pseudonym,
                details={"field": field, "old": old, "new": value, "reason": reason},
                actor=who,
            )
            rows.append(row)
            if field == "eligibility":
                _apply_eligibility_override(session, patient, value, reason, who)
    return rows


def _merged_marks(current: Any, items: Sequence[tuple[str, str]]) -> dict[str, dict[str, str]] | None:
    """The marks after ``items`` (``("non_target", "2024-03-01=progression")``...); None when none is left."""
    import datetime

    from hepavol.followup.pipeline import NEW_LESION_CALLS, NON_TARGET_CALLS

    allowed = {"non_target": NON_TARGET_CALLS, "new_lesions": NEW_LESION_CALLS}
    marks: dict[str, dict[str, str]] = {"non_target": {}, "new_lesions": {}}
    if isinstance(current, dict):
        for kind in marks:
            marks[kind].update(current.get(kind) or {})
    for kind, item in items:
        key, sep, call = (part.strip() for part in item.partition("="))
        option = "--non-target DATE=CALL" if kind == "non_target" else "--new-lesion L6=CALL"
        calls = (*allowed[kind], "auto")
        if not sep or not key or call not in calls:
            raise InputError(f"'{item}' is not {option} with CALL one of {', '.join(calls)}.")
        if kind == "non_target":
            try:
                key = datetime.date.fromisoformat(key).isoformat()
            except ValueError:
                raise InputError(f"'{key}' in '{item}' is not a scan date (YYYY-MM-DD).") from None
        elif not (key.startswith("L") and key[1:].isdigit()):
            raise InputError(f"'{key}' in '{item}' is not a lesion id (L6, as the run's lesion table shows).")
        if call == "auto":
            marks[kind].pop(key, None)
        else:
            marks[kind][key] = call
    return marks if any(marks.values()) else None


def _link_item(item: str) -> tuple[str, str, str]:
    """``DATE:KEY=VALUE`` as (ISO date, key, value), checked for form (InputError naming the item)."""
    import datetime

    from hepavol.tracking import parse_link

    day, colon, link = item.partition(":")
    key, equals, value = (part.strip() for part in link.partition("="))
    if not colon or not equals or not key or not value:
        raise InputError(
            f"'{item}' is not --link DATE:LESION=TRACK (2024-05-01:L2=L3, :L2=new, :L4=L4+L5 for a merge, "
            ":none=L3 for a track without lesion, :L2=auto to remove the link)."
        )
    try:
        date = datetime.date.fromisoformat(day.strip()).isoformat()
    except ValueError:
        raise InputError(f"'{day}' in '{item}' is not a scan date (YYYY-MM-DD).") from None
    if value != "auto":
        parse_link(key, value)
    return date, key, value


def _merged_links(
    session: Session, patient: Patient, current: Any, items: Sequence[tuple[str, str, str]]
) -> dict[str, dict[str, Any]] | None:
    """The links after ``items``: {date: {"segmentation": hash, "links": {key: value}}}; None when none is left.

    A scan's earlier links are dropped when its segmentation changed since they were made.
    """
    from hepavol.study.runner import scan_input

    scans = {s.study_date.isoformat(): s for s in patient.studies}
    out: dict[str, dict[str, Any]] = {}
    if isinstance(current, dict):
        out = {d: {"segmentation": v["segmentation"], "links": dict(v["links"])} for d, v in current.items()}
    for date, key, value in items:
        study = scans.get(date)
        if study is None:
            raise InputError(
                f"link on {date}: {patient.pseudonym} has no scan that day (scans: {', '.join(sorted(scans))})."
            )
        scan, problem = scan_input(study)
        if scan is None:
            raise InputError(f"link on {date}: the scan cannot be tracked ({problem}).")
        known = _measured_lesions(session, scan.study_pk, scan.segmentation_pk)
        if known is not None and key != "none" and key not in known:
            raise InputError(
                f"link on {date}: the scan has no lesion {key} (its lesions, as the run measured its current "
                f"segmentation: {', '.join(known) or 'none'})."
            )
        entry = out.get(date)
        if entry is None or entry["segmentation"] != scan.seg_hash:
            entry = out[date] = {"segmentation": scan.seg_hash, "links": {}}
        if value == "auto":
            entry["links"].pop(key, None)
        else:
            entry["links"][key] = value
    out = {d: v for d, v in sorted(out.items()) if v["links"]}
    return out or None


def _measured_lesions(session: Session, study_pk: int, segmentation_pk: int) -> list[str] | None:
    """The lesion ids a run measured on this segmentation of the scan (None when it was never measured)."""
    from hepavol.study.models import LesionMeasurement, ScanMeasurement

    measured = session.scalar(
        select(ScanMeasurement.id)
        .where(ScanMeasurement.study_id == study_pk, ScanMeasurement.segmentation_id == segmentation_pk)
        .order_by(ScanMeasurement.id.desc())
        .limit(1)
    )
    if measured is None:
        return None
    return list(
        session.scalars(
            select(LesionMeasurement.lesion_id)
            .where(LesionMeasurement.scan_measurement_id == measured)
            .order_by(LesionMeasurement.id)
        )
    )


def lesion_links(value: Any, seg_hashes: dict[str, str]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """The stored ``lesion-links`` that hold on the scans' current segmentations (date → links), and the dates
    whose links were made on another segmentation (ignored)."""
    if not isinstance(value, dict):
        return {}, []
    links = {d: dict(v["links"]) for d, v in value.items() if seg_hashes.get(d) == v["segmentation"]}
    stale = sorted(d for d in value if d not in links and d in seg_hashes)
    return links, stale


def reader_marks(value: Any) -> Any:
    """A stored ``recist-marks`` value as :class:`hepavol.followup.pipeline.ReaderMarks` (None for none)."""
    import datetime

    from hepavol.followup.pipeline import ReaderMarks

    if not isinstance(value, dict):
        return None
    return ReaderMarks(
        non_target={datetime.date.fromisoformat(d): c for d, c in (value.get("non_target") or {}).items()},
        new_lesions=dict(value.get("new_lesions") or {}),
    )


OVERRIDE_CODE = "review_override"


def criteria_verdict(reasons: Sequence[dict[str, Any]]) -> bool:
    """Whether the criteria alone include the patient (every stored reason except a reviewer's override)."""
    return not any(r["code"] != OVERRIDE_CODE for r in reasons)


def with_override(reasons: Sequence[dict[str, Any]], override: str | None, why: str | None) -> tuple[bool, list]:
    """(eligible, reasons) of a decision once a reviewer's override (``include``/``exclude``/None) is applied."""
    kept = [r for r in reasons if r["code"] != OVERRIDE_CODE]
    if override is None:
        return criteria_verdict(kept), kept
    text = f"reviewer {'included' if override == 'include' else 'excluded'} the patient: {why}"
    return override == "include", [*kept, {"code": OVERRIDE_CODE, "text": text}]


def _apply_eligibility_override(
    session: Session, patient: Patient, override: str | None, reason: str, reviewer: str
) -> None:
    latest = session.scalar(
        select(EligibilityDecision)
        .where(EligibilityDecision.patient_id == patient.id)
        .order_by(EligibilityDecision.id.desc())
        .limit(1)
    )
    if latest is None:
        raise InputError(
            f"{patient.pseudonym} has no eligibility decision yet: run 'hepavol study eligibility' first, then "
            "review it."
        )
    eligible, reasons = with_override(latest.reasons, override, reason)
    if eligible and latest.baseline_date is None:
        raise InputError(f"{patient.pseudonym} cannot be included: it has no baseline scan.")
    session.add(
        EligibilityDecision(
            patient_id=patient.id,
            eligible=eligible,
            reasons=reasons,
            baseline_date=latest.baseline_date,
            early_date=latest.early_date,
            small_lesions=latest.small_lesions,
            warnings=latest.warnings,
            criteria_version=latest.criteria_version,
            hepavol_version=latest.hepavol_version,
        )
    )


def review_history(ws: Workspace, pseudonym: str) -> list[dict[str, Any]]:
    """Every review decision of a patient, oldest first."""
    with ws.db.transaction() as session:
        patient = _patient(session, pseudonym)
        rows = session.scalars(
            select(ReviewDecision).where(ReviewDecision.patient_id == patient.id).order_by(ReviewDecision.id)
        )
        return [
            {
                "field": r.field,
                "old": r.old_value,
                "new": r.new_value,
                "reason": r.reason,
                "reviewer": r.reviewer,
                "at": r.decided_at.isoformat(),
            }
            for r in rows
        ]
