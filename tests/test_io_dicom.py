"""DICOM series input: round trips, SimpleITK/GDCM as the independent reference, compressed syntaxes, real data,
and every error message.

Reference values: positions and voxel values from SimpleITK's ``ImageSeriesReader`` (GDCM) on the same files;
the JPEG 2000 series' size and spacing from tests/data/README.md (20 slices, 512x512, 0.977x0.977x2.0 mm).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless
from tests._io_helpers import ORIENTATIONS, assert_same_as_sitk, assert_same_volume, is_right_handed, phantom

from hepavol.errors import InputError, SeriesError
from hepavol.geometry import Geometry
from hepavol.io import read_dicom_series, read_image, reorient_like, write_dicom_series
from hepavol.volume import Volume

TS_DICOM = Path(__file__).parent / "data" / "totalsegmentator" / "example_ct_dicom"
CT2 = Path(__file__).parent / "data" / "pydicom_ct2_series"


def _sitk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _edit(path: Path, **values: object) -> None:
    ds = pydicom.dcmread(path)
    for key, value in values.items():
        setattr(ds, key, value)
    ds.save_as(path)


# ---------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_round_trip_matches_input_and_simpleitk(tmp_path: Path, orientation: str) -> None:
    vol = phantom(orientation)
    write_dicom_series(vol, tmp_path / "s")
    back = read_dicom_series(tmp_path / "s")
    assert back.array.dtype == np.int16
    if is_right_handed(vol.geometry.direction):
        assert_same_volume(back, vol)
    else:  # slices come back sorted along the normal: same voxels in LPS, axis 0 reversed
        assert back.geometry.differences(vol.geometry) == ["origin", "direction"]
        assert_same_volume(reorient_like(back, vol.geometry), vol)
    # independent reference: GDCM/ITK on the same files
    assert_same_as_sitk(back, _sitk_series(tmp_path / "s"))


def test_mr_series_and_metadata(tmp_path: Path) -> None:
    vol = phantom("coronal")
    arr = np.asarray(vol.array).astype(np.int32) + 3000  # MR-like values above int16 range after shift
    mr = Volume(arr.astype(np.uint16), vol.geometry)
    files = write_dicom_series(mr, tmp_path / "mr", modality="MR", series_description="T1 vibe")
    assert len(files) == vol.shape[0]
    back = read_image(tmp_path / "mr")
    np.testing.assert_array_equal(back.array, arr)
    assert back.metadata["modality"] == "MR"
    assert back.metadata["series_description"] == "T1 vibe"
    assert len(back.metadata["sop_instance_uids"]) == vol.shape[0]
    assert "ANON" not in str(back.metadata)  # no patient identifiers in metadata
    ds = pydicom.dcmread(files[0])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert ds.PatientID == "ANON"


def test_single_file_reads_its_whole_series(tmp_path: Path) -> None:
    vol = phantom("axial")
    files = write_dicom_series(vol, tmp_path / "s")
    assert_same_volume(read_image(files[3]), vol)


def test_file_order_and_instance_numbers_do_not_matter(tmp_path: Path) -> None:
    """Slices are sorted by position along the normal, not by InstanceNumber or file name."""
    vol = phantom("oblique-inplane")
    files = write_dicom_series(vol, tmp_path / "s")
    n = len(files)
    for k, f in enumerate(files):  # reverse instance numbers and shuffle file names
        _edit(f, InstanceNumber=n - k)
    for k, f in enumerate(files):
        f.rename(tmp_path / "s" / f"z{(k * 5) % n:02d}_{k}.dcm")
    assert_same_volume(read_dicom_series(tmp_path / "s"), vol)


def test_recursive_with_non_dicom_files_seg_and_localizer(tmp_path: Path) -> None:
    vol = phantom("axial")
    write_dicom_series(vol, tmp_path / "study" / "a" / "b")
    (tmp_path / "study" / "notes.txt").write_text("not dicom")
    (tmp_path / "study" / "a" / "DICOMDIR_thumbnail.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    shutil.copy(
        Path(__file__).parent / "data" / "dcmqi" / "data" / "segmentations" / "liver.dcm",
        tmp_path / "study" / "seg",
    )
    scout = phantom("coronal", shape=(1, 24, 30))
    loc = write_dicom_series(scout, tmp_path / "study" / "loc", series_description="scout")
    _edit(loc[0], ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    back = read_dicom_series(tmp_path / "study")
    assert_same_volume(back, vol)
    assert back.metadata["ignored"] == {"SEG": 1, "localizer": 1}


def test_single_slice_series_is_dropped_as_scout(tmp_path: Path) -> None:
    vol = phantom("axial")
    write_dicom_series(vol, tmp_path / "s")
    write_dicom_series(phantom("sagittal", shape=(1, 24, 30)), tmp_path / "scout", series_description="topogram")
    back = read_dicom_series(tmp_path)
    assert back.shape == vol.shape
    assert back.metadata["ignored"] == {"single-slice series (scout)": 1}


# ---------------------------------------------------------------------------------------------- rescale
def test_rescale_unsigned_with_intercept_stays_int16(tmp_path: Path) -> None:
    """Unsigned 12-bit storage with intercept -1024 (as Siemens writes it) gives int16 HU; bits above the
    high bit are ignored (DICOM PS3.5 8.1.1)."""
    vol = phantom("axial")
    files = write_dicom_series(vol, tmp_path / "s")
    for f in files:
        ds = pydicom.dcmread(f)
        stored = ds.pixel_array.astype(np.int32) + 1024
        assert stored.min() >= 0
        stored |= 0xF000  # garbage (e.g. overlay bits) above BitsStored
        ds.PixelData = stored.astype("<u2").tobytes()
        ds.PixelRepresentation = 0
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.RescaleIntercept = -1024
        ds.save_as(f)
    back = read_dicom_series(tmp_path / "s")
    assert back.array.dtype == np.int16
    np.testing.assert_array_equal(back.array, vol.array)


def test_rescale_per_slice_and_float(tmp_path: Path) -> None:
    vol = phantom("axial", shape=(4, 8, 8))
    files = write_dicom_series(vol, tmp_path / "s")
    _edit(files[1], RescaleSlope=2, RescaleIntercept=-5)
    back = read_dicom_series(tmp_path / "s")
    assert back.array.dtype == np.int16
    expected = np.asarray(vol.array).copy()
    expected[1] = expected[1] * 2 - 5
    np.testing.assert_array_equal(back.array, expected)
    _edit(files[2], RescaleSlope="0.5")
    back = read_dicom_series(tmp_path / "s")
    assert back.array.dtype == np.float32
    expected = expected.astype(np.float32)
    expected[2] = expected[2] * 0.5
    np.testing.assert_allclose(back.array, expected)


# ---------------------------------------------------------------------------------------------- compressed
@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_compressed_transfer_syntaxes_round_trip(tmp_path: Path, syntax: str) -> None:
    vol = phantom("double-oblique", shape=(3, 64, 72))  # JPEG 2000 needs tiles of 32+ pixels
    files = write_dicom_series(vol, tmp_path / "s", transfer_syntax=syntax)
    assert pydicom.dcmread(files[0], stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax
    back = read_dicom_series(tmp_path / "s")
    assert_same_volume(back, vol)
    assert back.metadata["transfer_syntaxes"] == [syntax]


@pytest.mark.parametrize(
    "name", ["MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm",
             "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"],
)  # fmt: skip
def test_pydicom_reference_files_decode_like_pydicom(tmp_path: Path, name: str) -> None:
    """pydicom's own test files in 6 transfer syntaxes (native LE implicit/explicit, big endian, RLE, JPEG-LS,
    JPEG 2000): our reader must give pydicom's decoded pixel values (pydicom's tests check them against
    reference values, tests/pixels/pixels_reference.py)."""
    src = Path(get_testdata_file(name))
    shutil.copy(src, tmp_path / name)
    back = read_image(tmp_path / name)
    expected = pydicom.dcmread(src).pixel_array
    assert back.shape == (1, 64, 64)
    np.testing.assert_array_equal(back.array[0], expected)


def test_real_jpeg2000_series_matches_gdcm() -> None:
    """TotalSegmentator's real JPEG 2000 lossless CT series (tests/data/README.md: 20 slices, 512x512,
    0.977x0.977x2.0 mm) decodes to GDCM's values at GDCM's positions."""
    vol = read_image(TS_DICOM)
    assert vol.shape == (20, 512, 512)
    assert vol.geometry.spacing_mm == pytest.approx((2.0, 0.9765625, 0.9765625))
    assert vol.array.dtype == np.int16
    assert vol.metadata["transfer_syntaxes"] == ["1.2.840.10008.1.2.4.90"]
    assert vol.metadata["series_instance_uid"] == ""  # this anonymised series has an empty UID
    assert_same_as_sitk(vol, _sitk_series(TS_DICOM))
    assert int(vol.array.min()) >= -1024
    assert int(vol.array.max()) < 3072


@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_enhanced_multiframe_via_highdicom(tmp_path: Path, modality: str) -> None:
    """A legacy-converted enhanced CT/MR (one multi-frame file, built by highdicom from our slices) reads like the
    single-frame series it came from."""
    import highdicom as hd

    vol = phantom("oblique-inplane", shape=(4, 16, 20))
    if modality == "MR":
        vol = vol.with_array(np.asarray(vol.array) + 1000)
    files = write_dicom_series(vol, tmp_path / "s", modality=modality)
    legacy = [pydicom.dcmread(f) for f in files]
    converter = (
        hd.legacy.LegacyConvertedEnhancedCTImage if modality == "CT" else hd.legacy.LegacyConvertedEnhancedMRImage
    )
    enhanced = converter(
        legacy, series_instance_uid=hd.UID(), series_number=2, sop_instance_uid=hd.UID(), instance_number=1
    )
    (tmp_path / "mf").mkdir()
    enhanced.save_as(tmp_path / "mf" / "enhanced.dcm")
    back = read_image(tmp_path / "mf" / "enhanced.dcm")
    assert back.metadata["number_of_frames"] == 4
    assert_same_volume(back, vol)


# ---------------------------------------------------------------------------------------------- gaps
def test_allow_gaps_resamples_linearly(tmp_path: Path) -> None:
    """Slice 2 of 0..5 removed: with allow_gaps the missing slice is the mean of its neighbours (linear
    interpolation halfway between them) and the grid keeps its 2.5 mm spacing."""
    vol = phantom("axial", shape=(6, 8, 8))
    files = write_dicom_series(vol, tmp_path / "s")
    files[2].unlink()
    with pytest.raises(SeriesError, match=r"gap of 5\.000 mm .*IM00002.*IM00004.*2\.500 mm was expected"):
        read_dicom_series(tmp_path / "s")
    with pytest.warns(UserWarning, match="resampled 5 slices onto 6"):
        back = read_dicom_series(tmp_path / "s", allow_gaps=True)
    assert back.geometry.differences(vol.geometry) == []
    a = np.asarray(vol.array).astype(np.float64)
    np.testing.assert_array_equal(back.array[[0, 1, 3, 4, 5]], vol.array[[0, 1, 3, 4, 5]])
    np.testing.assert_array_equal(back.array[2], np.rint((a[1] + a[3]) / 2).astype(np.int16))


# ---------------------------------------------------------------------------------------------- errors
def test_several_series_are_listed(tmp_path: Path) -> None:
    write_dicom_series(phantom("axial"), tmp_path / "a", series_description="abdomen venous")
    write_dicom_series(phantom("coronal"), tmp_path / "b", series_description="coronal MPR", modality="MR")
    uid_a = pydicom.dcmread(next((tmp_path / "a").iterdir())).SeriesInstanceUID
    with pytest.raises(SeriesError, match=r"holds 2 image series") as err:
        read_image(tmp_path)
    msg = str(err.value)
    assert uid_a in msg
    assert "'abdomen venous'  9 slices  modality CT" in msg
    assert "'coronal MPR'  9 slices  modality MR" in msg
    assert "--series UID" in msg
    assert read_image(tmp_path, series_uid=uid_a).metadata["series_description"] == "abdomen venous"
    with pytest.raises(SeriesError, match=r"(?s)Series '1\.2\.3' was not found.*abdomen venous"):
        read_image(tmp_path, series_uid="1.2.3")


def test_missing_slice_is_named(tmp_path: Path) -> None:
    files = write_dicom_series(phantom("sagittal"), tmp_path / "s")
    files[4].unlink()
    with pytest.raises(SeriesError, match=r"about 1 slice\(s\) missing") as err:
        read_dicom_series(tmp_path / "s")
    assert "instance 4 ('" in str(err.value)
    assert "instance 6 ('" in str(err.value)
    assert "--allow-gaps" in str(err.value)


def test_irregular_spacing(tmp_path: Path) -> None:
    vol = phantom("axial", shape=(5, 8, 8))
    files = write_dicom_series(vol, tmp_path / "s")
    p = vol.geometry.index_to_lps((3.4, 0, 0))
    _edit(files[3], ImagePositionPatient=[f"{v:.4f}" for v in p])
    with pytest.raises(SeriesError, match=r"gap of 3\.500 mm .*irregular spacing"):
        read_dicom_series(tmp_path / "s")


def test_duplicate_position(tmp_path: Path) -> None:
    files = write_dicom_series(phantom("axial"), tmp_path / "s")
    shutil.copy(files[2], tmp_path / "s" / "copy.dcm")
    _edit(tmp_path / "s" / "copy.dcm", SOPInstanceUID=pydicom.uid.generate_uid())
    with pytest.raises(SeriesError, match=r"duplicate slice position.*both at .* mm along the slice normal"):
        read_dicom_series(tmp_path / "s")


def test_inconsistent_pixel_spacing(tmp_path: Path) -> None:
    files = write_dicom_series(phantom("axial"), tmp_path / "s")
    _edit(files[5], PixelSpacing=["0.8", "0.9"])
    with pytest.raises(
        SeriesError, match=r"do not share PixelSpacing: .* has \[0\.7, 0\.9\] mm but .* \[0\.8, 0\.9\]"
    ):
        read_dicom_series(tmp_path / "s")


def test_inconsistent_orientation_and_size(tmp_path: Path) -> None:
    files = write_dicom_series(phantom("axial"), tmp_path / "s")
    _edit(files[1], ImageOrientationPatient=[1, 0, 0, 0, 0.9, 0.43588989])
    with pytest.raises(SeriesError, match=r"do not share ImageOrientationPatient"):
        read_dicom_series(tmp_path / "s")
    files = write_dicom_series(phantom("axial", shape=(3, 8, 8)), tmp_path / "t")
    ds = pydicom.dcmread(files[0])
    ds.Rows = 4
    ds.PixelData = np.zeros((4, 8), np.int16).tobytes()
    ds.save_as(files[0])
    with pytest.raises(SeriesError, match=r"do not share Rows: .* has 4 but .* has 8"):
        read_dicom_series(tmp_path / "t")


def test_gantry_tilt_is_rejected(tmp_path: Path) -> None:
    """Tilted-gantry CT: positions step along z while the image plane is tilted 15° (a sheared grid)."""
    vol = phantom("axial", shape=(5, 8, 8))
    files = write_dicom_series(vol, tmp_path / "s")
    t = np.radians(15)
    for k, f in enumerate(files):
        _edit(
            f,
            ImageOrientationPatient=[1, 0, 0, 0, f"{np.cos(t):.8f}", f"{-np.sin(t):.8f}"],
            ImagePositionPatient=[0, 0, 2.5 * k],
            GantryDetectorTilt=15,
        )
    with pytest.raises(SeriesError, match=r"not stacked along their normal.*GantryDetectorTilt = 15°.*dcm2niix"):
        read_dicom_series(tmp_path / "s")


def test_corrupt_and_truncated_dicom(tmp_path: Path) -> None:
    files = write_dicom_series(phantom("axial"), tmp_path / "s")
    data = files[2].read_bytes()
    files[2].write_bytes(data[: len(data) - 300])  # pixel data cut short
    with pytest.raises(SeriesError, match=r"IM00003\.dcm'\) is truncated: its pixel data needs 1440 bytes"):
        read_dicom_series(tmp_path / "s")
    files[2].write_bytes(data[:132] + b"\x08\x00\x05\x00CS\xff\xff garbage" * 3)  # DICM prefix, broken header
    with pytest.raises(SeriesError, match=r"IM00003\.dcm' starts like a DICOM file .* corrupt or truncated"):
        read_dicom_series(tmp_path / "s")


def test_truncated_compressed_slice(tmp_path: Path) -> None:
    files = write_dicom_series(phantom("axial", shape=(3, 16, 16)), tmp_path / "s", transfer_syntax=RLELossless)
    data = files[1].read_bytes()
    files[1].write_bytes(data[: len(data) - 200])
    with pytest.raises(SeriesError, match=r"IM00002\.dcm.*(Cannot decode|truncated|corrupt)"):
        read_dicom_series(tmp_path / "s")


def test_non_contiguous_real_series() -> None:
    """pydicom's 4 CT images at z = -99.48, 103.02, 104.27, 105.52 mm are not one contiguous volume."""
    with pytest.raises(SeriesError, match=r"gap of 202\.500 mm .* where 1\.250 mm was expected"):
        read_image(CT2)


