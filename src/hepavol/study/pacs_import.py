"""``hepavol study import --pacs``: pull the studies of a patient list from a PACS into the workspace, then import.

For every row of the patient list (:func:`read_patient_list`) the PACS is searched for the patient's studies
(QIDO-RS or C-FIND at STUDY level, by PatientID and the row's date range), then for their series (SERIES level).
What is pulled lands under the workspace::

    STUDY/dicom/<pseudonym>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm

and each patient's folder is imported with :func:`hepavol.study.dicom_import.import_dicom_tree`, the same code as
``hepavol study import DICOM_ROOT`` (series choice, DICOM SEG, pseudonyms).

**What is pulled.** Every DICOM SEG series of a study (they are small, and the series choice depends on what
they segment), every SR series (small too: TID 1500 RECIST lines are the seeds of ``study segment``), and of the CT/MR image series by default only the one the workspace's selection rules
(``study.toml [series_selection]``) would measure. The rules need per-image attributes (orientation, slice
thickness, contrast agent, image type, echo and repetition times) that the series level of QIDO-RS and C-FIND does
not carry, so the headers are asked for first: WADO-RS series metadata (DICOMweb: every header, no pixel data) or
C-FIND at IMAGE level with the attributes the rules read (DIMSE). The headers are written as header-only stand-in
files in a temporary folder and handed, with the pulled SEG objects, to the same tree reader and the same choice
(:func:`~hepavol.study.dicom_tree.scan_dicom_tree`, :func:`~hepavol.study.dicom_import.measured_series`) as a
local import; the stand-ins are deleted and only the chosen series is pulled. On a study with a thin
portal-venous series among arterial, delayed, thick and reformatted ones this moves one series instead of all.
The chosen series' recorded reason is the one computed on the PACS's headers (it names the series that were left
on the PACS and why). When a DIMSE PACS does not return image attributes at IMAGE level (some only return the
standard keys), every CT/MR series of the study is pulled and the import chooses among them; ``all_series=True``
always does that (the database then records every series, and a later change of the rules needs no new pull).

**The pulled files keep their original headers.** They stay inside the workspace, the same place that holds the
pseudonymisation key and the mapping of original ids: nothing identifying leaves the machine, and nothing is
printed (patients are named by their row in the patient list, folders and the audit trail by pseudonym).
Rewriting the headers on arrival (:func:`~hepavol.study.pseudonym.pseudonymise_dataset`) would keep SEG references
valid (UIDs are kept) but would break the pseudonyms: the import derives a patient's pseudonym from the PatientID
in the files, so a file holding the pseudonym would get a pseudonym of the pseudonym, unlike the same patient's
clinical data or a local import of the same export.

**Nothing half-written.** A study is pulled into ``STUDY/dicom/.partial/<pid>-<random>/`` and renamed into place
only when every series of it has arrived; a failure removes the partial folder (and a partial folder of a killed
run is removed by the next run). A study folder that exists is complete: a re-run does not ask the PACS for it
again, and imports a patient again only if something new arrived or a study folder is not in the database yet (a
run stopped between the pull and the import).

**Errors.** The PACS is checked first (QIDO-RS query or C-ECHO): an unreachable PACS or a rejected association is
a :class:`~hepavol.pacs.errors.PacsError` before anything is written. A patient without a study on the PACS gives a
warning and the others go on; a failure while pulling stops the run (what was complete stays, in place and
imported).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepavol.errors import InputError, TableError
from hepavol.pacs.base import PacsClient, SeriesInfo, StudyInfo
from hepavol.pacs.errors import PacsError
from hepavol.study import audit
from hepavol.study.importer import ImportSummary
from hepavol.study.table import read_table
from hepavol.study.workspace import Workspace

__all__ = [
    "DICOM_FOLDER",
    "PARTIAL_FOLDER",
    "PacsImportSummary",
    "PatientRequest",
    "connect_pacs",
    "import_from_pacs",
    "read_patient_list",
]

#: Folder of the workspace that receives the pulled DICOM files.
DICOM_FOLDER = "dicom"
#: Folder (inside :data:`DICOM_FOLDER`) where studies are staged while they are pulled.
PARTIAL_FOLDER = ".partial"
_MODALITIES = ("CT", "MR")
#: Environment variable of the DICOMweb password (as for ``hepavol pacs``; never on the command line).
PASSWORD_ENV = "HEPAVOL_DICOMWEB_PASSWORD"
_SEG = "SEG"
#: Modalities of series that are not images: a study of only these (and SEG) is a study of results.
_RESULT_MODALITIES = frozenset({_SEG, "SR", "KO", "PR"})
_AE_SPEC = re.compile(r"^(?P<aet>[^@\s\\]{1,16})@(?P<host>\[[0-9A-Fa-f:.]+\]|[^:@\s\[\]]+):(?P<port>\d{1,5})$")
#: SOP classes given to stand-ins when the PACS does not return SOPClassUID (CT Image, MR Image Storage).
_SOP_CLASS_OF = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4"}


# ---------------------------------------------------------------------------------------------- the patient list
@dataclass(frozen=True, slots=True, kw_only=True)
class PatientRequest:
    """One row of the patient list: a PatientID as the PACS knows it, and what to pull of it.

    ``patient_id`` is identifying: it is not part of ``repr`` and is never printed (messages name the row).

    Attributes
    ----------
    line : int
        Line of the row in the CSV file (1 = the header), for messages.
    patient_id : str
        PatientID (0010,0020) on the PACS.
    date_from, date_to : datetime.date or None
        Only studies with a StudyDate in this range (inclusive; open ended when None).
    modalities : tuple of str or None
        Only these image modalities (``"CT"``, ``"MR"``); None: those of the workspace's selection rules.
    """

    line: int
    patient_id: str = field(repr=False)
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    modalities: tuple[str, ...] | None = None

    @property
    def study_date(self) -> str | None:
        """The DICOM date range matched on the PACS (``YYYYMMDD-YYYYMMDD``, either side may be empty) or None."""
        if self.date_from is None and self.date_to is None:
            return None
        a = self.date_from.strftime("%Y%m%d") if self.date_from else ""
        b = self.date_to.strftime("%Y%m%d") if self.date_to else ""
        return a if a == b else f"{a}-{b}"

    def covers(self, study_date: str) -> bool:
        """Whether a StudyDate (``YYYYMMDD``; unparseable counts as inside) is in the row's range."""
        try:
            date = dt.datetime.strptime(study_date.strip()[:8], "%Y%m%d").date()
        except ValueError:
            return True
        return (self.date_from is None or date >= self.date_from) and (
            self.date_to is None or date <= self.date_to
        )


