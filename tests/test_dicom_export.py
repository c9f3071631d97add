"""DICOM SEG and TID 1500 SR export: validators (dciodvfy, PixelMed), round trips through highdicom/pydicom/hepavol.

Reference values are analytic (voxel counts of the drawn boxes × voxel volume; the long axis of a rectangle is
its pixel-edge diagonal) or come from an independent implementation (scipy.ndimage.label for the components,
highdicom's own geometry for the SEG frames).
"""

from __future__ import annotations

import math
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from scipy import ndimage
from tests._dicom_export_helpers import (
    case_volumes,
    dciodvfy_errors,
    report_containers,
    template_of,
    time_point_content,
)
from tests._io_helpers import ORIENTATIONS
from tests._pixelmed import pixelmed_report
from tests.validators import check_seg

from hepavol.cli import main
from hepavol.errors import GeometryError, InputError
from hepavol.io import read_dicom_series, read_segmentation, reorient_like, write_dicom_series, write_image
from hepavol.io.seg_write import write_dicom_seg
from hepavol.io.sr_write import TimePoint, write_dicom_sr
from hepavol.volume import Volume

VOXEL_MM3 = 2.5 * 0.8 * 0.8  # 1.6 mm³


def _case(tmp_path: Path, orientation: str = "axial") -> tuple[Volume, Volume]:
    """The CT written as DICOM and read back, and the labels on the read grid (reoriented exactly)."""
    ct, labels = case_volumes(ORIENTATIONS[orientation])
    write_dicom_series(ct, tmp_path / "ct", series_instance_uid=None)
    image = read_dicom_series(tmp_path / "ct")
    return image, reorient_like(labels, image.geometry)


@pytest.mark.external
@pytest.mark.parametrize("orientation", ["axial", "axial-slices-reversed", "oblique-inplane", "coronal"])
def test_seg_round_trip_masks_geometry_and_codes(tmp_path: Path, orientation: str) -> None:
    image, labels = _case(tmp_path, orientation)
    done = write_dicom_seg(image, labels, tmp_path / "seg.dcm")
    assert dciodvfy_errors(tmp_path / "seg.dcm") == []

    # segments: liver then lesions by size; counts from scipy's labelling (independent of cc3d)
    arr = labels.array
    comp, n = ndimage.label(arr == 2, structure=np.ones((3, 3, 3)))
    sizes = sorted(np.bincount(comp.ravel())[1:].tolist(), reverse=True)
    assert n == 2
    assert sizes == [840, 40]  # 5×12×14 and 2×5×4 voxel boxes
    assert [(s.kind, s.tracking_id, s.voxel_count) for s in done.segments] == [
        ("liver", "liver", int(np.count_nonzero(arr == 1))),
        ("lesion", "L1", 840),
        ("lesion", "L2", 40),
    ]
    # dcmqi's segimage2itkimage (and highdicom, dciodvfy): each segment voxel for voxel on the source grid
    big = int(np.argmax(np.bincount(comp.ravel())[1:])) + 1
    expected = {1: arr == 1, 2: comp == big, 3: (comp > 0) & (comp != big)}
    check_seg(tmp_path / "seg.dcm", source_geometry=image.geometry, expected=expected)

    # read back with hepavol: label = segment number, masks identical
    back = read_segmentation(tmp_path / "seg.dcm", reference=image.geometry)
    assert np.array_equal(back.array == 1, arr == 1)
    assert np.array_equal(back.array >= 2, arr == 2)
    assert int(np.count_nonzero(back.array == 2)) == 840
    assert int(np.count_nonzero(back.array == 3)) == 40

    # read back with highdicom: codes, tracking UIDs, references, and the frame geometry of its own volume
    seg = hd.seg.segread(tmp_path / "seg.dcm")
    assert seg.SegmentationType == "BINARY"
    d1, d2 = seg.get_segment_description(1), seg.get_segment_description(2)
    assert (d1.segmented_property_type.value, d1.segmented_property_type.scheme_designator) == ("10200004", "SCT")
    assert d2.segmented_property_category.value == "49755003"  # Morphologically Abnormal Structure
    assert d2.segmented_property_type.value == "14799000"  # Neoplasm, Secondary (metastatic)
    assert [r.value for r in d2.anatomic_regions] == ["10200004"]
    assert d2.tracking_uid == done.segments[1].tracking_uid
    assert d2.tracking_id == "L1"
    source_uids = set(image.metadata["sop_instance_uids"])
    assert {str(u[2]) for u in seg.get_source_image_uids()} <= source_uids
    hvol = seg.get_volume(combine_segments=True, relabel=False)
    # highdicom's volume of the SEG lies in the same LPS space: compare voxel by voxel at the segment voxels
    idx = np.argwhere(np.asarray(hvol.array) > 0)
    lps = hvol.map_indices_to_reference(idx)
    ours = np.rint(np.array([image.geometry.lps_to_index(tuple(p)) for p in lps])).astype(int)
    assert np.array_equal(back.array[tuple(ours.T)], np.asarray(hvol.array)[tuple(idx.T)])


