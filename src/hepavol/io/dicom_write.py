"""Write a :class:`~hepavol.volume.Volume` as a DICOM CT or MR Image Storage series (one file per slice).

Used by the tests (the same phantom as DICOM and NIfTI must read back identically) and by the simulator. The
headers are realistic (patient, study, series, frame of reference, equipment, image plane, image pixel, CT/MR
image and SOP common modules) and carry nothing identifying: the patient is ``ANON`` unless told otherwise.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hepavol._atomic import atomic_open
from hepavol._version import __version__
from hepavol.errors import InputError
from hepavol.volume import Volume

__all__ = ["write_dicom_series"]

_SOP_CLASSES = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "MR": "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
}
_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}


def _ds(value: float) -> str:
    """A DICOM DS string (at most 16 characters) for a float."""
    from pydicom.valuerep import format_number_as_ds

    if abs(value) < 1e-12:
        value = 0.0
    return str(format_number_as_ds(float(value)))


def _encode(array: NDArray[Any]) -> tuple[NDArray[Any], float, float, int]:
    """Stored values, slope, intercept and PixelRepresentation for an array (lossless when it is integral)."""
    a = np.asarray(array)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    lo = float(a.min()) if a.size else 0.0
    hi = float(a.max()) if a.size else 0.0
    integral = np.issubdtype(a.dtype, np.integer) or bool(np.all(a == np.rint(a)))
    if integral and lo >= -32768 and hi <= 32767:
        return a.astype(np.int16, copy=False), 1.0, 0.0, 1
    if integral and lo >= 0 and hi <= 65535:
        return a.astype(np.uint16, copy=False), 1.0, 0.0, 0
    # not representable as 16-bit integers: quantise linearly onto 0..65535 (lossy; documented)
    slope = float(_ds((hi - lo) / 65535.0 if hi > lo else 1.0))
    intercept = float(_ds(lo))
    stored = np.clip(np.rint((a.astype(np.float64) - intercept) / slope), 0, 65535).astype(np.uint16)
    return stored, slope, intercept, 0


def _date(study_date: dt.date | str | None) -> str:
    if study_date is None:
        return dt.date.today().strftime("%Y%m%d")
    if isinstance(study_date, dt.date):
        return study_date.strftime("%Y%m%d")
    text = str(study_date).replace("-", "")
    try:
        dt.datetime.strptime(text, "%Y%m%d")
    except ValueError as exc:
        raise InputError(
            f"Argument 'study_date' must be a date (YYYY-MM-DD or YYYYMMDD), but it is {study_date!r}."
        ) from exc
    return text


def write_dicom_series(
    volume: Volume,
    folder: str | os.PathLike[str],
    *,
    modality: str = "CT",
    series_description: str = "hepavol series",
    patient_id: str = "ANON",
    patient_name: str = "ANON^",
    study_date: dt.date | str | None = None,
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    series_number: int = 1,
    transfer_syntax: str = "1.2.840.10008.1.2.1",
    file_prefix: str = "IM",
) -> list[Path]:
    """Write a volume as a single-frame CT or MR Image Storage series, one file per slice.

    Slice ``k`` of the array becomes instance ``k + 1`` at ImagePositionPatient ``geometry.index_to_lps((k, 0,
    0))``; ImageOrientationPatient is (column axis, row axis) of the geometry. A reader sorts slices along the
    normal (row axis × column axis); when the geometry's slice axis points the other way (a left-handed grid),
    the series reads back with its slices in reverse order, i.e. the same voxels in LPS but axis 0 flipped.

    Integer-valued arrays are stored losslessly (int16 when they fit, else uint16) with RescaleSlope 1 and
    RescaleIntercept 0 (RescaleType HU for CT); other arrays are quantised linearly onto 0-65535 through
    RescaleSlope/RescaleIntercept.

    Parameters
    ----------
    volume : Volume
        The image; its geometry gives the positions (LPS mm), orientation and spacing.
    folder : str or os.PathLike
        Output folder. If it does not exist the series is written to a temporary folder beside it and renamed
        (all files appear at once); if it exists every file is written atomically and none may exist already.
    modality : {"CT", "MR"}
        Modality and SOP class (CT Image Storage or MR Image Storage).
    series_description, patient_id, patient_name : str
        Header values; the defaults identify nobody.
    study_date : datetime.date or str, optional
        StudyDate/SeriesDate (YYYY-MM-DD or YYYYMMDD); today when omitted.
    study_instance_uid, series_instance_uid, frame_of_reference_uid : str, optional
        UIDs to reuse (e.g. several series of one study); new ones from ``pydicom.uid.generate_uid`` otherwise.
        When ``series_instance_uid`` is given, the SOP Instance UIDs are derived from it and the slice index
        (``generate_uid(entropy_srcs=...)``), so rewriting the same series gives the same files.
    series_number : int
        SeriesNumber.
    transfer_syntax : str
        Transfer syntax UID: explicit (default) or implicit VR little endian, or a compressed one that pydicom
        can encode (RLE Lossless; JPEG-LS Lossless with pyjpegls; JPEG 2000 Lossless with pylibjpeg-openjpeg).
    file_prefix : str
        File names are ``{file_prefix}{k + 1:05d}.dcm``.

    Returns
    -------
    list of Path
        The files written, in array (slice) order.

    Raises
    ------
    InputError
        If the modality is not CT or MR, a file would be overwritten, or the transfer syntax cannot be encoded.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, generate_uid

    mod = modality.upper()
    if mod not in _SOP_CLASSES:
        raise InputError(f"Argument 'modality' must be 'CT' or 'MR', but it is {modality!r}.")
    ts = UID(transfer_syntax)
    if not ts.is_transfer_syntax:
        raise InputError(
            f"Argument 'transfer_syntax' must be a transfer syntax UID, but it is {transfer_syntax!r}."
        )
    target = Path(folder)
    g = volume.geometry
    d = g.direction_matrix
    row_cos = d[:, 2]
    col_cos = d[:, 1]
    normal = np.cross(row_cos, col_cos)
    stored, slope, intercept, pixel_rep = _encode(volume.array)
    date = _date(study_date)
    study_uid = study_instance_uid or generate_uid()
    series_uid = series_instance_uid or generate_uid()
    for_uid = frame_of_reference_uid or generate_uid()
    sop_class = _SOP_CLASSES[mod]
    n_slices, rows, cols = g.shape
    names = [f"{file_prefix}{k + 1:05d}.dcm" for k in range(n_slices)]

    exists = target.exists()
    if exists:
        if not target.is_dir():
            raise InputError(f"'{target}' exists and is not a folder; give a folder for the DICOM series.")
        clash = [n for n in names if (target / n).exists()]
        if clash:
            raise InputError(
                f"'{target / clash[0]}' already exists ({len(clash)} of the {n_slices} file names are taken). "
                "Write the series into an empty or new folder, or pass another file_prefix."
            )
        out_dir = target
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        out_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))

    iop = [_ds(v) for v in (*row_cos, *col_cos)]
    spacing = [_ds(g.spacing_mm[1]), _ds(g.spacing_mm[2])]
    paths: list[Path] = []
    try:
        for k in range(n_slices):
            position = g.index_to_lps((k, 0, 0))
            # SOP Instance UIDs are reproducible when the caller fixes the series UID (simulated cohorts)
            sop_uid = generate_uid(entropy_srcs=[series_uid, str(k)]) if series_instance_uid else generate_uid()
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = UID(sop_class)
            meta.MediaStorageSOPInstanceUID = UID(sop_uid)
            meta.TransferSyntaxUID = UID(
                "1.2.840.10008.1.2" if ts == "1.2.840.10008.1.2" else "1.2.840.10008.1.2.1"
            )
            meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
            meta.ImplementationVersionName = f"HEPAVOL_{__version__}"[:16]
            ds = Dataset()
            ds.file_meta = meta
            ds.SpecificCharacterSet = "ISO_IR 100"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL" if mod == "CT" else "OTHER"]
            ds.SOPClassUID = sop_class
            ds.SOPInstanceUID = sop_uid
            ds.StudyDate = date
            ds.SeriesDate = date
            ds.ContentDate = date
            ds.StudyTime = "120000"
            ds.SeriesTime = "120000"
            ds.ContentTime = "120000"
            ds.AccessionNumber = ""
            ds.Modality = mod
            ds.Manufacturer = "hepavol"
            ds.ReferringPhysicianName = ""
            ds.StudyDescription = ""
            ds.SeriesDescription = series_description
            ds.ManufacturerModelName = "hepavol"
            ds.SoftwareVersions = __version__
            ds.PatientName = patient_name
            ds.PatientID = patient_id
            ds.PatientBirthDate = ""
            ds.PatientSex = ""
            ds.PatientPosition = "HFS"
            ds.SliceThickness = _ds(g.spacing_mm[0])
            if mod == "CT":
                ds.KVP = ""
            else:
                ds.ScanningSequence = "SE"
                ds.SequenceVariant = "NONE"
                ds.ScanOptions = ""
                ds.MRAcquisitionType = "2D"
                ds.EchoTime = ""
                ds.RepetitionTime = ""
                ds.EchoTrainLength = ""
                ds.SpacingBetweenSlices = _ds(g.spacing_mm[0])
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series_uid
            ds.StudyID = "1"
            ds.BodyPartExamined = "ABDOMEN"
            ds.SeriesNumber = series_number
            ds.AcquisitionNumber = 1
            ds.InstanceNumber = k + 1
            ds.ImagePositionPatient = [_ds(v) for v in position]
            ds.ImageOrientationPatient = iop
            ds.FrameOfReferenceUID = for_uid
            ds.PositionReferenceIndicator = ""
            ds.SliceLocation = _ds(float(np.dot(position, normal)))
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.Rows = rows
            ds.Columns = cols
            ds.PixelSpacing = spacing
            ds.BitsAllocated = 16
            ds.BitsStored = 16
            ds.HighBit = 15
            ds.PixelRepresentation = pixel_rep
            if mod == "CT" or slope != 1.0 or intercept != 0.0:  # the MR IOD has no rescale unless needed
                ds.RescaleIntercept = _ds(intercept)
                ds.RescaleSlope = _ds(slope)
            if mod == "CT":
                ds.RescaleType = "HU"
            ds.PixelData = np.ascontiguousarray(stored[k]).astype("<" + stored.dtype.str[1:], copy=False).tobytes()
            ds["PixelData"].VR = "OW"
            if str(ts) not in _UNCOMPRESSED:
                try:
                    ds.compress(ts)
                except Exception as exc:
                    raise InputError(
                        f"Cannot encode the series with transfer syntax {ts.name} ({ts}): {exc}. Use an "
                        "uncompressed transfer syntax or install the encoder pydicom names."
                    ) from exc
            path = out_dir / names[k]
            with atomic_open(path, "wb") as fh:
                ds.save_as(fh, enforce_file_format=True)
            paths.append(target / names[k])
        if not exists:
            os.replace(out_dir, target)
    except BaseException:
        if not exists:
            with contextlib.suppress(OSError):
                shutil.rmtree(out_dir)
        raise
    return paths
