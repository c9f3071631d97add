"""What every PACS client offers, and the study/series summaries they return."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hepavol.pacs.errors import PacsError


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyInfo:
    """One study found on the PACS (identifying fields only as the PACS returned them)."""

    study_instance_uid: str
    patient_id: str
    study_date: str
    study_description: str
    modalities: tuple[str, ...]
    number_of_series: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return {
            "study_instance_uid": self.study_instance_uid,
            "patient_id": self.patient_id,
            "study_date": self.study_date,
            "study_description": self.study_description,
            "modalities": list(self.modalities),
            "number_of_series": self.number_of_series,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesInfo:
    """One series of a study."""

    series_instance_uid: str
    modality: str
    series_description: str
    series_number: int | None
    number_of_instances: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return {
            "series_instance_uid": self.series_instance_uid,
            "modality": self.modality,
            "series_description": self.series_description,
            "series_number": self.series_number,
            "number_of_instances": self.number_of_instances,
        }


class PacsClient(Protocol):
    """Operations common to the DICOMweb and DIMSE clients.

    ``workers`` is the number of parallel requests (DICOMweb) or associations (DIMSE) when pulling a series;
    1 asks for the whole series in one request.
    """

    workers: int

    def describe(self) -> str:
        """The server, as named in messages."""
        ...

    def echo(self) -> None:
        """Check that the server answers; raise PacsError otherwise."""
        ...

    def find_studies(self, *, patient_id: str | None = None, study_date: str | None = None) -> list[StudyInfo]:
        """Studies of a patient (``patient_id``) and/or a date or range (``YYYYMMDD`` or ``YYYYMMDD-YYYYMMDD``)."""
        ...

    def find_series(self, study_instance_uid: str) -> list[SeriesInfo]:
        """The series of a study."""
        ...

    def pull_series(
        self,
        study_instance_uid: str,
        series_instance_uid: str,
        dest: str | os.PathLike[str],
        *,
        progress: bool = False,
        workers: int | None = None,
    ) -> list[Path]:
        """Retrieve a series into a new folder ``dest`` (atomically); the files written (``workers``: see above)."""
        ...

    def instance_headers(
        self, study_instance_uid: str, series_instance_uid: str, tags: Sequence[int]
    ) -> list[Any] | None:
        """Headers (pydicom Datasets, no pixel data) of every instance of a series with the given ``tags``, or
        None when the server does not return image attributes without the images."""
        ...

    def push(self, files: Sequence[str | os.PathLike[str]]) -> int:
        """Store DICOM files on the server; the number stored."""
        ...


def dataset_fields(ds: Any) -> dict[str, Any]:
    """Values of a C-FIND / QIDO result as plain Python (missing attributes as '' or None)."""

    def text(keyword: str) -> str:
        value = getattr(ds, keyword, "")
        return "" if value is None else str(value)

    def integer(keyword: str) -> int | None:
        value = getattr(ds, keyword, None)
        try:
            return None if value in (None, "") else int(value)
        except (TypeError, ValueError):
            return None

    modalities = getattr(ds, "ModalitiesInStudy", "") or ""
    if isinstance(modalities, str):
        mods = tuple(m for m in modalities.split("\\") if m)
    else:
        mods = tuple(str(m) for m in modalities)
    return {"text": text, "integer": integer, "modalities": mods}


def study_from(ds: Any) -> StudyInfo:
    """A StudyInfo from a study-level C-FIND identifier or QIDO-RS result dataset."""
    f = dataset_fields(ds)
    return StudyInfo(
        study_instance_uid=f["text"]("StudyInstanceUID"),
        patient_id=f["text"]("PatientID"),
        study_date=f["text"]("StudyDate"),
        study_description=f["text"]("StudyDescription"),
        modalities=f["modalities"],
        number_of_series=f["integer"]("NumberOfStudyRelatedSeries"),
    )


def series_from(ds: Any) -> SeriesInfo:
    """A SeriesInfo from a series-level C-FIND identifier or QIDO-RS result dataset."""
    f = dataset_fields(ds)
    return SeriesInfo(
        series_instance_uid=f["text"]("SeriesInstanceUID"),
        modality=f["text"]("Modality"),
        series_description=f["text"]("SeriesDescription"),
        series_number=f["integer"]("SeriesNumber"),
        number_of_instances=f["integer"]("NumberOfSeriesRelatedInstances"),
    )


@contextlib.contextmanager
def staging_folder(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder beside ``dest``, renamed to ``dest`` on success and removed on any failure.

    Raises
    ------
    PacsError
        If ``dest`` already exists (nothing is overwritten).
    """
    target = Path(dest)
    if target.exists():
        raise PacsError(
            f"'{target}' already exists; hepavol pulls a series into a new folder. Remove it or choose another --out."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_uid(value: str, what: str) -> str:
    """A DICOM UID (digits and dots, at most 64 characters), else PacsError naming ``what``."""
    text = str(value).strip()
    if not text or len(text) > 64 or any(c not in "0123456789." for c in text):
        raise PacsError(
            f"{what} must be a DICOM UID (digits and dots, at most 64 characters), but it is {value!r}."
        )
    return text
