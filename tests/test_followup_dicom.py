"""``hepavol export sr --manifest``: one DICOM SEG and one TID 1500 SR per scan of a follow-up.

References from outside the exporter:

- the simulator's truth (hepavol.simulate, CT patient index 2 of seed 1, DICOM series + DICOM SEG per scan): a truth
  instance map per scan (the same lesion id at every scan whatever the pose), the mask volume of each scan
  (``mask_total_tumour_volume_ml``, the simulator's own voxel count) and the true RECIST 1.1 overall response;
  three scans, a new lesion on the last one;
- voxel counts of the segments read back with hepavol and highdicom (× voxel volume);
- the follow-up's own JSON (``FollowUpResult.to_dict()``, what ``hepavol follow-up --json`` writes) for the lesion
  volumes the SR must repeat;
- dciodvfy (dicom3tools) and PixelMed's SR validator for conformance;
- a phantom whose lesion A splits into two fragments and then coalesces with lesion B (tests/_followup_helpers.py).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from tests._dicom_export_helpers import dciodvfy_errors, template_of, time_point_content
from tests._followup_helpers import DATES, LESIONS, POSES, PhantomLesion, Pose, render
from tests._pixelmed import pixelmed_report
from tests.validators import check_seg, check_sr

from hepavol.cli import main
from hepavol.errors import InputError
from hepavol.io import read_segmentation, write_dicom_series, write_image
from hepavol.io.followup_dicom import FollowUpDicom, write_followup_dicom
from hepavol.io.seg_write import derived_frame_of_reference_uid
from hepavol.simulate import simulate_patient

SEED, INDEX = 1, 2  # SIM-003: 3 CT scans, 14 lesions then a new one at the last scan, overall SD then PD


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, FollowUpDicom]:
    root = tmp_path_factory.mktemp("followup_dicom")
    patient = simulate_patient(INDEX, root / "cohort", seed=SEED, modality="ct", fmt="dicom")
    rows = list(csv.DictReader(patient.manifest.open()))
    assert all((patient.manifest.parent / r["image"]).is_dir() for r in rows)  # image column: series folders
    done = write_followup_dicom(patient.manifest, root / "out")
    check_followup(done)
    return patient, done


def check_followup(done: FollowUpDicom) -> None:
    """Outside validators (tests/validators.py) on every SEG and SR of a follow-up: dcmqi gives back each
    segment of the scan's lesion map voxel for voxel and reads each SR as hepavol reported it."""
    for t in done.timepoints:
        assert t.seg.path is not None
        check_sr(t.sr_path, lesions=t.lesions, seg_uid=t.seg.sop_instance_uid)
        check_seg(t.seg.path)


# ---------------------------------------------------------------------------------------------------------------
# Reading an SR back (pydicom walk of TID 1500)


