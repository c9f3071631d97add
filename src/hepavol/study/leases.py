"""Leases on patients, so that two ``hepavol study run`` processes share the work instead of repeating it.

A lease (table ``claims``) names its owner (``host:pid:token``) and expires after :data:`LEASE_SECONDS` unless
renewed. A lease can be taken over when it has expired or when its owner is a process on this machine that no
longer exists (a run killed by a signal), so a run started right after a crash resumes at once. Correctness
never depends on leases: results are written in one transaction per patient under a unique constraint, so the
worst case of a lost lease is work done twice, never results written twice.

A lease covers all the reads of a patient (the study's own and each named reader's analysis): a process that
claims a patient it already holds counts the claim, and gives the lease back with its last release.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
from collections import Counter
from collections.abc import Iterable

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from hepavol.study.db import Database
from hepavol.study.models import Claim, as_utc, utcnow

__all__ = ["LEASE_SECONDS", "Leases"]

LEASE_SECONDS = 600.0


def _owner_is_dead(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Leases:
    """The leases one process holds on patients of a study database."""

    def __init__(self, db: Database, *, seconds: float = LEASE_SECONDS) -> None:
        self.db = db
        self.seconds = seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.held: Counter[int] = Counter()  # patient id → claims this process holds on it

    def _expiry(self) -> dt.datetime:
        return utcnow() + dt.timedelta(seconds=self.seconds)

    def claim(self, patient_pk: int) -> str | None:
        """Take the lease on a patient. Returns None on success, else the owner that holds it."""
        with self.db.transaction() as session:
            current = session.get(Claim, patient_pk)
            if current is not None:
                expired = as_utc(current.expires_at) < utcnow()
                if current.owner != self.owner and not expired and not _owner_is_dead(current.owner):
                    return current.owner
                session.delete(current)
                session.flush()
            session.add(Claim(patient_id=patient_pk, owner=self.owner, expires_at=self._expiry()))
            try:
                session.flush()
            except IntegrityError:  # another process took it between our read and write (PostgreSQL)
                session.rollback()
                return "another process"
        self.held[patient_pk] += 1
        return None

    def renew(self, patient_pks: Iterable[int]) -> None:
        """Push back the expiry of leases this process holds."""
        pks = [pk for pk in patient_pks if pk in self.held]
        if not pks:
            return
        with self.db.transaction() as session:
            session.execute(
                update(Claim)
                .where(Claim.patient_id.in_(pks), Claim.owner == self.owner)
                .values(expires_at=self._expiry())
            )

    def release(self, patient_pk: int) -> None:
        """Give back one claim on a patient; the lease goes with the last one."""
        if self.held[patient_pk] > 1:
            self.held[patient_pk] -= 1
            return
        with self.db.transaction() as session:
            session.execute(delete(Claim).where(Claim.patient_id == patient_pk, Claim.owner == self.owner))
        self.held.pop(patient_pk, None)

    def release_all(self) -> None:
        if not self.held:
            return
        with self.db.transaction() as session:
            session.execute(delete(Claim).where(Claim.owner == self.owner))
        self.held.clear()

    def holders(self) -> dict[int, str]:
        """Live leases of all processes: patient id → owner."""
        with self.db.transaction() as session:
            now = utcnow()
            return {
                c.patient_id: c.owner
                for c in session.scalars(select(Claim))
                if as_utc(c.expires_at) >= now and not _owner_is_dead(c.owner)
            }
