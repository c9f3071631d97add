"""Build small synthetic PACS exports (several patients, studies and series) for the study-workspace tests.

:func:`write_series` writes one tiny series with :func:`hepavol.io.write_dicom_series` and then sets the header
values a scanner would (ImageType, ContrastBolusAgent, EchoTime...). :func:`build_pacs_export` writes a whole
export whose expected grouping and series choice are returned beside it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from hepavol.geometry import Geometry
from hepavol.io import write_dicom_series
from hepavol.volume import Volume

#: Direction matrices (rows of the 3×3 matrix whose column k is the LPS unit vector of array axis k:
#: slice, row, column) of an axial and a coronal grid.
_DIRECTIONS = {
    # slice axis S (0,0,1), rows go P (0,1,0), columns go L (1,0,0): IOP 1\0\0\0\1\0
    "axial": ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)),
    # slice axis P (0,1,0), rows go I (0,0,-1), columns go L (1,0,0): IOP 1\0\0\0\0\-1
    "coronal": ((0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
}


def write_series(
    folder: Path,
    *,
    description: str,
    n_slices: int,
    thickness_mm: float,
    patient_id: str,
    study_uid: str,
    date: str,
    series_number: int,
    modality: str = "CT",
    plane: str = "axial",
    patient_name: str = "DOE^JANE",
    extra: Mapping[str, Any] | None = None,
    size: int = 4,
) -> list[Path]:
    """Write a ``n_slices`` × ``size`` × ``size`` series and set the header keywords in ``extra`` on every file."""
    geometry = Geometry(
        shape=(n_slices, size, size),
        spacing_mm=(thickness_mm, 1.0, 1.0),
        origin_lps_mm=(0.0, 0.0, 0.0),
        direction=_DIRECTIONS[plane],
    )
    volume = Volume(np.zeros(geometry.shape, dtype=np.int16), geometry)
    files = write_dicom_series(
        volume,
        folder,
        modality=modality,
        series_description=description,
        patient_id=patient_id,
        patient_name=patient_name,
        study_date=date,
        study_instance_uid=study_uid,
        series_number=series_number,
    )
    if extra:
        for path in files:
            ds = pydicom.dcmread(path)
            for keyword, value in extra.items():
                if value is None:
                    delattr(ds, keyword)
                else:
                    setattr(ds, keyword, value)
            ds.save_as(path, enforce_file_format=True)
    return files


def write_non_image(path: Path, *, sop_class_uid: str, modality: str, patient_id: str, study_uid: str) -> Path:
    """A header-only DICOM object of another kind (e.g. an SR), in a Part 10 file."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyDate = "20200110"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@dataclass(frozen=True)
class ExpectedStudy:
    """What the scan of a synthetic study must find."""

    patient_id: str
    study_uid: str
    date: dt.date
    chosen_description: str
    excluded: Mapping[str, str]  # description -> words the reason must give for it
    n_series: int


LOCALIZER = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
MPR = ["DERIVED", "SECONDARY", "MPR"]


def build_pacs_export(root: Path) -> list[ExpectedStudy]:
    """Two patients: PAT-001 with two CT studies, PAT-002 with one MR study; plus files that must be skipped.

    CT studies: a scout (1 coronal localizer image), axial portal-venous series of 5 mm and 2.5 mm, an arterial
    2.5 mm series, a coronal MPR; the second study also has a 1 mm lung-kernel series (thinner, but excluded by
    description). MR study: localizer, T1 VIBE, T2 HASTE, DWI, ADC and an unnamed series with T2 timing.
    """
    expected: list[ExpectedStudy] = []
    agent = {"ContrastBolusAgent": "OMNIPAQUE 350"}
    for k, date in enumerate(("20200110", "20200415")):
        uid = generate_uid()
        base = root / "PAT-001" / f"ST{k + 1:04d}"
        common: dict[str, Any] = {"patient_id": "PAT-001", "study_uid": uid, "date": date}
        write_series(base / "SE1", description="Topogram 0.6", n_slices=1, thickness_mm=0.6, series_number=1,
                     plane="coronal", extra={"ImageType": LOCALIZER}, **common)  # fmt: skip
        write_series(base / "SE2", description="Abd PV 5.0", n_slices=12, thickness_mm=5.0, series_number=2,
                     extra=agent, **common)  # fmt: skip
        write_series(base / "SE3", description="Abd PV 2.5", n_slices=24, thickness_mm=2.5, series_number=3,
                     extra=agent, **common)  # fmt: skip
        write_series(base / "SE4", description="Leber arteriell 2.5", n_slices=24, thickness_mm=2.5,
                     series_number=4, extra=agent, **common)  # fmt: skip
        write_series(base / "SE5", description="Cor MPR 3.0", n_slices=12, thickness_mm=3.0, series_number=5,
                     plane="coronal", extra={**agent, "ImageType": MPR}, **common)  # fmt: skip
        excluded = {
            "Topogram 0.6": "localizer",
            "Abd PV 5.0": "5 mm; thinnest preferred",
            "Leber arteriell 2.5": "arterial; a preferred phase exists",
            "Cor MPR 3.0": "coronal",
        }
        if k == 1:
            write_series(base / "SE6", description="Abd PV 1.0 Lung", n_slices=30, thickness_mm=1.0,
                         series_number=6, extra=agent, **common)  # fmt: skip
            excluded["Abd PV 1.0 Lung"] = "description matches 'Lung' of exclude_description"
        expected.append(
            ExpectedStudy("PAT-001", uid, dt.date.fromisoformat(date), "Abd PV 2.5", excluded, len(excluded) + 1)
        )
    uid = generate_uid()
    base = root / "PAT-002" / "MR_20200701"
    common = {"patient_id": "PAT-002", "study_uid": uid, "date": "20200701", "modality": "MR",
              "patient_name": "ROE^RICHARD"}  # fmt: skip
    write_series(base / "loc", description="localizer", n_slices=3, thickness_mm=8.0, series_number=1,
                 extra={"ImageType": LOCALIZER}, **common)  # fmt: skip
    write_series(base / "t1", description="t1_vibe_dixon_tra_opp", n_slices=20, thickness_mm=3.0,
                 series_number=2, extra={"EchoTime": "1.2", "RepetitionTime": "3.9"}, **common)  # fmt: skip
    write_series(base / "t2", description="t2_haste_tra_mbh", n_slices=12, thickness_mm=6.0, series_number=3,
                 extra={"EchoTime": "92", "RepetitionTime": "1400"}, **common)  # fmt: skip
    write_series(base / "dwi", description="ep2d_diff_b50_800_tra", n_slices=12, thickness_mm=6.0,
                 series_number=4, **common)  # fmt: skip
    write_series(base / "adc", description="ep2d_diff_b50_800_tra_ADC", n_slices=12, thickness_mm=6.0,
                 series_number=5, extra={"ImageType": ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"]},
                 **common)  # fmt: skip
    write_series(base / "x", description="Series 6", n_slices=12, thickness_mm=8.0, series_number=6,
                 extra={"EchoTime": "90", "RepetitionTime": "4000"}, **common)  # fmt: skip
    expected.append(
        ExpectedStudy(
            "PAT-002",
            uid,
            dt.date(2020, 7, 1),
            "t2_haste_tra_mbh",
            {
                "localizer": "localizer",
                "t1_vibe_dixon_tra_opp": "T1, not T2",
                "ep2d_diff_b50_800_tra": "DWI, not T2",
                "ep2d_diff_b50_800_tra_ADC": "ADC, not T2",
                "Series 6": "8 mm; thinnest preferred",
            },
            6,
        )
    )
    return expected