def _parse_date(text: str, where: str, column: str) -> dt.date:
    value = text.strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise TableError(f"{where}: {column} {value!r} is not a date; write YYYY-MM-DD (or YYYYMMDD).")


def _parse_modalities(text: str, where: str) -> tuple[str, ...]:
    parts = [p for p in re.split(r"[\s,;/|\\]+", text.strip().upper()) if p]
    parts = ["MR" if p == "MRI" else p for p in parts]
    unknown = [p for p in parts if p not in _MODALITIES]
    if unknown or not parts:
        raise TableError(
            f"{where}: modality {text!r} is not CT or MR; write CT, MR or both (e.g. 'CT;MR'), or leave it empty."
        )
    return tuple(dict.fromkeys(parts))


def read_patient_list(
    path: str | os.PathLike[str],
    *,
    date_from: str | dt.date | None = None,
    date_to: str | dt.date | None = None,
    modality: str | None = None,
) -> list[PatientRequest]:
    """Read the patient list: a CSV with a column ``patient_id`` and optional ``study_date_from``,
    ``study_date_to`` (YYYY-MM-DD or YYYYMMDD) and ``modality`` (CT, MR, or both as ``CT;MR``).

    ``date_from``, ``date_to`` and ``modality`` apply to the rows that leave the column empty (or have no such
    column). Other columns are ignored. Patient ids are matched exactly on the PACS, so the DICOM wildcards
    ``*`` and ``?`` (and the value separator ``\\``) are refused.

    Raises
    ------
    TableError
        For a missing file or ``patient_id`` column, an empty patient id, an id with a wildcard, a bad date or
        modality, a date range that ends before it starts, or a list without rows; the message names the line.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "patients.csv"
    >>> _ = p.write_text("patient_id,study_date_from,modality\\nA1,2020-01-01,CT\\nB2,,\\n")
    >>> [(r.line, r.study_date, r.modalities) for r in read_patient_list(p, modality="MR")]
    [(2, '20200101-', ('CT',)), (3, None, ('MR',))]
    """
    p = Path(path)
    table = read_table(p, "patient list")
    table.require(
        ("patient_id",),
        "the patient list is a CSV with patient_id (the PACS PatientID) and optional study_date_from, "
        "study_date_to and modality",
    )

    def default_date(value: str | dt.date | None, name: str) -> dt.date | None:
        if value is None or isinstance(value, dt.date):
            return value
        return _parse_date(value, "option", f"{name} (--{name.replace('_', '-')})")

    default_from = default_date(date_from, "date_from")
    default_to = default_date(date_to, "date_to")
    default_mods = _parse_modalities(modality, "option") if modality else None
    out: list[PatientRequest] = []
    for line, row in table.records():  # blank rows are already left out
        where = f"{p}, line {line}"
        pid = row.get("patient_id", "")
        if not pid:
            raise TableError(f"{where}: patient_id is empty. Every row needs the patient's PatientID on the PACS.")
        bad = sorted({c for c in pid if c in "*?\\"})
        if bad:
            raise TableError(
                f"{where}: patient_id contains {', '.join(repr(c) for c in bad)}, a DICOM wildcard or separator; "
                "patients are matched exactly. Give the full PatientID."
            )
        start = (
            _parse_date(row["study_date_from"], where, "study_date_from") if row.get("study_date_from") else None
        )
        end = _parse_date(row["study_date_to"], where, "study_date_to") if row.get("study_date_to") else None
        start = start if start is not None else default_from
        end = end if end is not None else default_to
        if start is not None and end is not None and end < start:
            raise TableError(
                f"{where}: the date range ends ({end.isoformat()}) before it starts ({start.isoformat()}). Swap "
                "study_date_from and study_date_to."
            )
        mods = _parse_modalities(row["modality"], where) if row.get("modality") else default_mods
        out.append(PatientRequest(line=line, patient_id=pid, date_from=start, date_to=end, modalities=mods))
    if not out:
        raise TableError(f"{p}: no patients (the list has only a header). Add one row per patient_id.")
    return out