def test_no_image_series_and_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    shutil.copy(Path(__file__).parent / "data" / "highdicom" / "data" / "test_files" / "sr_document.dcm", tmp_path)
    with pytest.raises(SeriesError, match=r"No DICOM image series found .*1 SR.*1 files without the DICM prefix"):
        read_dicom_series(tmp_path)
    with pytest.raises(InputError, match=r"DICOM folder '.*nowhere' does not exist"):
        read_dicom_series(tmp_path / "nowhere")


def test_missing_pixel_spacing(tmp_path: Path) -> None:
    files = write_dicom_series(phantom("axial", shape=(3, 8, 8)), tmp_path / "s")
    ds = pydicom.dcmread(files[1])
    del ds.PixelSpacing
    ds.save_as(files[1])
    with pytest.raises(SeriesError, match=r"PixelSpacing \(0028,0030\) is missing on 1 of 3 slices"):
        read_dicom_series(tmp_path / "s")


def test_writer_refuses_to_overwrite_and_bad_modality(tmp_path: Path) -> None:
    vol = phantom("axial", shape=(2, 4, 4))
    write_dicom_series(vol, tmp_path / "s")
    with pytest.raises(InputError, match=r"IM00001\.dcm' already exists"):
        write_dicom_series(vol, tmp_path / "s")
    with pytest.raises(InputError, match=r"'modality' must be 'CT' or 'MR', but it is 'US'"):
        write_dicom_series(vol, tmp_path / "u", modality="US")
    assert not (tmp_path / "u").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no temporary folders left


