"""``hepavol study import-scans``: DICOM series folders named in a manifest get their UIDs and attributes from the
headers (read as ``study import`` reads a PACS export), and a folder that is not one series gives a clear error."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from hepavol.errors import InputError
from hepavol.study.dicom_tree import read_series
from hepavol.study.importer import import_scans
from hepavol.study.models import ImagingStudy, Patient, Series
from hepavol.study.workspace import Workspace, init_workspace

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def dicom_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hepavol.simulate import simulate_cohort

    out = tmp_path_factory.mktemp("scans") / "cohort"
    simulate_cohort(1, out, seed=3, modality="ct", fmt="dicom")
    return out


def _first_header(folder: Path) -> pydicom.Dataset:
    return pydicom.dcmread(sorted(folder.iterdir())[0], stop_before_pixels=True)


def test_dicom_folders_of_a_manifest_keep_their_uids_and_attributes(tmp_path: Path, dicom_cohort: Path) -> None:
    manifest = dicom_cohort / "SIM-001" / "manifest.csv"
    with manifest.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    ws: Workspace = init_workspace(tmp_path / "study")
    summary = import_scans(ws, [manifest])
    assert (summary.series_new, summary.segmentations_new) == (len(rows), len(rows))
    with ws.db.transaction() as session:
        stored = session.execute(
            select(Series, ImagingStudy).join(ImagingStudy).join(Patient).order_by(ImagingStudy.study_date)
        ).all()
        assert len(stored) == len(rows)
        for (series, study), row in zip(stored, rows):
            folder = manifest.parent / row["image"]
            ds = _first_header(folder)  # the files themselves, read with pydicom
            assert (series.series_uid, study.study_uid) == (ds.SeriesInstanceUID, ds.StudyInstanceUID)
            assert (series.kind, study.source, series.modality) == ("dicom", "dicom", ds.Modality)
            assert series.n_instances == len(list(folder.iterdir()))
            assert series.slice_thickness_mm == pytest.approx(float(ds.SliceThickness))
            assert series.orientation == "axial"  # ImageOrientationPatient 1\0\0\0\1\0
            assert series.contrast_phase == "portal-venous"  # the simulator writes the phase into the headers
            assert study.study_date.isoformat() == row["date"]
    assert import_scans(ws, [manifest]).series_new == 0  # idempotent


def test_a_folder_with_two_series_needs_the_series_uid_column(tmp_path: Path, dicom_cohort: Path) -> None:
    patient = dicom_cohort / "SIM-001"
    with (patient / "manifest.csv").open(newline="") as fh:
        first, second = list(csv.DictReader(fh))[:2]
    both = tmp_path / "both"
    shutil.copytree(patient / first["image"], both / "a")
    shutil.copytree(patient / second["image"], both / "b")
    uid_b = str(_first_header(both / "b").SeriesInstanceUID)
    with pytest.raises(InputError, match=r"holds 2 image series: .*Name the one to measure in the manifest's"):
        read_series(both)
    series, _ = read_series(both, series_uid=uid_b)
    assert (series.series_uid, series.folder) == (uid_b, both / "b")
    with pytest.raises(InputError, match=r"holds no image series with SeriesInstanceUID 1\.2\.3; it holds"):
        read_series(both, series_uid="1.2.3")

    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"date,image,patient_id\n{first['date']},both,P1\n")
    with pytest.raises(InputError, match=r"manifest\.csv.*line 2.*holds 2 image series"):
        import_scans(init_workspace(tmp_path / "study"), [manifest], modality="ct")


def test_a_folder_without_dicom_images_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("not an image")
    shutil.copy(
        DATA / "highdicom" / "data" / "test_files" / "seg_image_ct_binary.dcm", folder
    )  # a SEG alone is no image series
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("date,image,patient_id\n2020-01-01,notes,P1\n")
    with pytest.raises(InputError, match=r"holds no DICOM image with a SeriesInstanceUID \(2 files read\)"):
        import_scans(init_workspace(tmp_path / "study"), [manifest], modality="ct")


def _nifti_cohort(tmp_path: Path) -> Path:
    """One simulated patient with NIfTI scans (files written by hepavol's simulator)."""
    from hepavol.simulate import simulate_cohort

    out = tmp_path / "nifti"
    simulate_cohort(1, out, seed=4, modality="ct", fmt="nifti")
    return out / "SIM-001"


def test_a_file_that_is_not_an_image_is_refused_at_import(tmp_path: Path) -> None:
    # issue 23: /etc/shadow used to become a chosen series' segmentation (read and hashed at import)
    patient = _nifti_cohort(tmp_path)
    with (patient / "manifest.csv").open(newline="") as fh:
        first = next(csv.DictReader(fh))
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$abc:19000:0:99999:7:::\n")
    manifest = patient / "bad.csv"
    manifest.write_text(f"date,image,seg,patient_id\n{first['date']},{first['image']},{secret},P1\n")
    with pytest.raises(InputError, match=r"bad\.csv.*line 2: seg '.*shadow' is not an image hepavol can read"):
        import_scans(init_workspace(tmp_path / "study"), [manifest], modality="ct")
    manifest.write_text(f"date,image,patient_id\n{first['date']},{secret},P1\n")
    with pytest.raises(InputError, match=r"line 2: image '.*shadow' is not an image hepavol can read"):
        import_scans(init_workspace(tmp_path / "study2"), [manifest], modality="ct")


def test_the_same_image_under_a_second_path_is_refused_with_its_line(tmp_path: Path) -> None:
    patient = _nifti_cohort(tmp_path)
    ws = init_workspace(tmp_path / "study")
    assert import_scans(ws, [patient / "manifest.csv"]).series_new >= 2
    with (patient / "manifest.csv").open(newline="") as fh:
        first = next(csv.DictReader(fh))
    elsewhere = tmp_path / "copies"  # outside the manifest's folder: taken as given (absolute path)
    elsewhere.mkdir()
    copy = elsewhere / "again.nii.gz"
    shutil.copy(patient / first["image"], copy)
    manifest = patient / "second.csv"
    manifest.write_text(f"date,image,patient_id\n{first['date']},{copy},{first.get('patient_id') or 'SIM-001'}\n")
    with pytest.raises(InputError, match=r"second\.csv.*line 2: image .* has the same content .* as the scan of "
                       rf"{first['date']} of P-\w+ already in the study"):  # fmt: skip
        import_scans(ws, [manifest])
    with ws.db.transaction() as session:  # nothing of the refused manifest was stored
        assert all(s.path != str(copy) for s in session.scalars(select(Series)))
    assert import_scans(ws, [patient / "manifest.csv"]).series_new == 0  # the original stays importable


def test_paths_outside_the_manifest_folder_are_taken_as_given(tmp_path: Path) -> None:
    patient = _nifti_cohort(tmp_path)
    with (patient / "manifest.csv").open(newline="") as fh:
        first = next(csv.DictReader(fh))
    store = tmp_path / "store"
    shutil.copytree(patient, store)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    manifest = manifests / "m.csv"
    manifest.write_text(f"date,image,patient_id\n{first['date']},../store/{first['image']},P9\n")
    ws = init_workspace(tmp_path / "study")
    assert import_scans(ws, [manifest], modality="ct").series_new == 1
    with ws.db.transaction() as session:
        (series,) = session.scalars(select(Series)).all()
        assert series.path == str((store / first["image"]).resolve())
