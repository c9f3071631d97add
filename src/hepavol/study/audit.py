"""The audit trail: every change to a study is one append-only row (who, when, what, with details).

Entries name patients by pseudonym only. The table cannot be rewritten: database triggers (created by the first
migration) reject UPDATE and DELETE, so even a bug or a hand-typed SQL statement cannot alter the history.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hepavol.study.models import AuditEntry

__all__ = ["entries", "record"]


def _actor() -> str:
    from hepavol.study.workspace import Workspace

    return Workspace.actor()


def record(
    session: Session,
    action: str,
    *,
    entity: str | None = None,
    key: str | None = None,
    details: dict[str, Any] | None = None,
    actor: str | None = None,
) -> AuditEntry:
    """Add one audit entry to the session's transaction (it is written when the transaction commits)."""
    entry = AuditEntry(
        action=action, entity=entity, entity_key=key, details=details or {}, actor=actor or _actor()
    )
    session.add(entry)
    return entry


def entries(session: Session, *, limit: int | None = None) -> list[AuditEntry]:
    """Audit entries, oldest first (the last ``limit`` if given)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(reversed(session.scalars(query).all()))