def test_writer_quantises_non_integer_values(tmp_path: Path) -> None:
    g = Geometry(
        shape=(2, 3, 4), spacing_mm=(1.0, 1.0, 1.0), origin_lps_mm=(0, 0, 0), direction=ORIENTATIONS["axial"]
    )
    arr = np.linspace(-3.3, 1234.5, 24, dtype=np.float32).reshape(2, 3, 4)
    write_dicom_series(Volume(arr, g), tmp_path / "f", modality="MR")
    back = read_dicom_series(tmp_path / "f")
    assert back.array.dtype == np.float32
    step = (1234.5 + 3.3) / 65535
    np.testing.assert_allclose(back.array, arr, atol=step)


# ---------------------------------------------------------------------------------------------- external tools
def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: install the Debian package {package} (make test installs it).")
    return path


@pytest.mark.external
@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_written_series_passes_dciodvfy(tmp_path: Path, modality: str) -> None:
    """dciodvfy (dicom3tools, D. Clunie) checks every file against the CT/MR Image IOD: no error, no warning."""
    import subprocess

    dciodvfy = _tool("dciodvfy", "dicom3tools")
    files = write_dicom_series(phantom("oblique-inplane", shape=(2, 8, 8)), tmp_path / "s", modality=modality)
    out = subprocess.run([dciodvfy, str(files[0])], capture_output=True, text=True, check=False)
    report = (out.stdout + out.stderr).strip().splitlines()
    assert report == [f"{modality}Image"], report


