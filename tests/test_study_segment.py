"""``hepavol study segment``: the liver and the lesions of the site's RECIST lines (DICOM SR TID 1500 or CSV),
proposed for every scan without an accepted mask, resumably; bad seeds refused with the reason.

Reference: the simulator's truth (``hepavol simulate``, seed 0, patient 0: 3 CT scans on the small grid, 4
lesions of about 22, 4, 1 and 1 mL at baseline). The RECIST lines are the truth's (the long axis of each lesion's
true mask). Measured at the commit that added this file, Dice of each proposed lesion against its true mask:
lesion 1 0.958-0.979, lesion 2 0.596-0.749, lesions 3-4 0.868-1.0; the liver 0.97.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import ndimage
from sqlalchemy import func, select
from tests._segment_seed_helpers import simulated_tree, truth_lines, write_recist_sr

from hepavol.errors import InputError
from hepavol.io import read_image, read_segmentation
from hepavol.study.dicom_import import import_dicom_tree
from hepavol.study.models import AuditEntry, ImagingStudy, LesionSeed, Segmentation
from hepavol.study.seeds import import_seed_table
from hepavol.study.segmenting import segment_study
from hepavol.study.workspace import Workspace, init_workspace

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The simulated patient's DICOM tree (no SEG) with an SR of the truth's RECIST lines in each study."""
    return simulated_tree(tmp_path_factory.mktemp("segment"), seed=0, index=0)


