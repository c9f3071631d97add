"""Read a DICOM image series (CT, MR, PET) from a folder into a :class:`~hepavol.volume.Volume` in LPS mm.

How a folder becomes one volume:

1. Every file under the folder (recursively) whose bytes 128-131 are the ``DICM`` prefix is read up to its pixel
   data. Files without the prefix are skipped silently (notes, thumbnails, ``.DS_Store``); a file with the prefix
   that cannot be parsed, or whose pixel data is cut short, is an error naming the file.
2. Objects that are not images are ignored: DICOM SEG, SR, key objects, presentation states, RT objects,
   registrations, encapsulated documents and DICOMDIR (by SOP Class UID and Modality), and objects without pixel
   data or without ImagePositionPatient/ImageOrientationPatient (e.g. dose-report screen captures).
3. Localizers are ignored: slices whose ImageType contains ``LOCALIZER``, and, when a multi-slice series exists,
   series made of a single slice (scouts are usually stored that way).
4. The remaining slices are grouped by SeriesInstanceUID. More than one series is an error that lists them, unless
   ``series_uid`` picks one (``--series UID`` on the command line).
5. Slices are sorted by their position along the slice normal (the cross product of the two
   ImageOrientationPatient vectors), never by file name or InstanceNumber. All slices must share orientation,
   pixel spacing, rows and columns. Duplicate positions, missing slices and irregular spacing are errors naming the
   gap; with ``allow_gaps=True`` the slices are resampled onto a regular grid (linear interpolation along the slice
   axis between the two nearest acquired slices).
6. Gantry tilt: a series whose slice positions do not line up along the slice normal (a sheared grid, as written by
   scanners for tilted-gantry CT) is **rejected** with a :class:`~hepavol.errors.SeriesError`; hepavol does not
   correct the shear. Convert such a series first with a tool that does (e.g. ``dcm2niix`` writes a tilt-corrected
   NIfTI). A non-zero GantryDetectorTilt whose slices do line up along the normal is an orthogonal grid and is read.
7. RescaleSlope/RescaleIntercept are applied per slice. The result stays ``int16`` when slope and intercept are
   integers and every rescaled value fits (CT in HU), ``uint16`` when they fit only there, else ``float32``.

Uncompressed pixel data (implicit/explicit VR little endian, explicit big endian) is read straight from the file
into a preallocated array; compressed transfer syntaxes (JPEG 2000, JPEG lossless, JPEG-LS, RLE, deflate) are
decoded by pydicom with the pylibjpeg plugins. Enhanced (multi-frame) CT/MR/PET files are read with highdicom.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hepavol.errors import GeometryError, InputError, SeriesError
from hepavol.geometry import Geometry
from hepavol.volume import Volume

__all__ = ["is_dicom_file", "read_dicom_file_header", "read_dicom_files", "read_dicom_series"]

#: Uncompressed transfer syntaxes read directly from the file (UID -> big endian?).
_NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2": False,  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1": False,  # Explicit VR Little Endian
    "1.2.840.10008.1.2.2": True,  # Explicit VR Big Endian (retired)
}

#: SOP Class UID prefixes of objects that are never part of an image volume.
_NON_IMAGE_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.66",  # raw data, spatial registration, fiducials, SEG (66.4), surface SEG...
    "1.2.840.10008.5.1.4.1.1.67",  # real world value mapping
    "1.2.840.10008.5.1.4.1.1.88.",  # structured reports, key object selection
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
    "1.2.840.10008.5.1.4.1.1.481.",  # RT objects (dose, structure set, plan...)
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated PDF/CDA
    "1.2.840.10008.1.3.10",  # DICOMDIR
)
_NON_IMAGE_MODALITIES = frozenset(
    {"SEG", "SR", "KO", "PR", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "RTIMAGE", "REG", "RWV", "DOC", "FID"}
)
#: Image storage SOP classes that must carry pixel data (a CT/MR/PET object without it is truncated or broken).
_IMAGE_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.2",  # CT
        "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT
        "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT
        "1.2.840.10008.5.1.4.1.1.4",  # MR
        "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR
        "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR
        "1.2.840.10008.5.1.4.1.1.128",  # PET
        "1.2.840.10008.5.1.4.1.1.130",  # Enhanced PET
        "1.2.840.10008.5.1.4.1.1.128.1",  # Legacy Converted Enhanced PET
    }
)
_PIXEL_DATA_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")

#: Tolerances (mm, or unitless for direction cosines) for assembling a series.
ORIENTATION_ATOL = 1e-4
PIXEL_SPACING_ATOL_MM = 1e-4
DUPLICATE_ATOL_MM = 1e-2
SPACING_ATOL_MM = 1e-2
SPACING_RTOL = 5e-3
#: In-plane offset between slices (fraction of the smallest pixel spacing) above which a series counts as sheared.
SHEAR_TOL_PIXELS = 0.1


@dataclass(slots=True)
class DicomHeader:
    """The few header values of one DICOM file needed to place it in a volume (no patient data)."""

    path: Path
    series_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    modality: str
    description: str
    image_type: tuple[str, ...]
    instance_number: int | None
    position: tuple[float, float, float] | None
    orientation: tuple[float, float, float, float, float, float] | None
    pixel_spacing: tuple[float, float] | None
    rows: int
    columns: int
    number_of_frames: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    slope: float
    intercept: float
    transfer_syntax: str
    has_pixels: bool
    pixel_offset: int | None
    pixel_length: int | None
    file_size: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How messages name this file: the path, and the InstanceNumber when there is one."""
        if self.instance_number is None:
            return f"'{self.path}'"
        return f"instance {self.instance_number} ('{self.path}')"


