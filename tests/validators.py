"""Outside validators for every DICOM SEG and SR hepavol writes in the tests.

- dcmqi (PyPI ``dcmqi``, QIICR's converters used by 3D Slicer): ``segimage2itkimage`` must give back every
  segment voxel for voxel (mapped through its NRRD geometry to LPS, then onto the source grid or onto the
  SEG's own frame positions); ``tid1500reader`` must parse every SR with the tracking ids, TrackingUIDs,
  referenced segments, SEG UID and volumes that highdicom reads (and that hepavol reported, when given).
- highdicom's readers: ``hd.seg.segread`` and ``hd.sr.srread`` with the MeasurementReport accessors.
- dciodvfy (Debian dicom3tools): no ``Error`` line.
- PixelMed's DicomSRValidator (Debian pixelmed-apps) on every SR: no error of a group against its own template
  (:func:`pixelmed_errors`; one JVM per test process, tests/_pixelmed.py, about 6 s per file).

``conftest.py`` calls :func:`validate_written` after every test on each SEG/SR written by hepavol into the
test's ``tmp_path``, and after every test module on the folders it made with ``tmp_path_factory`` (a file checked
once is not checked again); tests with expected values call :func:`check_seg` / :func:`check_sr` themselves.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tests._dicom_export_helpers import dciodvfy_errors, require, template_of
from tests._pixelmed import pixelmed_report

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
SR_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.34",
    "1.2.840.10008.5.1.4.1.1.88.33",
    "1.2.840.10008.5.1.4.1.1.88.22",
}
#: Files already validated in this process (path, mtime): reuse, do not validate twice.
_CHECKED: set[tuple[str, float]] = set()


def _key(path: Path) -> tuple[str, float]:
    return (str(path.resolve()), path.stat().st_mtime)


def _dcmqi(tool: str) -> str:
    """A dcmqi converter from the test extra (``pip install -e '.[test]'`` installs PyPI ``dcmqi``)."""
    import shutil
    import sys

    exe = Path(sys.executable).parent / tool
    path = str(exe) if exe.exists() else shutil.which(tool)
    assert path, f"{tool} is missing: install the test extra (pip install -e '.[test]', PyPI dcmqi)"
    return path


def _frame_voxels_lps(seg: Any) -> dict[int, np.ndarray]:
    """Per segment number, LPS centres (mm) of the foreground pixels of the SEG's frames (pydicom only)."""
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), int(seg.Rows), int(seg.Columns))
    shared = seg.SharedFunctionalGroupsSequence[0]
    out: dict[int, list[np.ndarray]] = {}
    for k, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):

        def attr(name: str, frame: Any = frame) -> Any:
            return frame if name in frame else shared

        number = int(
            attr("SegmentIdentificationSequence").SegmentIdentificationSequence[0].ReferencedSegmentNumber
        )
        pos = np.array(frame.PlanePositionSequence[0].ImagePositionPatient, float)
        iop = np.array(attr("PlaneOrientationSequence").PlaneOrientationSequence[0].ImageOrientationPatient, float)
        dr, dc = (float(v) for v in attr("PixelMeasuresSequence").PixelMeasuresSequence[0].PixelSpacing)
        rows, cols = np.nonzero(pixels[k])
        pts = pos + np.outer(cols * dc, iop[:3]) + np.outer(rows * dr, iop[3:])
        out.setdefault(number, []).append(pts)
    return {n: np.concatenate(v) for n, v in out.items()}


def _same_points(a: np.ndarray, b: np.ndarray, *, tol_mm: float = 0.01) -> bool:
    """Whether two (N, 3) arrays of LPS points (mm) are the same set of points (each equal to ``tol_mm``).

    Both are sorted by one int64 key (coordinates on a 0.05 mm grid, within +-13 m) and then compared.
    """
    if a.shape != b.shape:
        return False

    def ordered(x: np.ndarray) -> np.ndarray:
        q = np.rint(x / 0.05).astype(np.int64) + (1 << 18)
        key = (q[:, 0] << 38) | (q[:, 1] << 19) | q[:, 2]
        return x[np.argsort(key, kind="stable")]

    return bool(np.allclose(ordered(a), ordered(b), rtol=0.0, atol=tol_mm))