# ---------------------------------------------------------------------------------------------- connection
def connect_pacs(
    spec: str,
    *,
    aet: str = "HEPAVOL",
    timeout_s: float = 30.0,
    username: str | None = None,
    password: str | None = None,
) -> PacsClient:
    """A PACS client from ``--pacs``: a DICOMweb service root (``http(s)://HOST:PORT/dicom-web``) or a DIMSE node
    as ``AET@HOST:PORT`` (the PACS's AE title, host and DICOM port; ``[::1]`` for an IPv6 address).

    Raises
    ------
    PacsError
        If ``spec`` is neither.

    Examples
    --------
    >>> connect_pacs("ORTHANC@127.0.0.1:4242").describe()
    'DICOM node ORTHANC@127.0.0.1:4242'
    >>> connect_pacs("http://pacs:8042/dicom-web/").describe()
    'DICOMweb http://pacs:8042/dicom-web'
    """
    from hepavol.pacs import connect

    text = spec.strip()
    if text.lower().startswith(("http://", "https://")):
        if "@" in text.split("://", 1)[1].split("/", 1)[0]:
            raise PacsError(
                "--pacs must not hold a user name or password (they would be shown in messages and the audit "
                f"trail). Give the user with --pacs-user and the password in {PASSWORD_ENV}."
            )
        return connect(url=text, username=username, password=password, timeout_s=timeout_s)
    m = _AE_SPEC.match(text)
    if m is None or not (0 < int(m["port"]) < 65536):
        raise PacsError(
            f"--pacs must be a DICOMweb URL such as http://pacs:8042/dicom-web, or a DICOM node as AET@HOST:PORT "
            f"(the PACS's AE title, host and DICOM port, e.g. ORTHANC@pacs.example.org:4242), but it is {spec!r}."
        )
    host = m["host"].strip("[]")
    return connect(host=host, port=int(m["port"]), aet=aet, called_aet=m["aet"], timeout_s=timeout_s)


