"""Segmentation input: label maps and DICOM SEG on the image grid, checked against independent readers.

Reference values: voxel counts and volumes from tests/data/README.md (read off the files by the data curator:
TotalSegmentator CT liver 1043 mL, MR 499 mL, DICOM-grid liver 699.5 mL; dcmqi liver 107,098 voxels; DeepLesion
mask 14,490 voxels = 63.7 mL) and from SimpleITK reading the same files (voxel counts, resampling onto the image
grid by physical position).
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.sr.codedict import codes
from tests._io_helpers import assert_same_as_sitk, assert_same_volume, label_phantom, phantom

from hepavol.errors import GeometryError, InputError
from hepavol.geometry import Geometry
from hepavol.io import read_image, read_segmentation, write_dicom_series, write_image
from hepavol.volume import Volume

DATA = Path(__file__).parent / "data"
TS = DATA / "totalsegmentator"
DL = DATA / "deeplesion_flare25_recist"
DCMQI = DATA / "dcmqi" / "data" / "segmentations"
HD = DATA / "highdicom" / "data" / "test_files"
CT2 = DATA / "pydicom_ct2_series"


def _ml(volume: Volume, label: int) -> float:
    return int((np.asarray(volume.array) == label).sum()) * volume.geometry.voxel_volume_mm3 / 1000.0


# ---------------------------------------------------------------------------------------------- label maps
def test_totalsegmentator_ct_liver_matches_simpleitk() -> None:
    ct = read_image(TS / "example_ct_sm.nii.gz")
    seg = read_segmentation(TS / "example_seg.nii.gz", reference=ct.geometry)
    ref = sitk.ReadImage(str(TS / "example_seg.nii.gz"))
    assert_same_as_sitk(seg, ref)
    assert int((seg.array == 5).sum()) == int((sitk.GetArrayViewFromImage(ref) == 5).sum())
    assert _ml(seg, 5) == pytest.approx(1043, abs=0.5)  # README: liver 1043 mL


def test_totalsegmentator_mr_liver() -> None:
    mr = read_image(TS / "example_mr_sm.nii.gz")
    seg = read_segmentation(TS / "example_seg_mr.nii.gz", reference=mr.geometry)
    assert_same_as_sitk(seg, sitk.ReadImage(str(TS / "example_seg_mr.nii.gz")))
    assert _ml(seg, 5) == pytest.approx(499, abs=0.5)  # README: liver 499 mL


def test_nifti_seg_on_the_jpeg2000_dicom_grid() -> None:
    """``example_seg_dicom.nii.gz`` stores the DICOM grid with its rows flipped (LAS); it is reoriented exactly
    onto the DICOM grid. Reference: SimpleITK resampling the NIfTI onto its own reading of the DICOM series
    (nearest neighbour, physical positions) gives the same array."""
    ct = read_image(TS / "example_ct_dicom")
    seg = read_segmentation(TS / "example_seg_dicom.nii.gz", reference=ct.geometry)
    assert seg.geometry == ct.geometry
    assert seg.metadata["reoriented_from"]["direction"] != ct.geometry.to_dict()["direction"]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(TS / "example_ct_dicom")))
    ref_img = reader.Execute()
    resampled = sitk.Resample(
        sitk.ReadImage(str(TS / "example_seg_dicom.nii.gz")), ref_img, sitk.Transform(), sitk.sitkNearestNeighbor
    )
    np.testing.assert_array_equal(seg.array, sitk.GetArrayViewFromImage(resampled))
    assert _ml(seg, 5) == pytest.approx(699.5, abs=0.1)  # README: liver 699.5 mL (partial)


def test_deeplesion_mask_voxels() -> None:
    image = read_image(DL / "000015_01_01_103-115_ct_hu.nii.gz")
    mask = read_segmentation(DL / "000015_01_01_103-115_lesion_mask_from_npz.nii.gz", reference=image.geometry)
    assert int((mask.array == 1).sum()) == 14490  # README: 14,490 voxels
    assert _ml(mask, 1) == pytest.approx(63.7, abs=0.05)  # README: 63.7 mL


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_label_map_round_trip(tmp_path: Path, suffix: str) -> None:
    labels = label_phantom("double-oblique")
    write_image(labels, tmp_path / f"l{suffix}")
    back = read_segmentation(tmp_path / f"l{suffix}", reference=labels.geometry)
    assert_same_volume(back, labels)
    assert back.array.dtype == np.uint8


def test_float_label_map_with_integer_values_is_accepted(tmp_path: Path) -> None:
    labels = label_phantom("axial")
    write_image(labels.with_array(np.asarray(labels.array).astype(np.float32)), tmp_path / "f.nii.gz")
    back = read_segmentation(tmp_path / "f.nii.gz")
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, labels.array)


def test_non_integer_and_negative_labels_are_refused(tmp_path: Path) -> None:
    labels = label_phantom("axial")
    prob = np.asarray(labels.array).astype(np.float32) * 0.3
    write_image(labels.with_array(prob), tmp_path / "p.nii.gz")
    with pytest.raises(
        InputError, match=r"p\.nii\.gz' is not a label map: it holds non-integer values \(e\.g\. 0\.3"
    ):
        read_segmentation(tmp_path / "p.nii.gz")
    write_image(labels.with_array(np.asarray(labels.array).astype(np.int16) - 1), tmp_path / "n.nrrd")
    with pytest.raises(InputError, match=r"n\.nrrd' has negative labels \(minimum -1\)"):
        read_segmentation(tmp_path / "n.nrrd")


def test_grid_mismatch_prints_both_geometries(tmp_path: Path) -> None:
    image = phantom("axial")
    labels = label_phantom("axial")
    g = labels.geometry
    shifted = Geometry(
        shape=g.shape,
        spacing_mm=g.spacing_mm,
        origin_lps_mm=tuple(g.index_to_lps((1, 0, 0))),  # one slice further along the slice axis
        direction=g.direction,
    )
    write_image(Volume(labels.array, shifted), tmp_path / "s.nii.gz")
    with pytest.raises(GeometryError, match=r"(?s)differ in origin.*image: shape=.*segmentation '.*s\.nii\.gz': "
                       r"shape=.*--resample-seg") as err:  # fmt: skip
        read_segmentation(tmp_path / "s.nii.gz", reference=image.geometry)
    assert "origin_lps_mm=(-12.50, 30.25, -101.00)" in str(err.value)  # the image's
    assert "origin_lps_mm=(-12.50, 30.25, -98.50)" in str(err.value)  # the segmentation's
    # resampled by nearest neighbour: reference slice k + 1 holds segmentation slice k
    out = read_segmentation(tmp_path / "s.nii.gz", reference=image.geometry, resample=True)
    assert out.geometry == image.geometry
    np.testing.assert_array_equal(out.array[1:], np.asarray(labels.array)[:-1])
    assert not np.asarray(out.array)[0].any()


def test_missing_segmentation() -> None:
    with pytest.raises(InputError, match=r"Segmentation 'no/seg\.nii\.gz' does not exist"):
        read_segmentation("no/seg.nii.gz")


# ---------------------------------------------------------------------------------------------- DICOM SEG
def test_dcmqi_liver_seg_equals_its_nrrd() -> None:
    """dcmqi's liver SEG and its NRRD label map are the same 107,098 voxels on the 3-slice CT grid."""
    ct = read_image(DCMQI / "ct-3slice")
    seg = read_segmentation(DCMQI / "liver.dcm", reference=ct.geometry)
    nrrd = read_segmentation(DCMQI / "liver_seg.nrrd", reference=ct.geometry)
    assert int((seg.array == 1).sum()) == 107098
    np.testing.assert_array_equal(seg.array, nrrd.array)
    assert seg.metadata["referenced_series_instance_uids"] == [ct.metadata["series_instance_uid"]]
    assert seg.metadata["segment_labels"] == {1: "Liver"}
    alone = read_segmentation(DCMQI / "liver.dcm")  # without a reference: the SEG's own grid is the CT's
    assert alone.geometry.differences(ct.geometry) == []