@pytest.fixture(scope="module")
def plain_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The same patient without SR (for CSV seeds and bad SRs)."""
    return simulated_tree(tmp_path_factory.mktemp("segment_plain"), seed=0, index=0, sr=False)


def _workspace(tmp_path: Path, root: Path) -> Workspace:
    ws = init_workspace(tmp_path / "study")
    import_dicom_tree(ws, root, workers=1)
    return ws


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def _proposals(ws: Workspace) -> list[tuple[str, Segmentation]]:
    with ws.db.transaction() as session:
        rows = session.execute(
            select(ImagingStudy.study_date, Segmentation)
            .join(Segmentation.series)
            .join(ImagingStudy)
            .order_by(ImagingStudy.study_date, Segmentation.id)
        ).all()
        session.expunge_all()
    return [(d.isoformat(), s) for d, s in rows]


def test_lesions_from_sr_recist_lines_and_the_liver_match_the_truth(
    tmp_path: Path, tree: tuple[Path, dict[str, Any]]
) -> None:
    root, truth = tree
    ws = _workspace(tmp_path, root)
    with ws.db.transaction() as session:
        seeds = session.scalars(select(LesionSeed)).all()
        assert len(seeds) == 12  # 4 lesions x 3 scans, one Long Axis each
        assert {s.source for s in seeds} == {"dicom-sr"}
        assert all(s.problem is None for s in seeds)
    summary = segment_study(ws)
    assert (summary.proposed, summary.lesions_from_seeds, summary.refused_seeds) == (3, 12, [])
    folder = Path(truth["folder"])
    for day, seg in _proposals(ws):
        assert (seg.state, seg.active, seg.source) == ("proposed", True, "hepavol-segment")
        provenance = seg.provenance or {}
        assert provenance["method"] == "hepavol study segment"
        assert [les["source"] for les in provenance["lesions"]] == ["dicom-sr"] * 4
        assert provenance["lesions"][0]["origin"].startswith("SR ")
        proposal = read_image(seg.path)
        labels = np.asarray(proposal.array)
        scan = next(s for s in truth["scans"] if s["date"] == day)
        true_labels = np.asarray(read_segmentation(folder / scan["seg"], reference=proposal.geometry).array)
        assert _dice(labels > 0, true_labels > 0) >= 0.95  # the liver (tumours included)
        instances = np.asarray(read_image(folder / scan["instances"]).array)
        components, _n = ndimage.label(labels == 2, structure=np.ones((3, 3, 3)))
        for lesion in (1, 2, 3, 4):
            true = instances == lesion
            k = int(np.argmax(np.bincount(components[true], minlength=2)[1:])) + 1
            assert _dice(true, components == k) >= (0.9 if lesion == 1 else 0.55), (day, lesion)
    again = segment_study(ws)  # nothing changed: nothing to do
    assert (again.proposed, again.up_to_date) == (0, 3)
    ws.close()


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _lines_by_date(truth: dict[str, Any]) -> dict[str, list[tuple[str, np.ndarray, np.ndarray]]]:
    folder = Path(truth["folder"])
    return {s["date"]: truth_lines(folder / s["instances"]) for s in truth["scans"]}


def test_csv_seeds_in_lps_mm_and_in_voxel_indices_give_the_same_masks(
    tmp_path: Path, plain_tree: tuple[Path, dict[str, Any]]
) -> None:
    root, truth = plain_tree
    lines = _lines_by_date(truth)
    pid = truth["patient_id"]
    lps_rows = [
        {"patient_id": pid, "date": day, "x1": a[0], "y1": a[1], "z1": a[2], "x2": b[0], "y2": b[1], "z2": b[2],
         "lesion_id": label}
        for day, items in lines.items() for label, a, b in items
    ]  # fmt: skip
    lps = _write_csv(
        tmp_path / "seeds_lps.csv",
        lps_rows,
        ["patient_id", "date", "x1", "y1", "z1", "x2", "y2", "z2", "lesion_id"],
    )
    ws = _workspace(tmp_path / "a", root)
    assert import_seed_table(ws, lps).describe() == "12 seed(s) (12 new, 0 that cannot be used)"
    assert import_seed_table(ws, lps).seeds_new == 0  # the same seeds again add nothing
    assert segment_study(ws).lesions_from_seeds == 12
    by_lps = {day: seg.content_hash for day, seg in _proposals(ws)}
    ws.close()

    index_rows = []
    for row in lps_rows:
        scan = next(s for s in truth["scans"] if s["date"] == row["date"])
        geometry = read_image(Path(truth["folder"]) / scan["image"]).geometry
        a = geometry.lps_to_index(np.array([row["x1"], row["y1"], row["z1"]]))
        b = geometry.lps_to_index(np.array([row["x2"], row["y2"], row["z2"]]))
        index_rows.append({"patient_id": row["patient_id"], "date": row["date"], "slice1": a[0], "row1": a[1],
                           "column1": a[2], "slice2": b[0], "row2": b[1], "column2": b[2]})  # fmt: skip
    columns = ["patient_id", "date", "slice1", "row1", "column1", "slice2", "row2", "column2"]
    index = _write_csv(tmp_path / "seeds_index.csv", index_rows, columns)
    ws = _workspace(tmp_path / "b", root)
    import_seed_table(ws, index)
    assert segment_study(ws).lesions_from_seeds == 12
    assert {day: seg.content_hash for day, seg in _proposals(ws)} == by_lps
    ws.close()


def test_bad_seeds_are_refused_with_the_reason_and_the_others_go_on(
    tmp_path: Path, plain_tree: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    from hepavol.cli import main

    root, truth = plain_tree
    day = truth["scans"][0]["date"]
    pid = truth["patient_id"]
    (_l1, a1, b1), (_l2, a2, b2) = _lines_by_date(truth)[day][:2]
    mid, half = (a1 + b1) / 2, (b1 - a1) / 2
    across = np.array([-half[1], half[0], 0.0]) * 0.5  # perpendicular, in the slice: the short axis of lesion 1
    rows = [
        {"x1": a1[0], "y1": a1[1], "z1": a1[2], "x2": b1[0], "y2": b1[1], "z2": b1[2]},  # line 2: lesion 1
        {"x1": 5000.0, "y1": a2[1], "z1": a2[2], "x2": b2[0], "y2": b2[1], "z2": b2[2]},  # line 3: outside
        {"x1": a2[0], "y1": a2[1], "z1": a2[2], "x2": b2[0], "y2": b2[1], "z2": b2[2] + 20.0},  # line 4: two slices
        {"x1": (mid - across)[0], "y1": (mid - across)[1], "z1": mid[2],
         "x2": (mid + across)[0], "y2": (mid + across)[1], "z2": mid[2]},  # line 5: crosses line 2
        {"x1": a2[0], "y1": a2[1], "z1": a2[2], "x2": b2[0], "y2": b2[1], "z2": b2[2]},  # line 6: lesion 2
        {"x1": (a2 + b2)[0] / 2, "y1": (a2 + b2)[1] / 2, "z1": a2[2], "x2": "", "y2": "", "z2": ""},  # 7: in it
    ]  # fmt: skip
    for row in rows:
        row.update(patient_id=pid, date=day)
    table = _write_csv(tmp_path / "seeds.csv", rows, ["patient_id", "date", "x1", "y1", "z1", "x2", "y2", "z2"])
    ws = _workspace(tmp_path, root)
    import_seed_table(ws, table)
    root_arg = str(ws.root)
    ws.close()
    assert main(["study", "segment", "--study", root_arg, "--patients", _pseudonym(root_arg, pid)]) == 0
    captured = capsys.readouterr()
    refused = [line for line in captured.err.splitlines() if line.startswith("seed refused:")]
    assert len(refused) == 4
    assert any("seeds.csv, line 3 (RECIST line)" in r and "lies outside the image" in r for r in refused)
    assert any("seeds.csv, line 4" in r and "its ends are on slices" in r for r in refused)
    assert any(
        "seeds.csv, line 5" in r and "two lines for one lesion: it crosses seeds.csv, line 2" in r for r in refused
    )
    assert any(
        "seeds.csv, line 7 (seed point)" in r and "two seeds for one lesion" in r and "line 6" in r
        for r in refused
    )
    assert "lesions: 2 from seeds" in captured.out


def _pseudonym(root: str, original: str) -> str:
    from hepavol.study.workspace import find_workspace

    ws = find_workspace(root)
    try:
        return str(ws.pseudonymiser().pseudonym(original))
    finally:
        ws.close()


def test_seed_table_errors_name_the_line_and_the_fix(
    tmp_path: Path, plain_tree: tuple[Path, dict[str, Any]]
) -> None:
    root, truth = plain_tree
    pid, day = truth["patient_id"], truth["scans"][0]["date"]
    ws = _workspace(tmp_path, root)
    cases = [
        ("x1,y1,z1,x2,y2,z2\n", f"{pid},{day},1,2,3,4,,6", r"line 2: y2 empty: give both ends of the RECIST line"),
        ("x1,y1,z1,slice1,row1,column1\n", f"{pid},{day},1,2,3,1,2,3", r"has both x1,y1,z1 .* and slice1"),
        ("x1,y1,z1\n", f"{pid},2001-01-01,1,2,3", r"has no scan on 2001-01-01 \(scans: "),
        ("x1,y1,z1\n", f"{pid},{day},one,2,3", r"line 2: x1 'one' is not a number"),
        ("x1,y1,z1\n", f"NOBODY,{day},1,2,3", r"patient 'NOBODY' is not in the study"),
    ]
    for i, (header, row, pattern) in enumerate(cases):
        path = tmp_path / f"bad{i}.csv"
        path.write_text("patient_id,date," + header.replace("\n", "") + "\n" + row + "\n")
        with pytest.raises(InputError, match=pattern):
            import_seed_table(ws, path)
    with ws.db.transaction() as session:
        assert session.scalar(select(func.count(LesionSeed.id))) == 0  # nothing half-imported
    ws.close()


def _second_series(study_dir: Path, *, same_frame: bool) -> Path:
    """A copy of the study's series as another series ('ABDOMEN ARTERIAL'), in the same frame of reference or not."""
    import pydicom

    from hepavol.io import write_dicom_series

    series = study_dir / "series_001"
    ds = pydicom.dcmread(sorted(series.glob("*.dcm"))[0], stop_before_pixels=True)
    out = study_dir / "series_002"
    write_dicom_series(
        read_image(series),
        out,
        modality="CT",
        series_description="ABDOMEN ARTERIAL",
        patient_id=str(ds.PatientID),
        patient_name=str(ds.PatientName),
        study_date=str(ds.StudyDate),
        study_instance_uid=str(ds.StudyInstanceUID),
        frame_of_reference_uid=str(ds.FrameOfReferenceUID) if same_frame else None,
        series_number=2,
    )
    return out


