"""Pseudonyms for patient ids: a keyed hash (HMAC-SHA256), stable across imports, and DICOM header cleaning.

A study workspace holds one secret key (32 random bytes, file mode 0600). The pseudonym of a patient id is::

    P-<first 10 characters of base32(HMAC-SHA256(key, id))>   (lowercase, no padding)

* **Stable**: the same id and key always give the same pseudonym, so a second import of the same PACS export (or a
  later export with new scans) lands on the same patients.
* **Not reversible without the key**: unlike a plain hash, an attacker who knows the list of hospital ids cannot
  recompute the pseudonyms without the key (HMAC, RFC 2104). Different keys give unrelated pseudonyms, so two
  studies cannot be linked through them. Keep the key in the workspace and in your backups; a lost key means a
  new import gets new pseudonyms.
* **Normalisation**: surrounding whitespace and NUL padding (DICOM pads values to an even length) are stripped.
  **Case is kept**: DICOM PatientID (LO) is case-sensitive and a hospital may issue ``ab12`` and ``AB12`` to two
  people; folding case could silently merge two patients, which is worse than splitting one (a split shows up as
  two patients with the same dates, a merge corrupts every follow-up of both).
* **Length**: 10 base32 characters are 50 bits. For n patients the chance of any collision is about
  n² / 2⁵¹: 4·10⁻⁸ for 10 000 patients (birthday bound).

:func:`pseudonymise_dataset` removes identifying header values from a DICOM object copied into the workspace.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from hepavol.errors import InputError

__all__ = [
    "KEY_SIZE_BYTES",
    "PSEUDONYM_LENGTH",
    "Pseudonymiser",
    "load_key",
    "new_key",
    "normalise_id",
    "pseudonymise_dataset",
    "save_key",
]

#: Size of a pseudonymisation key (bytes); the HMAC-SHA256 block is 64 bytes, its output 32.
KEY_SIZE_BYTES = 32
#: Number of base32 characters of the HMAC kept in a pseudonym (5 bits each: 50 bits).
PSEUDONYM_LENGTH = 10


def new_key() -> bytes:
    """A new random pseudonymisation key: 32 bytes from :mod:`secrets` (the operating system's CSPRNG)."""
    return secrets.token_bytes(KEY_SIZE_BYTES)


def _check_key(key: object, source: str) -> bytes:
    if not isinstance(key, bytes | bytearray):
        raise InputError(f"The pseudonymisation key {source}must be bytes, but it is {type(key).__name__}.")
    if len(key) != KEY_SIZE_BYTES:
        raise InputError(
            f"The pseudonymisation key {source}must be {KEY_SIZE_BYTES} bytes, but it is {len(key)} bytes. "
            "Use the key file written by `hepavol study init` (or new_key()); do not edit it."
        )
    return bytes(key)


def save_key(path: str | os.PathLike[str], key: bytes) -> Path:
    """Write ``key`` to a new file at ``path`` with mode 0600, atomically, never replacing an existing key.

    The key is written to a temporary file (mode 0600) beside ``path``, flushed to disk, then hard-linked to
    ``path``; the link fails if ``path`` exists, so two processes cannot both create a key. On file systems
    without hard links the existence check and the rename are two steps.

    Returns
    -------
    Path
        The key file.

    Raises
    ------
    InputError
        If ``key`` is not 32 bytes, or ``path`` already exists (overwriting a key would change every pseudonym
        of the study).
    """
    data = _check_key(key, "")
    target = Path(path)
    exists_msg = (
        f"A pseudonymisation key already exists at '{target}'; refusing to overwrite it (a new key would give "
        "every patient a new pseudonym). Keep the existing key, or move it away yourself if you really mean to "
        "start a new study."
    )
    if target.exists() or target.is_symlink():
        raise InputError(exists_msg)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)  # mode 0600
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise InputError(exists_msg) from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
            if target.exists():
                raise InputError(exists_msg) from None
            os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_dir(target.parent)
    return target


