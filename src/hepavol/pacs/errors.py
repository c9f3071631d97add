"""The error of the PACS client."""

from __future__ import annotations

from hepavol.errors import HepavolError


class PacsError(HepavolError):
    """The PACS cannot be reached, rejected the association or refused a request (message says which and why)."""
