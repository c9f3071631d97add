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