@pytest.mark.external
def test_seg_keeps_given_tracking_uids(tmp_path: Path) -> None:
    image, labels = _case(tmp_path)
    uid = "1.2.826.0.1.3680043.8.498.1234567890"
    done = write_dicom_seg(image, labels, None, tracking_uids={"L2": uid})
    assert done.segments[2].tracking_uid == uid
    assert done.path is None


def test_seg_segment_colours(tmp_path: Path) -> None:
    """Each segment has a RecommendedDisplayCIELabValue; read back to sRGB with scikit-image's CIE conversion
    (D65, DICOM's scaling L* = v0 / 65535 * 100, a*, b* = v / 65535 * 255 - 128), the liver is 3D Slicer's liver
    tan (221, 130, 101) and lesions L1, L2 the palette's yellow and cyan, all far apart."""
    from skimage.color import lab2rgb

    image, labels = _case(tmp_path)
    write_dicom_seg(image, labels, tmp_path / "seg.dcm")
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    rgb = []
    for item in ds.SegmentSequence:
        v = np.asarray(item.RecommendedDisplayCIELabValue, float)
        lab = np.array([v[0] / 65535 * 100, v[1] / 65535 * 255 - 128, v[2] / 65535 * 255 - 128])
        rgb.append(tuple(np.rint(lab2rgb(lab[None, None, :])[0, 0] * 255).astype(int).tolist()))
    assert [str(i.SegmentLabel) for i in ds.SegmentSequence] == ["Liver", "Lesion L1", "Lesion L2"]
    expected = [(221, 130, 101), (255, 221, 0), (0, 190, 255)]
    assert all(np.abs(np.subtract(a, b)).max() <= 2 for a, b in zip(rgb, expected)), rgb
    assert min(np.abs(np.subtract(rgb[0], c)).sum() for c in rgb[1:]) > 100  # liver far from every lesion


