"""NIfTI, NRRD and MetaImage input/output, checked against SimpleITK and nibabel reading the same files.

Reference values: the TotalSegmentator and DeepLesion sizes and orientations from tests/data/README.md; LPS
positions from SimpleITK's ``TransformIndexToPhysicalPoint`` on the same file (ITK reads NIfTI into LPS itself).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from tests._io_helpers import ORIENTATIONS, assert_same_as_sitk, assert_same_volume, phantom

from hepavol.errors import GeometryError, InputError
from hepavol.geometry import Geometry
from hepavol.io import read_image, write_dicom_series, write_image
from hepavol.volume import Volume

DATA = Path(__file__).parent / "data"
TS = DATA / "totalsegmentator"
DL = DATA / "deeplesion_flare25_recist"


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_round_trip_and_simpleitk(tmp_path: Path, orientation: str, suffix: str) -> None:
    vol = phantom(orientation)
    path = tmp_path / f"img{suffix}"
    assert write_image(vol, path) == path
    back = read_image(path)
    assert back.array.dtype == np.int16
    assert_same_volume(back, vol)
    assert_same_as_sitk(back, sitk.ReadImage(str(path)))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_dicom_and_nifti_of_the_same_phantom_read_identically(tmp_path: Path) -> None:
    vol = phantom("double-oblique")
    write_dicom_series(vol, tmp_path / "dcm")
    write_image(vol, tmp_path / "img.nii.gz")
    assert_same_volume(read_image(tmp_path / "dcm"), read_image(tmp_path / "img.nii.gz"))


def test_nifti_header_is_standard(tmp_path: Path) -> None:
    """nibabel's own reading of our NIfTI: sform and qform both set (code 1) to the RAS affine."""
    vol = phantom("axial")
    write_image(vol, tmp_path / "a.nii.gz")
    img = nib.load(tmp_path / "a.nii.gz")
    sform, scode = img.header.get_sform(coded=True)
    qform, qcode = img.header.get_qform(coded=True)
    assert (int(scode), int(qcode)) == (1, 1)
    np.testing.assert_allclose(sform, qform, atol=1e-5)
    assert nib.aff2axcodes(sform) == ("L", "P", "S")  # i = columns to the left, j = rows to posterior
    # voxel (i, j, k) = (column, row, slice) = (0, 0, 0) is the LPS origin with x, y negated
    x, y, z = vol.geometry.origin_lps_mm
    np.testing.assert_allclose(sform[:3, 3], (-x, -y, z), atol=1e-5)
    assert img.shape == (30, 24, 9)


def test_totalsegmentator_ct_and_mr_match_simpleitk() -> None:
    """tests/data/README.md: CT 122x101x30 at 3 mm, RAS; MR 117x91x20, LPS."""
    ct = read_image(TS / "example_ct_sm.nii.gz")
    assert ct.shape == (30, 101, 122)
    assert ct.array.dtype == np.int16
    assert ct.geometry.spacing_mm == pytest.approx((3.0, 3.0, 3.0))
    assert ct.geometry.orientation_code == "RAS"
    assert_same_as_sitk(ct, sitk.ReadImage(str(TS / "example_ct_sm.nii.gz")))
    mr = read_image(TS / "example_mr_sm.nii.gz")
    assert mr.shape == (20, 91, 117)
    assert mr.geometry.orientation_code == "LPS"
    assert_same_as_sitk(mr, sitk.ReadImage(str(TS / "example_mr_sm.nii.gz")))


def test_deeplesion_pli_orientation_matches_simpleitk() -> None:
    """tests/data/README.md: 512x512x13, 0.9375x0.9375x5 mm, unusual P,L,I orientation (nibabel axis codes)."""
    path = DL / "000015_01_01_103-115_ct_hu.nii.gz"
    vol = read_image(path)
    assert vol.shape == (13, 512, 512)
    assert vol.geometry.spacing_mm == pytest.approx((5.0, 0.9375, 0.9375))
    assert nib.aff2axcodes(nib.load(path).affine) == ("P", "L", "I")
    # our code lists (column, row, slice) in LPS letters: i->P, j->L, k->I
    assert vol.geometry.orientation_code == "PLI"
    assert_same_as_sitk(vol, sitk.ReadImage(str(path)))


def _nifti_with_forms(path: Path, sform: np.ndarray | None, qform: np.ndarray | None) -> None:
    header = nib.Nifti1Header()
    header.set_data_shape((4, 3, 2))
    header.set_data_dtype(np.int16)
    header.set_sform(sform if sform is not None else np.eye(4), code=1 if sform is not None else 0)
    header.set_qform(qform if qform is not None else np.eye(4), code=1 if qform is not None else 0)
    img = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(4, 3, 2), None, header)
    nib.save(img, path)
    saved = nib.load(path).header
    assert int(saved["sform_code"]) == (1 if sform is not None else 0)
    assert int(saved["qform_code"]) == (1 if qform is not None else 0)


