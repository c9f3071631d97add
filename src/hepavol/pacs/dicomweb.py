"""DICOMweb client: QIDO-RS search, WADO-RS retrieve (parallel), STOW-RS store, via dicomweb-client."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import requests

from hepavol.pacs.base import SeriesInfo, StudyInfo, check_uid, series_from, staging_folder, study_from
from hepavol.pacs.errors import PacsError

T = TypeVar("T")

#: Parallel WADO-RS requests when pulling a series (1: one streamed series request, the fastest on a nearby PACS).
DEFAULT_WORKERS = 1


class DicomWebClient:
    """A DICOMweb service given by its root URL (e.g. ``http://127.0.0.1:8042/dicom-web``).

    Parameters
    ----------
    url : str
        Service root (QIDO-RS, WADO-RS and STOW-RS under it).
    username, password : str, optional
        HTTP basic authentication.
    timeout_s : float
        Timeout of each HTTP request, seconds.
    workers : int
        Parallel WADO-RS requests when pulling a series (1: one streamed request for the whole series).
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 30.0,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise PacsError(f"DICOMweb URL must start with http:// or https://, but it is {url!r}.")
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout_s = timeout_s
        if int(workers) < 1:
            raise PacsError(f"Argument 'workers' must be at least 1, but it is {workers}.")
        self.workers = int(workers)
        self._local = threading.local()

    def describe(self) -> str:
        """The server, as named in messages."""
        return f"DICOMweb {self.url}"

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            from dicomweb_client.api import DICOMwebClient

            session = _TimeoutSession(self.timeout_s)
            if self.username is not None:
                session.auth = (self.username, self.password or "")
            client = DICOMwebClient(url=self.url, session=session)
            client.set_http_retry_params(retry=False)  # fail fast with a clear message; the user retries
            self._local.client = client
        return client

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except requests.exceptions.ConnectionError as exc:
            raise PacsError(
                f"Cannot reach {self.describe()} ({what}): connection failed ({type(exc).__name__}). Check the URL, "
                "that the server runs and that this machine may connect to it."
            ) from exc
        except requests.exceptions.Timeout as exc:
            raise PacsError(
                f"{self.describe()} did not answer within {self.timeout_s:g} s ({what}). Retry, or raise the timeout."
            ) from exc
        except requests.exceptions.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            hint = {
                401: "the server wants credentials (--user, password in HEPAVOL_DICOMWEB_PASSWORD)",
                403: "the credentials may not do this",
                404: "check the service root of the URL (e.g. .../dicom-web) and the UIDs",
            }.get(status if isinstance(status, int) else 0, "see the server's log")
            raise PacsError(f"{self.describe()} answered HTTP {status} to {what}: {hint}.") from exc

    def echo(self) -> None:
        """Check that the QIDO-RS service answers (a study search limited to one result)."""
        self._call("a QIDO-RS study search", lambda: self._client().search_for_studies(limit=1))

    def find_studies(self, *, patient_id: str | None = None, study_date: str | None = None) -> list[StudyInfo]:
        """QIDO-RS study search by PatientID and/or StudyDate (``YYYYMMDD`` or a range ``A-B``)."""
        filters: dict[str, Any] = {}
        if patient_id:
            filters["PatientID"] = patient_id
        if study_date:
            filters["StudyDate"] = study_date
        fields = ["StudyDate", "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedSeries", "PatientID"]
        found = self._call(
            "a QIDO-RS study search",
            lambda: self._client().search_for_studies(search_filters=filters, fields=fields),
        )
        return sorted(
            (study_from(_from_json(d)) for d in found), key=lambda s: (s.study_date, s.study_instance_uid)
        )

    def find_series(self, study_instance_uid: str) -> list[SeriesInfo]:
        """QIDO-RS series of a study."""
        study = check_uid(study_instance_uid, "StudyInstanceUID")
        fields = ["SeriesDescription", "SeriesNumber", "NumberOfSeriesRelatedInstances", "Modality"]
        found = self._call(
            f"a QIDO-RS series search in study {study}",
            lambda: self._client().search_for_series(study_instance_uid=study, fields=fields),
        )
        return sorted(
            (series_from(_from_json(d)) for d in found),
            key=lambda s: (s.series_number or 0, s.series_instance_uid),
        )

    def instance_headers(
        self, study_instance_uid: str, series_instance_uid: str, tags: Sequence[int]
    ) -> list[Any] | None:
        """WADO-RS metadata of every instance of a series, restricted to ``tags`` (bulk data dropped)."""
        from pydicom import Dataset

        study = check_uid(study_instance_uid, "StudyInstanceUID")
        series = check_uid(series_instance_uid, "SeriesInstanceUID")
        found = self._call(
            f"WADO-RS metadata of series {series}",
            lambda: self._client().retrieve_series_metadata(study_instance_uid=study, series_instance_uid=series),
        )
        keep = {f"{t:08X}" for t in tags}
        return [
            Dataset.from_json(
                {
                    tag: v
                    for tag, v in d.items()
                    if tag.upper() in keep and not (isinstance(v, dict) and "BulkDataURI" in v)
                }
            )
            for d in found
        ]

    def _instance_uids(self, study: str, series: str) -> list[str]:
        found = self._call(
            f"a QIDO-RS instance search in series {series}",
            lambda: self._client().search_for_instances(study_instance_uid=study, series_instance_uid=series),
        )
        return [str(_from_json(d).SOPInstanceUID) for d in found]

    def pull_series(
        self,
        study_instance_uid: str,
        series_instance_uid: str,
        dest: str | os.PathLike[str],
        *,
        progress: bool = False,
        workers: int | None = None,
    ) -> list[Path]:
        """WADO-RS retrieve every instance of a series into the new folder ``dest``.

        With one worker the series is retrieved in one WADO-RS request (``.../series/{uid}``) whose multipart
        answer is written instance by instance as it streams in. With ``workers`` > 1 every instance is its own
        request (``.../instances/{uid}``), ``workers`` at a time. Files are named ``{SOPInstanceUID}.dcm`` (the
        same bytes either way); the folder appears only when every instance listed by QIDO-RS has arrived.

        Parameters
        ----------
        workers : int, optional
            Parallel requests; the client's ``workers`` when omitted.
        """
        from hepavol.pacs._progress import Progress

        n_workers = self.workers if workers is None else int(workers)
        if n_workers < 1:
            raise PacsError(f"Argument 'workers' must be at least 1, but it is {workers}.")
        study = check_uid(study_instance_uid, "StudyInstanceUID")
        series = check_uid(series_instance_uid, "SeriesInstanceUID")
        uids = self._instance_uids(study, series)
        if not uids:
            raise PacsError(f"{self.describe()} has no instance of series {series} in study {study}.")
        bar = Progress(len(uids), f"WADO-RS {series[-12:]}", enabled=progress)
        received: list[str] = []
        with staging_folder(dest) as tmp:

            def save(ds: Any) -> str:
                sop = str(ds.SOPInstanceUID)
                check_uid(sop, "SOPInstanceUID of a retrieved instance")
                ds.save_as(tmp / f"{sop}.dcm", enforce_file_format=True)
                bar.advance()
                return sop

            def fetch(sop: str) -> str:
                ds = self._call(
                    f"WADO-RS retrieve of instance {sop}",
                    lambda: self._client().retrieve_instance(
                        study_instance_uid=study, series_instance_uid=series, sop_instance_uid=sop
                    ),
                )
                return save(ds)

            def stream() -> list[str]:
                return [
                    save(ds)
                    for ds in self._client().iter_series(study_instance_uid=study, series_instance_uid=series)
                ]

            try:
                if n_workers == 1:
                    received = self._call(f"WADO-RS retrieve of series {series}", stream)
                else:
                    with ThreadPoolExecutor(max_workers=min(n_workers, len(uids))) as pool:
                        received = list(pool.map(fetch, uids))
            finally:
                bar.close()
            missing = set(uids) - set(received)
            if missing:
                raise PacsError(
                    f"{self.describe()} sent {len(set(received))} of the {len(uids)} instance(s) of series {series} "
                    f"(missing e.g. {sorted(missing)[0]}); nothing was kept. Retry, or pull with --workers N to "
                    "ask for each instance separately."
                )
        return sorted(Path(dest) / f"{u}.dcm" for u in set(received))

    def push(self, files: Sequence[str | os.PathLike[str]]) -> int:
        """STOW-RS the files (one request); the number the server stored. PacsError lists refused instances."""
        import pydicom

        datasets = [pydicom.dcmread(f) for f in files]
        if not datasets:
            return 0
        response = self._call("a STOW-RS store", lambda: self._client().store_instances(datasets=datasets))
        failed = list(getattr(response, "FailedSOPSequence", []) or [])
        if failed:
            reasons = ", ".join(
                f"{getattr(f, 'ReferencedSOPInstanceUID', '?')} (reason 0x{int(getattr(f, 'FailureReason', 0)):04X})"
                for f in failed
            )
            raise PacsError(f"{self.describe()} refused {len(failed)} of {len(datasets)} instance(s): {reasons}.")
        return len(datasets)


class _TimeoutSession(requests.Session):
    """A requests session with a default timeout on every request."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._timeout_s = timeout_s

    def request(self, method: str, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout_s)
        return super().request(method, url, *args, **kwargs)


def _from_json(d: dict[str, Any]) -> Any:
    from pydicom import Dataset

    return Dataset.from_json(d)
