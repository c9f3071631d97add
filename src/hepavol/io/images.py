"""Read and write 3D images: DICOM (folder or file), NIfTI, NRRD and MetaImage, all as LPS-mm volumes.

``read_image`` dispatches on what the path is (case-insensitive suffix):

- a folder: a DICOM series (:func:`~hepavol.io.dicom_series.read_dicom_series`, searched recursively);
- a DICOM file (``DICM`` prefix, any name): a multi-frame (enhanced) file is read alone; a single-frame slice
  stands for its whole series, read from the files in the same folder (not subfolders) that share its
  SeriesInstanceUID;
- ``.nii`` / ``.nii.gz``: NIfTI-1/2 through nibabel. The affine follows nibabel's (and the NIfTI standard's)
  choice: the sform when ``sform_code > 0``, else the qform when ``qform_code > 0``, else voxel sizes only (with a
  warning). It maps (i, j, k) to RAS and is converted to LPS; array axis 0 is the NIfTI k axis (slices), axis 1
  j and axis 2 i. ``scl_slope``/``scl_inter`` are applied (integer results that fit stay ``int16``);
- ``.nrrd`` / ``.nhdr`` / ``.mha`` / ``.mhd``: SimpleITK (its physical space is LPS).

Truncated and corrupt files are errors naming the file: a ``.nii.gz`` is read through to the end of its gzip
stream, where gzip checks the stream end, CRC-32 and length, and nibabel checks the byte count (SimpleITK would
return a truncated ``.nii.gz`` padded with zeros, so NIfTI never goes through it); ITK reports short
NRRD/MetaImage data.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hepavol.errors import GeometryError, InputError
from hepavol.geometry import Geometry
from hepavol.io.dicom_series import (
    _NON_IMAGE_SOP_PREFIXES,
    is_dicom_file,
    read_dicom_file_header,
    read_dicom_files,
)
from hepavol.volume import Volume

__all__ = ["image_format", "read_image", "write_image"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
WRITE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")

#: Maps (slice, row, column) = (k, j, i) indices to NIfTI (i, j, k) indices and back (the matrix is its own inverse).
_KJI_TO_IJK = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])

_MAGIC = {
    b"\x89PNG": "a PNG picture",
    b"\xff\xd8\xff": "a JPEG picture",
    b"GIF8": "a GIF picture",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a ZIP archive (unpack it first)",
    b"II*\x00": "a TIFF picture",
    b"MM\x00*": "a TIFF picture",
}


def image_format(path: str | os.PathLike[str]) -> str:
    """The format ``read_image`` would use for ``path``: ``dicom-folder``, ``dicom``, ``nifti``, ``itk`` or ``""``."""
    p = Path(path)
    if p.is_dir():
        return "dicom-folder"
    name = p.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(ITK_SUFFIXES):
        return "itk"
    if is_dicom_file(p):
        return "dicom"
    return ""


def _not_an_image(p: Path) -> InputError:
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        return InputError(f"Cannot open '{p}': {exc}.")
    kind = next((what for magic, what in _MAGIC.items() if head.startswith(magic)), None)
    what = f" It looks like {kind}." if kind else ""
    return InputError(
        f"'{p}' is not an image hepavol can read.{what} Give a DICOM folder or file, NIfTI (.nii, .nii.gz), "
        "NRRD (.nrrd, .nhdr) or MetaImage (.mha, .mhd)."
    )


def read_image(path: str | os.PathLike[str], *, series_uid: str | None = None, allow_gaps: bool = False) -> Volume:
    """Read a 3D image (DICOM folder or file, NIfTI, NRRD, MetaImage) as a volume in LPS mm.

    Parameters
    ----------
    path : str or os.PathLike
        A folder of DICOM files, a DICOM file, or a ``.nii``/``.nii.gz``/``.nrrd``/``.nhdr``/``.mha``/``.mhd``
        file (suffixes are case-insensitive).
    series_uid : str, optional
        SeriesInstanceUID to pick when a DICOM folder holds several image series (``--series``).
    allow_gaps : bool, default False
        Resample DICOM series with missing slices or irregular spacing (``--allow-gaps``).

    Returns
    -------
    Volume
        Array indexed (slice, row, column) with its geometry in LPS mm; ``metadata["format"]`` names the format.

    Raises
    ------
    InputError
        If the path does not exist, is not an image, is truncated or corrupt, or is not 3D.
    SeriesError
        For DICOM series problems (see :func:`~hepavol.io.dicom_series.read_dicom_series`).
    GeometryError
        If the file's affine is not an orthogonal grid (sheared).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"Image '{p}' does not exist. Check the path (a DICOM folder or an image file).")
    fmt = image_format(p)
    if fmt == "dicom-folder":
        from hepavol.io.dicom_series import read_dicom_series

        return read_dicom_series(p, series_uid=series_uid, allow_gaps=allow_gaps)
    if fmt == "nifti":
        return _read_nifti(p)
    if fmt == "itk":
        return _read_itk(p)
    if fmt == "dicom":
        return _read_dicom_file(p, series_uid=series_uid, allow_gaps=allow_gaps)
    if p.name.lower().endswith(DICOM_SUFFIXES):
        raise InputError(
            f"'{p}' is named like a DICOM file but lacks the DICOM Part 10 'DICM' prefix (it is not a DICOM "
            "file, or a raw dataset without file meta information). Re-export it as a DICOM file."
        )
    raise _not_an_image(p)


