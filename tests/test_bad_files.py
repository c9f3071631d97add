"""A table of concrete bad files (issue 19), each driven through the command line with the exact message it gets.

Every row runs ``hepavol measure IMAGE --seg SEG`` (or ``follow-up``) through :func:`hepavol.cli.main` and checks
the exit status and the whole of standard error: exit 2 with one ``error: ...`` line naming the file and the fix,
or exit 0 with the warnings shown; never a traceback or "internal error". The files are built here from the
phantoms of ``tests/_io_helpers.py`` (nothing is downloaded). Unreadable files (permissions) are tested with the
privacy work, not here.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from tests._io_helpers import label_phantom, phantom

from hepavol.cli import main
from hepavol.io import write_dicom_series, write_image

UID_A = "1.2.826.0.1.3680043.10.1234.1"
UID_B = "1.2.826.0.1.3680043.10.1234.2"


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A good image (NIfTI and a 9-slice DICOM series) and its label map (liver 1, one lesion 2)."""
    root = tmp_path_factory.mktemp("bad_files")
    write_image(phantom(), root / "img.nii.gz")
    write_image(label_phantom(), root / "seg.nii.gz")
    write_dicom_series(phantom(), root / "dcm", series_instance_uid=UID_A)
    return root


def _copy_series(src: Path, name: str) -> Path:
    out = src / name
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src / "dcm", out)
    return out


def _edit_series(src: Path, name: str, edit: Callable[[pydicom.Dataset], None]) -> Path:
    out = _copy_series(src, name)
    for f in sorted(out.iterdir()):
        ds = pydicom.dcmread(f)
        edit(ds)
        ds.save_as(f)
    return out