@pytest.mark.parametrize("same_frame", [True, False])
def test_a_line_on_another_series_is_mapped_through_the_frame_of_reference_or_refused(
    tmp_path: Path, plain_tree: tuple[Path, dict[str, Any]], same_frame: bool
) -> None:
    source, truth = plain_tree
    root = tmp_path / "tree"
    shutil.copytree(source, root)
    first = truth["scans"][0]
    study_dir = root / truth["patient_id"] / Path(first["image"]).parent
    other = _second_series(study_dir, same_frame=same_frame)
    lines = truth_lines(Path(truth["folder"]) / first["instances"])[:1]
    write_recist_sr(other, lines, study_dir / "sr" / "SR.dcm")
    ws = init_workspace(tmp_path / "study")
    imported = import_dicom_tree(ws, root, workers=1)
    with ws.db.transaction() as session:
        seed = session.scalars(select(LesionSeed)).one()
        chosen = session.scalars(select(ImagingStudy)).first()
        assert chosen is not None
        assert next(s for s in chosen.series if s.chosen).description == "ABDOMEN PORTAL VENOUS"
        if same_frame:
            assert seed.problem is None
            assert "drawn on 'ABDOMEN ARTERIAL', mapped to the measured series 'ABDOMEN PORTAL VENOUS' through their " \
                   "shared frame of reference" in seed.origin  # fmt: skip
        else:
            assert seed.problem is not None
            assert "share no frame of reference, so the line cannot be mapped" in seed.problem
            assert any("not used as a seed" in w for w in imported.warnings)
    summary = segment_study(ws)
    assert summary.lesions_from_seeds == (1 if same_frame else 0)
    if not same_frame:
        assert any("share no frame of reference" in reason for _p, _d, reason in summary.refused_seeds)
    ws.close()