def test_sform_preferred_then_qform(tmp_path: Path) -> None:
    """NIfTI-1 standard (nifti1.h, method 3 over method 2) as nibabel implements it: the sform when
    sform_code > 0, else the qform."""
    s_aff = np.diag([2.0, 3.0, 4.0, 1.0])
    s_aff[:3, 3] = (10, 20, 30)
    q_aff = np.diag([-1.0, 1.0, 1.0, 1.0])
    _nifti_with_forms(tmp_path / "both.nii", s_aff, q_aff)
    both = read_image(tmp_path / "both.nii")
    assert both.geometry.spacing_mm == pytest.approx((4.0, 3.0, 2.0))
    assert both.geometry.origin_lps_mm == pytest.approx((-10.0, -20.0, 30.0))
    _nifti_with_forms(tmp_path / "q.nii", None, q_aff)
    q = read_image(tmp_path / "q.nii")
    assert q.geometry.spacing_mm == pytest.approx((1.0, 1.0, 1.0))
    # i axis points to -x in RAS = +L in LPS: our column axis (axis 2) is (1, 0, 0)
    np.testing.assert_allclose(q.geometry.direction_matrix[:, 2], (1, 0, 0))
    np.testing.assert_allclose(q.geometry.direction_matrix[:, 1], (0, -1, 0))
    _nifti_with_forms(tmp_path / "none.nii", None, None)
    with pytest.warns(UserWarning, match="neither an sform nor a qform"):
        read_image(tmp_path / "none.nii")


def test_scl_slope_is_applied(tmp_path: Path) -> None:
    img = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(4, 3, 2), np.eye(4))
    img.header.set_slope_inter(2.0, -1024.0)
    nib.save(img, tmp_path / "s.nii.gz")
    vol = read_image(tmp_path / "s.nii.gz")
    assert vol.array.dtype == np.int16
    np.testing.assert_array_equal(vol.array, np.arange(24).reshape(4, 3, 2).transpose(2, 1, 0) * 2 - 1024)
    img.header.set_slope_inter(0.5, 0.0)
    nib.save(img, tmp_path / "f.nii.gz")
    vol = read_image(tmp_path / "f.nii.gz")
    assert vol.array.dtype == np.float32
    assert float(vol.array[1, 0, 0]) == pytest.approx(0.5 * 1)  # stored (i=0, j=0, k=1) = 1


def test_case_insensitive_suffix_and_str_path(tmp_path: Path) -> None:
    vol = phantom("axial")
    write_image(vol, tmp_path / "A.NII.GZ")
    assert_same_volume(read_image(str(tmp_path / "A.NII.GZ")), vol)


def test_bool_volume_written_as_uint8(tmp_path: Path) -> None:
    vol = phantom("axial")
    mask = Volume(np.asarray(vol.array) > 0, vol.geometry)
    write_image(mask, tmp_path / "m.nrrd")
    back = read_image(tmp_path / "m.nrrd")
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, np.asarray(mask.array).astype(np.uint8))


# ---------------------------------------------------------------------------------------------- errors
def test_missing_path() -> None:
    with pytest.raises(InputError, match=r"Image '.*nope\.nii\.gz' does not exist"):
        read_image("nope.nii.gz")


