"""De-identify a SEG or SR that hepavol writes (``hepavol export seg|sr --deidentify``).

Without it, hepavol's SEG and SR copy the patient and study modules of their source images (PatientName,
PatientID, PatientBirthDate, PatientSex, AccessionNumber, ReferringPhysicianName...) as the IODs require: the
objects go back to the PACS the images came from. With it, the object is made for sharing outside the hospital,
by the same rules as the DICOM copies in a study workspace (:func:`hepavol.study.pseudonym.pseudonymise_dataset`:
the identifying attributes of the PS3.15 Annex E Basic Profile removed, private attributes removed), then:

* PatientName and PatientID are the pseudonym (the study's, or the one given);
* the Type 2 attributes of the SEG/SR patient and study modules that were removed are present and empty
  (PatientBirthDate, PatientSex, AccessionNumber, ReferringPhysicianName, StudyID: action Z of the profile), so
  the object stays valid;
* UIDs are kept (Retain UIDs Option, 113110: a SEG references its source images by UID, so images shared with it
  must be de-identified with the same option) and dates are kept (Retain Longitudinal Temporal Information with
  Full Dates Option, 113106: a follow-up is measured in days between scans);
* PatientIdentityRemoved (0012,0062) is YES, and DeidentificationMethodCodeSequence (0012,0064) lists the profile
  and the options (PS3.16 CID 7050).
"""

from __future__ import annotations

from typing import Any

__all__ = ["TYPE2_EMPTIED", "deidentify_dataset"]

#: Type 2 attributes of the SEG/SR patient, study and series modules, emptied rather than removed.
TYPE2_EMPTIED: tuple[str, ...] = (
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyID",
)

#: PS3.16 CID 7050 De-identification Method: (code value, meaning).
METHOD_CODES: tuple[tuple[str, str], ...] = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113110", "Retain UIDs Option"),
    ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
)


def deidentify_dataset(ds: Any, pseudonym: str) -> Any:
    """Apply the rules of the module docstring to ``ds`` (a pydicom Dataset, changed in place and returned).

    Raises
    ------
    InputError
        If ``pseudonym`` is empty.
    """
    from pydicom.dataset import Dataset

    from hepavol.study.pseudonym import pseudonymise_dataset

    # the equipment of a SEG/SR that hepavol made is hepavol (Type 1 in Enhanced General Equipment), not the
    # scanner: its serial number identifies no one and is kept
    own_equipment = {k: ds.get(k) for k in ("DeviceSerialNumber",) if str(ds.get("Manufacturer", "")) == "hepavol"}
    pseudonymise_dataset(ds, pseudonym)
    for keyword, value in own_equipment.items():
        if value is not None:
            setattr(ds, keyword, value)
    for keyword in TYPE2_EMPTIED:
        setattr(ds, keyword, "")
    ds.PatientIdentityRemoved = "YES"
    codes = []
    for value, meaning in METHOD_CODES:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = codes
    return ds