def test_an_sr_without_image_references_or_off_its_image_is_refused(
    tmp_path: Path, plain_tree: tuple[Path, dict[str, Any]]
) -> None:
    source, truth = plain_tree
    root = tmp_path / "tree"
    shutil.copytree(source, root)
    first, second = truth["scans"][:2]
    for scan, kwargs in ((first, {"image_references": False}), (second, {"shift_columns": 500.0})):
        study_dir = root / truth["patient_id"] / Path(scan["image"]).parent
        lines = truth_lines(Path(truth["folder"]) / scan["instances"])[:1]
        write_recist_sr(study_dir / "series_001", lines, study_dir / "sr" / "SR.dcm", **kwargs)
    ws = init_workspace(tmp_path / "study")
    summary = import_dicom_tree(ws, root, workers=1)
    warnings = " ".join(summary.warnings)
    assert "its SCOORD names no image (no SELECTED FROM IMAGE reference)" in warnings
    assert "the line lies outside the image it was drawn on: (column, row) (" in warnings
    assert "but the image has 160 columns and 160 rows" in warnings
    ws.close()


def test_the_tid1500_sample_linear_measurement_is_read_and_placed(
    tmp_path: Path, plain_tree: tuple[Path, dict[str, Any]]
) -> None:
    """Fraunhofer MEVIS tid1500-fhir, rsna2018_dataset4/1.dcm: one Length of 66.43856134 mm as a SCOORD POLYLINE
    (172.835/270.0641, 133.7989/343.0453 in its dcmtk dump) on an image that is not shipped."""
    import pydicom

    from hepavol.io.sr_read import read_linear_measurements

    sample = DATA / "tid1500_fhir/examples/rsna2018_dataset4/1.dcm"
    (m,) = read_linear_measurements(sample)
    assert (m.concept, m.value_mm) == ("Length", pytest.approx(66.43856134))
    assert np.allclose(m.points, [(172.835, 270.0641), (133.7989, 343.0453)], atol=1e-3)
    assert m.referenced_sop_uid == "1.3.6.1.4.1.14519.5.2.1.9203.4004.268018422288818573226516023762"
    assert m.tracking_uid == "1.3.6.1.4.1.5962.1.1.0.0.0.1535644357.22655.1"
    assert read_linear_measurements(DATA / "tid1500_fhir/examples/dcmqi/result.dcm") == []  # volumes only
    # the sample placed in the simulated patient's first study: its image is not in the export
    source, truth = plain_tree
    root = tmp_path / "tree"
    shutil.copytree(source, root)
    study_dir = root / truth["patient_id"] / Path(truth["scans"][0]["image"]).parent
    image = pydicom.dcmread(sorted((study_dir / "series_001").glob("*.dcm"))[0], stop_before_pixels=True)
    ds = pydicom.dcmread(sample)
    ds.PatientID, ds.StudyInstanceUID = image.PatientID, image.StudyInstanceUID
    (study_dir / "sr").mkdir()
    ds.save_as(study_dir / "sr" / "sample.dcm")
    ws = init_workspace(tmp_path / "study")
    summary = import_dicom_tree(ws, root, workers=1)
    assert "new lesion seed(s) from DICOM SR" in summary.describe()
    assert any(
        "measurement group 1 (Length 66.4 mm): it was drawn on image 1.3.6.1.4.1.14519.5.2.1.9203.4004.26801842228"
        "8818573226516023762, which is not in the export" in w
        for w in summary.warnings
    )
    ws.close()


