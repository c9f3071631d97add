"""DIMSE client: C-ECHO, C-FIND, C-GET, C-MOVE (to a local storage SCP) and C-STORE, via pynetdicom."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hepavol.pacs.base import SeriesInfo, StudyInfo, check_uid, series_from, staging_folder, study_from
from hepavol.pacs.errors import PacsError

#: Storage SOP classes negotiated for C-GET and the C-MOVE storage SCP (CT, MR, their enhanced forms, SEG, SR).
STORAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
)
_STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve - FIND
_STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"  # Study Root Query/Retrieve - MOVE
_STUDY_GET = "1.2.840.10008.5.1.4.1.2.2.3"  # Study Root Query/Retrieve - GET
_VERIFICATION = "1.2.840.10008.1.1"


class DimseClient:
    """A DICOM node reached by DIMSE.

    Parameters
    ----------
    host, port : str, int
        The PACS's address and DICOM port.
    aet : str
        Our (calling) AE title; for C-MOVE the PACS must know it as a destination with our host and ``move_port``.
    called_aet : str
        The PACS's AE title.
    timeout_s : float
        Connection, association and DIMSE timeouts, seconds.
    """

    def __init__(
        self, host: str, port: int, *, aet: str = "HEPAVOL", called_aet: str = "ANY-SCP", timeout_s: float = 30.0
    ) -> None:
        for name, value in (("aet", aet), ("called_aet", called_aet)):
            if not value or len(value) > 16 or "\\" in value:
                raise PacsError(
                    f"AE title {name} must be 1-16 characters without a backslash, but it is {value!r}."
                )
        if not (0 < int(port) < 65536):
            raise PacsError(f"DICOM port must be 1-65535, but it is {port}.")
        self.host = host
        self.port = int(port)
        self.aet = aet
        self.called_aet = called_aet
        self.timeout_s = timeout_s

    def describe(self) -> str:
        """The server, as named in messages."""
        return f"DICOM node {self.called_aet}@{self.host}:{self.port}"

    def _ae(self, contexts: Sequence[str], *, storage_scp: bool = False) -> Any:
        from pynetdicom import AE

        ae = AE(ae_title=self.aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        ae.connection_timeout = self.timeout_s
        for uid in contexts:
            ae.add_requested_context(uid)
        if storage_scp:
            for uid in STORAGE_CLASSES:
                ae.add_requested_context(uid)
        return ae

    @contextlib.contextmanager
    def _association(
        self, contexts: Sequence[str], *, storage_scp: bool = False, handlers: Any = None
    ) -> Iterator[Any]:
        from pynetdicom import build_role

        ae = self._ae(contexts, storage_scp=storage_scp)
        roles = [build_role(uid, scp_role=True) for uid in STORAGE_CLASSES] if storage_scp else []
        assoc = ae.associate(
            self.host, self.port, ae_title=self.called_aet, ext_neg=roles or None, evt_handlers=handlers or []
        )
        if not assoc.is_established:
            if assoc.is_rejected:
                raise PacsError(
                    f"{self.describe()} rejected the association from AE title {self.aet!r}. Check the called AE "
                    "title (--called-aet) and that the PACS knows our AE title (--aet) and address."
                )
            reason = self._tcp_problem()
            if reason is not None:
                raise PacsError(
                    f"Cannot connect to {self.describe()}: {reason}. Check --host/--port and that the PACS is "
                    "running and reachable from this machine."
                )
            if assoc.is_aborted:
                raise PacsError(f"{self.describe()} aborted the association from {self.aet!r}; see the PACS log.")
            raise PacsError(
                f"{self.describe()} accepts connections but gave no DICOM association within {self.timeout_s:g} s "
                "(is this port a DICOM port?)."
            )
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()

    def _tcp_problem(self) -> str | None:
        """Why a TCP connection to the PACS fails (e.g. 'connection refused'), or None when it succeeds."""
        import socket

        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout_s):
                return None
        except OSError as exc:
            return (exc.strerror or str(exc)).lower()

    @staticmethod
    def _check(status: Any, what: str, where: str, hint: str = "") -> int:
        if status is None or "Status" not in status:
            raise PacsError(f"{where} gave no answer to {what} (timeout or aborted association){hint}.")
        code = int(status.Status)
        return code

    def echo(self) -> None:
        """C-ECHO."""
        with self._association([_VERIFICATION]) as assoc:
            status = assoc.send_c_echo()
            if self._check(status, "C-ECHO", self.describe()) != 0x0000:
                raise PacsError(f"{self.describe()} answered C-ECHO with status 0x{int(status.Status):04X}.")

    def _find(self, query: Any, what: str) -> list[Any]:
        out = []
        with self._association([_STUDY_FIND]) as assoc:
            for status, identifier in assoc.send_c_find(query, _STUDY_FIND):
                code = self._check(status, what, self.describe())
                if code in (0xFF00, 0xFF01):
                    out.append(identifier)
                elif code != 0x0000:
                    raise PacsError(f"{self.describe()} refused {what}: status 0x{code:04X}.")
        return out

    def find_studies(self, *, patient_id: str | None = None, study_date: str | None = None) -> list[StudyInfo]:
        """C-FIND at STUDY level by PatientID and/or StudyDate."""
        from pydicom import Dataset

        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        q.PatientID = patient_id or ""
        q.StudyDate = study_date or ""
        q.StudyInstanceUID = ""
        q.StudyDescription = ""
        q.ModalitiesInStudy = ""
        q.NumberOfStudyRelatedSeries = None
        found = self._find(q, "a study C-FIND")
        return sorted((study_from(d) for d in found), key=lambda s: (s.study_date, s.study_instance_uid))

    def find_series(self, study_instance_uid: str) -> list[SeriesInfo]:
        """C-FIND at SERIES level in a study."""
        from pydicom import Dataset

        q = Dataset()
        q.QueryRetrieveLevel = "SERIES"
        q.StudyInstanceUID = check_uid(study_instance_uid, "StudyInstanceUID")
        q.SeriesInstanceUID = ""
        q.Modality = ""
        q.SeriesDescription = ""
        q.SeriesNumber = None
        q.NumberOfSeriesRelatedInstances = None
        found = self._find(q, "a series C-FIND")
        return sorted((series_from(d) for d in found), key=lambda s: (s.series_number or 0, s.series_instance_uid))

    def pull_series(
        self,
        study_instance_uid: str,
        series_instance_uid: str,
        dest: str | os.PathLike[str],
        *,
        progress: bool = False,
        method: str = "get",
        move_port: int = 0,
    ) -> list[Path]:
        """C-GET (default) or C-MOVE a series into the new folder ``dest``, atomically.

        Parameters
        ----------
        method : {"get", "move"}
            C-GET receives the instances on the same association. C-MOVE starts a storage SCP with our AE title on
            ``move_port`` and asks the PACS to send them there (the PACS must know our AE title, host and port).
        move_port : int
            Port of the storage SCP for C-MOVE.
        """
        from pydicom import Dataset
        from pynetdicom import evt

        from hepavol.pacs._progress import Progress

        if method not in ("get", "move"):
            raise PacsError(f"Argument 'method' must be 'get' or 'move', but it is {method!r}.")
        study = check_uid(study_instance_uid, "StudyInstanceUID")
        series = check_uid(series_instance_uid, "SeriesInstanceUID")
        q = Dataset()
        q.QueryRetrieveLevel = "SERIES"
        q.StudyInstanceUID = study
        q.SeriesInstanceUID = series
        written: list[Path] = []
        lock = threading.Lock()
        bar = Progress(0, f"C-{method.upper()} {series[-12:]}", enabled=progress)
        with staging_folder(dest) as tmp:

            def on_store(event: Any) -> int:
                uid = str(event.request.AffectedSOPInstanceUID)
                if str(event.request.AffectedSOPClassUID) in STORAGE_CLASSES:
                    path = tmp / f"{uid}.dcm"
                    path.write_bytes(event.encoded_dataset())
                    with lock:
                        written.append(Path(dest) / path.name)
                    bar.advance()
                return 0x0000

            handlers = [(evt.EVT_C_STORE, on_store)]
            try:
                if method == "get":
                    with self._association([_STUDY_GET], storage_scp=True, handlers=handlers) as assoc:
                        self._retrieve(assoc.send_c_get(q, _STUDY_GET), "C-GET", series, bar)
                else:
                    scp = self._storage_scp(move_port, handlers)
                    try:
                        with self._association([_STUDY_MOVE]) as assoc:
                            self._retrieve(assoc.send_c_move(q, self.aet, _STUDY_MOVE), "C-MOVE", series, bar)
                    finally:
                        scp.shutdown()
            finally:
                bar.close()
            if not written:
                raise PacsError(f"{self.describe()} sent no instance of series {series} (study {study}).")
        return sorted(written)

    def _storage_scp(self, port: int, handlers: Any) -> Any:
        from pynetdicom import AE

        ae = AE(ae_title=self.aet)
        ae.network_timeout = ae.acse_timeout = ae.dimse_timeout = self.timeout_s
        for uid in STORAGE_CLASSES:
            ae.add_supported_context(uid)
        try:
            return ae.start_server(("", int(port)), block=False, evt_handlers=handlers)
        except OSError as exc:
            raise PacsError(
                f"Cannot start the storage SCP for C-MOVE on port {port}: {exc}. Choose a free --move-port (the "
                "one the PACS has for our AE title)."
            ) from exc

    def _retrieve(self, responses: Any, what: str, series: str, bar: Any) -> None:
        failed = 0
        hint = ""
        if what == "C-MOVE":
            hint = (
                f": the PACS may not accept C-MOVE from AE title {self.aet!r} or not know it as a destination; "
                "register our AE title, host and --move-port on the PACS, or use C-GET"
            )
        for status, _identifier in responses:
            code = self._check(status, what, self.describe(), hint)
            if code == 0xFF00:  # pending: remaining/completed counts
                remaining = int(getattr(status, "NumberOfRemainingSuboperations", 0) or 0)
                done = int(getattr(status, "NumberOfCompletedSuboperations", 0) or 0)
                bar.total = max(bar.total, remaining + done)
                continue
            failed = int(getattr(status, "NumberOfFailedSuboperations", 0) or 0)
            if code == 0xA801:
                raise PacsError(
                    f"{self.describe()} does not know the move destination {self.aet!r}: add our AE title, host "
                    "and --move-port to the PACS's list of DICOM nodes, or use C-GET."
                )
            if code not in (0x0000, 0xB000):
                raise PacsError(f"{self.describe()} refused the {what} of series {series}: status 0x{code:04X}.")
        if failed:
            raise PacsError(
                f"{self.describe()}: {failed} instance(s) of series {series} failed to arrive ({what})."
            )

    def push(self, files: Sequence[str | os.PathLike[str]]) -> int:
        """C-STORE the files on one association; the number stored."""
        import pydicom

        datasets = [pydicom.dcmread(f) for f in files]
        if not datasets:
            return 0
        classes = sorted({str(ds.SOPClassUID) for ds in datasets})
        if len(classes) > 120:
            raise PacsError(f"{len(classes)} SOP classes in one push; push fewer kinds of object at once.")
        with self._association(classes) as assoc:
            for path, ds in zip(files, datasets, strict=True):
                status = assoc.send_c_store(ds)
                code = self._check(status, f"C-STORE of '{path}'", self.describe())
                if code not in (0x0000, 0xB000, 0xB007, 0xB006):
                    raise PacsError(f"{self.describe()} refused '{path}' (C-STORE status 0x{code:04X}).")
        return len(datasets)
