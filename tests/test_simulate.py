"""``hepavol simulate`` end to end: written truth agrees with written masks, DICOM round trip, determinism, CLI.

Volumes of the masks are recomputed here from the files (voxel count × voxel volume from the file's own
geometry); true volumes are checked against the analytic ellipsoid volume 4/3·π·a·b·c of the written semi-axes.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hepavol.cli import main
from hepavol.io import read_image, read_segmentation
from hepavol.simulate import SimulatedPatient, simulate_patient

SEED = 1  # patient 0 of seed 1 has 2 CT scans, patient 1 six MR scans (checked in test_cohort_layout)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "cohort"
    assert main(["simulate", "--patients", "2", "--out", str(out), "--seed", str(SEED), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def truth(cohort: Path) -> dict:
    return json.loads((cohort / "truth.json").read_text())


def test_cohort_layout(cohort: Path, truth: dict) -> None:
    assert truth["format"] == "hepavol-simulation-truth"
    assert [p["patient_id"] for p in truth["patients"]] == ["SIM-001", "SIM-002"]
    assert [p["modality"] for p in truth["patients"]] == ["CT", "MR"]
    with (cohort / "clinical.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["patient_id"] for r in rows] == ["SIM-001", "SIM-002"]
    for row, p in zip(rows, truth["patients"]):
        assert int(row["n_scans"]) == len(p["scans"])
        assert row["eligible"] == ("yes" if p["eligible"] else "no")
    for p in truth["patients"]:
        manifest = cohort / p["manifest"]
        with manifest.open() as fh:
            reader = csv.DictReader(fh)
            assert reader.fieldnames == ["date", "image", "seg", "patient_id"]
            entries = list(reader)
        assert [e["date"] for e in entries] == [s["date"] for s in p["scans"]]
        for e in entries:
            assert (manifest.parent / e["image"]).is_file()
            assert (manifest.parent / e["seg"]).is_file()
            assert e["patient_id"] == p["patient_id"]


def test_written_truth_agrees_with_written_masks(cohort: Path, truth: dict) -> None:
    n_lesions = 0
    for p in truth["patients"]:
        folder = cohort / p["folder"]
        for s in p["scans"]:
            image = read_image(folder / s["image"])
            seg = read_segmentation(folder / s["seg"], reference=image.geometry)
            inst = read_segmentation(folder / s["instances"], reference=image.geometry)
            assert image.geometry.to_dict() == s["geometry"]
            voxel_ml = image.geometry.voxel_volume_mm3 / 1000.0
            labels = seg.array
            ids = inst.array
            # the label map and the instance map describe the same tumour voxels
            np.testing.assert_array_equal(labels == 2, ids > 0)
            assert set(np.unique(labels)) <= {0, 1, 2}
            assert s["mask_liver_volume_ml"] == pytest.approx(np.count_nonzero(labels) * voxel_ml, abs=1e-6)
            assert s["mask_total_tumour_volume_ml"] == pytest.approx(np.count_nonzero(ids) * voxel_ml, abs=1e-5)
            present = {int(v) for v in np.unique(ids) if v}
            assert present <= {lesion["lesion_id"] for lesion in s["lesions"]}
            for lesion in s["lesions"]:
                n_lesions += 1
                count = int(np.count_nonzero(ids == lesion["lesion_id"]))
                assert lesion["mask_voxel_count"] == count
                assert lesion["mask_volume_ml"] == pytest.approx(count * voxel_ml, abs=1e-6)
                a, b, c = lesion["semi_axes_mm"]
                assert lesion["true_volume_ml"] == pytest.approx(4 / 3 * math.pi * a * b * c / 1000, rel=1e-3)
                assert lesion["long_axis_mm"] >= lesion["short_axis_mm"]
                assert lesion["long_axis_mm"] <= lesion["max_diameter_3d_mm"] + 1e-3
                if count >= 300:  # voxelisation error shrinks with size: within 6 % from 300 voxels up
                    assert lesion["mask_volume_ml"] == pytest.approx(lesion["true_volume_ml"], rel=0.06)
            # every lesion centre (scanner frame) falls in its own mask when the lesion is big enough
            for lesion in s["lesions"]:
                if lesion["mask_voxel_count"] >= 50:
                    idx = np.rint(image.geometry.lps_to_index(lesion["centre_lps_mm"])).astype(int)
                    assert ids[tuple(idx)] == lesion["lesion_id"]
            # truth liver volume (numerical, whole organ) vs the mask, within 2 %
            assert s["mask_liver_volume_ml"] == pytest.approx(p["liver_volume_ml"], rel=0.02)
        # the monthly analytic curve starts at the baseline volume and covers the follow-up
        assert p["ttv_curve_monthly"][0]["true_volume_ml"] == pytest.approx(p["ttv_curve"][0]["true_volume_ml"])
        assert p["ttv_curve_monthly"][-1]["day"] > p["scans"][-1]["day"] - 30
        # total tumour volume curve is the sum of the lesions
        for point, s in zip(p["ttv_curve"], p["scans"]):
            assert point["true_volume_ml"] == pytest.approx(
                sum(x["true_volume_ml"] for x in s["lesions"]), rel=1e-6
            )
    assert n_lesions > 20


def test_measurement_of_written_labels_matches_truth(cohort: Path, truth: dict) -> None:
    """hepavol measure on the written label map finds each lesion of the truth once (lesions never touch)."""
    from hepavol.measurement import measure_scan

    for p in truth["patients"]:
        s = p["scans"][-1]
        folder = cohort / p["folder"]
        image = read_image(folder / s["image"])
        seg = read_segmentation(folder / s["seg"], reference=image.geometry)
        m = measure_scan(seg, image)
        with_voxels = [x for x in s["lesions"] if x["mask_voxel_count"] > 0]
        assert m.lesion_count == len(with_voxels)
        assert m.total_tumor_volume_ml == pytest.approx(s["mask_total_tumour_volume_ml"], abs=1e-6)
        assert sorted(x.voxel_count for x in m.lesions) == sorted(x["mask_voxel_count"] for x in with_voxels)


def test_truth_cohort_table_reads_back(cohort: Path, truth: dict) -> None:
    """truth_cohort.csv is a valid ``hepavol cohort`` table holding the true values of the eligible patients."""
    import datetime as dt

    from hepavol.cohort import read_cohort_table

    table = read_cohort_table(cohort / "truth_cohort.csv")
    eligible = [p for p in truth["patients"] if p["eligible"]]
    assert [r.patient_id for r in table.patients] == [p["patient_id"] for p in eligible]
    for row, p in zip(table.patients, eligible):
        base, early = p["scans"][0], p["scans"][1]
        assert row.modality == p["modality"]
        assert row.baseline_volume_ml == pytest.approx(base["total_tumour_volume_ml"], abs=1e-6)
        assert row.early_volume_ml == pytest.approx(early["total_tumour_volume_ml"], abs=1e-6)
        assert row.baseline_sld_mm == pytest.approx(base["sum_of_diameters_mm"])
        assert row.early_date == dt.date.fromisoformat(early["date"])
        assert row.pfs_event == p["pfs_event"]
        assert (row.pfs_date - row.baseline_date).days == p["pfs_days"]


def test_pfs_truth_is_consistent(truth: dict) -> None:
    for p in truth["patients"]:
        responses = [s["overall_response"] for s in p["scans"][1:]]
        if p["pfs_event"]:
            assert responses[-1] == "PD"
            assert p["pfs_days"] == p["scans"][-1]["day"]
            assert p["progression_date"] == p["scans"][-1]["date"]
        else:
            assert "PD" not in responses
            assert p["progression_date"] is None
        for s in p["scans"]:
            if p["target_lesion_ids"]:
                by_id = {lesion["lesion_id"]: lesion for lesion in s["lesions"]}
                expected = sum(round(by_id[i]["long_axis_mm"], 1) for i in p["target_lesion_ids"])
                assert s["sum_of_diameters_mm"] == pytest.approx(expected, abs=0.051)


def test_images_look_like_ct_and_mr(cohort: Path, truth: dict) -> None:
    """Intensities per label are those of portal-venous CT (liver ~100 HU, air -1000) and T2-like MR."""
    ct, mr = truth["patients"]
    s = ct["scans"][0]
    image = read_image(cohort / ct["folder"] / s["image"]).array
    labels = read_image(cohort / ct["folder"] / s["seg"]).array
    liver = image[labels == 1]
    assert 80 <= np.median(liver) <= 125
    assert np.median(image[:, :3, :3]) < -900  # air in the corners
    assert np.abs(np.median(image[labels == 2]) - np.median(liver)) > 10  # lesions differ from the liver
    s = mr["scans"][0]
    image = read_image(cohort / mr["folder"] / s["image"]).array
    labels = read_image(cohort / mr["folder"] / s["seg"]).array
    assert np.median(image[labels == 2]) > 1.4 * np.median(image[labels == 1])  # T2-bright metastases


@pytest.fixture(scope="module")
def dicom_patient(tmp_path_factory: pytest.TempPathFactory) -> SimulatedPatient:
    return simulate_patient(0, tmp_path_factory.mktemp("dicom"), seed=SEED, fmt="dicom", modality="ct")


def test_dicom_round_trip(dicom_patient: SimulatedPatient) -> None:
    import pydicom

    result = dicom_patient
    rec = result.truth
    for s in rec["scans"]:
        series = result.folder / s["image"]
        files = sorted(series.glob("*.dcm"))
        assert len(files) == s["geometry"]["shape"][0]
        headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
        assert {h.SeriesInstanceUID for h in headers} == {headers[0].SeriesInstanceUID}
        assert {h.Modality for h in headers} == {"CT"}
        assert {h.StudyDate for h in headers} == {s["date"].replace("-", "")}
        assert {h.PatientID for h in headers} == {"SIM-001"}
        assert {h.StudyDescription for h in headers} == {"CT ABDOMEN PORTAL VENOUS"}
        assert len({h.SOPInstanceUID for h in headers}) == len(headers)
        image = read_image(series)
        assert image.geometry.to_dict() == s["geometry"]
        nifti_like = read_segmentation(result.folder / s["instances"])
        assert image.geometry.differences(nifti_like.geometry) == []
        seg_ds = pydicom.dcmread(result.folder / s["seg"])
        assert seg_ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage
        assert seg_ds.SegmentationType == "BINARY"
        assert [x.SegmentLabel for x in seg_ds.SegmentSequence] == ["Liver", "Tumour"]
        assert seg_ds.ReferencedSeriesSequence[0].SeriesInstanceUID == headers[0].SeriesInstanceUID
        assert seg_ds.StudyInstanceUID == headers[0].StudyInstanceUID
        seg = read_segmentation(result.folder / s["seg"], reference=image.geometry)
        np.testing.assert_array_equal(seg.array == 2, nifti_like.array > 0)
        assert np.count_nonzero(seg.array) * image.geometry.voxel_volume_mm3 / 1000 == pytest.approx(
            s["mask_liver_volume_ml"], abs=1e-6
        )
    # one study per scan
    studies = {
        pydicom.dcmread(next((result.folder / s["image"]).glob("*.dcm"))).StudyInstanceUID for s in rec["scans"]
    }
    assert len(studies) == len(rec["scans"])


def test_dicom_output_is_byte_identical_for_a_seed(dicom_patient: SimulatedPatient, tmp_path: Path) -> None:
    again = simulate_patient(0, tmp_path, seed=SEED, fmt="dicom", modality="ct")
    first = sorted(p.relative_to(dicom_patient.folder) for p in dicom_patient.folder.rglob("*.dcm"))
    second = sorted(p.relative_to(again.folder) for p in again.folder.rglob("*.dcm"))
    assert first == second
    assert len(first) > 60
    for rel in first:
        assert (dicom_patient.folder / rel).read_bytes() == (again.folder / rel).read_bytes(), rel


@pytest.mark.external
def test_dicom_output_passes_dciodvfy(dicom_patient: SimulatedPatient) -> None:
    """dciodvfy (dicom3tools, installed by make test) reports no error on an image and on the DICOM SEG."""
    tool = shutil.which("dciodvfy")
    assert tool, "dciodvfy not found: install the Debian package dicom3tools (make test does)"
    scan = dicom_patient.truth["scans"][0]
    files = [next((dicom_patient.folder / scan["image"]).glob("*.dcm")), dicom_patient.folder / scan["seg"]]
    for f in files:
        out = subprocess.run([tool, str(f)], capture_output=True, text=True, check=False)
        errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]
        assert not errors, (f, errors)


def test_same_seed_same_patient(tmp_path: Path) -> None:
    a = simulate_patient(0, tmp_path / "a", seed=SEED)
    b = simulate_patient(0, tmp_path / "b", seed=SEED)
    c = simulate_patient(0, tmp_path / "c", seed=SEED + 1)
    assert a.truth == b.truth
    assert a.truth != c.truth
    for s in a.truth["scans"]:
        for key in ("image", "seg", "instances"):
            va = read_image(a.folder / s[key]).array
            vb = read_image(b.folder / s[key]).array
            np.testing.assert_array_equal(va, vb)


def test_cli_refuses_non_empty_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("x")
    assert main(["simulate", "--patients", "1", "--out", str(tmp_path), "--quiet"]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert main(["simulate", "--patients", "0", "--out", str(tmp_path / "new"), "--quiet"]) == 2
    assert "at least 1" in capsys.readouterr().err
    assert main(["simulate", "--patients", "1", "--out", str(tmp_path / "new"), "--seed", "-3", "--quiet"]) == 2
    assert "seed must be a non-negative integer, but it is -3" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_progress_bar_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "one"
    assert main(["simulate", "--patients", "1", "--out", str(out), "--seed", str(SEED)]) == 0
    captured = capsys.readouterr()
    assert "1/1 patients" in captured.err
    assert "wrote 1 patients" in captured.out
