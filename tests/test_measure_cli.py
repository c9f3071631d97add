"""``hepavol measure`` end to end: real public cases, DICOM vs NIfTI identity, JSON/CSV contract, bad input.

Reference values come from the data's own documentation (tests/data/README.md, read off the files by the data
curator) and from SimpleITK reading the same files independently.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from hepavol import Geometry, Volume
from hepavol.cli import main
from hepavol.io import write_dicom_series, write_image

TS = "totalsegmentator"
DL = "deeplesion_flare25_recist"

JSON_KEYS = {
    "image",
    "liver_volume_ml",
    "total_tumor_volume_ml",
    "tumor_burden_percent",
    "hepatic_tumor_load_class",
    "lesion_count",
    "lesions",
    "warnings",
}
LESION_KEYS = {
    "lesion_id",
    "volume_ml",
    "voxel_count",
    "long_axis_mm",
    "short_axis_mm",
    "slice_index",
    "long_axis_endpoints_mm",
    "short_axis_endpoints_mm",
    "max_diameter_3d_mm",
    "centroid_mm",
    "mean_hu",
    "sd_hu",
    "measurable",
}


def _measure_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["measure", *args, "--json", "-"]) == 0
    return json.loads(capsys.readouterr().out)


def _sitk_label_volume_ml(path: Path, label: int) -> float:
    img = sitk.ReadImage(str(path))
    count = int(np.count_nonzero(sitk.GetArrayViewFromImage(img) == label))
    return count * math.prod(img.GetSpacing()) / 1000.0


def test_deeplesion_lesion_volume(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """DeepLesion case 000015_01_01 (HU NIfTI, P,L,I orientation): 14,490 voxels = 63.7 mL (data README)."""
    image = data_dir / DL / "000015_01_01_103-115_ct_hu.nii.gz"
    mask = data_dir / DL / "000015_01_01_103-115_lesion_mask_from_npz.nii.gz"
    out = _measure_json([str(image), "--seg", str(mask), "--tumor-label", "1", "--liver-label", "9"], capsys)
    assert set(out) == JSON_KEYS
    (lesion,) = out["lesions"]
    assert set(lesion) >= LESION_KEYS
    assert lesion["voxel_count"] == 14_490
    assert lesion["volume_ml"] == pytest.approx(63.7, abs=0.05)
    # SimpleITK's reading of the same files: centroid in LPS and mean HU.
    shape = sitk.LabelShapeStatisticsImageFilter()
    mask_img = sitk.ReadImage(str(mask))
    shape.Execute(sitk.Cast(mask_img, sitk.sitkUInt8))
    np.testing.assert_allclose(lesion["centroid_mm"], shape.GetCentroid(1), atol=1e-4)
    stats = sitk.LabelStatisticsImageFilter()
    stats.Execute(sitk.ReadImage(str(image)), sitk.Cast(mask_img, sitk.sitkUInt8))
    assert lesion["mean_hu"] == pytest.approx(stats.GetMean(1), rel=1e-6)
    assert lesion["sd_hu"] == pytest.approx(stats.GetSigma(1), rel=1e-6)
    assert lesion["measurable"] is True
    assert out["liver_volume_ml"] is None


@pytest.mark.parametrize(
    ("image", "seg", "liver_ml"),
    [
        ("example_ct_sm.nii.gz", "example_seg.nii.gz", 1043),
        ("example_mr_sm.nii.gz", "example_seg_mr.nii.gz", 499),
    ],
    ids=["CT", "MR"],
)
def test_totalsegmentator_liver(
    data_dir: Path, capsys: pytest.CaptureFixture[str], image: str, seg: str, liver_ml: float
) -> None:
    """TotalSegmentator examples: label 5 = liver, CT 1043 mL, MR 499 mL (data README); equal to SimpleITK's count."""
    seg_path = data_dir / TS / seg
    out = _measure_json(
        [str(data_dir / TS / image), "--seg", str(seg_path), "--liver-label", "5", "--tumor-label", "250"], capsys
    )
    assert out["liver_volume_ml"] == pytest.approx(liver_ml, abs=0.5)
    assert out["liver_volume_ml"] == pytest.approx(_sitk_label_volume_ml(seg_path, 5), rel=1e-9)
    assert out["lesion_count"] == 0
    assert out["total_tumor_volume_ml"] == 0