def _nifti_like(src: Path, name: str, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    ref = nib.load(src / "seg.nii.gz")
    nib.save(nib.Nifti1Image(array, ref.affine if affine is None else affine), src / name)
    return src / name


def _seg_array(src: Path) -> np.ndarray:
    return np.asarray(nib.load(src / "seg.nii.gz").dataobj)


def _patched_nifti(src: Path, name: str, *, qform_code: int, sform_code: int, pixdim: tuple[float, ...]) -> Path:
    """A copy of the label map with header fields overwritten in the bytes (nibabel would repair them)."""
    raw = bytearray(gzip.decompress((src / "seg.nii.gz").read_bytes()))
    raw[80:92] = struct.pack("<3f", *pixdim)
    raw[252:256] = struct.pack("<hh", qform_code, sform_code)
    (src / name).write_bytes(gzip.compress(bytes(raw)))
    return src / name


# Each case: id -> (build(src) -> argv, exit status, regex of the whole of standard error; {p} = the file).
def _measure(image: Path | str, seg: Path | str) -> list[str]:
    return ["measure", str(image), "--seg", str(seg)]


def truncated_dicom_slice(s: Path) -> tuple[list[str], str]:
    d = _copy_series(s, "dcm_trunc")
    f = sorted(d.iterdir())[4]
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    return _measure(d, s / "seg.nii.gz"), str(f)


def dicom_cut_in_header(s: Path) -> tuple[list[str], str]:
    d = _copy_series(s, "dcm_cut")
    f = sorted(d.iterdir())[4]
    f.write_bytes(f.read_bytes()[:200])
    return _measure(d, s / "seg.nii.gz"), str(f)


def truncated_nifti_gz(s: Path) -> tuple[list[str], str]:
    data = (s / "img.nii.gz").read_bytes()
    (s / "trunc.nii.gz").write_bytes(data[: len(data) // 2])
    return _measure(s / "trunc.nii.gz", s / "seg.nii.gz"), str(s / "trunc.nii.gz")


def truncated_nii(s: Path) -> tuple[list[str], str]:
    raw = gzip.decompress((s / "img.nii.gz").read_bytes())
    (s / "trunc.nii").write_bytes(raw[: len(raw) // 2])
    return _measure(s / "trunc.nii", s / "seg.nii.gz"), str(s / "trunc.nii")


def nii_cut_in_header(s: Path) -> tuple[list[str], str]:
    raw = gzip.decompress((s / "img.nii.gz").read_bytes())
    (s / "head.nii").write_bytes(raw[:100])
    return _measure(s / "head.nii", s / "seg.nii.gz"), str(s / "head.nii")


def empty_nii_file(s: Path) -> tuple[list[str], str]:
    (s / "zero.nii").write_bytes(b"")
    return _measure(s / "zero.nii", s / "seg.nii.gz"), str(s / "zero.nii")


def truncated_segmentation(s: Path) -> tuple[list[str], str]:
    (s / "segcut.nii.gz").write_bytes((s / "seg.nii.gz").read_bytes()[:60])
    return _measure(s / "img.nii.gz", s / "segcut.nii.gz"), str(s / "segcut.nii.gz")


def two_series_mixed(s: Path) -> tuple[list[str], str]:
    d = _copy_series(s, "mixed")
    write_dicom_series(phantom(seed=1), d, file_prefix="B", series_number=2, series_instance_uid=UID_B)
    return _measure(d, s / "seg.nii.gz"), str(d)


def duplicate_slice_positions(s: Path) -> tuple[list[str], str]:
    d = _copy_series(s, "dup")
    files = sorted(d.iterdir())
    third, fourth = pydicom.dcmread(files[3]), pydicom.dcmread(files[4])
    fourth.ImagePositionPatient = third.ImagePositionPatient
    fourth.save_as(files[4])
    return _measure(d, s / "seg.nii.gz"), str(d)


def missing_pixel_spacing(s: Path) -> tuple[list[str], str]:
    d = _edit_series(s, "nospacing", lambda ds: delattr(ds, "PixelSpacing"))
    return _measure(d, s / "seg.nii.gz"), str(d)


def zero_pixel_spacing(s: Path) -> tuple[list[str], str]:
    d = _edit_series(s, "zerospacing", lambda ds: setattr(ds, "PixelSpacing", [0, 0.9]))
    return _measure(d, s / "seg.nii.gz"), str(d)


def negative_pixel_spacing(s: Path) -> tuple[list[str], str]:
    d = _edit_series(s, "negspacing", lambda ds: setattr(ds, "PixelSpacing", [-0.7, 0.9]))
    return _measure(d, s / "seg.nii.gz"), str(d)


def missing_image_position(s: Path) -> tuple[list[str], str]:
    d = _edit_series(s, "noipp", lambda ds: delattr(ds, "ImagePositionPatient"))
    return _measure(d, s / "seg.nii.gz"), str(d)


def nifti_zero_pixdim_without_transform(s: Path) -> tuple[list[str], str]:
    f = _patched_nifti(s, "nospacing.nii.gz", qform_code=0, sform_code=0, pixdim=(0.0, 0.0, 0.0))
    return _measure(f, f), str(f)


def nifti_zero_pixdim_with_qform(s: Path) -> tuple[list[str], str]:
    f = _patched_nifti(s, "qzero.nii.gz", qform_code=1, sform_code=0, pixdim=(0.9, 0.0, 2.5))
    return _measure(f, f), str(f)


def nifti_without_transform(s: Path) -> tuple[list[str], str]:
    f = _patched_nifti(s, "method1.nii.gz", qform_code=0, sform_code=0, pixdim=(0.9, 0.7, 2.5))
    return [*_measure(f, f), "--json", str(s / "method1.json")], str(f)


def nifti_zero_column_in_sform(s: Path) -> tuple[list[str], str]:
    img = nib.load(s / "seg.nii.gz")
    affine = img.affine.copy()
    affine[:3, 0] = 0
    header = img.header.copy()
    header.set_qform(None, code=0)
    header.set_sform(affine, code=1)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), None, header), s / "szero.nii.gz")
    return _measure(s / "szero.nii.gz", s / "seg.nii.gz"), str(s / "szero.nii.gz")


def image_2d(s: Path) -> tuple[list[str], str]:
    f = _nifti_like(s, "2d.nii.gz", np.zeros((30, 24), np.int16), np.eye(4))
    return _measure(f, f), str(f)


def image_4d(s: Path) -> tuple[list[str], str]:
    f = _nifti_like(s, "4d.nii.gz", np.zeros((30, 24, 9, 3), np.int16), np.eye(4))
    return _measure(f, s / "seg.nii.gz"), str(f)


def image_4d_single_volume(s: Path) -> tuple[list[str], str]:
    f = _nifti_like(s, "4d1.nii.gz", _seg_array(s)[..., None])
    return [*_measure(s / "img.nii.gz", f), "--json", str(s / "4d1.json")], str(f)


def float_labels(s: Path) -> tuple[list[str], str]:
    a = _seg_array(s).astype(np.float32)
    a[a == 2] = 1.5
    f = _nifti_like(s, "float.nii.gz", a)
    return _measure(s / "img.nii.gz", f), str(f)


def float_dtype_integer_labels(s: Path) -> tuple[list[str], str]:
    f = _nifti_like(s, "floatint.nii.gz", _seg_array(s).astype(np.float32))
    return [*_measure(s / "img.nii.gz", f), "--json", str(s / "floatint.json")], str(f)


def negative_labels(s: Path) -> tuple[list[str], str]:
    a = _seg_array(s).astype(np.int16)
    a[a == 2] = -2
    f = _nifti_like(s, "neg.nii.gz", a)
    return _measure(s / "img.nii.gz", f), str(f)


def nan_label(s: Path) -> tuple[list[str], str]:
    a = _seg_array(s).astype(np.float32)
    a[0, 0, 0] = np.nan
    f = _nifti_like(s, "nan.nii.gz", a)
    return _measure(s / "img.nii.gz", f), str(f)


def empty_mask(s: Path) -> tuple[list[str], str]:
    f = _nifti_like(s, "empty.nii.gz", np.zeros(_seg_array(s).shape, np.uint8))
    return [*_measure(s / "img.nii.gz", f), "--json", str(s / "empty.json")], str(f)


def single_slice_lesions_in_a_row(s: Path) -> tuple[list[str], str]:
    """One slice, three 1-pixel lesions on one row: cc3d 4.1.1 raised 'maximum length exception' on its
    bounding box (an axis of length 1), an internal error before."""
    a = np.zeros((30, 24, 1), np.uint8)
    a[5:25, 3:20, 0] = 1
    a[10, 5:12:3, 0] = 2
    f = _nifti_like(s, "oneslice.nii.gz", a, np.diag([0.8, 0.8, 5.0, 1.0]))
    return [*_measure(f, f), "--json", str(s / "oneslice.json")], str(f)


def non_ascii_spaced_paths(s: Path) -> tuple[list[str], str]:
    d = s / "Dossier patient é ü" / "scan 1"
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(s / "img.nii.gz", d / "image ct.nii.gz")
    shutil.copy(s / "seg.nii.gz", d / "masque é.nii.gz")
    return [*_measure(d / "image ct.nii.gz", d / "masque é.nii.gz"), "--json", str(d / "résultat 1.json")], str(d)


def non_ascii_spaced_dicom_folder(s: Path) -> tuple[list[str], str]:
    d = _copy_series(s, "Série DICOM ø 1")
    return [*_measure(d, s / "seg.nii.gz"), "--json", str(s / "dicom ø.json")], str(d)


P = "{p}"
CASES: dict[str, tuple[Callable[[Path], tuple[list[str], str]], int, str]] = {
    "truncated DICOM slice": (
        truncated_dicom_slice, 2,
        rf"error: instance 5 \('{P}'\) is truncated: its pixel data needs 1440 bytes from offset \d+ but the file "
        r"has \d+ bytes\. Replace it with a good copy or remove it\.",
    ),
    "DICOM cut inside its header": (
        dicom_cut_in_header, 2,
        rf"error: '{P}' is a CT/MR image object without pixel data: the file is truncated or broken\. Replace it "
        r"with a good copy or remove it from the folder\.",
    ),
    "truncated .nii.gz": (
        truncated_nifti_gz, 2,
        rf"error: '{P}' is truncated or corrupt: its voxel data cannot be read completely \(Compressed file ended "
        r"before the end-of-stream marker was reached\)\. Replace it with a complete copy\.",
    ),
    "truncated .nii": (
        truncated_nii, 2,
        rf"error: '{P}' is truncated or corrupt: its voxel data cannot be read completely \(the voxel data ends "
        r"after \d+ of 12960 bytes\)\. Replace it with a complete copy\.",
    ),
    ".nii cut inside its header": (
        nii_cut_in_header, 2,
        rf"error: '{P}' cannot be read as NIfTI \(Binary block is wrong size\)\. The file is not a NIfTI image, "
        r"or it is corrupt\.",
    ),
    "zero-byte .nii": (
        empty_nii_file, 2,
        rf"error: '{P}' cannot be read as NIfTI \(its header does not start with sizeof_hdr 348 \(NIfTI-1\) or "
        r"540 \(NIfTI-2\)\)\. The file is not a NIfTI image, or it is corrupt\.",
    ),
    "truncated segmentation": (
        truncated_segmentation, 2,
        rf"error: '{P}' cannot be read as NIfTI \(Compressed file ended before the end-of-stream marker was "
        r"reached\)\. The file is not a NIfTI image, or it is corrupt\.",
    ),
    "two series in one folder": (
        two_series_mixed, 2,
        rf"error: '{P}' holds 2 image series; hepavol reads one at a time:\n"
        rf"  {re.escape(UID_B)}  'hepavol series'  9 slices  modality CT\n"
        rf"  {re.escape(UID_A)}  'hepavol series'  9 slices  modality CT\n"
        r"Pick one with --series UID \(series_uid=\.\.\.\)\.",
    ),
    "duplicate slice positions": (
        duplicate_slice_positions, 2,
        rf"error: Series {re.escape(UID_A)} has 1 duplicate slice position\(s\): instance 4 \('{P}/IM00004\.dcm'\) "
        rf"and instance 5 \('{P}/IM00005\.dcm'\) are both at -93\.500 mm along the slice normal .*",
    ),
    "missing PixelSpacing": (
        missing_pixel_spacing, 2,
        rf"error: PixelSpacing \(0028,0030\) is missing on 9 of 9 slices of series {re.escape(UID_A)} \(first: "
        rf"instance 1 \('{P}/IM00001\.dcm'\)\)\. Volumes cannot be measured without pixel spacing\.",
    ),
    "zero PixelSpacing": (
        zero_pixel_spacing, 2,
        rf"error: PixelSpacing \(0028,0030\) of instance 1 \('{P}/IM00001\.dcm'\) in series {re.escape(UID_A)} is "
        r"\[0\.0, 0\.9\] mm; both values must be positive \(row spacing, column spacing\)\. The header is corrupt: "
        r"re-export the series\.",
    ),
    "negative PixelSpacing (was reported as gantry tilt)": (
        negative_pixel_spacing, 2,
        rf"error: PixelSpacing \(0028,0030\) of instance 1 \('{P}/IM00001\.dcm'\) in series {re.escape(UID_A)} is "
        r"\[-0\.7, 0\.9\] mm; both values must be positive .*",
    ),
    "missing ImagePositionPatient": (
        missing_image_position, 2,
        rf"error: No DICOM image series found in '{P}' \(searched recursively; 9 no ImagePositionPatient/"
        r"ImageOrientationPatient; 0 files without the DICM prefix were skipped\)\. Give the folder that holds the "
        r"CT or MR slices\.",
    ),
    "NIfTI: no sform/qform, pixdim 0 (was measured at 1 mm)": (
        nifti_zero_pixdim_without_transform, 2,
        rf"error: '{P}' has neither an sform nor a qform \(both codes are 0\) and its voxel sizes \(pixdim\[1:4\]\) "
        r"are \[0, 0, 0\] mm: the voxel spacing is unknown, so no volume in mL can be computed\. Convert the "
        r"scan again with its geometry \(e\.g\. dcm2niix from the DICOM series\)\.",
    ),
    "NIfTI: qform with a pixdim of 0 (was measured at 1 mm)": (
        nifti_zero_pixdim_with_qform, 2,
        rf"error: '{P}' has a qform but its voxel sizes \(pixdim\[1:4\]\) are \[0\.9, 0, 2\.5\] mm: the voxel "
        r"spacing is unknown, so no volume in mL can be computed\. .*",
    ),
    "NIfTI: sform with a zero column": (
        nifti_zero_column_in_sform, 2, rf"error: '{P}': Argument 'affine' has a zero-length axis: \[\[.*\]\]\.",
    ),
    "NIfTI without sform/qform (method 1): a one-line warning": (
        nifti_without_transform, 0,
        rf"warning: '{P}' has neither an sform nor a qform \(both codes are 0\); using the voxel sizes with no "
        r"rotation or origin \(NIfTI method 1\)\. Positions in mm are not patient coordinates\.",
    ),  # once, though the command reads the file twice (image and label map): the CLI prints a warning once
    "2D image": (
        image_2d, 2,
        rf"error: '{P}' is a 2D image \(shape \(30, 24\)\); hepavol needs a 3D volume \(slices of a CT or MR "
        r"scan\)\.",
    ),
    "4D image": (
        image_4d, 2,
        rf"error: '{P}' is a 4D image \(shape \(30, 24, 9, 3\)\); hepavol needs one 3D volume\. Split the time "
        r"points or channels into separate 3D files first\.",
    ),
    "4D image with one volume: read as 3D": (image_4d_single_volume, 0, ""),
    "float labels": (
        float_labels, 2,
        rf"error: Segmentation '{P}' is not a label map: it holds non-integer values \(e\.g\. 1\.5 at voxel "
        r"\(3, 6, 8\) \(slice, row, column\); 32 such voxels\)\. Threshold a probability map first \(e\.g\. > "
        r"0\.5\) or give the integer label map\.",
    ),
    "float voxels holding integers: read as labels": (float_dtype_integer_labels, 0, ""),
    "negative labels": (
        negative_labels, 2,
        rf"error: Segmentation '{P}' has negative labels \(minimum -2\); labels must be 0 \(background\) or "
        r"positive integers\.",
    ),
    "NaN in a label map": (
        nan_label, 2, rf"error: Segmentation '{P}' contains NaN or infinite values; a label map holds integers\."
    ),
    "empty mask: warnings, no lesion": (
        empty_mask, 0,
        r"warning: The liver label 1 is absent from the segmentation: liver_volume_ml, tumor_burden_percent and "
        r"hepatic_tumor_load_class are null\. Pass --liver-label if the liver has another value\.\n"
        r"warning: No voxel has the tumour label\(s\) \[2\]; labels present: \[\]\. Pass --tumor-label N \(or "
        r"--instances for an instance map\) if lesions have another value\.",
    ),
    "single slice, lesions in one row (was an internal error)": (
        single_slice_lesions_in_a_row, 0,
        r"warning: Lesion\(s\) L1, L2, L3 touch the edge of the image: they may be cut off by the field of view, "
        r"so their size may be underestimated\.",
    ),
    "non-ASCII and spaced NIfTI paths": (non_ascii_spaced_paths, 0, ""),
    "non-ASCII and spaced DICOM folder": (non_ascii_spaced_dicom_folder, 0, ""),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_bad_file(src: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    build, status, pattern = CASES[case]
    argv, path = build(src)
    capsys.readouterr()
    assert main(argv) == status
    err = capsys.readouterr().err.rstrip("\n")
    assert "Traceback" not in err
    assert "internal error" not in err
    expected = pattern.replace(P, re.escape(path))
    assert re.fullmatch(expected, err, flags=re.DOTALL), f"\n{err}\n!~\n{expected}"
    if status == 2:
        assert err.startswith("error: ")


def test_good_outcomes_of_the_table(src: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What the exit-0 rows measured, against counts made here: the 4D file with one volume and the float file
    holding integers give the label map's own lesion (its voxel count); the single-slice file three 1-voxel
    lesions of 0.8 × 0.8 × 5 mm = 0.0032 mL; the renamed files and folder the same as the plain ones."""
    lesion_voxels = int(np.count_nonzero(_seg_array(src) == 2))
    for build in (image_4d_single_volume, float_dtype_integer_labels):
        argv, _ = build(src)
        assert main(argv) == 0
        (lesion,) = json.loads(Path(argv[-1]).read_text())["lesions"]
        assert lesion["voxel_count"] == lesion_voxels
    argv, _ = single_slice_lesions_in_a_row(src)
    assert main(argv) == 0
    lesions = json.loads(Path(argv[-1]).read_text())["lesions"]
    assert [les["voxel_count"] for les in lesions] == [1, 1, 1]
    assert [les["volume_ml"] for les in lesions] == pytest.approx([0.0032] * 3)
    argv, _ = non_ascii_spaced_paths(src)
    assert main(argv) == 0
    spaced = json.loads(Path(argv[-1]).read_text())
    assert main([*_measure(src / "img.nii.gz", src / "seg.nii.gz"), "--json", str(src / "plain.json")]) == 0
    plain = json.loads((src / "plain.json").read_text())
    assert spaced["lesions"] == plain["lesions"]
    assert spaced["liver_volume_ml"] == plain["liver_volume_ml"]
    capsys.readouterr()


def test_follow_up_manifest_in_windows_1252_with_non_ascii_spaced_paths(
    src: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A follow-up manifest saved by Excel on Western-European Windows (Windows-1252, semicolons) naming files in
    folders with accents and spaces: read and run, the same volumes at both dates (the same scan twice)."""
    d = src / "Suivi Mme é" / "scans"
    d.mkdir(parents=True, exist_ok=True)
    for name in ("scan é 1", "scan é 2"):
        shutil.copy(src / "img.nii.gz", d / f"{name}.nii.gz")
        shutil.copy(src / "seg.nii.gz", d / f"{name} seg.nii.gz")
    manifest = src / "Suivi Mme é" / "manifeste été.csv"
    text = "date;image;seg\r\n2024-01-02;scans/scan é 1.nii.gz;scans/scan é 1 seg.nii.gz\r\n"
    text += "2024-03-04;scans/scan é 2.nii.gz;scans/scan é 2 seg.nii.gz\r\n"
    manifest.write_bytes(text.encode("cp1252"))
    out = src / "suivi.json"
    assert main(["follow-up", str(manifest), "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "error" not in captured.err
    result = json.loads(out.read_text())
    volumes = [tp["total_tumor_volume_ml"] for tp in result["timepoints"]]
    assert len(volumes) == 2
    assert volumes[0] == volumes[1] > 0