def test_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "notes.nii.gz").write_text("hello")
    with pytest.raises(InputError, match=r"notes\.nii\.gz' cannot be read as NIfTI"):
        read_image(tmp_path / "notes.nii.gz")
    (tmp_path / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    with pytest.raises(InputError, match=r"pic\.png' is not an image hepavol can read\. It looks like a PNG"):
        read_image(tmp_path / "pic.png")
    (tmp_path / "x.nrrd").write_text("NRRD0004\ngarbage\n")
    with pytest.raises(InputError, match=r"x\.nrrd' cannot be read \(SimpleITK"):
        read_image(tmp_path / "x.nrrd")
    (tmp_path / "slice.dcm").write_bytes(b"\x00" * 300)
    with pytest.raises(InputError, match=r"slice\.dcm' is named like a DICOM file but lacks .* 'DICM' prefix"):
        read_image(tmp_path / "slice.dcm")


def test_truncated_nifti_gz_is_detected(tmp_path: Path) -> None:
    """SimpleITK reads this file without complaint and pads it with zeros; hepavol must refuse it."""
    data = (TS / "example_ct_sm.nii.gz").read_bytes()
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes(data[: len(data) // 2])
    zeros = float((sitk.GetArrayFromImage(sitk.ReadImage(str(bad))) == 0).mean())
    assert zeros > 0.4  # the silent failure hepavol guards against
    with pytest.raises(InputError, match=r"cut\.nii\.gz' is truncated or corrupt.*Compressed file ended"):
        read_image(bad)


def test_truncated_and_corrupt_files(tmp_path: Path) -> None:
    vol = phantom("axial")
    write_image(vol, tmp_path / "a.nii")
    data = (tmp_path / "a.nii").read_bytes()
    (tmp_path / "a.nii").write_bytes(data[:-100])
    with pytest.raises(InputError, match=r"a\.nii' is truncated or corrupt"):
        read_image(tmp_path / "a.nii")
    write_image(vol, tmp_path / "b.nii.gz")
    raw = bytearray(gzip.decompress((tmp_path / "b.nii.gz").read_bytes()))
    good = gzip.compress(bytes(raw))
    corrupt = bytearray(good)
    corrupt[-8] ^= 0xFF  # CRC mismatch
    (tmp_path / "b.nii.gz").write_bytes(bytes(corrupt))
    with pytest.raises(InputError, match=r"b\.nii\.gz' (is truncated or corrupt|cannot be read)"):
        read_image(tmp_path / "b.nii.gz")
    write_image(vol, tmp_path / "c.mha")
    data = (tmp_path / "c.mha").read_bytes()
    (tmp_path / "c.mha").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match=r"c\.mha' cannot be read .*truncated or corrupt"):
        read_image(tmp_path / "c.mha")


def test_2d_and_4d_images_are_refused(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((4, 5), np.int16), np.eye(4)), tmp_path / "flat.nii.gz")
    with pytest.raises(InputError, match=r"is a 2D image \(shape \(4, 5\)\); hepavol needs a 3D volume"):
        read_image(tmp_path / "flat.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6, 3), np.int16), np.eye(4)), tmp_path / "t.nii.gz")
    with pytest.raises(InputError, match=r"is a 4D image \(shape \(4, 5, 6, 3\)\).*Split the time points"):
        read_image(tmp_path / "t.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((4, 5, 6, 1), np.int16), np.eye(4)), tmp_path / "t1.nii.gz")
    assert read_image(tmp_path / "t1.nii.gz").shape == (6, 5, 4)  # a trailing axis of length 1 is dropped
    sitk.WriteImage(sitk.Image([4, 5], sitk.sitkInt16), str(tmp_path / "flat.mha"))
    with pytest.raises(InputError, match=r"flat\.mha' is a 2D image"):
        read_image(tmp_path / "flat.mha")


def test_write_unsupported_suffix(tmp_path: Path) -> None:
    g = Geometry(shape=(1, 2, 2), spacing_mm=(1, 1, 1), origin_lps_mm=(0, 0, 0), direction=ORIENTATIONS["axial"])
    with pytest.raises(InputError, match=r"suffix must be one of \.nii, \.nii\.gz, \.nrrd, \.mha"):
        write_image(Volume(np.zeros((1, 2, 2), np.int16), g), tmp_path / "x.mhd")


def test_sheared_affine_is_refused(tmp_path: Path) -> None:
    aff = np.eye(4)
    aff[0, 1] = 0.5  # shear: j axis not perpendicular to i
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), aff), tmp_path / "shear.nii.gz")
    with pytest.raises(GeometryError, match=r"shear\.nii\.gz': Argument 'direction' must be orthogonal"):
        read_image(tmp_path / "shear.nii.gz")


def test_int64_labels_are_written_as_int32_nifti(tmp_path: Path) -> None:
    vol = phantom("axial")
    write_image(vol.with_array(np.asarray(vol.array).astype(np.int64)), tmp_path / "l.nii.gz")
    back = read_image(tmp_path / "l.nii.gz")
    assert back.array.dtype == np.int32
    np.testing.assert_array_equal(back.array, vol.array)
    big = np.zeros(vol.shape, np.int64)
    big[0, 0, 0] = 2**40
    with pytest.raises(InputError, match=r"values 0\.\.1099511627776 do not fit the 32-bit integers"):
        write_image(vol.with_array(big), tmp_path / "big.nii.gz")


@pytest.mark.parametrize("dtype", ["<i2", ">i2", "<f4", "u1", ">f8"])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_unscaled_nifti_voxels_equal_nibabels(tmp_path: Path, dtype: str, suffix: str) -> None:
    """Reference: nibabel's own array of the file (np.asanyarray(img.dataobj)), through hepavol's axis order."""
    from hepavol.io import read_image

    data = np.arange(4 * 5 * 6).reshape(4, 5, 6).astype(np.dtype(dtype).newbyteorder("="))
    img = nib.Nifti1Image(data, np.diag([2.0, 3.0, 4.0, 1.0]))
    img.header.set_data_dtype(np.dtype(dtype))
    path = tmp_path / f"v{suffix}"
    nib.save(img, path)
    expected = np.asanyarray(nib.load(path).dataobj)
    got = read_image(path).array
    np.testing.assert_array_equal(got, expected.transpose(2, 1, 0))
    assert got.dtype == expected.dtype