# ---------------------------------------------------------------------------------------------- DICOM file
def _read_dicom_file(p: Path, *, series_uid: str | None, allow_gaps: bool) -> Volume:
    header = read_dicom_file_header(p)
    assert header is not None
    if header.sop_class_uid.startswith(_NON_IMAGE_SOP_PREFIXES) or header.modality.upper() in ("SEG", "SR"):
        raise InputError(
            f"'{p}' is a DICOM {header.modality or 'non-image'} object, not an image. Give the image series "
            "(a folder or one of its slices); a DICOM SEG goes to --seg."
        )
    if header.number_of_frames > 1:
        return read_dicom_files([p], series_uid=None, allow_gaps=allow_gaps, source=str(p))
    uid = header.series_uid if series_uid is None else series_uid
    siblings = sorted(q for q in p.parent.iterdir() if q.is_file())
    return read_dicom_files(siblings, series_uid=uid, allow_gaps=allow_gaps, source=str(p.parent))


# ---------------------------------------------------------------------------------------------- NIfTI
def _raw_pixdim(head: bytes) -> list[float] | None:
    """pixdim[1:4] of a NIfTI-1 (offset 76, float32) or NIfTI-2 (offset 104, float64) header as written."""
    import struct

    for endian in "<>":
        if len(head) >= 4 and struct.unpack(endian + "i", head[:4])[0] == 348 and len(head) >= 92:
            return [float(v) for v in struct.unpack(endian + "3f", head[80:92])]
        if len(head) >= 4 and struct.unpack(endian + "i", head[:4])[0] == 540 and len(head) >= 112:
            return [float(v) for v in struct.unpack(endian + "3d", head[112 - 24 : 112])]
    return None


