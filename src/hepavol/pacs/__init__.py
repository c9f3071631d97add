"""PACS client: find a patient's studies, pull a series into a folder, push DICOM SEG/SR back.

Two protocols behind one interface (:class:`PacsClient`):

- :class:`~hepavol.pacs.dicomweb.DicomWebClient`: DICOMweb (QIDO-RS search, WADO-RS retrieve, STOW-RS store) via
  dicomweb-client, given the service root URL (e.g. ``http://pacs:8042/dicom-web``).
- :class:`~hepavol.pacs.dimse.DimseClient`: DIMSE (C-ECHO, C-FIND, C-GET or C-MOVE to a local storage SCP,
  C-STORE) via pynetdicom, given host, port and AE titles.

A pulled series is written to a temporary folder beside the destination and renamed when complete, so a failed
or interrupted transfer leaves nothing half-written. Connection failures, rejected associations and refused
requests raise :class:`~hepavol.pacs.errors.PacsError` with the server, the cause and what to check.
"""

from hepavol.pacs.base import PacsClient, SeriesInfo, StudyInfo
from hepavol.pacs.errors import PacsError

__all__ = ["PacsClient", "PacsError", "SeriesInfo", "StudyInfo", "connect"]


def connect(
    *,
    url: str | None = None,
    host: str | None = None,
    port: int | None = None,
    aet: str = "HEPAVOL",
    called_aet: str = "ANY-SCP",
    username: str | None = None,
    password: str | None = None,
    timeout_s: float = 30.0,
    workers: int | None = None,
) -> PacsClient:
    """A DICOMweb client (``url``) or a DIMSE client (``host`` and ``port``).

    ``workers`` is the number of parallel requests or associations when pulling a series (1: one request); the
    protocol's default when omitted (DICOMweb 1, one streamed series request; DIMSE 4 associations).

    Raises
    ------
    PacsError
        If neither or both of ``url`` and ``host``/``port`` are given.
    """
    if url and (host or port):
        raise PacsError("Give either a DICOMweb URL (--url) or a DIMSE host and port (--host/--port), not both.")
    if url:
        from hepavol.pacs.dicomweb import DEFAULT_WORKERS as WEB_WORKERS
        from hepavol.pacs.dicomweb import DicomWebClient

        return DicomWebClient(
            url,
            username=username,
            password=password,
            timeout_s=timeout_s,
            workers=WEB_WORKERS if workers is None else workers,
        )
    if host and port:
        from hepavol.pacs.dimse import DEFAULT_WORKERS as DIMSE_WORKERS
        from hepavol.pacs.dimse import DimseClient

        return DimseClient(
            host,
            port,
            aet=aet,
            called_aet=called_aet,
            timeout_s=timeout_s,
            workers=DIMSE_WORKERS if workers is None else workers,
        )
    raise PacsError(
        "No PACS given: pass --url http://HOST:PORT/dicom-web for DICOMweb, or --host HOST --port PORT "
        "(and --called-aet, the PACS AE title) for DIMSE."
    )
