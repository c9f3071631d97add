"""Legacy DICOM: SEG and SR on a source series without FrameOfReferenceUID or with other Type 1 attributes missing.

The synthetic legacy series is hepavol's own CT writer output with FrameOfReferenceUID deleted from every file
(as in 3D-IRCADb-01 and many research exports). Reference values: the voxel counts of the drawn boxes (see
``tests/_dicom_export_helpers.case_volumes``); for ircadb01 patient01 the tumour volumes of its README
(SimpleITK on the expert masks). Every SEG/SR written goes through the outside validators (tests/validators.py:
dcmqi, highdicom, dciodvfy; PixelMed on the SRs here).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from tests._dicom_export_helpers import case_volumes
from tests._io_helpers import ORIENTATIONS
from tests.validators import check_seg, check_sr, pixelmed_errors

from hepavol.cli import main
from hepavol.io import read_dicom_series, reorient_like, write_dicom_series, write_image
from hepavol.io.seg_write import derived_frame_of_reference_uid

IRCADB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ircadb01" / "patient01"
IRCADB_SHARED = Path("/work/shared/data/ircadb01/patient01")


def _legacy_case(tmp_path: Path, *, delete: tuple[str, ...] = ("FrameOfReferenceUID",)) -> tuple[Path, Path]:
    """The 12×40×48 CT as a DICOM series with ``delete`` removed from every file, and its label map (NIfTI)."""
    ct, labels = case_volumes(ORIENTATIONS["axial"])
    files = write_dicom_series(ct, tmp_path / "ct")
    for f in files:
        ds = pydicom.dcmread(f)
        for keyword in delete:
            if keyword in ds:
                delattr(ds, keyword)
        ds.save_as(f)
    write_image(labels, tmp_path / "labels.nii.gz")
    return tmp_path / "ct", tmp_path / "labels.nii.gz"


def _export(kind: str, source: Path, seg: Path, out: Path, *extra: str) -> int:
    return main(["export", kind, str(source), "--seg", str(seg), "--out", str(out), *extra])


@pytest.mark.external
def test_legacy_series_gets_a_derived_frame_of_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ct, labels = _legacy_case(tmp_path)
    src = pydicom.dcmread(sorted(ct.iterdir())[0], stop_before_pixels=True)
    assert "FrameOfReferenceUID" not in src
    study, series = str(src.StudyInstanceUID), str(src.SeriesInstanceUID)
    # derived the documented way: pydicom generate_uid over (fixed text, study UID, series UID)
    uid = str(pydicom.uid.generate_uid(entropy_srcs=["hepavol derived FrameOfReferenceUID", study, series]))
    assert derived_frame_of_reference_uid(study, series) == uid

    assert _export("seg", ct, labels, tmp_path / "seg.dcm") == 0
    err = capsys.readouterr().err
    (line,) = err.splitlines()
    assert line.startswith("warning: series ")
    assert series in line
    assert uid in line
    assert "(0020,0052)" in line
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    assert seg.FrameOfReferenceUID == uid
    assert uid in seg.ImageComments
    assert series in seg.ImageComments
    assert seg.ContentDescription == "Liver and liver lesions; frame of reference derived"
    # deterministic: a second SEG and the SR (with the SEG it builds) share the frame of reference
    assert _export("sr", ct, labels, tmp_path / "sr.dcm", "--seg-out", str(tmp_path / "seg2.dcm")) == 0
    # the SR and the SEG it builds read the series once each: the user sees the warning once (issue 19)
    assert [w for w in capsys.readouterr().err.splitlines() if w.startswith("warning: series ")] == [line]
    assert pydicom.dcmread(tmp_path / "seg2.dcm").FrameOfReferenceUID == uid
    assert _export("sr", ct, tmp_path / "seg.dcm", tmp_path / "sr_from_seg.dcm") == 0
    assert "internal error" not in capsys.readouterr().err

    # outside validators: segments voxel for voxel on the source grid, the SR as hepavol reports it
    image = read_dicom_series(ct)
    _, lab = case_volumes(ORIENTATIONS["axial"])
    lab_arr = np.asarray(reorient_like(lab, image.geometry).array)
    order = [1, 2, 3]  # liver, L1 (5×12×14 = 840 voxels), L2 (2×5×4 = 40 voxels)
    from scipy import ndimage

    comp, n = ndimage.label(lab_arr == 2, structure=np.ones((3, 3, 3)))
    assert n == 2
    big = int(np.argmax(np.bincount(comp.ravel())[1:])) + 1
    expected = {order[0]: lab_arr == 1, order[1]: comp == big, order[2]: (comp > 0) & (comp != big)}
    assert [int(np.count_nonzero(m)) for m in expected.values()][1:] == [840, 40]
    check_seg(tmp_path / "seg.dcm", source_geometry=image.geometry, expected=expected)
    from hepavol.io.sr_write import write_dicom_sr

    with pytest.warns(UserWarning, match=r"no FrameOfReferenceUID \(0020,0052\)"):
        reported = write_dicom_sr(image, tmp_path / "seg.dcm", None)
    check_sr(tmp_path / "sr_from_seg.dcm", lesions=reported.lesions, seg_uid=str(seg.SOPInstanceUID))
    assert pixelmed_errors(tmp_path / "sr_from_seg.dcm") == []


def test_legacy_series_refused_with_no_derive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ct, labels = _legacy_case(tmp_path)
    for kind, extra in (("seg", ()), ("sr", ("--seg-out", str(tmp_path / "seg.dcm")))):
        assert _export(kind, ct, labels, tmp_path / "out.dcm", "--no-derive-frame-of-reference", *extra) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: FrameOfReferenceUID (0020,0052) is missing on 12 of 12 images of series ")
        assert "Leave out --no-derive-frame-of-reference" in err
        assert "add FrameOfReferenceUID" in err
    assert not (tmp_path / "out.dcm").exists()
    assert not (tmp_path / "seg.dcm").exists()


def test_frame_of_reference_on_some_images_only_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ct, labels = _legacy_case(tmp_path, delete=())
    first = sorted(ct.iterdir())[3]
    ds = pydicom.dcmread(first)
    del ds.FrameOfReferenceUID
    ds.save_as(first)
    assert _export("seg", ct, labels, tmp_path / "seg.dcm") == 2
    err = capsys.readouterr().err
    assert "missing on 1 of 12 images" in err
    assert "present on the others" in err
    assert not (tmp_path / "seg.dcm").exists()


@pytest.mark.parametrize(
    ("keyword", "tag"),
    [
        ("StudyInstanceUID", "(0020,000D)"),
        ("SeriesInstanceUID", "(0020,000E)"),
        ("Modality", "(0008,0060)"),
        ("ImagePositionPatient", "(0020,0032)"),
        ("ImageOrientationPatient", "(0020,0037)"),
        ("PixelSpacing", "(0028,0030)"),
    ],
)
def test_missing_type1_source_attribute_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keyword: str, tag: str
) -> None:
    """A Type 1 attribute the SEG needs, missing on every image: a clear error (from the series reader or the
    SEG writer) naming it, exit 2, no file, never an internal error."""
    ct, labels = _legacy_case(tmp_path, delete=(keyword,))
    assert _export("seg", ct, labels, tmp_path / "seg.dcm") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "internal error" not in err
    assert keyword in err or tag in err, err
    assert not (tmp_path / "seg.dcm").exists()


@pytest.mark.external
@pytest.mark.slow
def test_ircadb01_patient01_seg_and_sr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real legacy series of issue 19 (3D-IRCADb-01 patient 1, no FrameOfReferenceUID): SEG and SR written
    with the derived frame of reference; tumour volumes as in the data's README (SimpleITK: 84.39, 10.10, 7.52,
    3.74, 2.72, 2.53, 0.40 mL). Read from ../shared at run time only; nothing of it is committed."""
    root = IRCADB if IRCADB.is_dir() else IRCADB_SHARED
    if not (root / "PATIENT_DICOM").is_dir():
        pytest.skip(f"3D-IRCADb-01 patient01 is not in {root} (shared data absent)")
    with zipfile.ZipFile(root / "MASKS_DICOM.zip") as z:
        names = [
            n for n in z.namelist() if n.split("/")[1:2] and n.split("/")[1].startswith(("liver", "livertumor"))
        ]
        z.extractall(tmp_path / "masks", members=names)
    image = read_dicom_series(root / "PATIENT_DICOM")
    lab = np.zeros(image.geometry.shape, np.uint8)
    lab[np.asarray(read_dicom_series(tmp_path / "masks/MASKS_DICOM/liver").array) > 0] = 1
    for d in sorted((tmp_path / "masks/MASKS_DICOM").glob("livertumor*")):
        lab[np.asarray(read_dicom_series(d).array) > 0] = 2
    write_image(image.with_array(lab), tmp_path / "labels.nii.gz")
    assert _export("seg", root / "PATIENT_DICOM", tmp_path / "labels.nii.gz", tmp_path / "seg.dcm") == 0
    assert _export("sr", root / "PATIENT_DICOM", tmp_path / "seg.dcm", tmp_path / "sr.dcm") == 0
    out = capsys.readouterr()
    assert "7 lesion(s)" in out.out
    assert out.err.count("no FrameOfReferenceUID (0020,0052)") == 2
    from hepavol.io.sr_write import write_dicom_sr

    with pytest.warns(UserWarning, match=r"no FrameOfReferenceUID \(0020,0052\)"):
        sr = write_dicom_sr(image, tmp_path / "seg.dcm", None)
    volumes_ml = sorted((les["volume_mm3"] / 1000.0 for les in sr.lesions), reverse=True)
    assert volumes_ml == pytest.approx([84.39, 10.10, 7.52, 3.74, 2.72, 2.53, 0.40], abs=0.006)
    seg = pydicom.dcmread(tmp_path / "seg.dcm", stop_before_pixels=True)
    src = pydicom.dcmread(root / "PATIENT_DICOM/image_0", stop_before_pixels=True)
    assert seg.FrameOfReferenceUID == derived_frame_of_reference_uid(src.StudyInstanceUID, src.SeriesInstanceUID)
    check_seg(tmp_path / "seg.dcm", source_geometry=image.geometry)
    check_sr(tmp_path / "sr.dcm", lesions=sr.lesions, seg_uid=str(seg.SOPInstanceUID))
    assert pixelmed_errors(tmp_path / "sr.dcm") == []