def _nifti_affine(img: Any, p: Path, raw_pixdim: list[float] | None = None) -> NDArray[np.float64]:
    header = img.header
    sform, scode = header.get_sform(coded=True)
    if scode is not None and int(scode) > 0:
        return np.asarray(sform, dtype=float)
    qform, qcode = header.get_qform(coded=True)
    pixdim = raw_pixdim if raw_pixdim is not None else [float(v) for v in header["pixdim"][1:4]]
    zero = not all(math.isfinite(v) and v != 0 for v in pixdim)
    shown = "[" + ", ".join(f"{v:g}" for v in pixdim) + "]"
    if qcode is not None and int(qcode) > 0:
        if zero:
            raise InputError(
                f"'{p}' has a qform but its voxel sizes (pixdim[1:4]) are {shown} mm: the voxel spacing is "
                "unknown, so no volume in mL can be computed. Convert the scan again with its geometry (e.g. "
                "dcm2niix from the DICOM series)."
            )
        return np.asarray(qform, dtype=float)
    if zero:
        raise InputError(
            f"'{p}' has neither an sform nor a qform (both codes are 0) and its voxel sizes (pixdim[1:4]) are "
            f"{shown} mm: the voxel spacing is unknown, so no volume in mL can be computed. Convert the scan again "
            "with its geometry (e.g. dcm2niix from the DICOM series)."
        )
    warnings.warn(
        f"'{p}' has neither an sform nor a qform (both codes are 0); using the voxel sizes with no rotation or "
        "origin (NIfTI method 1). Positions in mm are not patient coordinates.",
        UserWarning,
        stacklevel=4,
    )
    return np.asarray(header.get_base_affine(), dtype=float)


def _squeeze_to_3d(shape: tuple[int, ...], p: Path) -> tuple[int, int, int]:
    dims = list(shape)
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    if len(dims) < 3:
        raise InputError(
            f"'{p}' is a {len(dims)}D image (shape {tuple(shape)}); hepavol needs a 3D volume (slices of a CT "
            "or MR scan)."
        )
    if len(dims) > 3:
        raise InputError(
            f"'{p}' is a {len(dims)}D image (shape {tuple(shape)}); hepavol needs one 3D volume. Split the "
            "time points or channels into separate 3D files first."
        )
    return (dims[0], dims[1], dims[2])


def _gzip_open(p: Path) -> Any:
    """A gzip reader: ISA-L's (python-isal, about 2× faster to decompress) when installed, else the standard one."""
    try:
        from isal import igzip as gzip
    except ImportError:  # pragma: no cover - isal is a dependency; the standard module gives the same bytes
        import gzip  # type: ignore[no-redef]
    return gzip.open(p, "rb")


def _gzip_header_problem(p: Path) -> str | None:
    """Why the first 348 bytes of a gzip file cannot be decompressed (standard reader), or None when they can."""
    import gzip

    try:
        with gzip.open(p, "rb") as fh:
            n = len(fh.read(348))
    except (OSError, EOFError) as exc:
        return str(exc)
    return None if n >= 348 else f"the header is cut after {n} bytes"