def test_accepted_masks_are_left_alone(tmp_path: Path, tree: tuple[Path, dict[str, Any]]) -> None:
    from hepavol.study.importer import import_segmentations

    root, truth = tree
    ws = _workspace(tmp_path, root)
    first = truth["scans"][0]
    expert = Path(truth["folder"]) / first["seg"]  # the simulator's DICOM SEG: an expert mask
    pid = truth["patient_id"]
    import_segmentations(ws, seg=expert, patient_id=pid, date=first["date"])
    summary = segment_study(ws)
    assert (summary.proposed, summary.accepted) == (2, 1)
    # an expert mask imported after the proposal replaces it as the measured one
    second = truth["scans"][1]
    import_segmentations(ws, seg=Path(truth["folder"]) / second["seg"], patient_id=pid, date=second["date"])
    rows = _proposals(ws)
    active = {day: (seg.state, seg.source) for day, seg in rows if seg.active}
    assert active == {
        first["date"]: ("accepted", "dicom-seg"),
        second["date"]: ("accepted", "dicom-seg"),
        truth["scans"][2]["date"]: ("proposed", "hepavol-segment"),
    }
    again = segment_study(ws)
    assert (again.proposed, again.accepted, again.up_to_date) == (0, 2, 1)
    ws.close()


def test_a_killed_segment_run_resumes(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Two patients; the run is killed (SIGKILL) once the first patient is stored; the next run does the rest,
    and the masks are those of an uninterrupted run."""
    out = tmp_path_factory.mktemp("resume")
    root_a, _ = simulated_tree(out / "a", seed=0, index=0)
    root_b, _ = simulated_tree(out / "b", seed=0, index=1)
    root = out / "tree"
    shutil.copytree(root_a, root)
    shutil.copytree(root_b, root, dirs_exist_ok=True)
    ws = _workspace(tmp_path / "killed", root)
    study = str(ws.root)
    ws.close()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "hepavol", "study", "segment", "--study", study],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    ws = init_workspace_open(study)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            with ws.db.transaction() as session:
                stored = session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "segment"))
            if stored:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
        first = len(_proposals(ws))
        assert first in (3, 4, 5, 6)  # the first patient's scans, and perhaps more
        summary = segment_study(ws)  # the lease of the killed process is taken over at once
        assert summary.proposed + first == 6
        resumed = {(day, seg.content_hash) for day, seg in _proposals(ws)}
    finally:
        ws.close()
    reference = _workspace(tmp_path / "whole", root)
    assert segment_study(reference).proposed == 6
    assert {(day, seg.content_hash) for day, seg in _proposals(reference)} == resumed
    reference.close()


def init_workspace_open(root: str) -> Workspace:
    from hepavol.study.workspace import find_workspace

    return find_workspace(root)


def _erase_lesion(series: Path, instances: Path, truth_seg: Path, lesion: int, seed: int = 7) -> None:
    """Paint lesion ``lesion`` of a scan over with parenchyma (values drawn from the scan's own liver voxels):
    a lesion that has disappeared (a complete response). The series is written again with its UIDs."""
    import pydicom

    from hepavol.io import write_dicom_series

    ds = pydicom.dcmread(sorted(series.glob("*.dcm"))[0], stop_before_pixels=True)
    image = read_image(series)
    data = np.asarray(image.array).copy()
    inst = np.asarray(read_image(instances).array)
    liver = np.asarray(read_segmentation(truth_seg, reference=image.geometry).array) == 1
    gone = ndimage.binary_dilation(inst == lesion, iterations=1)
    rng = np.random.default_rng(seed)
    data[gone] = rng.choice(data[liver & ~gone & (inst == 0)], size=int(gone.sum()))
    shutil.rmtree(series)
    write_dicom_series(
        image.with_array(data),
        series,
        modality="CT",
        series_description=str(ds.SeriesDescription),
        patient_id=str(ds.PatientID),
        patient_name=str(ds.PatientName),
        study_date=str(ds.StudyDate),
        study_instance_uid=str(ds.StudyInstanceUID),
        series_instance_uid=str(ds.SeriesInstanceUID),
        frame_of_reference_uid=str(ds.FrameOfReferenceUID),
    )


def test_accepted_lesions_are_carried_forward_with_their_identity_and_a_gone_one_is_disappeared(
    tmp_path: Path, plain_tree: tuple[Path, dict[str, Any]]
) -> None:
    """The baseline's expert mask (the simulator's SEG) is accepted; the two follow-ups have no seeds. Every
    baseline lesion is carried to them through the registration; on the last scan lesion 4 was painted over
    with parenchyma and must be proposed as disappeared. Reference: the truth masks of each scan. Measured at
    this commit (without the painted-over lesion), Dice of L1-L4: 0.972, 0.977, 0.945, 1.0 (first follow-up),
    0.944, 0.974, 0.977, 1.0 (last)."""
    from hepavol.study.importer import import_segmentations

    source, truth = plain_tree
    root = tmp_path / "tree"
    shutil.copytree(source, root)
    folder = Path(truth["folder"])
    base, _mid, last = truth["scans"]
    _erase_lesion(root / truth["patient_id"] / last["image"], folder / last["instances"],
                  folder / last["seg"], lesion=4)  # fmt: skip
    ws = _workspace(tmp_path, root)
    import_segmentations(ws, seg=folder / base["seg"], patient_id=truth["patient_id"], date=base["date"])
    summary = segment_study(ws)
    assert (summary.proposed, summary.accepted, summary.lesions_carried_forward, summary.disappeared) == (
        2,
        1,
        7,
        1,
    )
    base_instances = np.asarray(read_image(folder / base["instances"]).array)
    sizes = {k: int((base_instances == k).sum()) for k in (1, 2, 3, 4)}
    assert sorted(sizes, key=lambda k: -sizes[k]) == [1, 2, 3, 4]  # L1..L4 of the baseline = truth lesions 1..4
    for day, seg in _proposals(ws):
        if seg.state != "proposed":
            continue
        scan = next(s for s in truth["scans"] if s["date"] == day)
        provenance = seg.provenance or {}
        carried = provenance["carried_forward"]
        labels = np.asarray(read_image(seg.path).array)
        instances = np.asarray(read_image(folder / scan["instances"]).array)
        components, _n = ndimage.label(labels == 2, structure=np.ones((3, 3, 3)))
        for item in carried:
            assert item["from_date"] == base["date"]
            k = int(item["lesion_id"][1:])  # the baseline's L<k>: truth lesion k
            true = instances == k
            hit = np.bincount(components[true], minlength=2)
            hit[0] = 0
            proposal = components == int(np.argmax(hit))
            # identity: the component on truth lesion k is the one carried as L<k>, and it is no other lesion's
            others = {int(v) for v in np.unique(instances[proposal])} - {0}
            assert others == {k}, (day, item["lesion_id"], others)
            assert _dice(true, proposal) >= 0.9, (day, item["lesion_id"])
        if day == last["date"]:
            assert [g["lesion_id"] for g in provenance["disappeared"]] == ["L4"]
            assert "its place is parenchyma now" in provenance["disappeared"][0]["reason"]
            assert [c["lesion_id"] for c in carried] == ["L1", "L2", "L3"]
            original = np.asarray(read_image(folder / last["instances"]).array) == 4
            assert not (labels[original] == 2).any()  # not an empty mask, no mask at all
        else:
            assert [c["lesion_id"] for c in carried] == ["L1", "L2", "L3", "L4"]
    ws.close()


def test_presentation_state_polylines_and_ellipses_are_seeds(
    tmp_path: Path, plain_tree: tuple[Path, dict[str, Any]]
) -> None:
    """A GSPS with lesion 1's line as a POLYLINE and lesions 2-4's as ELLIPSEs (major axis = the line), plus one
    annotation in DISPLAY units (not image coordinates: skipped); the lesions against the truth as with the SR."""
    from tests._segment_seed_helpers import write_recist_gsps

    from hepavol.io.sr_read import read_presentation_state_lines

    source, truth = plain_tree
    root = tmp_path / "tree"
    shutil.copytree(source, root)
    first = truth["scans"][0]
    study_dir = root / truth["patient_id"] / Path(first["image"]).parent
    folder = Path(truth["folder"])
    lines = truth_lines(folder / first["instances"])
    gsps = write_recist_gsps(study_dir / "series_001", lines, study_dir / "pr" / "GSPS.dcm")
    read = read_presentation_state_lines(gsps)
    assert [m.concept for m in read] == ["polyline"] + ["ellipse major axis"] * 3
    ws = _workspace(tmp_path, root)
    with ws.db.transaction() as session:
        seeds = session.scalars(select(LesionSeed).order_by(LesionSeed.id)).all()
        assert [s.source for s in seeds] == ["gsps"] * 4
        assert all(s.problem is None for s in seeds)
        assert seeds[0].origin.startswith("GSPS ")
        assert "graphic annotation 1 (polyline)" in seeds[0].origin
        # the line's ends back in LPS mm: the truth's end points (to within the pixel-centre rounding of 1e-6 mm)
        assert np.allclose(seeds[0].points_lps_mm, [lines[0][1], lines[0][2]], atol=1e-3)
    summary = segment_study(ws, patients=None)
    assert summary.lesions_from_seeds == 4
    seg = next(s for day, s in _proposals(ws) if day == first["date"])
    proposal = read_image(seg.path)
    labels = np.asarray(proposal.array)
    instances = np.asarray(read_image(folder / first["instances"]).array)
    components, _n = ndimage.label(labels == 2, structure=np.ones((3, 3, 3)))
    assert _dice(instances == 1, _component_at(components, instances == 1)) >= 0.9
    ws.close()


def _component_at(components: np.ndarray, true: np.ndarray) -> np.ndarray:
    hits = np.bincount(components[true], minlength=2)
    hits[0] = 0
    return components == int(np.argmax(hits))


def test_an_unseeded_lesion_is_listed_as_a_candidate_and_not_added(
    tmp_path: Path, plain_tree: tuple[Path, dict[str, Any]]
) -> None:
    """Lines for lesions 1-3 of the baseline only: lesion 4 (hypodense, about 1 mL) is not segmented, but listed
    among the candidates (its centre on the true lesion), and the label map has nothing there."""
    root, truth = plain_tree
    first = truth["scans"][0]
    folder = Path(truth["folder"])
    lines = truth_lines(folder / first["instances"])
    rows = [
        {"patient_id": truth["patient_id"], "date": first["date"], "x1": a[0], "y1": a[1], "z1": a[2],
         "x2": b[0], "y2": b[1], "z2": b[2]}
        for label, a, b in lines if label != "4"
    ]  # fmt: skip
    table = _write_csv(tmp_path / "seeds.csv", rows, ["patient_id", "date", "x1", "y1", "z1", "x2", "y2", "z2"])
    ws = _workspace(tmp_path, root)
    import_seed_table(ws, table)
    summary = segment_study(ws)
    assert summary.candidates >= 1
    seg = next(s for day, s in _proposals(ws) if day == first["date"])
    candidates = (seg.provenance or {})["candidates"]
    proposal = read_image(seg.path)
    instances = np.asarray(read_image(folder / first["instances"]).array)
    on = [
        int(
            instances[
                tuple(int(np.rint(v)) for v in proposal.geometry.lps_to_index(np.asarray(c["centre_lps_mm"])))
            ]
        )
        for c in candidates
    ]
    assert 4 in on
    best = candidates[on.index(4)]
    assert 0.0 < best["confidence"] <= 1.0
    assert not (np.asarray(proposal.array)[instances == 4] == 2).any()  # listed, never added
    ws.close()