def _fsync_dir(folder: Path) -> None:
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def load_key(path: str | os.PathLike[str]) -> bytes:
    """Read a key written by :func:`save_key`.

    Raises
    ------
    InputError
        If the file does not exist, cannot be read, or is not exactly 32 bytes.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(
            f"Pseudonymisation key '{p}' does not exist. A workspace made by `hepavol study init` has one; restore "
            "it from your backup (a new key would give every patient a new pseudonym)."
        ) from None
    except OSError as exc:
        raise InputError(f"Cannot read the pseudonymisation key '{p}': {exc.strerror or exc}.") from exc
    return _check_key(data, f"in '{p}' ")


def normalise_id(original_id: str) -> str:
    """The patient id as hashed: surrounding whitespace and NUL padding stripped, case kept.

    >>> normalise_id("  AB12 ")
    'AB12'
    """
    if not isinstance(original_id, str):
        raise InputError(f"A patient id must be a string, but it is {type(original_id).__name__}.")
    return original_id.strip().strip("\x00").strip()


class Pseudonymiser:
    """Turn patient ids into pseudonyms with a secret key (see the module docstring for the scheme).

    Parameters
    ----------
    key : bytes
        32 bytes, from :func:`new_key` or :func:`load_key`.
    prefix : str, default "P"
        Letters put before the hash, joined with ``-``; letters and digits only.

    Examples
    --------
    >>> p = Pseudonymiser(bytes(range(32)))
    >>> p.pseudonym("PAT001")
    'P-n6w3krutot'
    >>> p.pseudonym(" PAT001 ") == p.pseudonym("PAT001")  # surrounding whitespace is ignored
    True
    >>> p.pseudonym("pat001") == p.pseudonym("PAT001")  # case is kept
    False
    """

    __slots__ = ("_key", "_prefix")

    def __init__(self, key: bytes, prefix: str = "P") -> None:
        self._key = _check_key(key, "")
        if not isinstance(prefix, str) or not prefix.isascii() or not prefix.isalnum():
            raise InputError(
                f"The pseudonym prefix must be ASCII letters and digits (e.g. 'P'), but it is {prefix!r}."
            )
        self._prefix = prefix

    @property
    def prefix(self) -> str:
        """The letters before the hash."""
        return self._prefix

    def __repr__(self) -> str:  # never show the key
        return f"Pseudonymiser(prefix={self._prefix!r}, key=<{KEY_SIZE_BYTES} bytes hidden>)"

    def pseudonym(self, original_id: str) -> str:
        """The pseudonym of one patient id, e.g. ``'P-n6w3krutot'``.

        Raises
        ------
        InputError
            If the id is empty after stripping whitespace.
        """
        normalised = normalise_id(original_id)
        if not normalised:
            raise InputError(
                f"Patient id {original_id!r} is empty; every patient needs a PatientID (0010,0020) to get a "
                "pseudonym. Fill it in the source data."
            )
        digest = hmac.new(self._key, normalised.encode("utf-8"), hashlib.sha256).digest()
        code = base64.b32encode(digest).decode("ascii").lower()[:PSEUDONYM_LENGTH]
        return f"{self._prefix}-{code}"


# ---------------------------------------------------------------------------------------------- DICOM headers
#: Attributes removed from every dataset and nested sequence item (PS3.15 Annex E Table E.1-1, action X/Z/D,
#: Basic Application Level Confidentiality Profile), keyed by DICOM keyword.
REMOVED_KEYWORDS: tuple[str, ...] = (
    # patient identity
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientTelecomInformation",
    "MedicalRecordLocator",
    "ReferencedPatientSequence",
    "PatientComments",
    "AdditionalPatientHistory",
    "PatientInsurancePlanCodeSequence",
    "PatientReligiousPreference",
    "EthnicGroup",
    "Occupation",
    "MilitaryRank",
    "BranchOfService",
    "CountryOfResidence",
    "RegionOfResidence",
    "ResponsiblePerson",
    "ResponsibleOrganization",
    # staff, institution, device
    "ReferringPhysicianName",
    "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers",
    "ReferringPhysicianIdentificationSequence",
    "ConsultingPhysicianName",
    "PhysiciansOfRecord",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "OperatorsName",
    "RequestingPhysician",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "InstitutionCodeSequence",
    "StationName",
    "DeviceSerialNumber",
    # visit and order
    "AccessionNumber",
    "StudyID",
    "AdmissionID",
    "RequestAttributesSequence",
    "RequestedProcedureID",
    "ScheduledProcedureStepID",
    "PerformedProcedureStepID",
    "StudyComments",
    "ImageComments",
)
#: Patient characteristics kept only with ``keep_patient_characteristics=True`` (PS3.15 Retain Patient
#: Characteristics Option).
PATIENT_CHARACTERISTICS: tuple[str, ...] = ("PatientSex", "PatientAge", "PatientSize", "PatientWeight")


#: DeidentificationMethod (0012,0063) written by :func:`pseudonymise_dataset` (LO, each value at most 64 chars).
DEIDENTIFICATION_METHOD: tuple[str, ...] = (
    "hepavol keyed-hash pseudonym in PatientName and PatientID",
    "PS3.15 Basic Profile identifying attributes removed (subset)",
    "private attributes removed",
    "UIDs, dates and descriptions retained",
)


def pseudonymise_dataset(ds: Any, pseudonym: str, *, keep_patient_characteristics: bool = False) -> Any:
    """Replace the patient's name and id by ``pseudonym`` and remove identifying attributes, in place.

    For DICOM objects copied into a study workspace (a subset of the PS3.15 Annex E Basic Profile):

    * PatientName and PatientID become ``pseudonym``.
    * The attributes in :data:`REMOVED_KEYWORDS` (other ids and names, birth date and time, address, telephone,
      physicians, operators, institution, station, device serial number, accession number, StudyID, comments)
      are deleted from the dataset and from every nested sequence item, as are all private attributes.
      PatientBirthDate is removed entirely (no year kept): the age that matters is the age at the scan, which the
      clinical table gives, and a birth date together with full scan dates narrows down a person.
    * Sex, age, size and weight are removed unless ``keep_patient_characteristics``.
    * **Kept**: all UIDs (the workspace links results back to the PACS: Retain UIDs Option), all dates and times
      (follow-up intervals are the science: Retain Longitudinal Temporal Information with Full Dates Option), and
      study/series descriptions and protocol names (the series choice is explained by them). Free text in those
      may still identify someone, and pixel data (burned-in text) is not checked: the result is a pseudonymised
      working copy, not an anonymised file for publication.

    DeidentificationMethod (0012,0063) records what was done. The dataset is modified in place and returned.

    Parameters
    ----------
    ds : pydicom.Dataset
        The object to clean.
    pseudonym : str
        The patient's pseudonym (:meth:`Pseudonymiser.pseudonym`).
    keep_patient_characteristics : bool, default False
        Keep PatientSex, PatientAge, PatientSize and PatientWeight.

    Returns
    -------
    pydicom.Dataset
        ``ds`` itself.

    Raises
    ------
    InputError
        If ``pseudonym`` is empty.

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset()
    >>> ds.PatientName, ds.PatientID, ds.PatientBirthDate = "DOE^JANE", "12345", "19600101"
    >>> ds.StudyInstanceUID = "1.2.3"
    >>> _ = pseudonymise_dataset(ds, "P-n6w3krutot")
    >>> str(ds.PatientName), ds.PatientID, "PatientBirthDate" in ds, ds.StudyInstanceUID
    ('P-n6w3krutot', 'P-n6w3krutot', False, '1.2.3')
    """
    if not isinstance(pseudonym, str) or not pseudonym.strip():
        raise InputError(f"The pseudonym must be a non-empty string, but it is {pseudonym!r}.")
    removed = REMOVED_KEYWORDS if keep_patient_characteristics else REMOVED_KEYWORDS + PATIENT_CHARACTERISTICS
    _clean(ds, frozenset(removed))
    ds.remove_private_tags()
    ds.PatientName = pseudonym
    ds.PatientID = pseudonym
    ds.DeidentificationMethod = list(DEIDENTIFICATION_METHOD)
    return ds


def _clean(ds: Any, removed: frozenset[str]) -> None:
    for keyword in removed:
        if keyword in ds:
            delattr(ds, keyword)
    for elem in list(ds):
        if elem.VR == "SQ" and elem.value is not None:
            for item in elem.value:
                _clean(item, removed)