def _make_seg(files: list[Path], masks: np.ndarray, labels: list[str], **kwargs: object) -> hd.seg.Segmentation:
    sources = [pydicom.dcmread(f) for f in files]
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i + 1,
            segment_label=label,
            segmented_property_category=codes.SCT.Organ,
            segmented_property_type=codes.SCT.Liver if i == 0 else codes.SCT.Neoplasm,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for i, label in enumerate(labels)
    ]
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=masks,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=10,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="hepavol",
        manufacturer_model_name="tests",
        software_versions="0",
        device_serial_number="1",
        **kwargs,
    )


def test_seg_covering_some_slices_lands_on_them(tmp_path: Path) -> None:
    """A SEG made from slices 3-5 of a 9-slice series (two segments) is placed by position on those slices."""
    truth = label_phantom("oblique-inplane")
    image = phantom("oblique-inplane")
    files = write_dicom_series(image, tmp_path / "ct")
    sub = np.asarray(truth.array)[3:6]
    masks = np.stack([sub == 1, sub == 2], axis=-1).astype(np.uint8)
    seg = _make_seg(files[3:6], masks, ["liver", "lesion"])
    seg.save_as(tmp_path / "seg.dcm")
    volume = read_image(tmp_path / "ct")
    out = read_segmentation(tmp_path / "seg.dcm", reference=volume.geometry)
    expected = np.zeros(truth.shape, np.uint8)
    expected[3:6] = sub
    np.testing.assert_array_equal(out.array, expected)
    assert out.metadata["segment_numbers"] == [1, 2]
    assert out.metadata["referenced_series_instance_uids"] == [volume.metadata["series_instance_uid"]]