def _read_nifti(p: Path) -> Volume:
    import nibabel as nib

    compressed = p.name.lower().endswith(".gz")
    try:
        fh = _gzip_open(p) if compressed else open(p, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InputError(f"Cannot open '{p}': {exc}.") from exc
    with fh:
        try:
            head = fh.read(112)
            fh.seek(0)
            sizes = (
                {int.from_bytes(head[:4], "little"), int.from_bytes(head[:4], "big")} if len(head) >= 4 else set()
            )
            # pixdim as written: nibabel replaces a voxel size of 0 by 1 when it checks the header
            raw_pixdim = _raw_pixdim(head)
            # nibabel logs the header fixes it makes ("setting 0 dims to 1"); hepavol checks pixdim itself
            if 348 in sizes:
                with nib.imageglobals.LoggingOutputSuppressor():
                    img: Any = nib.Nifti1Image.from_stream(fh)
            elif 540 in sizes:
                with nib.imageglobals.LoggingOutputSuppressor():
                    img = nib.Nifti2Image.from_stream(fh)
            else:
                raise InputError("its header does not start with sizeof_hdr 348 (NIfTI-1) or 540 (NIfTI-2)")
        except EOFError as exc:  # ISA-L's reader reads ahead: a cut gzip stream can end while the header is read
            header_problem = _gzip_header_problem(p)
            if header_problem is not None:
                raise InputError(
                    f"'{p}' cannot be read as NIfTI ({header_problem}). The file is not a NIfTI image, or it is "
                    "corrupt."
                ) from exc
            raise InputError(
                f"'{p}' is truncated or corrupt: its voxel data cannot be read completely ({exc}). "
                "Replace it with a complete copy."
            ) from exc
        except Exception as exc:
            raise InputError(
                f"'{p}' cannot be read as NIfTI ({exc}). The file is not a NIfTI image, or it is corrupt."
            ) from exc
        ijk_shape = _squeeze_to_3d(tuple(int(n) for n in img.shape), p)
        try:
            data = _unscaled_voxels(fh, img.dataobj)
            if data is None:
                data = np.asanyarray(img.dataobj)
            if compressed:
                fh.read()  # read to the end of the gzip stream: gzip checks its CRC-32 and length there
        except Exception as exc:
            raise InputError(
                f"'{p}' is truncated or corrupt: its voxel data cannot be read completely ({exc}). "
                "Replace it with a complete copy."
            ) from exc
    data = np.asarray(data).reshape(ijk_shape, order="F") if data.ndim != 3 else np.asarray(data)
    if data.dtype.kind == "c" or data.dtype.fields is not None:
        raise InputError(f"'{p}' holds {data.dtype} voxels (complex or RGB); hepavol needs scalar voxels.")
    if data.dtype.kind == "f" and img.get_data_dtype().kind in "iu":
        data = _narrow_scaled(data)
    affine_ras = _nifti_affine(img, p, raw_pixdim)
    affine_lps = _RAS_TO_LPS @ affine_ras @ _KJI_TO_IJK
    array = data.transpose(2, 1, 0)
    try:
        geometry = Geometry.from_affine(affine_lps, array.shape)
    except GeometryError as exc:
        raise GeometryError(f"'{p}': {exc}") from exc
    meta = {"format": "nifti", "orientation_code": geometry.orientation_code}
    return Volume(array, geometry, str(p), meta)


def _unscaled_voxels(fh: Any, proxy: Any) -> NDArray[Any] | None:
    """The voxels as stored when the header does not scale them (None otherwise: nibabel scales them).

    What ``np.asanyarray(proxy)`` gives (same dtype, shape and order), read into a numpy buffer rather than
    nibabel's ``bytearray``: numpy's large allocations use transparent huge pages where the system offers them,
    which makes the first touch of a 150 MB volume several times cheaper.
    """
    slope, inter = float(proxy.slope), float(proxy.inter)
    if slope != 1.0 or inter != 0.0:
        return None
    dtype = np.dtype(proxy.dtype)
    shape = tuple(int(n) for n in proxy.shape)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    fh.seek(int(proxy.offset))
    buffer = np.empty(size, np.uint8)
    view = buffer.data
    done = 0
    while done < size:
        n = fh.readinto(view[done:])
        if not n:
            raise EOFError(f"the voxel data ends after {done} of {size} bytes")
        done += n
    return buffer.view(dtype).reshape(shape, order=getattr(proxy, "order", "F"))


def _narrow_scaled(data: NDArray[Any]) -> NDArray[Any]:
    """Integer voxels scaled by scl_slope/scl_inter: int16 when the results are integers that fit, else float32."""
    if np.all(np.isfinite(data)):
        lo, hi = float(data.min()), float(data.max())
        if lo >= -32768 and hi <= 32767 and np.array_equal(data, np.rint(data)):
            return data.astype(np.int16)
    return data.astype(np.float32)


# ---------------------------------------------------------------------------------------------- ITK formats
def _read_itk(p: Path) -> Volume:
    import SimpleITK as sitk

    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(p))
        reader.ReadImageInformation()
        size = reader.GetSize()
        image = reader.Execute()
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()
        brief = detail[-1] if detail else str(exc)
        raise InputError(
            f"'{p}' cannot be read (SimpleITK: {brief}). The file is not a NRRD/MetaImage image, or it is "
            "truncated or corrupt (a .mhd/.nhdr also needs its data file beside it)."
        ) from exc
    dims = list(size)
    if len(dims) != 3:
        if len(dims) == 4 and dims[3] == 1:
            image = image[:, :, :, 0]
        else:
            shape = tuple(reversed(dims))
            raise InputError(
                f"'{p}' is a {len(dims)}D image (shape {shape} in (.., slice, row, column) order); hepavol needs "
                "one 3D volume."
            )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"'{p}' has {image.GetNumberOfComponentsPerPixel()} components per voxel (colour or vector image); "
            "hepavol needs scalar voxels."
        )
    try:
        volume = Volume.from_sitk(image, source=str(p))
    except GeometryError as exc:
        raise GeometryError(f"'{p}': {exc}") from exc
    suffix = p.name.lower().rsplit(".", 1)[-1]
    return Volume(volume.array, volume.geometry, str(p), {"format": suffix})