# ---------------------------------------------------------------------------------------------- result
@dataclass(slots=True)
class PacsImportSummary:
    """What :func:`import_from_pacs` found, pulled and imported (counts), and the warnings for the user.

    Warnings name patients by their line in the patient list and studies by date, never by id or name.
    """

    patients_requested: int = 0
    patients_not_found: int = 0
    studies_found: int = 0
    studies_pulled: int = 0
    studies_present: int = 0
    studies_not_pulled: int = 0
    series_pulled: int = 0
    series_left_on_pacs: int = 0
    instances_pulled: int = 0
    imported: ImportSummary = field(default_factory=ImportSummary)
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One paragraph for the command line."""
        return (
            f"{self.patients_requested} patient(s) asked for, {self.patients_not_found} not found; "
            f"{self.studies_found} study(ies) found: {self.studies_pulled} pulled ({self.series_pulled} series, "
            f"{self.instances_pulled} instance(s); {self.series_left_on_pacs} series not needed, left on the PACS), "
            f"{self.studies_present} already in the workspace, {self.studies_not_pulled} without a series to pull. "
            f"Imported: {self.imported.describe()}"
        )


def _merge(total: ImportSummary, part: ImportSummary) -> None:
    total.patients_new += part.patients_new
    total.patients_seen |= part.patients_seen
    total.studies_new += part.studies_new
    total.series_new += part.series_new
    total.series_changed += part.series_changed
    total.segmentations_new += part.segmentations_new
    total.warnings += part.warnings


# ---------------------------------------------------------------------------------------------- headers
def _series_headers(client: PacsClient, study_uid: str, series_uid: str) -> list[Any] | None:
    """Headers of every instance of a series without pixel data (the tree reader's tags, PatientName excepted,
    with the shared functional groups of an enhanced image), or None when the PACS cannot give them."""
    from hepavol.study.dicom_tree import HEADER_TAGS

    tags = [t for t in HEADER_TAGS if t != 0x00100010] + [0x52009229]
    return client.instance_headers(study_uid, series_uid, tags)


def _write_stand_in(ds: Any, path: Path, *, study: StudyInfo, series: SeriesInfo) -> None:
    """Write a header as a small Part 10 file the tree reader accepts (an empty Pixel Data element at the end)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    for keyword in ("QueryRetrieveLevel", "RetrieveAETitle", "RetrieveURL", "PatientName"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.PatientID = study.patient_id
    ds.StudyInstanceUID = study.study_instance_uid
    ds.SeriesInstanceUID = series.series_instance_uid
    if not str(ds.get("StudyDate", "") or ""):
        ds.StudyDate = study.study_date
    if not str(ds.get("Modality", "") or ""):
        ds.Modality = series.modality
    if not str(ds.get("SOPClassUID", "") or ""):
        ds.SOPClassUID = _SOP_CLASS_OF.get(series.modality.upper(), _SOP_CLASS_OF["CT"])
    if not str(ds.get("SOPInstanceUID", "") or ""):
        ds.SOPInstanceUID = generate_uid()
    ds.add_new(0x7FE00010, "OB", b"")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)


@dataclass(frozen=True, slots=True)
class _Choice:
    """The series to pull of a study: the chosen one (``series_uid`` set), none, or every image series."""

    series_uid: str | None
    reason: str
    pull_all: bool = False


