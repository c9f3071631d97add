"""``hepavol export seg|sr --deidentify``: the PS3.15 Basic Profile with the study's pseudonym (issue 23).

The source series carries a name, id, birth date, accession number, referring physician and institution; without
the option the SEG/SR copy them (the IODs require the patient module, and the objects go back to that PACS); with
it none is left, the Type 2 attributes are present and empty, UIDs and dates are kept, and the outside validators
(dciodvfy, dcmqi, highdicom, run after each test by tests/conftest.py) still accept the objects.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from tests._dicom_export_helpers import case_volumes
from tests._io_helpers import ORIENTATIONS

from hepavol.cli import main
from hepavol.io import write_dicom_series, write_image
from hepavol.study.workspace import init_workspace

IDENTITY = {
    "PatientName": "DUPONT^JEANNE",
    "PatientID": "MRN4471901",
    "PatientBirthDate": "19580214",
    "AccessionNumber": "ACC998877",
    "ReferringPhysicianName": "MARTIN^PAUL",
    "InstitutionName": "Hopital Edouard Herriot",
}


def _source(tmp_path: Path) -> tuple[Path, Path]:
    ct, labels = case_volumes(ORIENTATIONS["axial"])
    files = write_dicom_series(ct, tmp_path / "ct", series_instance_uid=None, study_date="2021-03-04")
    for f in files:  # a real export carries the patient's identity in every header
        ds = pydicom.dcmread(f)
        for keyword, value in IDENTITY.items():
            setattr(ds, keyword, value)
        ds.save_as(f)
    write_image(labels, tmp_path / "labels.nii.gz")
    return tmp_path / "ct", tmp_path / "labels.nii.gz"


def _identity_left(path: Path) -> list[str]:
    raw = path.read_bytes()
    return [v for v in IDENTITY.values() if v.encode() in raw or v.split("^")[0].encode() in raw]


def test_without_the_option_the_objects_copy_the_patient_module(tmp_path: Path) -> None:
    ct, labels = _source(tmp_path)
    assert main(["export", "seg", str(ct), "--seg", str(labels), "--out", str(tmp_path / "seg.dcm")]) == 0
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    assert (str(ds.PatientName), ds.PatientID, ds.PatientBirthDate) == ("DUPONT^JEANNE", "MRN4471901", "19580214")
    assert ds.AccessionNumber == "ACC998877"


@pytest.mark.parametrize("how", ["given", "study"])
def test_deidentified_seg_and_sr_hold_no_identity_and_keep_uids_and_dates(tmp_path: Path, how: str) -> None:
    ct, labels = _source(tmp_path)
    study = tmp_path / "study"
    ws = init_workspace(study)
    expected = ws.pseudonymiser().pseudonym("MRN4471901") if how == "study" else "P-sharedcase1"
    ws.close()
    option = ["--deidentify"] + (["P-sharedcase1"] if how == "given" else ["--study", str(study)])
    seg, sr = tmp_path / "seg.dcm", tmp_path / "sr.dcm"
    assert main(["export", "seg", str(ct), "--seg", str(labels), "--out", str(seg), *option]) == 0
    assert main(["export", "sr", str(ct), "--seg", str(seg), "--out", str(sr), *option]) == 0
    source = pydicom.dcmread(sorted(ct.iterdir())[0], stop_before_pixels=True)
    for path in (seg, sr):
        assert _identity_left(path) == [], path.name
        ds = pydicom.dcmread(path)
        assert (str(ds.PatientName), ds.PatientID) == (expected, expected)
        # Type 2 attributes present and empty (PS3.15 action Z), so the object stays valid
        for keyword in ("PatientBirthDate", "PatientSex", "AccessionNumber", "ReferringPhysicianName", "StudyID"):
            assert keyword in ds
            assert ds.data_element(keyword).value in ("", None)
        assert "InstitutionName" not in ds
        assert ds.PatientIdentityRemoved == "YES"
        # PS3.16 CID 7050: Basic Profile, Retain UIDs, Retain Longitudinal Temporal Information Full Dates
        assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113110", "113106"]
        assert ds.StudyInstanceUID == source.StudyInstanceUID  # UIDs kept: the SEG still references its images
        assert ds.StudyDate == "20210304"  # dates kept
    seg_ds = pydicom.dcmread(seg)
    referenced = {
        i.ReferencedSOPInstanceUID for s in seg_ds.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence
    }
    assert referenced == {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in ct.iterdir()}