# ---------------------------------------------------------------------------------------------- writing
@contextlib.contextmanager
def _temporary_beside(target: Path, suffix: str) -> Iterator[Path]:
    """A temporary path beside ``target`` with the same suffix; renamed over ``target`` on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def nifti_affine_ras(geometry: Geometry) -> NDArray[np.float64]:
    """The NIfTI (i, j, k) -> RAS mm affine of a geometry whose array is stored as ``array.transpose(2, 1, 0)``."""
    return _RAS_TO_LPS @ geometry.affine @ _KJI_TO_IJK


def _nifti_dtype(array: NDArray[Any], p: Path) -> NDArray[Any]:
    """64-bit integers become int32 (NIfTI tools rarely read int64), float16 becomes float32."""
    if array.dtype.kind in "iu" and array.dtype.itemsize == 8:
        lo = int(array.min()) if array.size else 0
        hi = int(array.max()) if array.size else 0
        info = np.iinfo(np.int32)
        if lo < info.min or hi > info.max:
            raise InputError(
                f"Cannot write '{p}': values {lo}..{hi} do not fit the 32-bit integers NIfTI tools read; "
                "write .nrrd or .mha instead."
            )
        return array.astype(np.int32)
    if array.dtype == np.float16:
        return array.astype(np.float32)
    return array


def write_image(volume: Volume, path: str | os.PathLike[str]) -> Path:
    """Write a volume as NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``) or MetaImage (``.mha``), atomically.

    NIfTI gets the LPS geometry converted to RAS in both the sform and the qform (code 1, scanner anatomical),
    units mm, and the array stored with i = column, j = row, k = slice, so :func:`read_image` returns the same
    array and geometry. Boolean arrays are stored as uint8; for NIfTI, 64-bit integers as int32 (when they fit)
    and float16 as float32. NRRD and MetaImage are written by SimpleITK with
    compression. The file appears complete or not at all (written beside the target, then renamed).

    Parameters
    ----------
    volume : Volume
        The image or label map to write.
    path : str or os.PathLike
        Output file; its suffix (case-insensitive) picks the format.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    InputError
        If the suffix is not one of ``.nii``, ``.nii.gz``, ``.nrrd``, ``.mha``.
    """
    p = Path(path)
    name = p.name.lower()
    if not name.endswith(WRITE_SUFFIXES):
        raise InputError(
            f"Cannot write '{p}': the suffix must be one of {', '.join(WRITE_SUFFIXES)} (single-file formats, "
            "so the write is atomic)."
        )
    array = np.asarray(volume.array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if name.endswith(NIFTI_SUFFIXES):
        import nibabel as nib

        array = _nifti_dtype(array, p)

        affine = nifti_affine_ras(volume.geometry)
        img = nib.Nifti1Image(array.transpose(2, 1, 0), affine)
        img.header.set_sform(affine, code=1)
        img.header.set_qform(affine, code=1)
        img.header.set_xyzt_units(xyz="mm")
        img.header.set_data_dtype(array.dtype)
        suffix = ".nii.gz" if name.endswith(".nii.gz") else ".nii"
        with _temporary_beside(p, suffix) as tmp:
            nib.save(img, str(tmp))
        return p
    import SimpleITK as sitk

    image = Volume(array, volume.geometry, volume.source).to_sitk()
    suffix = "." + name.rsplit(".", 1)[-1]
    with _temporary_beside(p, suffix) as tmp:
        sitk.WriteImage(image, str(tmp), True)
    return p