# ---------------------------------------------------------------------------------------------- header reading
def is_dicom_file(path: str | os.PathLike[str]) -> bool:
    """True when the file has the 128-byte preamble followed by ``DICM`` (DICOM Part 10 file)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _float(value: Any, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _int_or_none(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None or value == "" or len(value) == 0:
        return None
    try:
        vals = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(vals) != n or not all(math.isfinite(v) for v in vals):
        return None
    return vals


def read_dicom_file_header(path: str | os.PathLike[str]) -> DicomHeader | None:
    """Read the header of one file up to its pixel data; ``None`` when the file has no ``DICM`` prefix.

    Raises
    ------
    SeriesError
        If the file has the ``DICM`` prefix but cannot be parsed, or its uncompressed pixel data is cut short.
    """
    import pydicom

    p = Path(path)
    try:
        fh = open(p, "rb")  # noqa: SIM115 - closed by the with block below
    except OSError as exc:
        raise SeriesError(f"Cannot open '{p}': {exc.strerror or exc}. Check its permissions.") from exc
    with fh:
        head = fh.read(132)
        if len(head) < 132 or head[128:132] != b"DICM":
            return None
        fh.seek(0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
        except Exception as exc:
            raise SeriesError(
                f"'{p}' starts like a DICOM file (it has the DICM prefix) but cannot be read "
                f"(pydicom: {exc}). The file is corrupt or truncated: replace it with a good copy or remove it "
                "from the folder."
            ) from exc
        pixel_pos = fh.tell()
        tag = fh.read(12)
        file_size = os.fstat(fh.fileno()).st_size
    meta = getattr(ds, "file_meta", None)
    transfer_syntax = str(getattr(meta, "TransferSyntaxUID", "") or "1.2.840.10008.1.2")
    has_pixels = len(tag) >= 8 and tag[:4] in _PIXEL_DATA_TAGS
    pixel_offset: int | None = None
    pixel_length: int | None = None
    if has_pixels and transfer_syntax in _NATIVE_SYNTAXES:
        big = _NATIVE_SYNTAXES[transfer_syntax]
        if transfer_syntax == "1.2.840.10008.1.2":  # implicit VR: tag, 4-byte length
            (length,) = struct.unpack("<I", tag[4:8])
            pixel_offset = pixel_pos + 8
        else:  # explicit VR OB/OW: tag, VR, 2 reserved bytes, 4-byte length
            (length,) = struct.unpack(">I" if big else "<I", tag[8:12])
            pixel_offset = pixel_pos + 12
        pixel_length = None if length == 0xFFFFFFFF else int(length)
    r = _RawReader(ds, little=not _NATIVE_SYNTAXES.get(transfer_syntax, False))
    extra = {
        "study_instance_uid": r.text(0x0020000D),
        "frame_of_reference_uid": r.text(0x00200052),
        "study_date": r.text(0x00080020),
        "slice_thickness_mm": _float(r.text(0x00180050), math.nan),
        "spacing_between_slices_mm": _float(r.text(0x00180088), math.nan),
        "gantry_tilt_deg": _float(r.text(0x00181120), 0.0),
        "rescale_type": r.text(0x00281054),
        "echo_time_ms": _float(r.text(0x00180081), math.nan),
        "acquisition_number": _int_or_none(r.text(0x00200012)),
    }
    bits_allocated = r.us(0x00280100, 0)
    return DicomHeader(
        path=p,
        series_uid=r.text(0x0020000E),
        sop_class_uid=r.text(0x00080016) or str(getattr(meta, "MediaStorageSOPClassUID", "") or ""),
        sop_instance_uid=r.text(0x00080018) or str(getattr(meta, "MediaStorageSOPInstanceUID", "") or ""),
        modality=r.text(0x00080060),
        description=r.text(0x0008103E),
        image_type=tuple(v.upper() for v in r.texts(0x00080008)),
        instance_number=_int_or_none(r.text(0x00200013)),
        position=_floats(r.texts(0x00200032), 3),  # type: ignore[arg-type]
        orientation=_floats(r.texts(0x00200037), 6),  # type: ignore[arg-type]
        pixel_spacing=_floats(r.texts(0x00280030), 2),  # type: ignore[arg-type]
        rows=r.us(0x00280010, 0),
        columns=r.us(0x00280011, 0),
        number_of_frames=_int_or_none(r.text(0x00280008)) or 1,
        samples_per_pixel=r.us(0x00280002, 1),
        bits_allocated=bits_allocated,
        bits_stored=r.us(0x00280101, 0) or bits_allocated,
        pixel_representation=r.us(0x00280103, 0),
        photometric=r.text(0x00280004),
        slope=_float(r.text(0x00281053), 1.0),
        intercept=_float(r.text(0x00281052), 0.0),
        transfer_syntax=transfer_syntax,
        has_pixels=has_pixels,
        pixel_offset=pixel_offset,
        pixel_length=pixel_length,
        file_size=file_size,
        extra=extra,
    )


class _RawReader:
    """Read a few top-level header values from their raw bytes (much faster than pydicom's value conversion)."""

    def __init__(self, ds: Any, *, little: bool) -> None:
        self._ds = ds
        self._little = little

    def _value(self, tag: int) -> Any:
        try:
            elem = self._ds.get_item(tag)
        except Exception:
            return None
        return None if elem is None else elem.value

    def text(self, tag: int) -> str:
        """A string value (UI, CS, LO, DS, IS, DA...), stripped; '' when absent."""
        v = self._value(tag)
        if v is None:
            return ""
        if isinstance(v, bytes | bytearray):
            return bytes(v).decode("latin-1").strip(" \x00")
        if isinstance(v, list | tuple):
            return "\\".join(str(x) for x in v)
        return str(v).strip()

    def texts(self, tag: int) -> list[str]:
        """A multi-valued string split on backslashes; [] when absent."""
        t = self.text(tag)
        return [x.strip() for x in t.split("\\")] if t else []

    def us(self, tag: int, default: int) -> int:
        """An unsigned short (US) value."""
        v = self._value(tag)
        if v is None or v == b"":
            return default
        if isinstance(v, bytes | bytearray):
            if len(v) < 2:
                return default
            return int(struct.unpack("<H" if self._little else ">H", bytes(v[:2]))[0])
        try:
            return int(v)
        except (TypeError, ValueError):
            return default


def _non_image_reason(h: DicomHeader) -> str | None:
    """Why a DICOM object is not a slice of an image volume (``None`` if it is one)."""
    if h.sop_class_uid.startswith(_NON_IMAGE_SOP_PREFIXES) or h.modality.upper() in _NON_IMAGE_MODALITIES:
        return h.modality or "non-image object"
    if not h.has_pixels:
        if h.sop_class_uid in _IMAGE_SOP_CLASSES:
            raise SeriesError(
                f"{h.label} is a {h.modality or 'CT/MR'} image object without pixel data: the file is truncated "
                "or broken. Replace it with a good copy or remove it from the folder."
            )
        return "no pixel data"
    if h.number_of_frames == 1 and (h.position is None or h.orientation is None):
        return "no ImagePositionPatient/ImageOrientationPatient"
    return None


def _walk(folder: Path) -> list[Path]:
    """Every file below ``folder``; a sub-folder that cannot be listed is an error (its slices would be missed)."""
    files = []

    def unreadable(exc: OSError) -> None:
        raise SeriesError(
            f"cannot read the folder '{exc.filename}' inside '{folder}' ({exc.strerror}): its files would be left "
            "out of the series. Give your user read access to it (chmod -R u+rX) or move it out of the folder."
        )

    for root, dirs, names in os.walk(folder, onerror=unreadable):
        dirs.sort()
        for name in sorted(names):
            files.append(Path(root) / name)
    return files


# ---------------------------------------------------------------------------------------------- series selection
@dataclass(slots=True)
class _Series:
    uid: str
    slices: list[DicomHeader]
    localizers: int = 0

    @property
    def description(self) -> str:
        return self.slices[0].description

    @property
    def modality(self) -> str:
        return self.slices[0].modality

    @property
    def n_images(self) -> int:
        return sum(h.number_of_frames for h in self.slices)

    def summary(self) -> str:
        uid = self.uid or "(no SeriesInstanceUID)"
        frames = "frames" if any(h.number_of_frames > 1 for h in self.slices) else "slices"
        return f"  {uid}  '{self.description}'  {self.n_images} {frames}  modality {self.modality or '?'}"


def _series_list(series: Iterable[_Series]) -> str:
    return "\n".join(s.summary() for s in series)


def _collect(files: Iterable[Path]) -> tuple[list[_Series], Counter[str], int]:
    """Group the image slices among ``files`` by series; also count what was ignored and the non-DICOM files."""
    ignored: Counter[str] = Counter()
    groups: dict[str, _Series] = {}
    non_dicom = 0
    for path in files:
        h = read_dicom_file_header(path)
        if h is None:
            non_dicom += 1
            continue
        reason = _non_image_reason(h)
        if reason is not None:
            ignored[reason] += 1
            continue
        s = groups.setdefault(h.series_uid, _Series(h.series_uid, []))
        if "LOCALIZER" in h.image_type:
            s.localizers += 1
            ignored["localizer"] += 1
            continue
        s.slices.append(h)
    return [s for s in groups.values() if s.slices], ignored, non_dicom


def _choose_series(
    folder: str, series: list[_Series], series_uid: str | None, ignored: Counter[str], non_dicom: int
) -> _Series:
    if series_uid is not None:
        for s in series:
            if s.uid == series_uid:
                return s
        listing = _series_list(series) if series else "  (none)"
        raise SeriesError(
            f"Series {series_uid!r} was not found among the image series in '{folder}'. Image series found:\n"
            f"{listing}\nPass one of these UIDs with --series UID (series_uid=...)."
        )
    if not series:
        what = ", ".join(f"{n} {k}" for k, n in sorted(ignored.items())) or "no DICOM objects"
        raise SeriesError(
            f"No DICOM image series found in '{folder}' (searched recursively; {what}; {non_dicom} files "
            "without the DICM prefix were skipped). Give the folder that holds the CT or MR slices."
        )
    multi = [s for s in series if s.n_images > 1]
    if len(series) > 1 and multi:
        singles = [s for s in series if s.n_images == 1]
        if singles:
            ignored["single-slice series (scout)"] += len(singles)
        series = multi
    if len(series) > 1:
        raise SeriesError(
            f"'{folder}' holds {len(series)} image series; hepavol reads one at a time:\n"
            f"{_series_list(series)}\nPick one with --series UID (series_uid=...)."
        )
    return series[0]


# ---------------------------------------------------------------------------------------------- geometry
@dataclass(frozen=True, slots=True)
class _Stack:
    slices: list[DicomHeader]  # sorted along the normal
    positions_mm: NDArray[np.float64]  # position of each slice along the normal
    geometry: Geometry
    regular: bool


def _check_consistent(slices: Sequence[DicomHeader], uid: str) -> None:
    first = slices[0]
    for attr, name in (
        ("rows", "Rows"),
        ("columns", "Columns"),
        ("samples_per_pixel", "SamplesPerPixel"),
        ("bits_allocated", "BitsAllocated"),
        ("pixel_representation", "PixelRepresentation"),
    ):
        values = Counter(getattr(h, attr) for h in slices)
        if len(values) > 1:
            odd = next(h for h in slices if getattr(h, attr) != getattr(first, attr))
            raise SeriesError(
                f"Slices of series {uid or '(no SeriesInstanceUID)'} do not share {name}: {first.label} has "
                f"{getattr(first, attr)} but {odd.label} has {getattr(odd, attr)} (values found: "
                f"{dict(values)}). The folder probably mixes two series under one UID; pass the files of one "
                "acquisition only."
            )
    if first.samples_per_pixel != 1:
        raise SeriesError(
            f"Series {uid} is a colour image (SamplesPerPixel = {first.samples_per_pixel}, "
            f"PhotometricInterpretation = {first.photometric}) in {first.label}; hepavol reads greyscale CT/MR."
        )
    if first.bits_allocated not in (8, 16, 32):
        raise SeriesError(
            f"BitsAllocated = {first.bits_allocated} in {first.label} is not supported (expected 8, 16 or 32)."
        )
    for h in slices:
        if h.pixel_spacing is None:
            missing = sum(1 for s in slices if s.pixel_spacing is None)
            raise SeriesError(
                f"PixelSpacing (0028,0030) is missing on {missing} of {len(slices)} slices of series {uid} "
                f"(first: {h.label}). Volumes cannot be measured without pixel spacing."
            )
        if not all(math.isfinite(v) and v > 0 for v in h.pixel_spacing):
            raise SeriesError(
                f"PixelSpacing (0028,0030) of {h.label} in series {uid} is {list(h.pixel_spacing)} mm; both values "
                "must be positive (row spacing, column spacing). The header is corrupt: re-export the series."
            )
        assert h.orientation is not None
        assert first.orientation is not None
        assert first.pixel_spacing is not None
        if np.max(np.abs(np.subtract(h.orientation, first.orientation))) > ORIENTATION_ATOL:
            raise SeriesError(
                f"Slices of series {uid} do not share ImageOrientationPatient: {first.label} has "
                f"{list(first.orientation)} but {h.label} has {list(h.orientation)}. A volume needs one "
                "orientation; remove the slices of the other orientation (e.g. a localizer without the "
                "LOCALIZER image type)."
            )
        if np.max(np.abs(np.subtract(h.pixel_spacing, first.pixel_spacing))) > PIXEL_SPACING_ATOL_MM:
            raise SeriesError(
                f"Slices of series {uid} do not share PixelSpacing: {first.label} has "
                f"{list(first.pixel_spacing)} mm but {h.label} has {list(h.pixel_spacing)} mm. Inconsistent "
                "pixel spacing within one series cannot be stacked into a volume."
            )


def _stack(series: _Series, *, allow_gaps: bool) -> _Stack:
    slices = series.slices
    uid = series.uid or "(no SeriesInstanceUID)"
    _check_consistent(slices, uid)
    first = slices[0]
    assert first.orientation is not None
    assert first.pixel_spacing is not None
    row_cos = np.array(first.orientation[:3])  # direction of increasing column index
    col_cos = np.array(first.orientation[3:])  # direction of increasing row index
    normal = np.cross(row_cos, col_cos)
    norm = float(np.linalg.norm(normal))
    if norm < 1e-6:
        raise SeriesError(
            f"ImageOrientationPatient {list(first.orientation)} of {first.label} has parallel row and column "
            "vectors; the slice normal is undefined."
        )
    normal = normal / norm
    pos = np.array([h.position for h in slices], dtype=float)
    along = pos @ normal
    order = np.argsort(along, kind="stable")
    slices = [slices[i] for i in order]
    pos = pos[order]
    along = along[order]
    n = len(slices)
    # gantry tilt / shear: positions must lie on a line along the normal
    rel = pos - pos[0]
    perp = rel - np.outer(rel @ normal, normal)
    shear = float(np.max(np.linalg.norm(perp, axis=1))) if n > 1 else 0.0
    if shear > SHEAR_TOL_PIXELS * min(first.pixel_spacing):
        tilt = first.extra.get("gantry_tilt_deg", 0.0)
        angle = math.degrees(math.atan2(shear, float(along[-1] - along[0]))) if n > 1 else 0.0
        raise SeriesError(
            f"Slices of series {uid} are not stacked along their normal: positions drift {shear:.2f} mm "
            f"sideways over {float(along[-1] - along[0]):.1f} mm (a sheared grid, {angle:.2f}° off the normal; "
            f"GantryDetectorTilt = {tilt:g}°). hepavol does not correct gantry tilt: convert the series with a "
            "tool that does (e.g. dcm2niix writes a tilt-corrected NIfTI) and read that file instead."
        )
    gaps = np.diff(along)
    dup = np.flatnonzero(gaps < DUPLICATE_ATOL_MM)
    if dup.size:
        i = int(dup[0])
        raise SeriesError(
            f"Series {uid} has {dup.size} duplicate slice position(s): {slices[i].label} and "
            f"{slices[i + 1].label} are both at {float(along[i]):.3f} mm along the slice normal "
            f"(ImagePositionPatient {list(np.round(pos[i], 3))}). The folder probably mixes acquisitions, "
            "echoes or phases under one SeriesInstanceUID (check AcquisitionNumber, EchoTime, "
            "TemporalPositionIdentifier) or holds a copy of some files; keep one set of slices."
        )
    regular = True
    if n > 1:
        expected = float(np.median(gaps))
        bad = np.flatnonzero(np.abs(gaps - expected) > SPACING_ATOL_MM + SPACING_RTOL * expected)
        if bad.size:
            regular = False
            if not allow_gaps:
                lines = []
                for i in bad[:5]:
                    i = int(i)
                    g = float(gaps[i])
                    missing = round(g / expected) - 1
                    kind = (
                        f"about {missing} slice(s) missing"
                        if missing >= 1 and abs(g - (missing + 1) * expected) <= 0.1 * expected
                        else "irregular spacing"
                    )
                    lines.append(
                        f"  gap of {g:.3f} mm between {slices[i].label} at {float(along[i]):.3f} mm and "
                        f"{slices[i + 1].label} at {float(along[i + 1]):.3f} mm where {expected:.3f} mm was "
                        f"expected ({kind})"
                    )
                more = f"\n  ... and {bad.size - 5} more" if bad.size > 5 else ""
                raise SeriesError(
                    f"Slice positions of series {uid} are not regularly spaced ({bad.size} irregular gap(s) "
                    f"among {n} slices):\n" + "\n".join(lines) + more + "\n"
                    "Pass --allow-gaps (allow_gaps=True) to resample the slices onto a regular "
                    f"{expected:.3f} mm grid (linear interpolation along the slice axis)."
                )
        spacing = float(along[-1] - along[0]) / (n - 1) if regular else expected
    else:
        thickness = first.extra.get("spacing_between_slices_mm", math.nan)
        if not (thickness > 0):
            thickness = first.extra.get("slice_thickness_mm", math.nan)
        spacing = float(thickness) if thickness > 0 else 1.0
        if not thickness > 0:
            warnings.warn(
                f"Series {uid} has a single slice without SliceThickness or SpacingBetweenSlices; its slice "
                "spacing is taken as 1 mm, so volumes in mL are not meaningful.",
                UserWarning,
                stacklevel=4,
            )
    direction = np.column_stack([normal, col_cos, row_cos])
    try:
        geometry = Geometry(
            shape=(n, first.rows, first.columns),
            spacing_mm=(spacing, first.pixel_spacing[0], first.pixel_spacing[1]),
            origin_lps_mm=tuple(pos[0]),
            direction=tuple(tuple(r) for r in direction),  # type: ignore[arg-type]
        )
    except GeometryError as exc:
        raise SeriesError(f"Series {uid} ({first.label}) has an unusable geometry: {exc}") from exc
    return _Stack(slices, along, geometry, regular)


# ---------------------------------------------------------------------------------------------- pixels
def _stored_dtype(h: DicomHeader) -> np.dtype[Any]:
    signed = h.pixel_representation == 1
    kind = "i" if signed else "u"
    return np.dtype(f"<{kind}{h.bits_allocated // 8}")


def _decode_compressed(h: DicomHeader, out: NDArray[Any]) -> None:
    import pydicom
    from pydicom.uid import UID

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(h.path)
            arr = ds.pixel_array
    except Exception as exc:
        name = UID(h.transfer_syntax).name
        raise SeriesError(
            f"Cannot decode the pixel data of {h.label} (transfer syntax {name}, {h.transfer_syntax}): {exc}. "
            "If the file is intact, a decoder is missing: hepavol decodes JPEG 2000 with pylibjpeg-openjpeg, "
            "JPEG lossless and JPEG-LS with pylibjpeg-libjpeg and RLE with pydicom (pip install hepavol "
            "installs them); otherwise the file is corrupt or truncated."
        ) from exc
    if arr.shape != out.shape:
        raise SeriesError(
            f"Decoded pixel data of {h.label} has shape {arr.shape} but Rows x Columns is {out.shape}."
        )
    out[...] = arr


def _read_native(h: DicomHeader, out: NDArray[Any]) -> None:
    expected = out.nbytes
    assert h.pixel_offset is not None
    if h.pixel_length is not None and h.pixel_length < expected:
        raise SeriesError(
            f"Pixel data of {h.label} holds {h.pixel_length} bytes but Rows x Columns x BitsAllocated needs "
            f"{expected}: the file is corrupt. Replace it with a good copy or remove it."
        )
    if h.pixel_offset + expected > h.file_size:
        raise SeriesError(
            f"{h.label} is truncated: its pixel data needs {expected} bytes from offset {h.pixel_offset} but "
            f"the file has {h.file_size} bytes. Replace it with a good copy or remove it."
        )
    with open(h.path, "rb", buffering=0) as fh:
        fh.seek(h.pixel_offset)
        view = memoryview(out).cast("B")  # type: ignore[arg-type]
        got = 0
        while got < expected:
            n = fh.readinto(view[got:])
            if not n:
                raise SeriesError(f"{h.label} is truncated: read {got} of {expected} pixel bytes.")
            got += n
    if _NATIVE_SYNTAXES[h.transfer_syntax]:
        out.byteswap(inplace=True)


def _fix_unused_bits(h: DicomHeader, out: NDArray[Any]) -> None:
    """Clear the bits above BitsStored (unsigned) or sign-extend from the high bit (signed), in place."""
    shift = h.bits_allocated - h.bits_stored
    if shift <= 0:
        return
    if h.pixel_representation == 1:
        np.left_shift(out, shift, out=out)
        np.right_shift(out, shift, out=out)
    else:
        np.bitwise_and(out, (1 << h.bits_stored) - 1, out=out)


def _is_integral(x: float) -> bool:
    return abs(x - round(x)) < 1e-6


def _pixels(slices: Sequence[DicomHeader]) -> NDArray[Any]:
    """Read, decode and rescale the slices (already sorted) into one 3D array."""
    first = slices[0]
    stored = _stored_dtype(first)
    raw = np.empty((len(slices), first.rows, first.columns), dtype=stored)
    for i, h in enumerate(slices):
        if h.pixel_offset is not None and h.transfer_syntax in _NATIVE_SYNTAXES:
            _read_native(h, raw[i])
            _fix_unused_bits(h, raw[i])
        else:
            _decode_compressed(h, raw[i])
    slopes = np.array([h.slope for h in slices])
    intercepts = np.array([h.intercept for h in slices])
    identity = bool(np.all(slopes == 1.0) and np.all(intercepts == 0.0))
    if identity and stored in (np.dtype("<i2"), np.dtype("<u2")):
        return raw
    integral = all(_is_integral(v) for v in slopes) and all(_is_integral(v) for v in intercepts)
    if integral:
        mins = np.array([int(raw[i].min()) for i in range(len(slices))])
        maxs = np.array([int(raw[i].max()) for i in range(len(slices))])
        lo = np.minimum(mins * slopes, maxs * slopes) + intercepts
        hi = np.maximum(mins * slopes, maxs * slopes) + intercepts
        for target in (np.int16, np.uint16):
            info = np.iinfo(target)
            if lo.min() >= info.min and hi.max() <= info.max:
                out = raw.view(target) if raw.dtype.itemsize == 2 else np.empty(raw.shape, dtype=target)
                for i in range(len(slices)):
                    s, c = round(slopes[i]), round(intercepts[i])
                    if s == 1 and raw.dtype == target:
                        if c > 0:
                            out[i] += c
                        elif c < 0:
                            out[i] -= -c
                        continue
                    tmp = raw[i].astype(np.int64)
                    if s != 1:
                        tmp *= s
                    if c:
                        tmp += c
                    out[i] = tmp
                return out
    out_f = np.empty(raw.shape, dtype=np.float32)
    for i in range(len(slices)):
        np.multiply(raw[i], np.float32(slopes[i]), out=out_f[i], casting="unsafe")
        out_f[i] += np.float32(intercepts[i])
    return out_f


# ---------------------------------------------------------------------------------------------- resampling gaps
def _resample_regular(
    array: NDArray[Any], along: NDArray[np.float64], spacing: float, source: str
) -> tuple[NDArray[Any], NDArray[np.float64]]:
    """Linear interpolation along axis 0 from irregular slice positions onto a regular grid."""
    n = round(float(along[-1] - along[0]) / spacing) + 1
    grid = along[0] + np.arange(n) * (float(along[-1] - along[0]) / (n - 1))
    out = np.empty((n, *array.shape[1:]), dtype=array.dtype)
    idx = np.clip(np.searchsorted(along, grid, side="right") - 1, 0, len(along) - 2)
    integer = np.issubdtype(array.dtype, np.integer)
    for k in range(n):
        i = int(idx[k])
        t = float((grid[k] - along[i]) / (along[i + 1] - along[i]))
        if t <= 1e-9:
            out[k] = array[i]
        elif t >= 1 - 1e-9:
            out[k] = array[i + 1]
        else:
            v = array[i].astype(np.float32) * np.float32(1 - t) + array[i + 1].astype(np.float32) * np.float32(t)
            out[k] = np.rint(v) if integer else v
    warnings.warn(
        f"{source}: slice positions are irregular; resampled {len(along)} slices onto {n} regularly spaced "
        f"slices ({grid[1] - grid[0]:.3f} mm apart) by linear interpolation along the slice axis (allow_gaps).",
        UserWarning,
        stacklevel=3,
    )
    return out, grid


# ---------------------------------------------------------------------------------------------- public API
def _metadata(series: _Series, slices: Sequence[DicomHeader], ignored: Counter[str]) -> dict[str, Any]:
    first = slices[0]
    return {
        "format": "dicom",
        "modality": first.modality,
        "series_instance_uid": series.uid,
        "series_description": first.description,
        "study_instance_uid": first.extra["study_instance_uid"],
        "frame_of_reference_uid": first.extra["frame_of_reference_uid"],
        "study_date": first.extra["study_date"],
        "sop_class_uid": first.sop_class_uid,
        "sop_instance_uids": [h.sop_instance_uid for h in slices],
        "files": [str(h.path) for h in slices],
        "transfer_syntaxes": sorted({h.transfer_syntax for h in slices}),
        "slice_thickness_mm": first.extra["slice_thickness_mm"],
        "gantry_tilt_deg": first.extra["gantry_tilt_deg"],
        "rescale_type": first.extra["rescale_type"],
        "ignored": dict(ignored),
    }


def _read_multiframe(h: DicomHeader, series: _Series, ignored: Counter[str]) -> Volume:
    import highdicom as hd

    try:
        image = hd.imread(str(h.path))
        hvol = image.get_volume(dtype=np.float32)
    except Exception as exc:
        raise SeriesError(
            f"Cannot read the multi-frame image {h.label} as a volume (highdicom: {exc}). hepavol reads "
            "enhanced CT/MR/PET whose frames form a regular 3D grid; export the series as single-frame slices "
            "otherwise."
        ) from exc
    arr = np.asarray(hvol.array)
    if arr.ndim != 3:
        raise SeriesError(f"Multi-frame image {h.label} gives a {arr.ndim}D array; expected 3D.")
    if np.all(np.isfinite(arr)) and np.all(arr == np.rint(arr)):
        info = np.iinfo(np.int16)
        if arr.min() >= info.min and arr.max() <= info.max:
            arr = arr.astype(np.int16)
    try:
        geometry = Geometry.from_affine(hvol.affine, arr.shape)
    except GeometryError as exc:
        raise SeriesError(f"Multi-frame image {h.label} has an unusable geometry: {exc}") from exc
    d = geometry.direction_matrix
    if float(np.dot(np.cross(d[:, 2], d[:, 1]), d[:, 0])) < 0:  # same rule as for slices: along the normal
        arr = arr[::-1]
        geometry = Geometry(
            shape=geometry.shape,
            spacing_mm=geometry.spacing_mm,
            origin_lps_mm=tuple(geometry.index_to_lps((geometry.shape[0] - 1, 0, 0))),
            direction=tuple(tuple(r) for r in np.column_stack([-d[:, 0], d[:, 1], d[:, 2]])),  # type: ignore[arg-type]
        )
    meta = _metadata(series, [h], ignored)
    meta["number_of_frames"] = h.number_of_frames
    return Volume(arr, geometry, str(h.path), meta)


def read_dicom_series(
    folder: str | os.PathLike[str], *, series_uid: str | None = None, allow_gaps: bool = False
) -> Volume:
    """Read one DICOM image series from a folder (searched recursively) into a volume in LPS mm.

    The rules (what is ignored, how slices are sorted, rescaled and checked) are in the module docstring.

    Parameters
    ----------
    folder : str or os.PathLike
        Folder holding the DICOM files; subfolders are searched too.
    series_uid : str, optional
        SeriesInstanceUID of the series to read when the folder holds several image series.
    allow_gaps : bool, default False
        Resample a series with missing slices or irregular spacing onto a regular grid from the first to the
        last slice, with the number of slices that makes the spacing closest to the median gap, by linear
        interpolation along the slice axis between the two nearest acquired slices, with a warning. Integer
        images are rounded to integers.

    Returns
    -------
    Volume
        Array indexed (slice, row, column) with slices in increasing position along the slice normal; ``int16``
        for CT in HU. ``metadata`` holds modality, series/study/frame-of-reference UIDs, SOP instance UIDs of
        the slices in array order, file paths, transfer syntaxes and what was ignored (no patient name or ID).

    Raises
    ------
    InputError
        If the folder does not exist.
    SeriesError
        If no image series or several are found, a file is corrupt, the slices disagree in orientation, spacing
        or size, positions are duplicated, missing or irregular (without ``allow_gaps``), the grid is sheared
        (gantry tilt), or the pixel data cannot be decoded.
    """
    root = Path(folder)
    if not root.exists():
        raise InputError(f"DICOM folder '{root}' does not exist. Check the path.")
    if not root.is_dir():
        raise InputError(f"'{root}' is not a folder; read_dicom_series expects a folder of DICOM files.")
    return read_dicom_files(_walk(root), series_uid=series_uid, allow_gaps=allow_gaps, source=str(root))


def read_dicom_files(
    files: Iterable[str | os.PathLike[str]],
    *,
    series_uid: str | None = None,
    allow_gaps: bool = False,
    source: str = "",
) -> Volume:
    """Read one image series from an explicit list of files; same rules as :func:`read_dicom_series`.

    ``source`` names the folder or file in messages.
    """
    series_list, ignored, non_dicom = _collect(Path(f) for f in files)
    series = _choose_series(source, series_list, series_uid, ignored, non_dicom)
    multiframe = [h for h in series.slices if h.number_of_frames > 1]
    if multiframe:
        if len(series.slices) != 1:
            raise SeriesError(
                f"Series {series.uid} mixes {len(multiframe)} multi-frame file(s) with "
                f"{len(series.slices) - len(multiframe)} other file(s) (first: {multiframe[0].label}); hepavol "
                "reads either one multi-frame (enhanced) file or a set of single-frame slices."
            )
        return _read_multiframe(multiframe[0], series, ignored)
    stack = _stack(series, allow_gaps=allow_gaps)
    array = _pixels(stack.slices)
    geometry = stack.geometry
    meta = _metadata(series, stack.slices, ignored)
    if not stack.regular:
        spacing = geometry.spacing_mm[0]
        array, grid = _resample_regular(array, stack.positions_mm, spacing, f"'{source}'")
        geometry = Geometry(
            shape=(array.shape[0], array.shape[1], array.shape[2]),
            spacing_mm=(float(grid[1] - grid[0]), geometry.spacing_mm[1], geometry.spacing_mm[2]),
            origin_lps_mm=geometry.origin_lps_mm,
            direction=geometry.direction,
        )
        meta["resampled_from_positions_mm"] = [round(float(v), 4) for v in stack.positions_mm]
        meta["sop_instance_uids"] = []
    return Volume(array, geometry, source, meta)