def test_seg_errors(tmp_path: Path) -> None:
    ct, labels = case_volumes(ORIENTATIONS["axial"])
    with pytest.raises(InputError, match="not read from a DICOM series"):
        write_dicom_seg(ct, labels, tmp_path / "x.dcm")
    write_dicom_series(ct, tmp_path / "ct")
    image = read_dicom_series(tmp_path / "ct")
    empty = labels.with_array(np.zeros(labels.shape, np.uint8))
    with pytest.raises(InputError, match="nothing to export"):
        write_dicom_seg(image, empty, tmp_path / "x.dcm")
    small = Volume(
        np.zeros((3, 4, 4), np.uint8),
        image.geometry.__class__(
            shape=(3, 4, 4), spacing_mm=(1, 1, 1), origin_lps_mm=(0, 0, 0), direction=ORIENTATIONS["axial"]
        ),
    )
    with pytest.raises(GeometryError):
        write_dicom_seg(image, small, tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()


@pytest.mark.external
def test_sr_values_references_and_validators(tmp_path: Path) -> None:
    image, labels = _case(tmp_path)
    seg = write_dicom_seg(image, labels, tmp_path / "seg.dcm")
    sr = write_dicom_sr(
        image,
        tmp_path / "seg.dcm",
        tmp_path / "sr.dcm",
        time_point=TimePoint(time_point_id="FU1", baseline=False),
        recist_response="PR",
        volumetric_response="SD",
    )
    # analytic values: voxel counts × 1.6 mm³; long axis of lesion A, a 12-row × 14-column pixel rectangle: its
    # farthest surface-mesh vertices are half a pixel beyond the end pixels of its first and last rows, 14 columns
    # and 11 rows apart (hepavol.measurement module docstring; pyradiomics' convention)
    l1, l2 = sr.lesions
    assert l1["volume_mm3"] == pytest.approx(840 * VOXEL_MM3)
    assert l2["volume_mm3"] == pytest.approx(40 * VOXEL_MM3)
    assert l1["long_axis_mm"] == pytest.approx(math.hypot(11 * 0.8, 14 * 0.8))
    assert sr.total_tumor_volume_mm3 == pytest.approx(880 * VOXEL_MM3)
    assert sr.sum_of_diameters_mm == pytest.approx(l1["long_axis_mm"] + l2["long_axis_mm"])
    # the SCOORD end points are those vertices: on the outer edges x = 10 and 24 (integer image coordinates),
    # at the centres of the first and last rows (y = 10.5 and 21.5)
    assert sorted(l1["long_axis_xy"]) in ([(10.0, 10.5), (24.0, 21.5)], [(10.0, 21.5), (24.0, 10.5)])
    for item in (l1, l2):
        for key, value in (("long_axis_xy", item["long_axis_mm"]), ("short_axis_xy", item["short_axis_mm"])):
            (x0, y0), (x1, y1) = item[key]
            assert math.hypot((x1 - x0) * 0.8, (y1 - y0) * 0.8) == pytest.approx(value, abs=1e-4)
    assert [les["tracking_uid"] for les in sr.lesions] == [s.tracking_uid for s in seg.segments[1:]]

    # dciodvfy: no errors (warnings only for the private 99HEPAVOL coding scheme)
    assert dciodvfy_errors(tmp_path / "sr.dcm") == []

    # read back with highdicom
    doc = hd.sr.srread(tmp_path / "sr.dcm")
    assert doc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    vol_groups = doc.content.get_volumetric_roi_measurement_groups()
    assert len(vol_groups) == 2
    g1 = vol_groups[0]
    assert str(g1.tracking_uid) == seg.segments[1].tracking_uid
    assert g1.referenced_segment.referenced_segment_numbers == [2]
    assert g1.referenced_segment.referenced_sop_instance_uid == seg.sop_instance_uid
    (vol,) = g1.get_measurements(name=pydicom.sr.codedict.codes.SCT.Volume)
    assert vol.value == pytest.approx(1344.0)
    assert vol.unit.value == "mm3"
    assert vol.unit.scheme_designator == "UCUM"

    # pydicom walk: planar groups hold Long/Short Axis NUMs each inferred from a 2-point POLYLINE on the slice
    ds = pydicom.dcmread(tmp_path / "sr.dcm")
    measurements = next(i for i in ds.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "126010")
    groups = list(measurements.ContentSequence)
    assert [template_of(g) for g in groups] == ["1411", "1410", "1411", "1410"]  # lesions only (issue 24)
    planar = groups[1]
    nums = {i.ConceptNameCodeSequence[0].CodeMeaning: i for i in planar.ContentSequence if i.ValueType == "NUM"}
    assert set(nums) == {"Long Axis", "Short Axis"}
    scoord = nums["Long Axis"].ContentSequence[0]
    assert (scoord.RelationshipType, scoord.ValueType, scoord.GraphicType) == (
        "INFERRED FROM",
        "SCOORD",
        "POLYLINE",
    )
    ref = scoord.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
    assert ref == l1["source_sop_instance_uid"] == image.metadata["sop_instance_uids"][l1["slice_index"]]
    context = {i.ConceptNameCodeSequence[0].CodeMeaning: i for i in planar.ContentSequence}
    assert context["Time Point"].TextValue == "FU1"
    assert context["Time Point Type"].ConceptCodeSequence[0].CodeValue == "126074"  # Posttreatment
    # time point: totals as derived imaging measurements (880 voxels x 1.6 mm3; the two long axes), responses as
    # qualitative evaluations, no other container
    assert sorted(report_containers(ds)) == ["126010", "126011", "C0034375"]
    tp = time_point_content(tmp_path / "sr.dcm")
    assert tp["derived"] == {
        "Sum of diameters": pytest.approx(l1["long_axis_mm"] + l2["long_axis_mm"], rel=1e-12),
        "Total tumor volume": pytest.approx(880 * VOXEL_MM3, rel=1e-12),
    }
    assert tp["evaluations"] == {
        "Current Response": ["112042"],  # CID 6144 Target Lesion Partial Response
        "Volumetric response": ["112044"],  # CID 6144 Target Lesion Stable Disease
    }
    assert tp["gone"] == []


@pytest.mark.external
def test_sr_passes_pixelmed_template_validation(tmp_path: Path) -> None:
    """PixelMed's DicomSRValidator (pixelmed-apps 20220618) on the report: no error of a group's own template.

    When one report mixes TID 1410 and 1411 groups (as TID 1500 allows and this report must), that
    PixelMed version also checks every group against the *other* templates' conditional rows and reports their
    absence ("Missing conditional content item" / "present when condition not satisfied" on rows of TID 1410 or
    1411). Reports holding one kind of group only pass with no error at all (checked by hand on this very
    output; one validator run takes ~15 s, so the test runs it once). The test asserts that every error is such a
    cross-template report on a group of another template: an error of a group against its own template (or any
    other error) fails it. The qualitative evaluations (TID 1500 rows 12-13) are checked with no error or warning;
    the derived measurements (row 10, TID 1420) are not checked: this PixelMed lacks TID 1420's CID 7465 and says
    so in an "Internal Error" line, the only one allowed.
    """
    image, labels = _case(tmp_path)
    write_dicom_seg(image, labels, tmp_path / "seg.dcm")
    write_dicom_sr(image, tmp_path / "seg.dcm", tmp_path / "sr.dcm", recist_response="SD")
    report = pixelmed_report(tmp_path / "sr.dcm")
    assert "Found Root Template TID_1500 (MeasurementReport)" in report
    assert "Root Template Validation Complete" in report
    ds = pydicom.dcmread(tmp_path / "sr.dcm")
    measurements = next(i for i in ds.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "126010")
    kinds = {f"1.8.{n}": template_of(g) for n, g in enumerate(measurements.ContentSequence, start=1)}
    errors = [line for line in report.splitlines() if line.startswith("Error")]
    for line in errors:
        assert "Missing conditional content item" in line or "present when condition not satisfied" in line, line
        tid = line.split("Template ")[1].split(" ")[0]
        where = line.split("within ")[1].split(":")[0]
        assert tid in ("1410", "1411"), line
        assert kinds[where] != tid, line
    assert not [line for line in report.splitlines() if "Qualitative Evaluations" in line and ":" in line]
    internal = [line for line in report.splitlines() if line.startswith("Internal Error")]
    assert len(internal) == 1
    assert (
        "Template 1420 MeasurementsDerivedFromMultipleROIMeasurements" in report.split("Internal Error")[1][:200]
    )


def test_sr_errors(tmp_path: Path) -> None:
    image, labels = _case(tmp_path)
    only_liver = labels.with_array((labels.array == 1).astype(np.uint8))
    write_dicom_seg(image, only_liver, tmp_path / "liver.dcm")
    with pytest.raises(InputError, match="no lesion segment"):
        write_dicom_sr(image, tmp_path / "liver.dcm", tmp_path / "sr.dcm")
    write_dicom_seg(image, labels, tmp_path / "seg.dcm")
    with pytest.raises(InputError, match=r"recist_response.*'XX'"):
        write_dicom_sr(image, tmp_path / "seg.dcm", tmp_path / "sr.dcm", recist_response="XX")
    other = write_dicom_series(image.with_array(np.asarray(image.array)), tmp_path / "ct2")
    assert other
    image2 = read_dicom_series(tmp_path / "ct2")
    with pytest.raises(InputError, match="references series"):
        write_dicom_sr(image2, tmp_path / "seg.dcm", tmp_path / "sr.dcm")
    assert not (tmp_path / "sr.dcm").exists()


@pytest.mark.external
def test_cli_export_seg_and_sr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, labels = _case(tmp_path)
    write_image(labels, tmp_path / "labels.nii.gz")
    assert (
        main(
            [
                "export",
                "seg",
                str(tmp_path / "ct"),
                "--seg",
                str(tmp_path / "labels.nii.gz"),
                "--out",
                str(tmp_path / "seg.dcm"),
            ]
        )
        == 0
    )
    assert "3 segment(s) (2 lesion(s))" in capsys.readouterr().out
    # SR from the DICOM SEG
    assert (
        main(
            [
                "export",
                "sr",
                str(tmp_path / "ct"),
                "--seg",
                str(tmp_path / "seg.dcm"),
                "--out",
                str(tmp_path / "sr.dcm"),
                "--time-point",
                "baseline",
                "--baseline",
            ]
        )
        == 0
    )
    assert "2 lesion(s), total tumour volume 1408 mm3" in capsys.readouterr().out
    assert dciodvfy_errors(tmp_path / "sr.dcm") == []
    # SR from a label map needs --seg-out
    assert (
        main(
            [
                "export",
                "sr",
                str(tmp_path / "ct"),
                "--seg",
                str(tmp_path / "labels.nii.gz"),
                "--out",
                str(tmp_path / "sr2.dcm"),
            ]
        )
        == 2
    )
    assert "pass --seg-out" in capsys.readouterr().err
    assert (
        main(
            [
                "export",
                "sr",
                str(tmp_path / "ct"),
                "--seg",
                str(tmp_path / "labels.nii.gz"),
                "--out",
                str(tmp_path / "sr2.dcm"),
                "--seg-out",
                str(tmp_path / "seg2.dcm"),
            ]
        )
        == 0
    )
    ref = pydicom.dcmread(tmp_path / "sr2.dcm").CurrentRequestedProcedureEvidenceSequence
    uids = {
        i.ReferencedSOPInstanceUID
        for s in ref
        for se in s.ReferencedSeriesSequence
        for i in se.ReferencedSOPSequence
    }
    assert pydicom.dcmread(tmp_path / "seg2.dcm").SOPInstanceUID in uids


def test_single_segment_seg_reads_back(tmp_path: Path) -> None:
    """One lesion and no liver: highdicom puts the segment identification in the shared functional groups."""
    image, labels = _case(tmp_path)
    only_lesion = np.where(np.asarray(labels.array) == 2, 2, 0).astype(np.uint8)
    one, _ = ndimage.label(only_lesion)
    biggest = np.bincount(one.ravel())[1:].argmax() + 1
    single = Volume(np.where(one == biggest, 2, 0).astype(np.uint8), labels.geometry)
    path = tmp_path / "single.dcm"
    write_dicom_seg(image, single, path)
    back = read_segmentation(path, reference=image.geometry)
    assert np.count_nonzero(back.array) == np.count_nonzero(single.array)


@pytest.mark.external
def test_a_zero_window_of_the_source_is_not_copied(tmp_path: Path) -> None:
    """3D-IRCADb-01's CT slices carry WindowCenter = WindowWidth = 0 (checked on patient01), which viewers apply
    and show black. The SEG and SR written on such a series hold no window at all (top level or in a functional
    group); the CT itself is never rewritten by hepavol."""
    image, labels = _case(tmp_path)
    for f in sorted((tmp_path / "ct").iterdir()):
        ds = pydicom.dcmread(f)
        ds.WindowCenter, ds.WindowWidth = "0", "0"
        ds.save_as(f)
    image = read_dicom_series(tmp_path / "ct")
    write_dicom_seg(image, labels, tmp_path / "seg.dcm")
    write_dicom_sr(image, tmp_path / "seg.dcm", tmp_path / "sr.dcm")
    for name in ("seg.dcm", "sr.dcm"):
        ds = pydicom.dcmread(tmp_path / name)
        found = [elem.keyword for elem in ds.iterall() if elem.tag in (0x00281050, 0x00281051)]
        assert found == [], (name, found)
    assert pydicom.dcmread(sorted((tmp_path / "ct").iterdir())[0]).WindowWidth == 0  # the source is untouched


@pytest.mark.external
def test_a_report_on_which_every_lesion_is_gone(tmp_path: Path) -> None:
    """A follow-up scan with no lesion left: no "Imaging Measurements" (highdicom needs a group to build one; TID
    1500 needs it only without the other two containers), totals of 0, the responses and the gone lesion's record;
    dciodvfy, highdicom and dcmqi read it (tests/validators.py: 0 measurement groups)."""
    import highdicom as hd

    from hepavol.io.seg_write import dataset_bytes, load_source_datasets
    from hepavol.io.sr_write import AbsentLesion, TimePointAssessment, build_report

    image, labels = _case(tmp_path)
    write_dicom_seg(image, labels, tmp_path / "seg.dcm")
    sr, lesions = build_report(
        image,
        load_source_datasets(image),
        pydicom.dcmread(tmp_path / "seg.dcm"),
        [],
        TimePointAssessment(
            total_tumor_volume_mm3=0.0, sum_of_diameters_mm=0.0, target_response="CR", overall_response="CR"
        ),
        time_point=TimePoint(time_point_id="FU2", baseline=False),
        absent=[AbsentLesion(tracking_id="L1", tracking_uid="1.2.826.0.1.3680043.8.498.1")],
    )
    assert lesions == []
    (tmp_path / "sr.dcm").write_bytes(dataset_bytes(sr))
    assert sorted(report_containers(pydicom.dcmread(tmp_path / "sr.dcm"))) == ["126011", "C0034375"]
    assert isinstance(hd.sr.srread(tmp_path / "sr.dcm").content, hd.sr.MeasurementReport)
    tp = time_point_content(tmp_path / "sr.dcm")
    assert tp["derived"] == {"Sum of diameters": 0.0, "Total tumor volume": 0.0}
    assert tp["evaluations"] == {"Current Response": ["112041"], "RECIST 1.1 overall response": ["CR"]}
    assert tp["gone"] == [
        {
            "status": "Disappeared",
            "tracking_id": "L1",
            "tracking_uid": "1.2.826.0.1.3680043.8.498.1",
            "nums": {"Long Axis": 0.0, "Volume": 0.0},
        }
    ]