def _choose_on_pacs(
    client: PacsClient,
    study: StudyInfo,
    images: Sequence[SeriesInfo],
    seg_files: Sequence[Path],
    scratch: Path,
    rules: Any,
) -> _Choice:
    """Choose the series to measure from the PACS's headers (module docstring), in ``scratch`` (then removed)."""
    from hepavol.study.dicom_import import measured_series
    from hepavol.study.dicom_tree import scan_dicom_tree

    probe = Path(tempfile.mkdtemp(prefix="probe-", dir=scratch))
    try:
        for s in images:
            headers = _series_headers(client, study.study_instance_uid, s.series_instance_uid)
            if headers is None:
                return _Choice(
                    None,
                    f"{client.describe()} gives no image attributes at IMAGE level; every CT/MR series was pulled",
                    pull_all=True,
                )
            folder = probe / s.series_instance_uid
            folder.mkdir()
            try:
                for i, ds in enumerate(headers):
                    _write_stand_in(ds, folder / f"{i:06d}.dcm", study=study, series=s)
            except Exception as exc:  # a header pydicom cannot write back: let the import choose on the files
                return _Choice(
                    None,
                    f"a header of series {s.series_instance_uid} could not be read ({type(exc).__name__}); every "
                    "CT/MR series was pulled",
                    pull_all=True,
                )
        for i, f in enumerate(seg_files):
            target = probe / "seg" / f"{i:06d}.dcm"
            target.parent.mkdir(exist_ok=True)
            try:
                os.link(f, target)
            except OSError:
                shutil.copyfile(f, target)
        try:
            tree = scan_dicom_tree(probe, rules=rules, workers=1)
        except InputError as exc:
            return _Choice(None, f"no image series could be read from the PACS's headers ({exc})")
        found = [st for pt in tree.patients for st in pt.studies if st.study_uid == study.study_instance_uid]
        if not found:
            return _Choice(None, "no image series with a study date in the PACS's headers")
        chosen, reason = measured_series(found[0])
        return _Choice(None if chosen is None else chosen.series_uid, reason)
    finally:
        shutil.rmtree(probe, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- pulling
def _stage_prefix() -> str:
    """Prefix of this process's partial folders: ``<pid>+<host>+`` (a folder of a killed run is recognised)."""
    return f"{os.getpid()}+{socket.gethostname()}+"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(partial: Path) -> None:
    """Remove partial folders left by runs on this machine that were killed (their process is gone)."""
    if not partial.is_dir():
        return
    host = socket.gethostname()
    for child in partial.iterdir():
        pid, _, rest = child.name.partition("+")
        if pid.isdigit() and rest.startswith(f"{host}+") and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(child, ignore_errors=True)


@dataclass(slots=True)
class _Pulled:
    series: int = 0
    instances: int = 0
    left_on_pacs: int = 0
    chosen: tuple[str, str] | None = None  # (SeriesInstanceUID, reason) chosen on the PACS's headers


def _pull_study(
    client: PacsClient,
    study: StudyInfo,
    dest: Path,
    partial: Path,
    *,
    modalities: Sequence[str],
    rules: Any,
    all_series: bool,
    pull: Callable[[str, str, Path], list[Path]],
) -> _Pulled | str:
    """Pull what is needed of one study into ``dest`` (atomically); the counts, or why nothing was pulled."""
    series = client.find_series(study.study_instance_uid)
    images = [s for s in series if s.modality.upper() in modalities]
    segs = [s for s in series if s.modality.upper() == _SEG]
    if not images and (not segs or not _results_only(s.modality for s in series)):
        found = sorted({s.modality for s in series}) or ["none"]
        return f"no {'/'.join(modalities)} series (series modalities: {', '.join(found)})"
    partial.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=_stage_prefix(), dir=partial))
    result = _Pulled()
    try:
        seg_files: list[Path] = []
        for s in segs:
            files = pull(study.study_instance_uid, s.series_instance_uid, stage / s.series_instance_uid)
            seg_files += files
            result.series += 1
            result.instances += len(files)
        for s in (s for s in series if s.modality.upper() == "SR"):  # RECIST lines: the seeds of study segment
            files = pull(study.study_instance_uid, s.series_instance_uid, stage / s.series_instance_uid)
            result.series += 1
            result.instances += len(files)
        wanted = list(images)
        if images and not all_series:
            choice = _choose_on_pacs(client, study, images, seg_files, partial, rules)
            if not choice.pull_all:
                if choice.series_uid is None:
                    return f"no series to measure ({choice.reason}); not pulled"
                wanted = [s for s in images if s.series_instance_uid == choice.series_uid]
                result.chosen = (choice.series_uid, choice.reason)
        result.left_on_pacs = len(images) - len(wanted)
        for s in wanted:
            files = pull(study.study_instance_uid, s.series_instance_uid, stage / s.series_instance_uid)
            result.series += 1
            result.instances += len(files)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(stage, dest)
        except OSError:
            if dest.is_dir():  # another run put the same study in place meanwhile
                return "already pulled by another run"
            raise
        return result
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _results_only(modalities: Iterable[str]) -> bool:
    """Whether a study holds only results (SEG, SR...): pulled whole, the import attaches its SEG to its images."""
    return {m.upper() for m in modalities} <= _RESULT_MODALITIES


