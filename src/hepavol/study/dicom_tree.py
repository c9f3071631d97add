r"""Walk a PACS export, group it into patients → studies → series, and choose the series to measure per study.

:func:`scan_dicom_tree` reads only the start of every file's header (``pydicom.filereader.read_partial`` with
``specific_tags``, stopping after group 0028; values decoded only for the ~30 tags used), so thousands of files
take seconds (``benchmarks/study_tree.py``: about 2 000 files per second on one busy core, close to a plain
``pydicom.dcmread(stop_before_pixels=True)`` loop that decodes nothing). Nothing is written and nothing is
printed; the patient's name is kept in :attr:`PatientFound.original_name` (never shown by ``repr``) only so that an
importer can check it, and should never be printed or exported.

What is read and what is skipped (each skipped file is listed in :attr:`TreeScan.skipped` with its reason):

* Files without the ``DICM`` prefix of a DICOM Part 10 file (notes, thumbnails, ``.DS_Store``), DICOMDIR files,
  files that pydicom cannot parse, and files without SOP Class UID are skipped.
* DICOM SR with linear measurements (TID 1500 RECIST lines, :func:`hepavol.io.sr_read.read_linear_measurements`)
  and presentation states (GSPS) with polyline or ellipse annotations
  (:func:`hepavol.io.sr_read.read_presentation_state_lines`) are listed with their study (:attr:`StudyFound.reports`; an SR in a study of its own goes to the study of the
  images its lines were drawn on): they are the seeds of ``hepavol study segment``.
* Objects that are neither images nor DICOM SEG (other structured reports, key objects, presentation states, RT objects,
  registrations, encapsulated PDF; the list of :mod:`hepavol.io.dicom_series`) are skipped.
* Image and SEG files that end within the part of the header that is read (up to group 0028: truncated copies)
  are skipped.
* Files without PatientID, StudyInstanceUID or SeriesInstanceUID are skipped: they cannot be placed.
* A SOPInstanceUID seen twice (the same image exported twice): the first file in path order is kept.
* A study without StudyDate, SeriesDate and AcquisitionDate is skipped (a follow-up needs the scan date).
* A DICOM SEG stored in a study of its own (no images) that references a series of another study of the same
  patient is listed with that study (:attr:`StudyFound.segs`); its own study is not reported.
* A StudyInstanceUID found under two PatientIDs is kept for the PatientID with most of its files; the other files
  are skipped.

Derived values of a series (:class:`SeriesFound`):

* ``orientation``: the slice normal (row direction × column direction of ImageOrientationPatient, or of the shared
  PlaneOrientationSequence of an enhanced multi-frame image) within 30° of the patient's S-I axis is ``"axial"``,
  of the A-P axis ``"coronal"``, of the L-R axis ``"sagittal"``; otherwise ``"oblique"``. So a gantry tilt up to
  30° stays axial. ``"unknown"`` without ImageOrientationPatient; ``"mixed"`` when the files of one series disagree.
* ``contrast_phase`` from keywords (case-insensitive; ``_`` counts as a space) first in SeriesDescription, then in
  ContrastBolusAgent; checked in this order, the first match wins:

  - ``"non-contrast"``: non-contrast, non con, noncon, NC, unenhanced, native, nativ, pre-contrast, precontrast,
    pre con, w/o, without contrast, ohne KM, plain, sans injection
  - ``"arterial"``: arterial, arteri…, art, HAP, CTA, angio…
  - ``"portal-venous"``: portal…, portovenous, PV, PVP, venous, venös/venoes…, veineux
  - ``"delayed"``: delay…, late, equilibrium…, excretory, urographic, spät/spaet…, tardif…, hepatobiliary, HBP,
    transitional

  then ``"contrast"`` when ContrastBolusAgent names an agent without a phase (e.g. ``APPLIED``, ``OMNIPAQUE``;
  ``NONE``/``NO`` count as none), else ``None`` (unknown).
* ``mr_sequence`` (MR only) from keywords in SeriesDescription, ProtocolName and SequenceName, in this order:
  ``"ADC"`` (ADC, apparent diffusion; or ImageType ADC), ``"DWI"`` (DWI, diffusion, DW, trace, b800, b=50;
  or ImageType DIFFUSION/TRACEW, or DiffusionBValue > 0), ``"T2*"`` (T2*, T2 star, SWI, MEDIC, MERGE), ``"T2"``
  (T2…, HASTE, SSFSE, SS-FSE, FRFSE, SPAIR, STIR), ``"T1"`` (T1…, VIBE, LAVA, THRIVE, FLASH, FL2D/FL3D, Dixon, in/opp
  phase, SPGR, MPRAGE, GRE, CAIPIRINHA, TWIST, dynamic, post-contrast phase names, Gd). Without a keyword, from
  the timing (textbook weighting ranges): EchoTime ≥ 60 ms (and RepetitionTime ≥ 1500 ms when known) → T2;
  EchoTime ≤ 30 ms and RepetitionTime ≤ 1000 ms → T1; else ``None``.
* ``slice_thickness_mm``: the most common SliceThickness; if absent, SpacingBetweenSlices; if absent, the median
  distance between slice positions. ``slice_spacing_mm`` is that median distance.

How :func:`choose_series` picks one series per study is described there; :class:`SelectionRules` holds the
configurable parts (the ``[series_selection]`` table of a ``study.toml``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import os
import re
import statistics
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hepavol.errors import InputError
from hepavol.io.dicom_series import _NON_IMAGE_MODALITIES, _NON_IMAGE_SOP_PREFIXES, _RawReader
from hepavol.io.sr_read import (
    GSPS_SOP_CLASS_UID,
    SR_SOP_CLASS_UIDS,
    LinearMeasurement,
    read_linear_measurements,
    read_presentation_state_lines,
)

__all__ = [
    "CONTRAST_PHASES",
    "MR_SEQUENCES",
    "ORIENTATIONS",
    "SEG_SOP_CLASS_UID",
    "PatientFound",
    "ReportFound",
    "ReportLine",
    "SegFound",
    "SelectionRules",
    "SeriesFound",
    "StudyFound",
    "TreeScan",
    "choose_series",
    "classify_contrast_phase",
    "classify_mr_sequence",
    "classify_orientation",
    "read_series",
    "scan_dicom_tree",
]

SEG_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.66.4"
DICOMDIR_SOP_CLASS_UID = "1.2.840.10008.1.3.10"
#: Secondary Capture Image Storage classes (screen captures, dose reports): never measured.
_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"

ORIENTATIONS = ("axial", "coronal", "sagittal", "oblique", "unknown", "mixed")
#: Maximum angle (degrees) between the slice normal and a patient axis for the plane to be named after it.
ORIENTATION_MAX_ANGLE_DEG = 30.0
CONTRAST_PHASES = ("portal-venous", "arterial", "delayed", "non-contrast", "contrast")
MR_SEQUENCES = ("T1", "T2", "T2*", "DWI", "ADC")

#: Header tags read from every file (everything else is skipped without being decoded); the PACS import asks a
#: PACS for the same ones.
HEADER_TAGS = (
    0x00080005,  # SpecificCharacterSet
    0x00080008,  # ImageType
    0x00080016,  # SOPClassUID
    0x00080018,  # SOPInstanceUID
    0x00080020,  # StudyDate
    0x00080021,  # SeriesDate
    0x00080022,  # AcquisitionDate
    0x00080060,  # Modality
    0x00081030,  # StudyDescription
    0x0008103E,  # SeriesDescription
    0x00100010,  # PatientName
    0x00100020,  # PatientID
    0x00180010,  # ContrastBolusAgent
    0x00180020,  # ScanningSequence
    0x00180024,  # SequenceName
    0x00180050,  # SliceThickness
    0x00180080,  # RepetitionTime
    0x00180081,  # EchoTime
    0x00180088,  # SpacingBetweenSlices
    0x00181030,  # ProtocolName
    0x00189087,  # DiffusionBValue
    0x0020000D,  # StudyInstanceUID
    0x0020000E,  # SeriesInstanceUID
    0x00200011,  # SeriesNumber
    0x00200013,  # InstanceNumber
    0x00200032,  # ImagePositionPatient
    0x00200037,  # ImageOrientationPatient
    0x00200052,  # FrameOfReferenceUID
    0x00280008,  # NumberOfFrames
)
_TAG_LIST: list[Any] = list(HEADER_TAGS)
#: Threads that read headers by default (trees of fewer than 64 files are read in the calling thread).
DEFAULT_WORKERS = 4


def _after_group_0028(tag: int, vr: str | None, length: int) -> bool:
    """Stop reading at the first tag after group 0028 (image pixel module): nothing needed comes later, and the
    rest of a header (private groups, request attributes, pixel data) is never parsed. Enhanced multi-frame
    images are read again for their SharedFunctionalGroupsSequence (5200,9229)."""
    return tag >> 16 > 0x0028  # int's shift: BaseTag's comparison operators are slow Python methods


# ---------------------------------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesFound:
    """One image series of a study, as found in the tree (header values only; nothing about the patient).

    Attributes
    ----------
    series_uid, study_uid, frame_of_reference_uid, sop_class_uid : str
        SeriesInstanceUID, StudyInstanceUID, FrameOfReferenceUID and SOPClassUID (of the first file).
    modality, description : str
        Modality and SeriesDescription ('' when absent).
    n_instances : int
        Number of files (SOP instances) in the series.
    n_frames : int
        Number of images: the sum of NumberOfFrames (1 per single-frame file).
    slice_thickness_mm, slice_spacing_mm : float or None
        Nominal slice thickness and median distance between slice positions along the normal (mm).
    orientation : str
        One of :data:`ORIENTATIONS` (see the module docstring).
    contrast_phase : str or None
        One of :data:`CONTRAST_PHASES`, or ``None`` when unknown.
    mr_sequence : str or None
        One of :data:`MR_SEQUENCES` for MR, or ``None``.
    image_type : tuple of str
        ImageType values (upper case) shared by most files, e.g. ``('ORIGINAL', 'PRIMARY', 'AXIAL')``.
    series_number : int or None
        SeriesNumber.
    folder : Path
        The deepest folder holding all files of the series.
    files : tuple of Path
        The files, in path order.
    """

    series_uid: str
    study_uid: str
    modality: str
    description: str
    n_instances: int
    n_frames: int
    slice_thickness_mm: float | None
    slice_spacing_mm: float | None
    orientation: str
    contrast_phase: str | None
    mr_sequence: str | None
    image_type: tuple[str, ...]
    series_number: int | None
    folder: Path
    files: tuple[Path, ...] = field(repr=False)
    frame_of_reference_uid: str
    sop_class_uid: str

    @property
    def is_derived(self) -> bool:
        """True for derived secondary images (MPR, MIP, reformats): ImageType DERIVED\\SECONDARY or a reformat word."""
        it = self.image_type
        if len(it) >= 2 and it[0] == "DERIVED" and it[1] == "SECONDARY":
            return True
        return bool({"MPR", "REFORMATTED", "MIP", "MINIP", "PROJECTION IMAGE", "VOLUME RENDER"} & set(it[2:]))

    def label(self) -> str:
        """How reasons name the series: its quoted description, else its number, else the end of its UID."""
        if self.description:
            return f"'{self.description}'"
        if self.series_number is not None:
            return f"series {self.series_number}"
        return f"series …{self.series_uid[-8:]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SegFound:
    """A DICOM SEG object found in a study.

    Attributes
    ----------
    sop_instance_uid, series_uid, study_uid, frame_of_reference_uid : str
        UIDs of the SEG itself.
    path : Path
        The file.
    referenced_series_uids : tuple of str
        The image series it segments: ReferencedSeriesSequence, else the series of the SOP instances named in
        its SourceImageSequence items (when those images are in the tree).
    segment_labels : tuple of str
        SegmentLabel of each segment, in SegmentNumber order.
    description : str
        SeriesDescription of the SEG.
    """

    sop_instance_uid: str
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    path: Path
    referenced_series_uids: tuple[str, ...]
    segment_labels: tuple[str, ...]
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportLine:
    """A linear measurement of a report, with the image it was drawn on when the tree holds it."""

    measurement: LinearMeasurement
    referenced_series_uid: (
        str | None
    )  # the series of the referenced image (None: not in the tree, or no reference)
    referenced_path: Path | None  # the referenced image's file
    referenced_frame_of_reference_uid: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportFound:
    """A DICOM SR (TID 1500 Measurement Report) with linear measurements: the RECIST lines a site already has,
    the seeds of ``hepavol study segment``; or a Grayscale Softcopy Presentation State with polyline/ellipse
    annotations (``kind`` ``"gsps"``)."""

    kind: str  # "sr" or "gsps"
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    path: Path
    description: str
    lines: tuple[ReportLine, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyFound:
    """One study (one scan date) of a patient.

    Attributes
    ----------
    study_uid : str
        StudyInstanceUID.
    date : datetime.date
        StudyDate, else the earliest SeriesDate, else the earliest AcquisitionDate (see ``date_source``).
    date_source : str
        ``"StudyDate"``, ``"SeriesDate"`` or ``"AcquisitionDate"``.
    modality : str
        Modality of the chosen series; without one, that of the image series with most images ('' if none).
    description : str
        StudyDescription.
    folder : Path
        The deepest folder holding all files of the study.
    series : tuple of SeriesFound
        Image series, by SeriesNumber then UID.
    segs : tuple of SegFound
        DICOM SEG objects of the study.
    chosen : SeriesFound or None
        The series to measure (:func:`choose_series`).
    choice_reason : str
        Why it was chosen, and why every other series was not (a sentence for the database).
    """

    study_uid: str
    date: dt.date
    date_source: str
    modality: str
    description: str
    folder: Path
    series: tuple[SeriesFound, ...] = field(repr=False)
    segs: tuple[SegFound, ...] = field(repr=False)
    chosen: SeriesFound | None = field(repr=False)
    choice_reason: str
    reports: tuple[ReportFound, ...] = field(default=(), repr=False)  # SR with linear measurements

    def segs_referencing(self, series_uid: str) -> tuple[SegFound, ...]:
        """The SEG objects of this study that reference the series ``series_uid``."""
        return tuple(s for s in self.segs if series_uid in s.referenced_series_uids)


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientFound:
    """One patient (one PatientID) with their studies by date.

    ``original_name`` is the PatientName as found; it is identifying, is not part of ``repr`` and must never be
    printed, logged or exported.
    """

    original_id: str
    original_name: str = field(repr=False)
    studies: tuple[StudyFound, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TreeScan:
    """The result of :func:`scan_dicom_tree`.

    Attributes
    ----------
    root : Path
        The folder scanned.
    patients : tuple of PatientFound
        By PatientID.
    skipped : tuple of (Path, str)
        Files (or, for a study without a date, the study's folder) that were not used, with the reason:
        ``"category (details)"``. Details may hold paths and UIDs; print ``skipped_counts`` instead.
    skipped_counts : tuple of (str, int)
        Number of skipped entries per reason category (e.g. ``("not a DICOM file", 13)``), most common first;
        no paths or UIDs, safe to print.
    n_files : int
        Number of files looked at.
    """

    root: Path
    patients: tuple[PatientFound, ...]
    skipped: tuple[tuple[Path, str], ...] = field(repr=False)
    skipped_counts: tuple[tuple[str, int], ...]
    n_files: int

    @property
    def n_studies(self) -> int:
        """Number of studies over all patients."""
        return sum(len(p.studies) for p in self.patients)

    @property
    def n_series(self) -> int:
        """Number of image series over all studies."""
        return sum(len(s.series) for p in self.patients for s in p.studies)


# ---------------------------------------------------------------------------------------------- classification
def classify_orientation(orientation: Sequence[float] | None) -> str:
    """Name the plane of an ImageOrientationPatient (row cosines, column cosines; LPS).

    Examples
    --------
    >>> classify_orientation([1, 0, 0, 0, 1, 0])
    'axial'
    >>> classify_orientation([1, 0, 0, 0, 0, -1])
    'coronal'
    >>> classify_orientation([0, 1, 0, 0, 0, -1])
    'sagittal'
    >>> classify_orientation([1, 0, 0, 0, 0.7071, -0.7071])  # 45° between axial and coronal
    'oblique'
    >>> classify_orientation(None)
    'unknown'
    """
    if orientation is None or len(orientation) != 6:
        return "unknown"
    r, c = orientation[:3], orientation[3:]
    n = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    norm = math.sqrt(sum(v * v for v in n))
    if not math.isfinite(norm) or norm < 1e-6:
        return "unknown"
    axis = max(range(3), key=lambda i: abs(n[i]))
    if abs(n[axis]) / norm < math.cos(math.radians(ORIENTATION_MAX_ANGLE_DEG)):
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def _words(text: str) -> str:
    return " " + re.sub(r"[_\s]+", " ", text.lower()) + " "


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(alternatives) + r")(?![a-z0-9])")


_PHASE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "non-contrast",
        _rx(
            r"non ?-?contrast|non ?-?con|noncon|nc|un-?enhanced|native?|pre ?-?contrast|pre ?-?con|w/o|without contrast|ohne km|plain|sans injection"
        ),
    ),
    ("arterial", _rx(r"arterial|arteri\w*|art|hap|cta|angio\w*")),
    (
        "portal-venous",
        _rx(r"portal\w*|portoven\w*|pv|pvp|venous|ven(?:ö|oe)s\w*|veineu\w*"),
    ),
    (
        "delayed",
        _rx(
            r"delay\w*|late|equilibri\w*|excretory|urograph\w*|sp(?:ä|ae)t\w*|tardi\w*|hepatobiliary|hbp|transitional"
        ),
    ),
)
_NO_AGENT = _rx(r"none|no|nil|without|n/a|0")


def classify_contrast_phase(series_description: str, contrast_bolus_agent: str = "") -> str | None:
    """The contrast phase named by a SeriesDescription or ContrastBolusAgent (keywords in the module docstring).

    Examples
    --------
    >>> classify_contrast_phase("ABD PV 2.5mm")
    'portal-venous'
    >>> classify_contrast_phase("Leber_spaet")
    'delayed'
    >>> classify_contrast_phase("Late arterial")
    'arterial'
    >>> classify_contrast_phase("Abdomen 5.0", "IODINATED CONTRAST, PORTAL VENOUS PHASE")
    'portal-venous'
    >>> classify_contrast_phase("Abdomen 5.0", "OMNIPAQUE 350")
    'contrast'
    >>> classify_contrast_phase("Abdomen 5.0") is None
    True
    """
    for text in (series_description, contrast_bolus_agent):
        words = _words(text)
        for phase, pattern in _PHASE_PATTERNS:
            if pattern.search(words):
                return phase
    agent = contrast_bolus_agent.strip()
    if agent and not _NO_AGENT.search(_words(agent)):
        return "contrast"
    return None


_SEQUENCE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ADC", _rx(r"adc|apparent diffusion")),
    ("DWI", _rx(r"dwi|diffusion|dw|trace\w*|b ?= ?\d{2,4}|b\d{2,4}|ep b\d+\w*")),
    ("T2*", re.compile(r"(?<![a-z0-9])(?:t2 ?\*|t2 ?star|swi|medic|merge)")),
    (
        "T2",
        re.compile(r"(?<![a-z0-9])(?:t2(?![0-9*])(?! ?star)|haste|ssfse|ss-fse|frfse|spair|stir)"),
    ),
    (
        "T1",
        _rx(
            r"t1\w*|vibe|starvibe|lava\w*|thrive|flash|fl[23]d\w*|dixon|in ?-?phase|opp(?:osed)? ?-?phase|out ?-?of ?-?phase|spgr|fspgr|mprage|gre|caipi\w*|twist|dyn\w*|arterial|portal\w*|venous|delay\w*|hepatobiliary|hbp|post ?-?(?:gd|contrast|km)|gd"
        ),
    ),
)
#: Echo/repetition time limits (ms) used when no keyword names the MR weighting.
T2_MIN_ECHO_TIME_MS = 60.0
T2_MIN_REPETITION_TIME_MS = 1500.0
T1_MAX_ECHO_TIME_MS = 30.0
T1_MAX_REPETITION_TIME_MS = 1000.0


def classify_mr_sequence(
    text: str,
    *,
    image_type: Sequence[str] = (),
    echo_time_ms: float | None = None,
    repetition_time_ms: float | None = None,
    b_value: float | None = None,
) -> str | None:
    """The MR sequence type named by a description (SeriesDescription, ProtocolName, SequenceName) or timing.

    Examples
    --------
    >>> classify_mr_sequence("t2_haste_tra_mbh")
    'T2'
    >>> classify_mr_sequence("T1 VIBE DIXON opp")
    'T1'
    >>> classify_mr_sequence("ep2d_diff_b50_800_tra")
    'DWI'
    >>> classify_mr_sequence("ep2d_diff_b50_800_tra_ADC")
    'ADC'
    >>> classify_mr_sequence("T2* GRE")
    'T2*'
    >>> classify_mr_sequence("Series 7", echo_time_ms=90.0, repetition_time_ms=4000.0)
    'T2'
    >>> classify_mr_sequence("Series 7") is None
    True
    """
    types = {t.upper() for t in image_type}
    if "ADC" in types:
        return "ADC"
    words = _words(text)
    for name, pattern in _SEQUENCE_PATTERNS:
        if pattern.search(words):
            return name
    if types & {"DIFFUSION", "TRACEW"} or (b_value is not None and b_value > 0):
        return "DWI"
    if (
        echo_time_ms is not None
        and echo_time_ms >= T2_MIN_ECHO_TIME_MS
        and (repetition_time_ms is None or repetition_time_ms >= T2_MIN_REPETITION_TIME_MS)
    ):
        return "T2"
    if (
        echo_time_ms is not None
        and repetition_time_ms is not None
        and echo_time_ms <= T1_MAX_ECHO_TIME_MS
        and repetition_time_ms <= T1_MAX_REPETITION_TIME_MS
    ):
        return "T1"
    return None


# ---------------------------------------------------------------------------------------------- selection rules
_LOCALIZER_WORDS = _rx(
    r"scout|locali[sz]er|loc|topogram|surview|scanogram|survey|tri-?pilot|3-? ?plane|localizer\w*"
)
#: Default of :attr:`SelectionRules.exclude_description`: sharp-kernel (lung, bone) reconstructions, projections
#: and MRCP are not for liver volumetry.
DEFAULT_EXCLUDE_DESCRIPTION = r"\b(lung|lunge|bone|knochen|mip|minip|mrcp|vrt?)\b"
_ORIENTATION_CHOICES = ("axial", "coronal", "sagittal", "oblique", "any")
_PHASE_CHOICES = ("portal-venous", "arterial", "delayed", "non-contrast", "any")
#: Default CT phase preference: the rank of each phase (lower is better) when the requested one is missing.
_PHASE_RANK = {"portal-venous": 0, "delayed": 1, "contrast": 1, None: 1, "arterial": 2, "non-contrast": 3}


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectionRules:
    """How :func:`choose_series` picks the series to measure in a study.

    Parameters
    ----------
    modalities : tuple of str, default ("CT", "MR")
        Modalities that may be measured; when a study has candidates of several, the first listed wins.
    orientation : {"axial", "coronal", "sagittal", "oblique", "any"}, default "axial"
        Required plane (see :func:`classify_orientation`).
    ct_phase : {"portal-venous", "arterial", "delayed", "non-contrast"} or None, default "portal-venous"
        Preferred CT contrast phase; ``None`` (``"any"`` in a mapping) for no preference.
    ct_phase_fallback : bool, default True
        When no series has ``ct_phase``, take the next best phase: the requested phase first, then portal-venous
        > delayed = contrast of unknown phase = unknown > arterial > non-contrast. With ``False`` a study without
        the requested phase has no chosen series.
    mr_sequence : str or None, default "T2"
        Required MR sequence. One of :data:`MR_SEQUENCES` (case-insensitive) is compared with the derived
        :attr:`SeriesFound.mr_sequence`; any other text is a regular expression searched (case-insensitive) in
        SeriesDescription, e.g. ``"haste|ssfse"``. ``None`` (``"any"``) for no requirement.
    prefer_thinnest : bool, default True
        Among the remaining candidates take the thinnest slices (``False``: the thickest).
    max_slice_thickness_mm : float or None, default None
        Exclude series with thicker slices.
    min_slices : int, default 10
        Exclude series with fewer images (localizers, scouts, key images).
    exclude_derived : bool, default True
        Exclude derived secondary images (ImageType DERIVED\\SECONDARY, MPR, MIP...) unless no original
        series qualifies.
    exclude_description : str, default :data:`DEFAULT_EXCLUDE_DESCRIPTION`
        Regular expression (case-insensitive) of SeriesDescriptions to exclude; ``""`` for none.

    Raises
    ------
    InputError
        For a value out of range or an invalid regular expression.
    """

    modalities: tuple[str, ...] = ("CT", "MR")
    orientation: str = "axial"
    ct_phase: str | None = "portal-venous"
    ct_phase_fallback: bool = True
    mr_sequence: str | None = "T2"
    prefer_thinnest: bool = True
    max_slice_thickness_mm: float | None = None
    min_slices: int = 10
    exclude_derived: bool = True
    exclude_description: str = DEFAULT_EXCLUDE_DESCRIPTION

    def __post_init__(self) -> None:
        if (
            isinstance(self.modalities, str)
            or not self.modalities
            or not all(isinstance(m, str) and m.strip() for m in self.modalities)
        ):
            raise InputError(
                f"series_selection.modalities must be a non-empty list of modality names such as "
                f'["CT", "MR"], but it is {self.modalities!r}.'
            )
        object.__setattr__(self, "modalities", tuple(m.strip().upper() for m in self.modalities))
        if self.orientation not in _ORIENTATION_CHOICES:
            raise InputError(
                f"series_selection.orientation must be one of {', '.join(_ORIENTATION_CHOICES)}, but it is "
                f"{self.orientation!r}."
            )
        if self.ct_phase is not None and self.ct_phase not in _PHASE_CHOICES[:-1]:
            raise InputError(
                f"series_selection.ct_phase must be one of {', '.join(_PHASE_CHOICES)}, but it is "
                f"{self.ct_phase!r}."
            )
        if self.mr_sequence is not None:
            if not isinstance(self.mr_sequence, str) or not self.mr_sequence.strip():
                raise InputError(
                    "series_selection.mr_sequence must be a sequence name (T1, T2, T2*, DWI, ADC), a regular "
                    f"expression, or 'any', but it is {self.mr_sequence!r}."
                )
            _compile(self.mr_sequence, "mr_sequence")
        _compile(self.exclude_description, "exclude_description")
        for name in ("ct_phase_fallback", "prefer_thinnest", "exclude_derived"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(
                    f"series_selection.{name} must be true or false, but it is {getattr(self, name)!r}."
                )
        if isinstance(self.min_slices, bool) or not isinstance(self.min_slices, int) or self.min_slices < 1:
            raise InputError(
                f"series_selection.min_slices must be a whole number of at least 1, but it is {self.min_slices!r}."
            )
        t = self.max_slice_thickness_mm
        if t is not None and (
            isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t <= 0
        ):
            raise InputError(
                f"series_selection.max_slice_thickness_mm must be a positive number of mm, but it is {t!r}."
            )

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> SelectionRules:
        """Rules from a mapping such as the ``[series_selection]`` table of a ``study.toml``.

        Missing keys keep their defaults; ``"any"`` stands for ``None`` in ``orientation`` (no requirement),
        ``ct_phase`` and ``mr_sequence``.

        Raises
        ------
        InputError
            For an unknown key or a bad value; the message names the key and the allowed values.

        Examples
        --------
        >>> SelectionRules.from_mapping({"modalities": ["CT"], "ct_phase": "arterial"}).ct_phase
        'arterial'
        """
        if not isinstance(mapping, Mapping):
            raise InputError(f"series_selection must be a table of rules, but it is {type(mapping).__name__}.")
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in mapping if k not in known)
        if unknown:
            raise InputError(
                f"Unknown key(s) in series_selection: {', '.join(unknown)}. Known keys: {', '.join(known)}."
            )
        values: dict[str, Any] = dict(mapping)
        if "modalities" in values:
            m = values["modalities"]
            values["modalities"] = (m,) if isinstance(m, str) else tuple(m) if isinstance(m, list | tuple) else m
        for key in ("ct_phase", "mr_sequence"):
            if isinstance(values.get(key), str) and values[key].strip().lower() == "any":
                values[key] = None
        for key in ("ct_phase", "orientation", "exclude_description"):
            if key in values and not isinstance(values[key], str) and values[key] is not None:
                raise InputError(f"series_selection.{key} must be text, but it is {values[key]!r}.")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """A TOML-compatible mapping that :meth:`from_mapping` turns back into equal rules (``None`` → ``"any"``,
        an unset ``max_slice_thickness_mm`` is left out)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "modalities":
                value = list(value)
            elif value is None:
                if f.name == "max_slice_thickness_mm":
                    continue
                value = "any"
            out[f.name] = value
        return out


def _compile(pattern: str, name: str) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise InputError(f"series_selection.{name} must be text, but it is {pattern!r}.")
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise InputError(
            f"series_selection.{name} = {pattern!r} is not a valid regular expression ({exc})."
        ) from None


# ---------------------------------------------------------------------------------------------- choose_series
def _mm(value: float | None) -> str:
    return "thickness unknown" if value is None else f"{value:g} mm"


def _labels(series: Sequence[SeriesFound]) -> dict[str, str]:
    """Labels for reasons; series that share a description are told apart by number or UID tail."""
    base = {s.series_uid: s.label() for s in series}
    counts = Counter(base.values())
    out = {}
    for s in series:
        label = base[s.series_uid]
        if counts[label] > 1:
            extra = f"#{s.series_number}" if s.series_number is not None else f"…{s.series_uid[-6:]}"
            label = f"{label} ({extra})"
        out[s.series_uid] = label
    return out


def _is_localizer(s: SeriesFound) -> bool:
    return "LOCALIZER" in s.image_type or bool(_LOCALIZER_WORDS.search(_words(s.description)))


def _sequence_matches(s: SeriesFound, wanted: str) -> bool:
    if wanted.upper() in MR_SEQUENCES:
        return (s.mr_sequence or "").upper() == wanted.upper()
    return re.search(wanted, s.description, re.IGNORECASE) is not None


def _thickness(s: SeriesFound) -> float | None:
    return s.slice_thickness_mm if s.slice_thickness_mm is not None else s.slice_spacing_mm


def choose_series(
    series: Sequence[SeriesFound], rules: SelectionRules | None = None
) -> tuple[SeriesFound | None, str]:
    """Choose the series to measure in one study, and say why.

    Steps (each excluded series is named in the reason with why):

    1. Exclude series whose modality is not in ``rules.modalities``, secondary captures, localizers (ImageType
       LOCALIZER or a description such as Scout, Topogram, Surview, Localizer, Survey, 3-plane), series with
       fewer than ``min_slices`` images, descriptions matching ``exclude_description``, series not in the
       required orientation, thicker than ``max_slice_thickness_mm``, and MR series not of ``mr_sequence``.
    2. If ``exclude_derived`` and an original series remains, exclude derived secondary series (MPR, MIP).
    3. Keep the candidates of the first modality in ``rules.modalities`` that has any.
    4. CT: keep the best contrast phase by the preference of :class:`SelectionRules` (``ct_phase`` first).
    5. Keep the thinnest slices (thickest with ``prefer_thinnest=False``; unknown thickness last); ties go to
       more images, then the lower SeriesNumber, then the order of ``series`` (:func:`scan_dicom_tree` sorts by
       SeriesNumber and SeriesInstanceUID).

    Parameters
    ----------
    series : sequence of SeriesFound
        The image series of one study.
    rules : SelectionRules, optional
        Defaults to ``SelectionRules()``.

    Returns
    -------
    chosen : SeriesFound or None
        ``None`` when no series qualifies.
    reason : str
        E.g. ``"'PV 2.5': axial CT, portal-venous, 2.5 mm (thinnest of 2 candidates); excluded: 'Scout'
        (localizer), 'Cor MPR' (coronal)"``, or ``"no series qualifies: ..."``.
    """
    rules = SelectionRules() if rules is None else rules
    if not series:
        return None, "no image series in this study"
    labels = _labels(series)
    excluded: dict[str, str] = {}
    exclude_rx = re.compile(rules.exclude_description, re.IGNORECASE) if rules.exclude_description else None
    remaining: list[SeriesFound] = []
    for s in series:
        why: str | None = None
        thickness = _thickness(s)
        if s.modality.upper() not in rules.modalities:
            why = f"{s.modality or 'no modality'}, not {'/'.join(rules.modalities)}"
        elif s.sop_class_uid.startswith(_SECONDARY_CAPTURE_PREFIX):
            why = "secondary capture"
        elif _is_localizer(s):
            why = "localizer"
        elif s.n_frames < rules.min_slices:
            why = f"{s.n_frames} image{'s' if s.n_frames != 1 else ''}, fewer than {rules.min_slices}"
        elif exclude_rx is not None and (m := exclude_rx.search(s.description)):
            why = f"description matches {m.group(0)!r} of exclude_description"
        elif rules.orientation != "any" and s.orientation != rules.orientation:
            why = "orientation unknown" if s.orientation == "unknown" else s.orientation
            if s.orientation == "mixed":
                why = "mixed orientations"
        elif (
            rules.max_slice_thickness_mm is not None
            and thickness is not None
            and thickness > rules.max_slice_thickness_mm
        ):
            why = f"{thickness:g} mm, thicker than {rules.max_slice_thickness_mm:g} mm"
        elif (
            s.modality.upper() == "MR"
            and rules.mr_sequence is not None
            and not _sequence_matches(s, rules.mr_sequence)
        ):
            why = f"{s.mr_sequence or 'sequence unknown'}, not {rules.mr_sequence}"
        if why is None:
            remaining.append(s)
        else:
            excluded[s.series_uid] = why
    notes: list[str] = []
    if rules.exclude_derived and remaining:
        originals = [s for s in remaining if not s.is_derived]
        if originals:
            for s in remaining:
                if s.is_derived:
                    excluded[s.series_uid] = "derived/reformatted"
            remaining = originals
        else:
            notes.append("derived series; no original series qualified")
    if remaining:
        present = {s.modality.upper() for s in remaining}
        first = next(m for m in rules.modalities if m in present)
        for s in remaining:
            if s.modality.upper() != first:
                excluded[s.series_uid] = f"{s.modality.upper()}; {first} listed first in modalities"
        remaining = [s for s in remaining if s.modality.upper() == first]
    if remaining and remaining[0].modality.upper() == "CT" and rules.ct_phase is not None:
        rank = {k: v + 1 for k, v in _PHASE_RANK.items()}
        rank[rules.ct_phase] = 0
        best = min(rank.get(s.contrast_phase, len(rank)) for s in remaining)
        if best > 0 and not rules.ct_phase_fallback:
            for s in remaining:
                excluded[s.series_uid] = f"{s.contrast_phase or 'phase unknown'}, not {rules.ct_phase}"
            remaining = []
        else:
            if best > 0:
                notes.append(f"no {rules.ct_phase} series, took the next preferred phase")
            for s in remaining:
                if rank.get(s.contrast_phase, len(rank)) > best:
                    excluded[s.series_uid] = f"{s.contrast_phase or 'phase unknown'}; a preferred phase exists"
            remaining = [s for s in remaining if rank.get(s.contrast_phase, len(rank)) == best]
    if not remaining:
        listing = ", ".join(f"{labels[s.series_uid]} ({excluded[s.series_uid]})" for s in series)
        return None, f"no series qualifies: {listing}"

    def key(s: SeriesFound) -> tuple[int, float, int, int]:
        t = _thickness(s)
        t_key = math.inf if t is None else (t if rules.prefer_thinnest else -t)
        number = s.series_number if s.series_number is not None else 1 << 30
        return (t is None, t_key, -s.n_frames, number)  # then the order given (sorted() is stable)

    ordered = sorted(remaining, key=key)
    chosen = ordered[0]
    word = "thinnest" if rules.prefer_thinnest else "thickest"
    n = len(ordered)
    for s in ordered[1:]:
        if _thickness(s) == _thickness(chosen):
            excluded[s.series_uid] = (
                f"{_mm(_thickness(s))} too; {labels[chosen.series_uid]} has more images or comes first"
            )
        else:
            excluded[s.series_uid] = f"{_mm(_thickness(s))}; {word} preferred"
    parts = [f"{chosen.orientation} {chosen.modality.upper()}"]
    if chosen.modality.upper() == "CT":
        parts.append(chosen.contrast_phase or "phase unknown")
    elif chosen.modality.upper() == "MR":
        parts.append(chosen.mr_sequence or "sequence unknown")
    if chosen.is_derived:
        parts.append("derived")
    parts.append(_mm(_thickness(chosen)))
    how = "only candidate" if n == 1 else f"{word} of {n} candidates"
    reason = f"{labels[chosen.series_uid]}: {', '.join(parts)} ({'; '.join([how, *notes])})"
    others = [s for s in series if s.series_uid in excluded]
    if others:
        reason += "; excluded: " + ", ".join(f"{labels[s.series_uid]} ({excluded[s.series_uid]})" for s in others)
    return chosen, reason


# ---------------------------------------------------------------------------------------------- header reading
@dataclass(slots=True)
class _Header:
    """The header values of one file that the tree needs (internal)."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    modality: str
    patient_id: str
    patient_name: str
    study_uid: str
    series_uid: str
    study_date: str
    series_date: str
    acquisition_date: str
    study_description: str
    series_description: str
    protocol_name: str
    sequence_name: str
    image_type: tuple[str, ...]
    frame_of_reference_uid: str
    orientation: tuple[float, ...] | None
    position: tuple[float, ...] | None
    slice_thickness_mm: float | None
    spacing_between_slices_mm: float | None
    contrast_agent: str
    echo_time_ms: float | None
    repetition_time_ms: float | None
    b_value: float | None
    n_frames: int
    series_number: int | None
    seg_referenced_series: tuple[str, ...] = ()
    seg_referenced_instances: tuple[str, ...] = ()
    seg_labels: tuple[str, ...] = ()
    ends_before_pixels: bool = False


def _num(text: str) -> float | None:
    if not text:
        return None
    try:
        v = float(text.split("\\")[0])
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _nums(values: list[str], n: int) -> tuple[float, ...] | None:
    if len(values) != n:
        return None
    try:
        out = tuple(float(v) for v in values)
    except ValueError:
        return None
    return out if all(math.isfinite(v) for v in out) else None


#: SpecificCharacterSet values whose text decodes as Latin-1 (ASCII is a subset) or UTF-8 straight from the bytes.
_LATIN1_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO 2022 IR 6", "ISO 2022 IR 100"})
_UTF8_CHARSETS = frozenset({"ISO_IR 192"})


class _Text:
    """Character-set-aware text values (LO, SH, PN...) of a dataset read with raw (undecoded) elements."""

    def __init__(self, ds: Any, raw: _RawReader) -> None:
        self._ds = ds
        self._raw = raw
        charset = raw.text(0x00080005).upper()
        self._codec = "latin-1" if charset in _LATIN1_CHARSETS else "utf-8" if charset in _UTF8_CHARSETS else None

    def __call__(self, tag: int, keyword: str) -> str:
        if self._codec == "latin-1":
            return self._raw.text(tag)
        try:
            elem = self._ds.get_item(tag)
            value = None if elem is None else elem.value
            if self._codec == "utf-8" and isinstance(value, bytes | bytearray):
                return bytes(value).decode("utf-8", errors="replace").strip(" \x00")
            value = self._ds.get(keyword)  # other character sets: pydicom decodes
        except Exception:
            return ""
        return "" if value is None else str(value).strip()


def _shared_group(ds: Any) -> tuple[tuple[float, ...] | None, float | None]:
    """Orientation and slice thickness of an enhanced image from its SharedFunctionalGroupsSequence."""
    try:
        shared = ds.get("SharedFunctionalGroupsSequence")
        if not shared:
            return None, None
        item = shared[0]
        orientation = None
        thickness = None
        if "PlaneOrientationSequence" in item and item.PlaneOrientationSequence:
            iop = item.PlaneOrientationSequence[0].get("ImageOrientationPatient")
            orientation = _nums([str(v) for v in iop], 6) if iop else None
        if "PixelMeasuresSequence" in item and item.PixelMeasuresSequence:
            st = item.PixelMeasuresSequence[0].get("SliceThickness")
            thickness = _num(str(st)) if st not in (None, "") else None
        return orientation, thickness
    except Exception:
        return None, None


@dataclass(frozen=True, slots=True)
class _Skip:
    """Why a file is skipped: a category (counted) and details (file-specific)."""

    category: str
    detail: str = ""


def _read_header(path: Path) -> _Header | _Skip:
    """The header of one file, or the reason it is skipped."""
    import pydicom
    from pydicom.filereader import read_partial

    if path.is_dir():  # a folder that os.walk could not list
        return _Skip("cannot be read", "a folder that cannot be listed (Permission denied)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
            if len(head) < 132 or head[128:132] != b"DICM":
                return _Skip("not a DICOM file", "no DICM prefix")
            fh.seek(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = read_partial(fh, stop_when=_after_group_0028, specific_tags=_TAG_LIST)
                at_end = fh.tell() >= os.fstat(fh.fileno()).st_size  # ended inside the header
                meta = getattr(ds, "file_meta", None)
                media_class = str(getattr(meta, "MediaStorageSOPClassUID", "") or "")
                r = _RawReader(ds, little=str(getattr(meta, "TransferSyntaxUID", "")) != "1.2.840.10008.1.2.2")
                sop_class = r.text(0x00080016) or media_class
                if media_class == DICOMDIR_SOP_CLASS_UID or path.name.upper() == "DICOMDIR":
                    return _Skip("DICOMDIR", "a media index, not an image")
                if not sop_class:
                    return _Skip("no SOP Class UID (0008,0016)")
                seg: dict[str, tuple[str, ...]] = {}
                shared: Any = None
                if sop_class == SEG_SOP_CLASS_UID:
                    fh.seek(0)
                    seg = _seg_references(pydicom.dcmread(fh, stop_before_pixels=True))
                elif not r.text(0x00200037) and (_num(r.text(0x00280008)) or 1) > 1:  # enhanced multi-frame
                    fh.seek(0)
                    shared = pydicom.dcmread(fh, stop_before_pixels=True, specific_tags=[0x52009229])
    except OSError as exc:
        return _Skip("cannot be read", str(exc.strerror or exc))
    except Exception as exc:
        return _Skip("not readable by pydicom", f"{type(exc).__name__}: {exc}")
    text = _Text(ds, r)
    orientation = _nums(r.texts(0x00200037), 6)
    thickness = _num(r.text(0x00180050))
    if shared is not None and (orientation is None or thickness is None):
        shared_orientation, shared_thickness = _shared_group(shared)
        orientation = orientation or shared_orientation
        thickness = thickness if thickness is not None else shared_thickness
    frames = _num(r.text(0x00280008))
    series_number = _num(r.text(0x00200011))
    return _Header(
        path=path,
        sop_class_uid=sop_class,
        sop_instance_uid=r.text(0x00080018) or str(getattr(meta, "MediaStorageSOPInstanceUID", "") or ""),
        modality=r.text(0x00080060).upper(),
        patient_id=text(0x00100020, "PatientID"),
        patient_name=text(0x00100010, "PatientName"),
        study_uid=r.text(0x0020000D),
        series_uid=r.text(0x0020000E),
        study_date=r.text(0x00080020),
        series_date=r.text(0x00080021),
        acquisition_date=r.text(0x00080022),
        study_description=text(0x00081030, "StudyDescription"),
        series_description=text(0x0008103E, "SeriesDescription"),
        protocol_name=text(0x00181030, "ProtocolName"),
        sequence_name=r.text(0x00180024),
        image_type=tuple(v.upper() for v in r.texts(0x00080008)),
        frame_of_reference_uid=r.text(0x00200052),
        orientation=orientation,
        position=_nums(r.texts(0x00200032), 3),
        slice_thickness_mm=thickness if thickness is not None and thickness > 0 else None,
        spacing_between_slices_mm=_num(r.text(0x00180088)),
        contrast_agent=text(0x00180010, "ContrastBolusAgent"),
        echo_time_ms=_num(r.text(0x00180081)),
        repetition_time_ms=_num(r.text(0x00180080)),
        b_value=_num(r.text(0x00189087)),
        n_frames=max(1, int(frames)) if frames is not None else 1,
        series_number=int(series_number) if series_number is not None else None,
        seg_referenced_series=seg.get("series", ()),
        seg_referenced_instances=seg.get("instances", ()),
        seg_labels=seg.get("labels", ()),
        ends_before_pixels=at_end,
    )


def _seg_references(ds: Any) -> dict[str, tuple[str, ...]]:
    """Referenced series, referenced SOP instances and segment labels of a SEG dataset."""
    series = [str(item.get("SeriesInstanceUID", "")) for item in ds.get("ReferencedSeriesSequence", [])]
    instances: list[str] = []
    groups = list(ds.get("SharedFunctionalGroupsSequence", [])) + list(
        ds.get("PerFrameFunctionalGroupsSequence", [])
    )
    for group in groups:
        for derivation in group.get("DerivationImageSequence", []):
            for source in derivation.get("SourceImageSequence", []):
                uid = source.get("ReferencedSOPInstanceUID")
                if uid:
                    instances.append(str(uid))
    segments = sorted(ds.get("SegmentSequence", []), key=lambda s: int(s.get("SegmentNumber", 0) or 0))
    labels = [str(s.get("SegmentLabel", "") or "") for s in segments]
    return {
        "series": tuple(dict.fromkeys(s for s in series if s)),
        "instances": tuple(dict.fromkeys(instances)),
        "labels": tuple(labels),
    }


# ---------------------------------------------------------------------------------------------- tree walking
def _walk(root: Path) -> list[Path]:
    """Every file below ``root``. A folder that cannot be listed is returned as if it were a file: reading its
    header then fails and it is reported as "cannot be read" (never left out without a word)."""
    files: list[Path] = []

    def unreadable(exc: OSError) -> None:
        if exc.filename and Path(exc.filename) != root:
            files.append(Path(exc.filename))

    for folder, dirs, names in os.walk(root, onerror=unreadable):
        dirs.sort()
        base = Path(folder)
        files.extend(base / name for name in sorted(names))
    return files


def _parse_date(text: str) -> dt.date | None:
    digits = re.sub(r"[.\-/ ]", "", text.strip())[:8]
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def _common_folder(paths: Iterable[Path]) -> Path:
    return Path(os.path.commonpath([str(p.parent) for p in paths]))


def _most_common(values: Iterable[Any], default: Any) -> Any:
    counts = Counter(v for v in values if v not in (None, "", ()))
    return counts.most_common(1)[0][0] if counts else default


def _study_date(headers: Sequence[_Header]) -> tuple[dt.date, str] | None:
    for attr, name in (
        ("study_date", "StudyDate"),
        ("series_date", "SeriesDate"),
        ("acquisition_date", "AcquisitionDate"),
    ):
        dates = [d for d in (_parse_date(getattr(h, attr)) for h in headers) if d is not None]
        if dates:
            if attr == "study_date":
                return Counter(dates).most_common(1)[0][0], name
            return min(dates), name
    return None


def _slice_spacing(headers: Sequence[_Header], orientation: tuple[float, ...] | None) -> float | None:
    if orientation is None:
        return None
    r, c = orientation[:3], orientation[3:]
    n = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    along = sorted(
        {round(sum(p[i] * n[i] for i in range(3)), 4) for h in headers if (p := h.position) is not None}
    )
    gaps = [b - a for a, b in itertools.pairwise(along) if b - a > 1e-3]
    return round(statistics.median(gaps), 4) if gaps else None


def _build_series(headers: Sequence[_Header]) -> SeriesFound:
    first = headers[0]
    orientations = {classify_orientation(h.orientation) for h in headers}
    orientation = orientations.pop() if len(orientations) == 1 else "mixed"
    iop = _most_common((h.orientation for h in headers), None)
    thickness = _most_common((h.slice_thickness_mm for h in headers), None)
    spacing = _slice_spacing(headers, iop)
    if thickness is None:
        between = _most_common((h.spacing_between_slices_mm for h in headers), None)
        thickness = between if between is not None and between > 0 else spacing
    description = _most_common((h.series_description for h in headers), "")
    agent = _most_common((h.contrast_agent for h in headers), "")
    modality = _most_common((h.modality for h in headers), "")
    image_type = _most_common((h.image_type for h in headers), ())
    mr_sequence = None
    if modality == "MR":
        text = " ".join(
            [
                description,
                _most_common((h.protocol_name for h in headers), ""),
                _most_common((h.sequence_name for h in headers), ""),
            ]
        )
        b_values = [h.b_value for h in headers if h.b_value is not None]
        mr_sequence = classify_mr_sequence(
            text,
            image_type=image_type,
            echo_time_ms=_most_common((h.echo_time_ms for h in headers), None),
            repetition_time_ms=_most_common((h.repetition_time_ms for h in headers), None),
            b_value=max(b_values) if b_values else None,
        )
    return SeriesFound(
        series_uid=first.series_uid,
        study_uid=first.study_uid,
        modality=modality,
        description=description,
        n_instances=len(headers),
        n_frames=sum(h.n_frames for h in headers),
        slice_thickness_mm=thickness,
        slice_spacing_mm=spacing,
        orientation=orientation,
        contrast_phase=classify_contrast_phase(description, agent),
        mr_sequence=mr_sequence,
        image_type=image_type,
        series_number=_most_common((h.series_number for h in headers), None),
        folder=_common_folder(h.path for h in headers),
        files=tuple(h.path for h in headers),
        frame_of_reference_uid=_most_common((h.frame_of_reference_uid for h in headers), ""),
        sop_class_uid=first.sop_class_uid,
    )


def _read_all(
    files: Sequence[Path], workers: int | None, progress: Callable[[int, int], None] | None
) -> list[_Header | _Skip]:
    total = len(files)
    n_workers = workers if workers is not None else DEFAULT_WORKERS
    if n_workers < 1:
        raise InputError(f"workers must be at least 1, but it is {n_workers}.")
    results: list[_Header | _Skip] = []
    step = max(1, total // 200)
    if n_workers == 1 or total < 64:
        for i, path in enumerate(files, 1):
            results.append(_read_header(path))
            if progress is not None and (i % step == 0 or i == total):
                progress(i, total)
        return results
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="hepavol-tree") as pool:
        for i, result in enumerate(pool.map(_read_header, files, chunksize=16), 1):
            results.append(result)
            if progress is not None and (i % step == 0 or i == total):
                progress(i, total)
    return results


def _non_image(h: _Header) -> bool:
    """A structured report, key object, presentation state, RT object, registration, encapsulated document..."""
    return h.sop_class_uid.startswith(_NON_IMAGE_SOP_PREFIXES) or h.modality in _NON_IMAGE_MODALITIES


def read_series(
    path: str | os.PathLike[str], *, series_uid: str | None = None, workers: int | None = None
) -> tuple[SeriesFound, str]:
    """The DICOM image series at ``path`` (a folder, searched recursively, or one file), read as
    :func:`scan_dicom_tree` reads headers: for a scan named in a manifest.

    Parameters
    ----------
    path : str or os.PathLike
        A folder holding the series (other files, DICOM SEG and non-image objects are ignored) or one DICOM file
        (an enhanced multi-frame image).
    series_uid : str, optional
        The SeriesInstanceUID to take when the folder holds several image series.
    workers : int, optional
        Threads reading headers (default :data:`DEFAULT_WORKERS`).

    Returns
    -------
    tuple of (SeriesFound, str)
        The series (its ``folder`` is the common folder of its files) and the StudyDescription ('' when absent).

    Raises
    ------
    InputError
        If ``path`` holds no DICOM image, holds several image series and ``series_uid`` does not name one of
        them, or ``series_uid`` is not among them.
    """
    top = Path(path)
    if not top.exists():
        raise InputError(f"DICOM series '{top}' does not exist. Check the path.")
    files = _walk(top) if top.is_dir() else [top]
    groups: dict[str, list[_Header]] = defaultdict(list)
    seen: set[str] = set()
    for h in _read_all(files, workers, None):
        if (
            isinstance(h, _Skip)
            or h.sop_class_uid == SEG_SOP_CLASS_UID
            or _non_image(h)
            or h.ends_before_pixels
            or not h.series_uid
            or (h.sop_instance_uid and h.sop_instance_uid in seen)
        ):
            continue
        seen.add(h.sop_instance_uid)
        groups[h.series_uid].append(h)
    if not groups:
        raise InputError(
            f"'{top}' holds no DICOM image with a SeriesInstanceUID ({len(files)} files read). Give the folder "
            "of one image series, or an image file."
        )
    found = ", ".join(f"{uid} ({len(hs)} files)" for uid, hs in sorted(groups.items()))
    if series_uid is not None and series_uid not in groups:
        raise InputError(f"'{top}' holds no image series with SeriesInstanceUID {series_uid}; it holds {found}.")
    if series_uid is None and len(groups) > 1:
        raise InputError(
            f"'{top}' holds {len(groups)} image series: {found}. Name the one to measure in the manifest's "
            "series_uid column, or give the folder of that series."
        )
    headers = groups[series_uid if series_uid is not None else next(iter(groups))]
    return _build_series(headers), _most_common((h.study_description for h in headers), "")


def scan_dicom_tree(
    root: str | os.PathLike[str],
    *,
    rules: SelectionRules | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> TreeScan:
    """Walk a folder tree of DICOM files and group it into patients, studies and series, choosing a series per study.

    Only headers are read (see the module docstring for what is read, derived and skipped). Symbolic links to
    folders are not followed.

    Parameters
    ----------
    root : str or os.PathLike
        The top folder of the export (searched recursively).
    rules : SelectionRules, optional
        How to choose the series of each study; defaults to ``SelectionRules()``.
    progress : callable, optional
        Called as ``progress(files_read, files_total)`` from the calling thread, about 200 times per scan.
    workers : int, optional
        Threads reading headers (default :data:`DEFAULT_WORKERS`); ``1`` reads in the calling thread. Parsing
        holds Python's GIL, so threads do not speed up files that are in the page cache; they overlap the waits
        of a slow or network file system.

    Returns
    -------
    TreeScan
        Patients by PatientID, their studies by date, the skipped files with reasons.

    Raises
    ------
    InputError
        If ``root`` does not exist or is not a folder, holds no files, or holds no DICOM image series or SEG that
        could be placed (the message counts the skip reasons).
    """
    rules = SelectionRules() if rules is None else rules
    top = Path(root)
    if not top.exists():
        raise InputError(f"DICOM folder '{top}' does not exist. Check the path.")
    if not top.is_dir():
        raise InputError(f"'{top}' is not a folder; give the top folder of the DICOM export.")
    files = _walk(top)
    if not files:
        raise InputError(f"DICOM folder '{top}' holds no files (searched recursively). Check the path.")
    results = _read_all(files, workers, progress)

    skipped: list[tuple[Path, str]] = []
    counts: Counter[str] = Counter()

    def skip(path: Path, category: str, detail: str = "") -> None:
        skipped.append((path, f"{category} ({detail})" if detail else category))
        counts[category] += 1

    seen: dict[str, Path] = {}
    images: list[_Header] = []
    segs: list[_Header] = []
    reports: list[tuple[_Header, list[LinearMeasurement]]] = []
    for path, result in zip(files, results):
        if isinstance(result, _Skip):
            skip(path, result.category, result.detail)
            continue
        h = result
        if h.sop_class_uid in (*SR_SOP_CLASS_UIDS, GSPS_SOP_CLASS_UID) and h.patient_id and h.study_uid:
            reader = (
                read_presentation_state_lines
                if h.sop_class_uid == GSPS_SOP_CLASS_UID
                else read_linear_measurements
            )
            try:
                lines = reader(path)
            except Exception:  # a broken SR or GSPS is skipped like any object that is not an image
                lines = []
            if lines:
                reports.append((h, lines))
                continue
        if h.sop_class_uid != SEG_SOP_CLASS_UID and _non_image(h):
            skip(path, f"{h.modality or 'non-image'} object, not an image or SEG")
            continue
        if h.ends_before_pixels:
            skip(path, "no pixel data", "the file ends in its header: truncated or broken")
            continue
        missing = [
            name
            for name, v in (
                ("PatientID", h.patient_id),
                ("StudyInstanceUID", h.study_uid),
                ("SeriesInstanceUID", h.series_uid),
            )
            if not v
        ]
        if missing:
            skip(path, f"no {' or '.join(missing)}", "cannot be placed in a patient's study")
            continue
        if h.sop_instance_uid:
            if h.sop_instance_uid in seen:
                skip(path, "duplicate SOPInstanceUID", f"{h.sop_instance_uid}, kept '{seen[h.sop_instance_uid]}'")
                continue
            seen[h.sop_instance_uid] = path
        (segs if h.sop_class_uid == SEG_SOP_CLASS_UID else images).append(h)

    # one patient per study: a StudyInstanceUID under two PatientIDs stays with the one holding most of its files
    by_study: dict[str, Counter[str]] = defaultdict(Counter)
    for h in (*images, *segs):
        by_study[h.study_uid][h.patient_id] += 1
    owner = {uid: counts.most_common(1)[0][0] for uid, counts in by_study.items()}
    placed: dict[str, dict[str, list[_Header]]] = defaultdict(lambda: defaultdict(list))
    for h in (*images, *segs):
        if owner[h.study_uid] != h.patient_id:
            skip(h.path, "study under two PatientIDs", f"StudyInstanceUID {h.study_uid} is kept under the other")
            continue
        placed[h.patient_id][h.study_uid].append(h)

    sop_to_series = {h.sop_instance_uid: h.series_uid for h in images if h.sop_instance_uid}
    image_of = {h.sop_instance_uid: h for h in images if h.sop_instance_uid}
    for patient_id in placed:
        _attach_lone_segs(placed[patient_id], sop_to_series)
    patients: list[PatientFound] = []
    for patient_id in sorted(placed):
        studies: list[StudyFound] = []
        names: list[str] = []
        for study_uid, headers in placed[patient_id].items():
            names.extend(h.patient_name for h in headers)
            date = _study_date(headers)
            if date is None:
                skip(
                    _common_folder(h.path for h in headers),
                    "no study date",
                    f"study {study_uid}, {len(headers)} files: no StudyDate, SeriesDate or AcquisitionDate; a "
                    "follow-up needs the scan date",
                )
                continue
            series_headers: dict[str, list[_Header]] = defaultdict(list)
            for h in headers:
                if h.sop_class_uid != SEG_SOP_CLASS_UID:
                    series_headers[h.series_uid].append(h)
            series = sorted(
                (_build_series(hs) for hs in series_headers.values()),
                key=lambda s: (s.series_number is None, s.series_number or 0, s.series_uid),
            )
            seg_found = tuple(
                _build_seg(h, sop_to_series) for h in headers if h.sop_class_uid == SEG_SOP_CLASS_UID
            )
            chosen, reason = choose_series(series, rules)
            study_reports = tuple(
                _build_report(h, lines, image_of)
                for h, lines in reports
                if h.patient_id == patient_id
                and _report_study(h, lines, image_of, placed[patient_id]) == study_uid
            )
            if chosen is not None:
                modality = chosen.modality
            else:
                modality = max(series, key=lambda s: s.n_frames).modality if series else ""
            studies.append(
                StudyFound(
                    study_uid=study_uid,
                    date=date[0],
                    date_source=date[1],
                    modality=modality,
                    description=_most_common((h.study_description for h in headers), ""),
                    folder=_common_folder(h.path for h in headers),
                    series=tuple(series),
                    segs=seg_found,
                    chosen=chosen,
                    choice_reason=reason,
                    reports=study_reports,
                )
            )
        if studies:
            studies.sort(key=lambda s: (s.date, s.study_uid))
            patients.append(
                PatientFound(original_id=patient_id, original_name=_most_common(names, ""), studies=tuple(studies))
            )
    attached = {r.path for patient in patients for study in patient.studies for r in study.reports}
    for h, _lines in reports:
        if h.path not in attached:
            skip(h.path, "SR with RECIST lines whose study is not in the export",
                 f"StudyInstanceUID {h.study_uid}: no images of that study, nor the images its lines were drawn on")  # fmt: skip
    if not patients:
        summary = "; ".join(f"{n} × {r}" for r, n in counts.most_common(6))
        raise InputError(
            f"No DICOM image series or SEG that can be placed in a patient's study was found in '{top}' "
            f"({len(files)} files looked at: {summary}). Give the top folder of a DICOM export with PatientID, "
            "StudyInstanceUID, SeriesInstanceUID and a study date."
        )
    return TreeScan(
        root=top,
        patients=tuple(patients),
        skipped=tuple(skipped),
        skipped_counts=tuple(counts.most_common()),
        n_files=len(files),
    )


def _seg_series(h: _Header, sop_to_series: Mapping[str, str]) -> tuple[str, ...]:
    """The series a SEG references: ReferencedSeriesSequence, else the series of its source instances."""
    if h.seg_referenced_series:
        return h.seg_referenced_series
    return tuple(dict.fromkeys(sop_to_series[u] for u in h.seg_referenced_instances if u in sop_to_series))


def _attach_lone_segs(studies: dict[str, list[_Header]], sop_to_series: Mapping[str, str]) -> None:
    """Move SEGs stored in a study of their own (no images; some tools make a new study for their results) into
    the patient's study that holds the series they reference; a study left empty is dropped."""
    series_study = {
        h.series_uid: uid for uid, hs in studies.items() for h in hs if h.sop_class_uid != SEG_SOP_CLASS_UID
    }
    for uid in list(studies):
        headers = studies[uid]
        if any(h.sop_class_uid != SEG_SOP_CLASS_UID for h in headers):
            continue
        keep = []
        for h in headers:
            targets = {series_study.get(s) for s in _seg_series(h, sop_to_series)}
            target = next(iter(targets)) if len(targets) == 1 else None
            if target is not None:
                studies[target].append(h)
            else:
                keep.append(h)
        if keep:
            studies[uid] = keep
        else:
            del studies[uid]


def _report_study(
    h: _Header, lines: Sequence[LinearMeasurement], image_of: Mapping[str, _Header], studies: Mapping[str, Any]
) -> str:
    """The study a report belongs to: its own, or (an SR stored in a study of its own, as some tools do) the
    study of the images its lines were drawn on."""
    if h.study_uid in studies:
        return h.study_uid
    referenced = {image_of[uid].study_uid for m in lines if (uid := m.referenced_sop_uid or "") in image_of}
    return next(iter(referenced)) if len(referenced) == 1 else h.study_uid


def _build_report(h: _Header, lines: Sequence[LinearMeasurement], image_of: Mapping[str, _Header]) -> ReportFound:
    found = []
    for m in lines:
        image = image_of.get(m.referenced_sop_uid or "")
        found.append(
            ReportLine(
                measurement=m,
                referenced_series_uid=image.series_uid if image is not None else None,
                referenced_path=image.path if image is not None else None,
                referenced_frame_of_reference_uid=image.frame_of_reference_uid if image is not None else None,
            )
        )
    return ReportFound(
        kind="gsps" if h.sop_class_uid == GSPS_SOP_CLASS_UID else "sr",
        sop_instance_uid=h.sop_instance_uid,
        study_uid=h.study_uid,
        series_uid=h.series_uid,
        path=h.path,
        description=h.series_description,
        lines=tuple(found),
    )


def _build_seg(h: _Header, sop_to_series: Mapping[str, str]) -> SegFound:
    referenced = _seg_series(h, sop_to_series)
    return SegFound(
        sop_instance_uid=h.sop_instance_uid,
        series_uid=h.series_uid,
        study_uid=h.study_uid,
        frame_of_reference_uid=h.frame_of_reference_uid,
        path=h.path,
        referenced_series_uids=referenced,
        segment_labels=h.seg_labels,
        description=h.series_description,
    )