def test_seg_overlap_is_an_error(tmp_path: Path) -> None:
    image = phantom("axial", shape=(3, 8, 8))
    files = write_dicom_series(image, tmp_path / "ct")
    masks = np.zeros((3, 8, 8, 2), np.uint8)
    masks[1, 2:5, 2:5, 0] = 1
    masks[1, 4:6, 4:6, 1] = 1  # one voxel shared
    _make_seg(files, masks, ["liver", "lesion"]).save_as(tmp_path / "seg.dcm")
    with pytest.raises(
        InputError, match=r"overlapping segments: segments 1 and 2 both cover 1 voxel\(s\) on slice 1"
    ):
        read_segmentation(tmp_path / "seg.dcm", reference=read_image(tmp_path / "ct").geometry)


def test_highdicom_binary_seg_on_the_ct2_images() -> None:
    """highdicom's 16x16 SEG marks 3 of pydicom's 4 CT images (z = 103.02, 104.27, 105.52 mm). With the CT read
    onto a regular 1.25 mm grid (--allow-gaps: 165 slices from z = -99.48), the frames land on slices 162-164."""
    with pytest.warns(UserWarning, match="resampled 4 slices onto 165"):
        ct = read_image(CT2, allow_gaps=True)
    seg = read_segmentation(HD / "seg_image_ct_binary.dcm", reference=ct.geometry)
    frames = hd.seg.segread(HD / "seg_image_ct_binary.dcm").pixel_array
    assert int((seg.array > 0).sum()) == int(frames.sum())
    np.testing.assert_array_equal(seg.array[162:165], frames)
    assert not np.asarray(seg.array)[:162].any()
    alone = read_segmentation(HD / "seg_image_ct_binary.dcm")
    assert alone.shape == (3, 16, 16)
    assert alone.geometry.spacing_mm[0] == pytest.approx(1.25)