def _wanted_study(study: StudyInfo, modalities: Sequence[str]) -> bool:
    """A study with images of a wanted modality, or of results only (or that does not list its modalities)."""
    found = {m.upper() for m in study.modalities}
    return not found or bool(found & set(modalities)) or _results_only(found)


def _studies_in_db(ws: Workspace, uids: Sequence[str]) -> set[str]:
    from sqlalchemy import select

    from hepavol.study.models import ImagingStudy

    if not uids:
        return set()
    with ws.db.transaction() as session:
        return set(session.scalars(select(ImagingStudy.study_uid).where(ImagingStudy.study_uid.in_(list(uids)))))


def _record(
    ws: Workspace, pseudonym: str, client: PacsClient, pulled: Sequence[_Pulled], *, all_series: bool
) -> None:
    """The audit entry of a patient pulled, and the reasons of the series chosen on the PACS's headers."""
    from sqlalchemy import select

    from hepavol.study.models import Series

    with ws.db.transaction() as session:
        for p in pulled:
            if p.chosen is None:
                continue
            uid, reason = p.chosen
            row = session.scalar(select(Series).where(Series.series_uid == uid))
            if row is not None and row.chosen:
                row.choice_reason = (
                    f"{reason}; chosen on the PACS's headers, the other image series were not pulled"
                    if p.left_on_pacs
                    else reason
                )
        audit.record(
            session,
            "pacs-pull",
            entity="patient",
            key=pseudonym,
            details={
                "pacs": client.describe(),
                "studies": len(pulled),
                "series": sum(p.series for p in pulled),
                "instances": sum(p.instances for p in pulled),
                "series_left_on_pacs": sum(p.left_on_pacs for p in pulled),
                "selection": "every CT/MR series" if all_series else "the series the rules choose, and DICOM SEG",
            },
        )