@pytest.mark.external
@pytest.mark.parametrize(
    ("tool", "syntax"),
    [
        ("dcmcjpeg", "1.2.840.10008.1.2.4.70"),  # JPEG Lossless, first-order prediction (process 14, SV1)
        ("dcmcjpls", "1.2.840.10008.1.2.4.80"),  # JPEG-LS lossless
        ("dcmcrle", "1.2.840.10008.1.2.5"),  # RLE lossless
    ],
)
def test_series_compressed_by_dcmtk_decodes_identically(tmp_path: Path, tool: str, syntax: str) -> None:
    """An independent encoder (DCMTK) compresses our series; decoding must give the original voxels."""
    import subprocess

    exe = _tool(tool, "dcmtk")
    vol = phantom("axial", shape=(3, 20, 24))
    files = write_dicom_series(vol, tmp_path / "raw")
    (tmp_path / "cmp").mkdir()
    for f in files:
        subprocess.run([exe, str(f), str(tmp_path / "cmp" / f.name)], check=True, capture_output=True)
    back = read_dicom_series(tmp_path / "cmp")
    assert back.metadata["transfer_syntaxes"] == [syntax]
    assert_same_volume(back, vol)


def test_sop_instance_uids_are_reproducible_with_a_given_series_uid(tmp_path: Path) -> None:
    vol = phantom("axial", shape=(2, 4, 4))
    uid = pydicom.uid.generate_uid()
    a = write_dicom_series(vol, tmp_path / "a", series_instance_uid=uid, study_date="2024-01-31")
    b = write_dicom_series(vol, tmp_path / "b", series_instance_uid=uid, study_date="2024-01-31")
    uids_a = [pydicom.dcmread(f).SOPInstanceUID for f in a]
    assert uids_a == [pydicom.dcmread(f).SOPInstanceUID for f in b]
    assert len(set(uids_a)) == 2
    assert pydicom.dcmread(a[0]).StudyDate == "20240131"
    with pytest.raises(InputError, match=r"'study_date' must be a date .* but it is '31/01/2024'"):
        write_dicom_series(vol, tmp_path / "c", study_date="31/01/2024")