def _items(container: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for item in container.ContentSequence:
        out.setdefault(item.ConceptNameCodeSequence[0].CodeMeaning, []).append(item)
    return out


def sr_groups(path: Path) -> list[dict[str, Any]]:
    """Every measurement group of a TID 1500 SR: template, tracking id/UID, time point, NUMs, CODEs, segment."""
    ds = pydicom.dcmread(path)
    measurements = next(i for i in ds.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "126010")
    groups = []
    for g in measurements.ContentSequence:
        items = _items(g)
        ref = next(
            (
                i.ReferencedSOPSequence[0]
                for i in g.ContentSequence
                if i.ValueType == "IMAGE" and "ReferencedSOPSequence" in i
            ),
            None,
        )
        groups.append(
            {
                "template": template_of(g),
                "tracking_id": items["Tracking Identifier"][0].TextValue,
                "tracking_uid": items["Tracking Unique Identifier"][0].UID,
                "time_point": items["Time Point"][0].TextValue,
                "time_point_type": items["Time Point Type"][0].ConceptCodeSequence[0].CodeMeaning,
                "nums": {
                    k: [float(i.MeasuredValueSequence[0].NumericValue) for i in v]
                    for k, v in items.items()
                    if v[0].ValueType == "NUM"
                },
                "codes": {
                    k: [i.ConceptCodeSequence[0].CodeValue for i in v]
                    for k, v in items.items()
                    if v[0].ValueType == "CODE"
                },
                "segment": None if ref is None else int(getattr(ref, "ReferencedSegmentNumber", 0)) or None,
                "frame": None if ref is None else getattr(ref, "ReferencedFrameNumber", None),
                "seg_uid": None if ref is None else ref.ReferencedSOPInstanceUID,
            }
        )
    return groups


# ---------------------------------------------------------------------------------------------------------------
# The simulated DICOM patient


@pytest.mark.external
def test_every_object_passes_dciodvfy(simulated: tuple[Any, FollowUpDicom]) -> None:
    _, done = simulated
    files = [p for t in done.timepoints for p in (t.seg.path, t.sr_path)]
    assert [p.name for p in files if p is not None] == [
        "2017-02-13_SEG.dcm",
        "2017-02-13_SR.dcm",
        "2017-06-12_SEG.dcm",
        "2017-06-12_SR.dcm",
        "2018-04-14_SEG.dcm",
        "2018-04-14_SR.dcm",
    ]
    for path in files:
        assert path is not None
        assert dciodvfy_errors(path) == [], path


@pytest.mark.external
def test_tracking_uids_follow_the_true_lesions(simulated: tuple[Any, FollowUpDicom]) -> None:
    """One TrackingUID and TrackingID per true lesion on every scan (SEG and SR agree); distinct lesions differ."""
    patient, done = simulated
    uid_of_truth: dict[int, set[tuple[str, str]]] = {}
    liver_uids = set()
    for t, scan in zip(done.timepoints, done.result.scans):
        image = scan.image
        truth = read_segmentation(
            patient.manifest.parent / "truth" / f"{t.date.isoformat()}_instances.nii.gz", reference=image.geometry
        ).array
        assert t.seg.path is not None
        back = read_segmentation(t.seg.path, reference=image.geometry).array
        seg = hd.seg.segread(t.seg.path)
        numbers = seg.segment_numbers
        assert seg.get_segment_description(1).segmented_property_type.value == "10200004"  # liver first
        liver_uids.add(
            (seg.get_segment_description(1).tracking_id, str(seg.get_segment_description(1).tracking_uid))
        )
        sr_lesions = {g["segment"]: g for g in sr_groups(t.sr_path) if g["template"] == "1411"}
        assert sorted(sr_lesions) == list(numbers)[1:]
        for number in list(numbers)[1:]:
            d = seg.get_segment_description(number)
            under = Counter(truth[back == number].tolist())
            truth_id, count = under.most_common(1)[0]
            assert truth_id > 0
            assert count >= 0.9 * sum(under.values())
            uid_of_truth.setdefault(int(truth_id), set()).add((d.tracking_id, str(d.tracking_uid)))
            assert (sr_lesions[number]["tracking_id"], sr_lesions[number]["tracking_uid"]) == (
                d.tracking_id,
                str(d.tracking_uid),
            )
            assert sr_lesions[number]["seg_uid"] == t.seg.sop_instance_uid
    assert all(len(v) == 1 for v in uid_of_truth.values()), uid_of_truth
    (liver,) = liver_uids  # one liver, one TrackingUID on the three scans, none of a lesion's
    assert liver[0] == "liver"
    assert liver[1] not in {uid for v in uid_of_truth.values() for _, uid in v}
    pairs = [next(iter(v)) for v in uid_of_truth.values()]
    assert len({uid for _, uid in pairs}) == len({tid for tid, _ in pairs}) == len(pairs) == 15
    lesions = {les.lesion_id: les.tracking_uid for les in done.result.lesions}
    assert dict(pairs) == lesions
    # the first scans were reordered locally (the scan's own L2 is another lesion later on): ids are the track's
    keys = [tr.keys for tr in done.result.tracking.tracks]
    assert any(k[t] and k[t][0] != tr for tr, k in zip(lesions, keys) for t in range(3))


@pytest.mark.external
def test_masks_and_volumes(simulated: tuple[Any, FollowUpDicom]) -> None:
    """Segments equal the follow-up's lesion maps; SR volumes equal the JSON, the voxel counts and the truth."""
    patient, done = simulated
    json = done.result.to_dict()
    json_volume = {
        (les["lesion_id"], m["date"]): m["volume_ml"] for les in json["lesions"] for m in les["measurements"]
    }
    rows = list(csv.DictReader(patient.manifest.open()))
    for t, (tp, scan, row, truth) in enumerate(
        zip(done.timepoints, done.result.scans, rows, patient.truth["scans"])
    ):
        image = scan.image
        voxel_mm3 = float(np.prod(image.geometry.spacing_mm))
        assert tp.seg.path is not None
        back = np.asarray(read_segmentation(tp.seg.path, reference=image.geometry).array)
        labels = np.asarray(
            read_segmentation(patient.manifest.parent / row["seg"], reference=image.geometry).array
        )
        assert np.array_equal(back == 1, labels == 1)  # liver (liver label only)
        assert np.array_equal(back >= 2, labels == 2)  # every tumour voxel is in one lesion segment
        lesion_map = np.asarray(scan.lesion_map.array)
        track = {tr.lesion_id: tr for tr in done.result.tracking.tracks}
        groups = sr_groups(tp.sr_path)
        volumes = {g["tracking_id"]: g["nums"]["Volume"][0] for g in groups if g["template"] == "1411"}
        for info in tp.seg.segments[1:]:
            keys = track[info.tracking_id].keys[t]
            expected = np.isin(lesion_map, [int(k[1:]) for k in keys])
            assert np.array_equal(back == info.segment_number, expected), info.tracking_id
            count = int(np.count_nonzero(back == info.segment_number))
            assert volumes[info.tracking_id] == pytest.approx(count * voxel_mm3, rel=1e-12)
            assert volumes[info.tracking_id] == pytest.approx(
                json_volume[(info.tracking_id, tp.date.isoformat())] * 1000, rel=1e-12
            )
        total = time_point_content(tp.sr_path)["derived"]["Total tumor volume"]
        assert total == pytest.approx(truth["mask_total_tumour_volume_ml"] * 1000, rel=1e-9)  # simulator's count
        assert total == pytest.approx(sum(volumes.values()), rel=1e-12)
        assert total == pytest.approx(tp.timepoint.total_tumor_volume_ml * 1000, rel=1e-12)


@pytest.mark.external
def test_time_points_and_responses(simulated: tuple[Any, FollowUpDicom]) -> None:
    """Time point context per scan; RECIST and volumetric responses as coded evaluations, overall = the truth."""
    patient, done = simulated
    overall_code = {"SD": "SD", "PD": "PD", "PR": "PR", "CR": "CR"}
    target_code = {"CR": "112041", "PR": "112042", "PD": "112043", "SD": "112044"}  # CID 6144
    non_target_code = {"CR": "112045", "NON_CR_NON_PD": "112046", "PD": "112047"}  # CID 6144
    for t, (tp, truth) in enumerate(zip(done.timepoints, patient.truth["scans"])):
        groups = sr_groups(tp.sr_path)
        assert {g["template"] for g in groups} == {"1410", "1411"}  # only lesions under Imaging Measurements
        assert {g["time_point"] for g in groups} == {"baseline" if t == 0 else f"FU{t}"}
        assert {g["time_point_type"] for g in groups} == {"Baseline" if t == 0 else "Posttreatment"}
        content = time_point_content(tp.sr_path)
        # the SR's sum is unrounded; the follow-up decided on target diameters rounded to 0.1 mm (<= 0.05 mm each)
        targets = [les for les in done.result.lesions if les.target]
        sod = content["derived"]["Sum of diameters"]
        assert tp.timepoint.sum_of_diameters_mm is not None
        assert sod == pytest.approx(tp.timepoint.sum_of_diameters_mm, abs=0.05 * len(targets) + 1e-9)
        assert truth["sum_of_diameters_mm"] == pytest.approx(sod, abs=8.0)
        evaluations = content["evaluations"]
        if t == 0:
            assert evaluations == {}
            assert truth["overall_response"] is None
            continue
        r = tp.timepoint
        assert evaluations["Current Response"] == [
            target_code[r.target_response],
            non_target_code[r.non_target_response],
        ]
        assert evaluations["RECIST 1.1 overall response"] == [overall_code[r.overall_response]]
        assert r.overall_response == truth["overall_response"]  # the simulator's analytic RECIST assessment
        assert evaluations["Volumetric response"] == [target_code[r.volumetric_response]]
    assert [t.timepoint.overall_response for t in done.timepoints] == [None, "SD", "PD"]


# ---------------------------------------------------------------------------------------------------------------
# Split and merged lesions (phantom written as DICOM)

SPLIT_MERGE = (
    PhantomLesion("A", (30.0, 0.0, 0.0), (12.0, 0.0, 0.0)),
    PhantomLesion("A1", (22.0, 0.0, 0.0), (0.0, 6.0, 10.5)),  # A splits into A1 and A2 ...
    PhantomLesion("A2", (40.0, 0.0, 0.0), (0.0, 6.0, 10.5)),
    PhantomLesion("B", (-10.0, 0.0, 0.0), (8.0, 8.0, 10.5)),
    PhantomLesion("M", (5.0, 0.0, 0.0), (0.0, 0.0, 10.5)),  # ... and everything coalesces at the third scan
)
SPLIT_MERGE_POSES = (
    POSES[0],
    Pose((1.0, 0.0, 2.0), (20.0, -10.0, 5.0)),
    Pose((0.0, 2.0, -2.0), (-25.0, 15.0, 0.0)),
)


def write_dicom_phantom(
    folder: Path,
    *,
    dicom: bool = True,
    lesions: tuple[PhantomLesion, ...] = SPLIT_MERGE,
    poses: tuple[Pose, ...] = SPLIT_MERGE_POSES,
) -> Path:
    """A phantom (by default the split/merge one): CT as DICOM series (or NIfTI), label maps as NIfTI; returns the
    manifest."""
    rows = []
    for t in range(len(poses)):
        image, labels, _ = render(t, lesions=lesions, poses=poses)
        day = DATES[t].strftime("%Y%m%d")
        if dicom:
            write_dicom_series(image, folder / day / "ct", study_date=DATES[t], patient_id="PHANTOM-2")
        else:
            write_image(image, folder / day / "ct.nii.gz")
        write_image(labels, folder / day / "seg.nii.gz")
        image_col = f"{day}/ct" if dicom else f"{day}/ct.nii.gz"
        rows.append(
            {"date": DATES[t].isoformat(), "image": image_col, "seg": f"{day}/seg.nii.gz", "patient_id": "P2"}
        )
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dicom_phantom(tmp_path_factory.mktemp("split_merge"))


@pytest.mark.external
def test_split_lesion_is_one_segment_and_a_merged_lesion_joins_its_partner(phantom: Path, tmp_path: Path) -> None:
    done = write_followup_dicom(phantom, tmp_path / "out")
    a, b = done.result.tracking.tracks
    assert len(a.keys[1]) == 2  # truth of the phantom: A in two fragments, then B merged into A
    assert a.status == "present"
    assert b.merged_into[2] == "L1"
    uids = {les.lesion_id: les.tracking_uid for les in done.result.lesions}

    # scan 2: A in two fragments = ONE segment with A's UID, two planar groups (one per fragment) summing to A's LD
    t1 = done.timepoints[1]
    assert t1.seg.path is not None
    image = done.result.scans[1].image
    back = np.asarray(read_segmentation(t1.seg.path, reference=image.geometry).array)
    truth = np.asarray(render(1, lesions=SPLIT_MERGE, poses=SPLIT_MERGE_POSES)[2].array)
    seg_a = next(s for s in t1.seg.segments if s.tracking_id == "L1")
    assert seg_a.tracking_uid == uids["L1"]
    assert np.array_equal(back == seg_a.segment_number, np.isin(truth, [2, 3]))  # A1 and A2 (truth indices 2, 3)
    groups = sr_groups(t1.sr_path)
    planar_a = [g for g in groups if g["template"] == "1410" and g["tracking_id"] == "L1"]
    assert len(planar_a) == 2
    assert {g["tracking_uid"] for g in planar_a} == {uids["L1"]}
    point = next(p for p in done.result.lesions[0].points if p.date == t1.date)
    assert sum(g["nums"]["Long Axis"][0] for g in planar_a) == pytest.approx(point.long_axis_mm)
    volume_a = next(g for g in groups if g["template"] == "1411" and g["tracking_id"] == "L1")["nums"]["Volume"][0]
    voxel_mm3 = float(np.prod(image.geometry.spacing_mm))
    assert volume_a == pytest.approx(np.count_nonzero(np.isin(truth, [2, 3])) * voxel_mm3)

    # scan 3: B merged into A: one lesion segment, A's UID, holding the whole blob; B's UID is nowhere
    t2 = done.timepoints[2]
    assert [(s.kind, s.tracking_id, s.tracking_uid) for s in t2.seg.segments[1:]] == [("lesion", "L1", uids["L1"])]
    assert uids["L2"] not in {g["tracking_uid"] for g in sr_groups(t2.sr_path)}
    assert t2.seg.path is not None
    back = np.asarray(read_segmentation(t2.seg.path, reference=image.geometry).array)
    truth = np.asarray(render(2, lesions=SPLIT_MERGE, poses=SPLIT_MERGE_POSES)[2].array)
    assert np.array_equal(back == 2, truth > 0)
    for t in done.timepoints:
        assert dciodvfy_errors(t.sr_path) == []
        assert t.seg.path is not None
        assert dciodvfy_errors(t.seg.path) == []

    # PixelMed on the report with the fragments: only its cross-template reports (see test_dicom_export.py)
    report = pixelmed_report(t1.sr_path)
    assert "Found Root Template TID_1500 (MeasurementReport)" in report
    ds = pydicom.dcmread(t1.sr_path)
    measurements = next(i for i in ds.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "126010")
    kinds = {f"1.8.{n}": template_of(g) for n, g in enumerate(measurements.ContentSequence, start=1)}
    for line in (line for line in report.splitlines() if line.startswith("Error")):
        assert "Missing conditional content item" in line or "present when condition not satisfied" in line, line
        tid = line.split("Template ")[1].split(" ")[0]
        assert tid in ("1410", "1411"), line
        assert kinds[line.split("within ")[1].split(":")[0]] != tid, line


@pytest.mark.external
def test_a_disappeared_lesion_keeps_a_zero_record_with_its_tracking_uid(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The follow-up phantom (tests/_followup_helpers.LESIONS): C vanishes at the third scan, D merges with E at
    the fourth. C keeps a qualitative evaluation "Disappeared" with its UID, volume 0 mm3 and long axis 0 mm
    (RECIST 1.1 records a disappeared target as 0 mm), and no measurement group; a merged lesion has neither."""
    manifest = write_dicom_phantom(tmp_path_factory.mktemp("vanish"), lesions=LESIONS, poses=POSES)
    done = write_followup_dicom(manifest, tmp_path_factory.mktemp("vanish_out"))
    check_followup(done)
    by_status = {les.status: les for les in done.result.lesions}
    gone, merged = by_status["disappeared"], by_status["merged"]
    before = sr_groups(done.timepoints[1].sr_path)
    assert [g["template"] for g in before if g["tracking_uid"] == gone.tracking_uid] == ["1411", "1410"]
    for t in (2, 3):  # C has no voxel on the third and fourth scans (truth: radius 0)
        path = done.timepoints[t].sr_path
        assert gone.tracking_uid not in {g["tracking_uid"] for g in sr_groups(path)}  # no measurement group
        (record,) = [g for g in time_point_content(path)["gone"] if g["tracking_uid"] == gone.tracking_uid]
        assert record == {
            "status": "Disappeared",
            "tracking_id": gone.lesion_id,
            "tracking_uid": gone.tracking_uid,
            "nums": {"Long Axis": 0.0, "Volume": 0.0},  # RECIST 1.1: a disappeared target is 0 mm
        }
        assert not any(s.tracking_uid == gone.tracking_uid for s in done.timepoints[t].seg.segments)
        assert dciodvfy_errors(path) == []
    # PixelMed: the record is a qualitative evaluation (TID 1500 row 13), checked with no error; its four
    # properties extend the (extensible) template, which PixelMed reports as warnings "Content Item not in template"
    path = done.timepoints[2].sr_path
    report = pixelmed_report(path)
    assert "Root Template Validation Complete" in report
    about = [line for line in report.splitlines() if "LESSTAT" in line]
    assert about, report[-2000:]
    for line in about:
        assert line.startswith("Warning"), line
        assert line.endswith("Content Item not in template"), line
        assert line.split("CODE (LESSTAT,99HEPAVOL,")[1].count("/") == 1, line  # a child of the record
    assert merged.tracking_uid not in {g["tracking_uid"] for g in sr_groups(done.timepoints[3].sr_path)}


def test_cli_manifest_writes_the_files_and_prints_the_table(
    phantom: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dicom"
    assert main(["export", "sr", "--manifest", str(phantom), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"wrote 6 DICOM file(s) to {out}" in text
    last = next(line.split() for line in text.splitlines() if line.startswith("2024-05-01"))
    assert last[:5] == ["2024-05-01", "FU2", "2024-05-01_SEG.dcm", "2024-05-01_SR.dcm", "1"]  # one merged blob
    blob = render(2, lesions=SPLIT_MERGE, poses=SPLIT_MERGE_POSES)[2]
    voxel_ml = float(np.prod(blob.geometry.spacing_mm)) / 1000.0
    assert float(last[5]) == pytest.approx(np.count_nonzero(blob.array) * voxel_ml, abs=0.05)  # TTV, mL
    assert 71 - 1 <= float(last[6]) <= 71 + 5  # the blob spans x = -20.5 .. 50.5 mm (test_followup_pipeline.py)
    assert last[7:] == ["PD", "PD"]  # +78 % sum of diameters over the nadir; total volume doubled
    assert sorted(p.name for p in out.iterdir()) == [
        f"{d.isoformat()}_{kind}.dcm" for d in DATES[:3] for kind in ("SEG", "SR")
    ]


def test_manifest_errors(phantom: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nifti = write_dicom_phantom(tmp_path / "nifti", dicom=False)
    with pytest.raises(
        InputError, match=r"line 2 \(2024-01-01\): image .*ct\.nii\.gz' is not a DICOM series folder"
    ):
        write_followup_dicom(nifti, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert main(["export", "sr", str(tmp_path), "--manifest", str(phantom), "--out", str(tmp_path / "o")]) == 2
    assert "takes no SOURCE" in capsys.readouterr().err
    assert main(["export", "sr", "--out", str(tmp_path / "o")]) == 2
    assert "or --manifest MANIFEST" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        write_followup_dicom(phantom, tmp_path / "file")
    assert not (tmp_path / "o").exists()


@pytest.mark.external
def test_legacy_follow_up_without_frame_of_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The split/merge phantom with FrameOfReferenceUID deleted from every CT file (a legacy export): each scan's
    SEG gets the frame of reference derived from its own series (one warning per scan), the SR/SEG pass the
    outside validators; --no-derive-frame-of-reference refuses with exit 2 and writes nothing."""
    manifest = write_dicom_phantom(tmp_path / "in")
    series = {}
    for f in sorted((tmp_path / "in").rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        del ds.FrameOfReferenceUID
        ds.save_as(f)
        series[f.parent.parent.name] = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))
    out = tmp_path / "dicom"
    assert (
        main(["export", "sr", "--manifest", str(manifest), "--out", str(out), "--no-derive-frame-of-reference"])
        == 2
    )
    assert "error: FrameOfReferenceUID (0020,0052) is missing" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
    assert main(["export", "sr", "--manifest", str(manifest), "--out", str(out)]) == 0
    warnings = [w for w in capsys.readouterr().err.splitlines() if "no FrameOfReferenceUID (0020,0052)" in w]
    assert len(warnings) == len(series) == 3
    for day, (study, uid) in series.items():
        seg_path = out / f"{day[:4]}-{day[4:6]}-{day[6:]}_SEG.dcm"
        seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
        assert seg.FrameOfReferenceUID == derived_frame_of_reference_uid(study, uid)
        assert uid in seg.ImageComments
        check_seg(seg_path)
        check_sr(seg_path.with_name(seg_path.name.replace("_SEG", "_SR")), seg_uid=str(seg.SOPInstanceUID))
    assert (
        len({pydicom.dcmread(p, stop_before_pixels=True).FrameOfReferenceUID for p in out.glob("*_SEG.dcm")}) == 3
    )