def import_from_pacs(
    ws: Workspace,
    pacs: PacsClient | str,
    patients: str | os.PathLike[str] | Sequence[PatientRequest],
    *,
    date_from: str | dt.date | None = None,
    date_to: str | dt.date | None = None,
    modality: str | None = None,
    all_series: bool = False,
    method: str = "get",
    move_port: int = 0,
    workers: int = 4,
    progress: bool = False,
) -> PacsImportSummary:
    """Pull the studies of a patient list from a PACS into the workspace and import them (module docstring).

    Parameters
    ----------
    ws : Workspace
        The study workspace; files go to ``ws.root / "dicom"``.
    pacs : PacsClient or str
        A client (:func:`hepavol.pacs.connect`) or a ``--pacs`` text (:func:`connect_pacs`).
    patients : path or sequence of PatientRequest
        The patient list (:func:`read_patient_list`) or its rows.
    date_from, date_to, modality : optional
        Defaults for the rows that leave ``study_date_from``, ``study_date_to`` or ``modality`` empty.
    all_series : bool, default False
        Pull every CT/MR series of a study, not only the one the selection rules choose.
    method : {"get", "move"}
        DIMSE only: C-GET, or C-MOVE to our storage SCP on ``move_port``.
    workers : int
        Threads reading headers during the import.
    progress : bool
        Draw a progress bar (patients) on standard error.

    Returns
    -------
    PacsImportSummary

    Raises
    ------
    PacsError
        The PACS cannot be reached, rejects the association or refuses a request (nothing half-written is left).
    TableError
        A bad patient list (checked before the PACS is contacted).
    """
    from hepavol.pacs._progress import Progress
    from hepavol.study.dicom_import import import_dicom_tree
    from hepavol.study.dicom_tree import SelectionRules

    if isinstance(patients, str | os.PathLike):
        requests = read_patient_list(patients, date_from=date_from, date_to=date_to, modality=modality)
    else:
        requests = list(patients)
    rules = SelectionRules.from_mapping(ws.settings.series_selection)
    client = connect_pacs(pacs) if isinstance(pacs, str) else pacs
    if method not in ("get", "move"):
        raise PacsError(f"Argument 'method' must be 'get' or 'move', but it is {method!r}.")
    client.echo()  # unreachable or rejecting PACS: fail before anything is written

    from hepavol.pacs.dimse import DimseClient

    extra: dict[str, Any] = {"method": method, "move_port": move_port} if isinstance(client, DimseClient) else {}

    def pull(study_uid: str, series_uid: str, dest: Path) -> list[Path]:
        return client.pull_series(study_uid, series_uid, dest, progress=False, **extra)

    root = ws.root / DICOM_FOLDER
    partial = root / PARTIAL_FOLDER
    created_root = not root.exists()
    _remove_stale(partial)
    pseudonymiser = ws.pseudonymiser()
    summary = PacsImportSummary(patients_requested=len(requests))
    bar = Progress(len(requests), "PACS import (patients)", enabled=progress)
    try:
        for req in requests:
            where = f"patient list line {req.line}"
            wanted = tuple(m for m in (req.modalities or rules.modalities) if m in _MODALITIES) or _MODALITIES
            found = [
                s
                for s in client.find_studies(patient_id=req.patient_id, study_date=req.study_date)
                if s.patient_id.strip() in ("", req.patient_id.strip()) and req.covers(s.study_date)
            ]
            studies = [s for s in found if _wanted_study(s, wanted)]
            if not studies:
                summary.patients_not_found += 1
                if found:
                    summary.warnings.append(
                        f"{where}: {len(found)} study(ies) on the PACS, none with {'/'.join(wanted)} images; skipped"
                    )
                else:
                    limits = " in the dates given" if req.study_date else ""
                    summary.warnings.append(f"{where}: no study on {client.describe()}{limits}; skipped")
                bar.advance()
                continue
            summary.studies_found += len(studies)
            pseudonym = pseudonymiser.pseudonym(req.patient_id)
            folder = root / pseudonym
            pulled: list[_Pulled] = []
            for study in studies:
                dest = folder / study.study_instance_uid
                if dest.is_dir():
                    summary.studies_present += 1
                    continue
                result = _pull_study(
                    client,
                    study,
                    dest,
                    partial,
                    modalities=wanted,
                    rules=rules,
                    all_series=all_series,
                    pull=pull,
                )
                if isinstance(result, str):
                    summary.studies_not_pulled += 1
                    date = study.study_date or "without a date"
                    summary.warnings.append(f"{where}, study of {date}: {result}")
                    continue
                pulled.append(result)
                summary.studies_pulled += 1
                summary.series_pulled += result.series
                summary.instances_pulled += result.instances
                summary.series_left_on_pacs += result.left_on_pacs
            on_disk = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
            if on_disk and (pulled or set(on_disk) - _studies_in_db(ws, on_disk)):
                _merge(summary.imported, import_dicom_tree(ws, folder, workers=workers, progress=False))
                if pulled:
                    _record(ws, pseudonym, client, pulled, all_series=all_series)
            bar.advance()
    finally:
        bar.close()
        with contextlib.suppress(OSError):
            partial.rmdir()
        if created_root:
            with contextlib.suppress(OSError):
                root.rmdir()
    return summary