def test_highdicom_fractional_overlap_and_single_frame() -> None:
    frames = hd.seg.segread(HD / "seg_image_ct_true_fractional.dcm").pixel_array
    with pytest.warns(UserWarning, match=r"FRACTIONAL; voxels with a fraction >= 0\.5"):
        frac = read_segmentation(HD / "seg_image_ct_true_fractional.dcm")
    np.testing.assert_array_equal(frac.array, (frames / 255.0 >= 0.5).astype(np.uint8))
    with pytest.warns(UserWarning, match="FRACTIONAL"):  # a FRACTIONAL SEG holding only 0 and 255
        binary_frac = read_segmentation(HD / "seg_image_ct_binary_fractional.dcm")
    np.testing.assert_array_equal(binary_frac.array, read_segmentation(HD / "seg_image_ct_binary.dcm").array)
    with pytest.raises(InputError, match=r"overlapping segments: segments 1 and 2"):
        read_segmentation(HD / "seg_image_ct_binary_overlap.dcm")
    single = read_segmentation(HD / "seg_image_ct_binary_single_frame.dcm")
    assert single.shape == (1, 128, 128)
    frame = hd.seg.segread(HD / "seg_image_ct_binary_single_frame.dcm").pixel_array
    np.testing.assert_array_equal(single.array[0], frame)


def test_seg_on_a_different_grid_needs_resample(tmp_path: Path) -> None:
    """The dcmqi SEG against a grid shifted by half a pixel: error with both geometries, or nearest-neighbour
    resampling with --resample-seg."""
    ct = read_image(DCMQI / "ct-3slice")
    g = ct.geometry
    other = Geometry(
        shape=g.shape,
        spacing_mm=g.spacing_mm,
        origin_lps_mm=tuple(g.index_to_lps((0, 0.5, 0))),
        direction=g.direction,
    )
    with pytest.raises(GeometryError, match=r"(?s)DICOM SEG '.*liver\.dcm'.*different grids.*--resample-seg"):
        read_segmentation(DCMQI / "liver.dcm", reference=other)
    out = read_segmentation(DCMQI / "liver.dcm", reference=other, resample=True)
    assert out.geometry == other
    assert abs(int((out.array == 1).sum()) - 107098) < 1000  # same organ, half a pixel shifted


def test_image_reader_refuses_seg_and_segmentation_reader_refuses_sr() -> None:
    with pytest.raises(InputError, match=r"liver\.dcm' is a DICOM SEG object, not an image.*--seg"):
        read_image(DCMQI / "liver.dcm")
    with pytest.raises(InputError, match=r"sr_document\.dcm' is a DICOM SR object, not a segmentation"):
        read_segmentation(HD / "sr_document.dcm")


def test_folder_with_one_seg(tmp_path: Path) -> None:
    import shutil

    (tmp_path / "seg").mkdir()
    shutil.copy(DCMQI / "liver.dcm", tmp_path / "seg" / "a.dcm")
    (tmp_path / "seg" / "README.txt").write_text("exported by a viewer")
    ct = read_image(DCMQI / "ct-3slice")
    assert int((read_segmentation(tmp_path / "seg", reference=ct.geometry).array == 1).sum()) == 107098
    shutil.copy(DCMQI / "liver.dcm", tmp_path / "seg" / "b.dcm")
    with pytest.raises(InputError, match=r"(?s)holds 2 DICOM SEG files:.*a\.dcm.*b\.dcm.*--seg FILE"):
        read_segmentation(tmp_path / "seg")


def test_align_labels_equals_reading_with_the_reference() -> None:
    """A label map read alone then put on the image grid (the review app reads both at once) is the same volume
    as read_segmentation(reference=...) gives: DeepLesion 000015_01_01, stored P,L,I, reoriented."""
    from hepavol.io.segmentation import align_labels

    image = read_image(DL / "000015_01_01_103-115_ct_hu.nii.gz")
    mask = DL / "000015_01_01_103-115_lesion_mask_from_npz.nii.gz"
    direct = read_segmentation(mask, reference=image.geometry)
    later = align_labels(read_segmentation(mask), image.geometry)
    np.testing.assert_array_equal(later.array, direct.array)
    assert later.geometry == direct.geometry
    assert int(np.count_nonzero(later.array)) == 14490  # tests/data/README.md: 14,490 voxels