def test_jpeg2000_dicom_series_with_nifti_liver(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real JPEG 2000 CT series with its liver label map: 699.5 mL (data README)."""
    out = _measure_json(
        [
            str(data_dir / TS / "example_ct_dicom"),
            "--seg",
            str(data_dir / TS / "example_seg_dicom.nii.gz"),
            "--liver-label",
            "5",
            "--tumor-label",
            "250",
        ],
        capsys,
    )
    assert out["image"]["shape"] == [20, 512, 512]
    assert out["liver_volume_ml"] == pytest.approx(699.5, abs=0.1)


def test_dcmqi_liver_dicom_seg_equals_its_nrrd_label_map(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """dcmqi: the liver DICOM SEG and the NRRD label map on the same 3-slice CT: 107,098 voxels (data README)."""
    ct = data_dir / "dcmqi/data/segmentations/ct-3slice"
    from_seg = _measure_json([str(ct), "--seg", str(data_dir / "dcmqi/data/segmentations/liver.dcm")], capsys)
    from_nrrd = _measure_json(
        [str(ct), "--seg", str(data_dir / "dcmqi/data/segmentations/liver_seg.nrrd")], capsys
    )
    voxel_ml = math.prod(from_seg["image"]["spacing_mm"]) / 1000
    assert from_seg["liver_volume_ml"] == pytest.approx(107_098 * voxel_ml, rel=1e-9)
    assert from_nrrd["liver_volume_ml"] == pytest.approx(from_seg["liver_volume_ml"], rel=1e-12)


def _phantom() -> tuple[Volume, Volume]:
    """Oblique, anisotropic CT-like phantom: a liver block with three ellipsoidal lesions."""
    a = math.radians(12.0)
    col = np.array([-math.cos(a), -math.sin(a), 0.0])  # columns run towards the patient's right: a flipped axis
    row = np.array([-math.sin(a), math.cos(a), 0.0])
    normal = np.cross(col, row)
    g = Geometry(
        shape=(24, 90, 100),
        spacing_mm=(2.5, 0.78, 0.78),
        origin_lps_mm=(120.0, -80.0, -300.0),
        direction=np.stack([normal, row, col], axis=1),
    )
    idx = np.indices(g.shape)
    labels = np.zeros(g.shape, np.uint8)
    labels[2:22, 10:80, 10:90] = 1
    for (cz, cy, cx), (rz, ry, rx) in [
        ((8, 30, 30), (3, 12, 14)),
        ((14, 55, 65), (5, 16, 12)),
        ((17, 25, 70), (2, 5, 5)),
    ]:
        inside = ((idx[0] - cz) / rz) ** 2 + ((idx[1] - cy) / ry) ** 2 + ((idx[2] - cx) / rx) ** 2 <= 1
        labels[inside] = 2
    rng = np.random.default_rng(3)
    hu = np.where(labels == 2, 40, np.where(labels == 1, 100, -50)) + rng.normal(0, 10, g.shape)
    return Volume(np.round(hu).astype(np.int16), g), Volume(labels, g)


def test_same_phantom_as_dicom_and_nifti_gives_identical_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, labels = _phantom()
    write_dicom_series(image, tmp_path / "dicom", modality="CT")
    write_image(image, tmp_path / "image.nii.gz")
    write_image(labels, tmp_path / "seg.nii.gz")
    write_image(labels, tmp_path / "seg.nrrd")
    from_dicom = _measure_json([str(tmp_path / "dicom"), "--seg", str(tmp_path / "seg.nii.gz")], capsys)
    from_nifti = _measure_json([str(tmp_path / "image.nii.gz"), "--seg", str(tmp_path / "seg.nrrd")], capsys)
    assert from_dicom["lesion_count"] == from_nifti["lesion_count"] == 3
    for key in ("liver_volume_ml", "total_tumor_volume_ml", "tumor_burden_percent"):
        # DICOM stores positions and spacings as decimal strings (DS, 16 characters): agreement to 1e-7.
        assert from_dicom[key] == pytest.approx(from_nifti[key], rel=1e-7)
    for a, b in zip(from_dicom["lesions"], from_nifti["lesions"]):
        for key in ("voxel_count", "slice_index", "measurable", "lesion_id"):
            assert a[key] == b[key]
        for key in ("volume_ml", "long_axis_mm", "short_axis_mm", "max_diameter_3d_mm", "mean_hu", "sd_hu"):
            assert a[key] == pytest.approx(b[key], rel=1e-6)
        np.testing.assert_allclose(a["centroid_mm"], b["centroid_mm"], atol=1e-3)
        np.testing.assert_allclose(a["long_axis_endpoints_mm"], b["long_axis_endpoints_mm"], atol=1e-3)
    # And equal to the in-memory measurement of the phantom: the readers lose nothing.
    from hepavol.measurement import measure_scan

    direct = measure_scan(labels, image)
    assert [les.voxel_count for les in direct.lesions] == [les["voxel_count"] for les in from_dicom["lesions"]]


def test_csv_output_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image, labels = _phantom()
    write_image(image, tmp_path / "image.nii.gz")
    write_image(labels, tmp_path / "seg.nii.gz")
    out_csv = tmp_path / "out" / "lesions.csv"
    out_json = tmp_path / "out" / "scan.json"
    code = main(
        ["measure", str(tmp_path / "image.nii.gz"), "--seg", str(tmp_path / "seg.nii.gz"), "--csv", str(out_csv),
         "--json", str(out_json)]
    )  # fmt: skip
    assert code == 0
    table = capsys.readouterr().out
    assert "lesion" in table
    assert "3 lesion(s)" in table
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 3
    assert float(rows[0]["volume_ml"]) == pytest.approx(
        json.loads(out_json.read_text())["lesions"][0]["volume_ml"]
    )


def test_grid_mismatch_is_an_error_unless_resampled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image, labels = _phantom()
    write_image(image, tmp_path / "image.nii.gz")
    shifted = Geometry(
        shape=labels.geometry.shape,
        spacing_mm=labels.geometry.spacing_mm,
        origin_lps_mm=tuple(np.add(labels.geometry.origin_lps_mm, (0.0, 0.0, 2.5))),
        direction=labels.geometry.direction,
    )
    write_image(Volume(np.asarray(labels.array), shifted), tmp_path / "seg.nii.gz")
    assert main(["measure", str(tmp_path / "image.nii.gz"), "--seg", str(tmp_path / "seg.nii.gz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "different grids" in err
    assert "--resample-seg" in err
    assert "Traceback" not in err
    out = _measure_json(
        [str(tmp_path / "image.nii.gz"), "--seg", str(tmp_path / "seg.nii.gz"), "--resample-seg"], capsys
    )
    assert out["lesion_count"] == 3


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda p: p / "missing.nii.gz", r"does not exist|not found|No such"),
        (lambda p: (p / "notes.nii.gz").write_text("hello") and p / "notes.nii.gz", r"notes\.nii\.gz"),
    ],
)
def test_bad_paths_give_error_not_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make, pattern
) -> None:
    bad = make(tmp_path)
    assert main(["measure", str(bad), "--seg", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "Traceback" not in err
    import re

    assert re.search(pattern, err)


def test_debug_shows_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measure", str(tmp_path / "nope.nii"), "--seg", "x", "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err