def dcmqi_segments(path: Path) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
    """``segimage2itkimage`` on a SEG: per segment number the LPS centres (mm) of its voxels, and meta.json."""
    import SimpleITK as sitk

    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(
            [_dcmqi("segimage2itkimage"), "--inputDICOM", str(path), "--outputDirectory", tmp],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, f"segimage2itkimage failed on {path}: {run.stdout}{run.stderr}"
        meta = json.loads((Path(tmp) / "meta.json").read_text())
        out: dict[int, np.ndarray] = {}
        for n, attrs in enumerate(meta["segmentAttributes"], start=1):
            img = sitk.ReadImage(str(Path(tmp) / f"{n}.nrrd"))
            arr = sitk.GetArrayFromImage(img)  # (z, y, x)
            idx = np.argwhere(arr > 0)[:, ::-1].astype(float)  # (x, y, z) ITK index order
            direction = np.array(img.GetDirection(), float).reshape(3, 3)
            spacing = np.array(img.GetSpacing(), float)
            lps = np.array(img.GetOrigin(), float) + (idx * spacing) @ direction.T
            for item in attrs:  # one segment per NRRD (hepavol's segments never overlap)
                out[int(item["labelID"]) if "labelID" in item else n] = lps
        return out, meta


def check_seg(
    path: Path, *, source_geometry: Any | None = None, expected: Mapping[int, np.ndarray] | None = None
) -> None:
    """All validators on one SEG; ``expected`` maps segment numbers to boolean masks on ``source_geometry``."""
    import highdicom as hd
    import pydicom

    path = Path(path)
    assert dciodvfy_errors(path) == [], f"dciodvfy errors on {path}"
    ds = pydicom.dcmread(path)
    frames = _frame_voxels_lps(ds)
    numbers = [int(s.SegmentNumber) for s in ds.SegmentSequence]
    dcmqi, meta = dcmqi_segments(path)
    assert sorted(dcmqi) == sorted(numbers), (sorted(dcmqi), numbers)
    labels_dcmqi = [a["SegmentLabel"] for attrs in meta["segmentAttributes"] for a in attrs]
    assert labels_dcmqi == [str(s.SegmentLabel) for s in ds.SegmentSequence]
    for n in numbers:
        assert _same_points(dcmqi[n], frames.get(n, np.zeros((0, 3)))), f"segment {n} of {path}"
    # highdicom reads the same segments and voxel counts
    seg = hd.seg.segread(path)
    assert [d.segment_number for d in seg.SegmentSequence] == numbers
    for n in numbers:
        assert seg.get_segment_description(n).segment_label == str(ds.SegmentSequence[n - 1].SegmentLabel)
        count = int(np.count_nonzero(seg.get_volume(segment_numbers=[n], combine_segments=True).array))
        assert count == len(dcmqi[n]), f"segment {n}: highdicom {count} voxels, dcmqi {len(dcmqi[n])}"
    if source_geometry is not None:
        for n in numbers:
            ijk = np.asarray(source_geometry.lps_to_index(dcmqi[n])).reshape(-1, 3)
            assert np.allclose(ijk, np.rint(ijk), atol=1e-3), f"segment {n} of {path} is off the source grid"
            if expected is not None:
                mask = np.zeros(source_geometry.shape, bool)
                mask[tuple(np.rint(ijk).astype(int).T)] = True
                assert np.array_equal(mask, np.asarray(expected[n], bool)), f"segment {n} of {path} differs"
    _CHECKED.add(_key(path))


def tid1500_groups(path: Path) -> list[dict[str, Any]]:
    """The ``Measurements`` of ``tid1500reader``'s JSON for an SR."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sr.json"
        run = subprocess.run(
            [_dcmqi("tid1500reader"), "--inputDICOM", str(path), "--outputMetadata", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, f"tid1500reader failed on {path}: {run.stdout}{run.stderr}"
        return list(json.loads(out.read_text()).get("Measurements", []))


def _items(group: Mapping[str, Any]) -> dict[str, float]:
    return {i["quantity"]["CodeMeaning"]: float(i["value"]) for i in group.get("measurementItems", [])}


def check_sr(
    path: Path, *, lesions: Iterable[Mapping[str, Any]] | None = None, seg_uid: str | None = None
) -> None:
    """Every validator on one SR; ``lesions`` are what hepavol reported (``SrExport.lesions``)."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    path = Path(path)
    assert dciodvfy_errors(path) == [], f"dciodvfy errors on {path}"
    ds = pydicom.dcmread(path)
    root = next((i for i in ds.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "126010"), None)
    kinds = [] if root is None else [template_of(g) for g in root.ContentSequence]  # none: every lesion gone
    dcmqi = tid1500_groups(path)
    assert len(dcmqi) == len(kinds), f"tid1500reader read {len(dcmqi)} groups of {len(kinds)} in {path}"
    doc = hd.sr.srread(path)
    vol_groups = doc.content.get_volumetric_roi_measurement_groups()
    planar_groups = doc.content.get_planar_roi_measurement_groups()
    assert len(vol_groups) == kinds.count("1411")
    assert len(planar_groups) == kinds.count("1410")
    dq_vol = [g for g, k in zip(dcmqi, kinds) if k == "1411"]
    dq_planar = [g for g, k in zip(dcmqi, kinds) if k == "1410"]
    for ours, theirs in zip(vol_groups, dq_vol):
        assert theirs["TrackingIdentifier"] == str(ours.tracking_identifier)
        assert theirs["TrackingUniqueIdentifier"] == str(ours.tracking_uid)
        assert theirs["ReferencedSegment"] == ours.referenced_segment.referenced_segment_numbers[0]
        assert theirs["segmentationSOPInstanceUID"] == ours.referenced_segment.referenced_sop_instance_uid
        if seg_uid is not None:
            assert theirs["segmentationSOPInstanceUID"] == seg_uid
        (vol,) = ours.get_measurements(name=codes.SCT.Volume)
        assert np.isclose(_items(theirs)["Volume"], float(vol.value), rtol=1e-6)
    for ours, theirs in zip(planar_groups, dq_planar):
        assert theirs["TrackingIdentifier"] == str(ours.tracking_identifier)
        assert theirs["TrackingUniqueIdentifier"] == str(ours.tracking_uid)
        got = _items(theirs)
        for m in ours.get_measurements():
            assert np.isclose(got[m.name.meaning], float(m.value), rtol=1e-6)
    if lesions is not None:
        lesions = list(lesions)
        assert [g["TrackingIdentifier"] for g in dq_vol] == [les["tracking_id"] for les in lesions]
        assert [g["TrackingUniqueIdentifier"] for g in dq_vol] == [les["tracking_uid"] for les in lesions]
        assert [g["ReferencedSegment"] for g in dq_vol] == [les["segment_number"] for les in lesions]
        for g, les in zip(dq_vol, lesions):
            assert np.isclose(_items(g)["Volume"], les["volume_mm3"], rtol=1e-6)
        pieces = [p for les in lesions for p in les["planar"]]
        assert len(dq_planar) == len(pieces)
        for g, p in zip(dq_planar, pieces):
            got = _items(g)
            assert np.isclose(got["Long Axis"], p["long_axis_mm"], rtol=1e-6)
            assert np.isclose(got["Short Axis"], p["short_axis_mm"], rtol=1e-6)
    errors = pixelmed_errors(path)
    assert errors == [], f"PixelMed DicomSRValidator errors on {path}:\n" + "\n".join(errors)
    _CHECKED.add(_key(path))


def pixelmed_errors(path: Path) -> list[str]:
    """PixelMed DicomSRValidator errors of a report other than its known cross-template reports.

    pixelmed-apps 20220618 checks each TID 1500 group also against the conditional rows of the *other* group
    templates ("Missing conditional content item" / "present when condition not satisfied" on TID 1410 or 1411
    for a group of another template); those are left out, every other error is returned.
    """
    import pydicom

    report = pixelmed_report(Path(path))
    assert "Root Template Validation Complete" in report, report[-2000:]
    ds = pydicom.dcmread(path)
    root = next((i for i in ds.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "126010"), None)
    groups = [] if root is None else root.ContentSequence  # none: every lesion gone
    kinds = {f"1.8.{n}": template_of(g) for n, g in enumerate(groups, start=1)}
    bad = []
    for line in (x for x in report.splitlines() if x.startswith("Error")):
        cross = "Missing conditional content item" in line or "present when condition not satisfied" in line
        tid = line.split("Template ")[1].split(" ")[0] if "Template " in line else ""
        where = line.split("within ")[1].split(":")[0] if "within " in line else ""
        if not (cross and tid in ("1410", "1411") and kinds.get(where, tid) != tid):
            bad.append(line)
    return bad


def is_hepavol_seg_or_sr(path: Path) -> str | None:
    """``"seg"`` / ``"sr"`` for a DICOM SEG / SR file written by hepavol, None otherwise."""
    import pydicom

    try:
        with path.open("rb") as f:
            f.seek(128)
            if f.read(4) != b"DICM":
                return None
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "Manufacturer"])
    except (OSError, ValueError, pydicom.errors.InvalidDicomError):
        return None
    if str(ds.get("Manufacturer", "")) != "hepavol":
        return None
    uid = str(ds.get("SOPClassUID", ""))
    return "seg" if uid == SEG_SOP_CLASS else "sr" if uid in SR_SOP_CLASSES else None


def truncate(path: Path, n_bytes: int) -> None:
    """Cut a file to its first ``n_bytes`` on purpose (a test's bad input): the validators leave it alone."""
    path.write_bytes(path.read_bytes()[:n_bytes])
    _CHECKED.add(_key(path))


def validate_written(folder: Path) -> list[Path]:
    """Run :func:`check_seg` / :func:`check_sr` on every hepavol SEG/SR under ``folder`` not checked yet."""
    done = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        kind = is_hepavol_seg_or_sr(path)
        if kind is None or _key(path) in _CHECKED:
            continue
        (check_seg if kind == "seg" else check_sr)(path)
        done.append(path)
    return done


__all__ = ["check_seg", "check_sr", "pixelmed_errors", "require", "truncate", "validate_written"]
