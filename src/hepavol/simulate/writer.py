"""Write a virtual cohort to disk: images, label maps, instance maps, manifests, ``clinical.csv``, ``truth.json``.

Layout (``P`` = patient id, ``D`` = scan date)::

    OUT/clinical.csv                     one row per patient (clinical variables and eligibility)
    OUT/treatments.csv                   one row per treatment: patient_id,treatment,start_date,end_date
    OUT/truth.json                       per patient, per scan, per lesion truth (see truth_record)
    OUT/P/manifest.csv                   date,image,seg,patient_id (paths relative to the manifest)
    OUT/P/truth/D_instances.nii.gz       lesion instance map (lesion id per voxel, ids constant over scans)
    nifti: OUT/P/D/image.nii.gz, OUT/P/D/seg.nii.gz (uint8: 1 liver, 2 tumour)
    dicom: OUT/P/YYYYMMDD_CT/series_001/IM00001.dcm ... (one study per scan, CT or MR Image Storage)
           OUT/P/YYYYMMDD_CT/seg/SEG.dcm (DICOM SEG, binary, segments 1 liver and 2 tumour, referencing the series)

Every file is written atomically (a series or SEG appears complete or not at all).
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hepavol._atomic import write_text_atomic
from hepavol._version import __version__
from hepavol.errors import InputError
from hepavol.simulate.patient import ClinicalRecord, VirtualPatient
from hepavol.simulate.render import LIVER_LABEL, TUMOUR_LABEL, RenderedScan
from hepavol.volume import Volume

CLINICAL_COLUMNS = (
    "patient_id",
    "modality",
    "age_years",
    "sex",
    "ki67_percent",
    "grade",
    "cga_ug_per_l",
    "ppi_use",
    "extra_abdominal_disease",
    "primary_resected",
    "somatostatin_analogue",
    "invasive_liver_treatment",
    "systemic_chemotherapy",
    "baseline_date",
    "last_scan_date",
    "n_scans",
    "eligible",
    "ineligibility_reasons",
    "tumour_type",
    "primary_site",
    "differentiation",
)
MANIFEST_COLUMNS = ("date", "image", "seg", "patient_id")
FORMATS = ("nifti", "dicom")


def write_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str], path: Path) -> None:
    """Write rows as CSV with a header, atomically (``None`` as an empty cell)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    write_text_atomic(path, buf.getvalue())


def write_json(obj: Any, path: Path) -> None:
    """Write strict JSON (no NaN), indented, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, allow_nan=False, ensure_ascii=False) + "\n")


def write_truth_cohort_table(patients: Sequence[VirtualPatient], path: Path) -> int:
    """Write the eligible patients' true values as a ``hepavol cohort`` table; returns the number of rows.

    Columns are those of :data:`hepavol.cohort.table.COLUMNS`: true total tumour volume and true RECIST sum of
    diameters at baseline and at the early scan (the second scan, 3-6 months), baseline lesion count, true liver
    volume, true PFS per RECIST (event date or last scan), Ki-67, CgA, extra-abdominal disease and grade. Running
    ``hepavol cohort`` on it gives the study's analysis on error-free measurements.
    """
    from hepavol.cohort.table import CohortTable, PatientRecord, write_cohort_table

    rows: list[PatientRecord] = []
    for p in patients:
        if not p.clinical.eligible:
            continue
        t = p.truth
        base = t.scans[0]
        early = t.scans[1] if len(t.scans) > 1 else None
        pfs_date = p.scans[0].date + datetime.timedelta(days=t.pfs_days)
        rows.append(
            PatientRecord(
                line=len(rows) + 2,
                patient_id=p.patient_id,
                modality=p.modality,
                baseline_date=base.date,
                early_date=None if early is None else early.date,
                baseline_volume_ml=round(base.total_tumour_volume_ml, 6),
                early_volume_ml=None if early is None else round(early.total_tumour_volume_ml, 6),
                baseline_sld_mm=base.sum_of_diameters_mm,
                early_sld_mm=None if early is None else early.sum_of_diameters_mm,
                lesion_count=float(len(base.lesions)),
                liver_volume_ml=round(p.anatomy.liver_volume_ml, 1),
                pfs_event=t.pfs_event,
                pfs_date=pfs_date,
                ki67_percent=p.clinical.ki67_percent,
                cga_ug_l=p.clinical.cga_ug_per_l,
                extra_abdominal=p.clinical.extra_abdominal_disease,
                grade=p.clinical.grade,
            )
        )
    write_cohort_table(CohortTable(tuple(rows), str(path)), path)
    return len(rows)


def clinical_row(record: ClinicalRecord) -> dict[str, Any]:
    """One ``clinical.csv`` row (booleans as ``yes``/``no``, reasons joined with ``; ``)."""
    row: dict[str, Any] = {}
    for name in CLINICAL_COLUMNS:
        value = getattr(record, name)
        if isinstance(value, bool):
            value = "yes" if value else "no"
        elif isinstance(value, tuple):
            value = "; ".join(value)
        elif isinstance(value, datetime.date):
            value = value.isoformat()
        row[name] = value
    return row


def _uid(*parts: object) -> str:
    """A deterministic DICOM UID from the given parts (pydicom's hash-based ``generate_uid``)."""
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["hepavol-simulate", *(str(p) for p in parts)]))


def _enrich_headers(files: Sequence[Path], patient: VirtualPatient, scan_index: int) -> None:
    """Add the header values a clinical export carries (study description, body part, acquisition parameters,
    accession number, times, sex and age) to a written series, rewriting each file atomically."""
    import pydicom

    from hepavol._atomic import atomic_open

    scan = patient.scans[scan_index]
    clinical = patient.clinical
    age = clinical.age_years + (scan.date - clinical.baseline_date).days // 365
    minutes = 8 * 60 + (patient.index * 37 + scan_index * 53) % (9 * 60)  # 08:00-17:00, deterministic
    time_str = f"{minutes // 60:02d}{minutes % 60:02d}00"
    ct = patient.modality == "CT"
    for path in files:
        ds = pydicom.dcmread(str(path))
        ds.SOPInstanceUID = _uid(patient.seed, patient.index, scan_index, "image", int(ds.InstanceNumber))
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyDescription = "CT ABDOMEN PORTAL VENOUS" if ct else "MR LIVER"
        ds.BodyPartExamined = "ABDOMEN"
        ds.InstitutionName = "hepavol virtual hospital"
        ds.AccessionNumber = f"SIM{patient.index + 1:04d}{scan_index + 1:02d}"
        ds.StudyID = f"{scan_index + 1}"
        ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = time_str
        ds.AcquisitionDate = ds.StudyDate
        ds.PatientSex = clinical.sex
        ds.PatientAge = f"{age:03d}Y"
        if ct:
            ds.KVP = "120"
            ds.ContrastBolusAgent = "IODINATED CONTRAST, PORTAL VENOUS PHASE"
            ds.ConvolutionKernel = "STANDARD"
        else:
            ds.EchoTime = "90"
            ds.RepetitionTime = "4000"
            ds.EchoTrainLength = "16"
            ds.MagneticFieldStrength = "1.5"
            ds.SequenceName = "T2_TSE_AX"
        with atomic_open(path, "wb") as fh:
            ds.save_as(fh, enforce_file_format=True)


def write_seg(
    labels: Volume,
    series_files: Sequence[Path],
    path: Path,
    *,
    series_instance_uid: str,
    sop_instance_uid: str,
) -> Path:
    """Write a binary DICOM SEG (segment 1 liver, 2 tumour) referencing the image series ``series_files``."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    sources = [pydicom.dcmread(str(p)) for p in series_files]
    arr = labels.array
    pixel = np.stack([arr == LIVER_LABEL, arr == TUMOUR_LABEL], axis=-1)
    algorithm = hd.AlgorithmIdentificationSequence(
        name="hepavol simulate",
        version=__version__,
        family=codes.cid7162.ArtificialIntelligence,
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=1,
            segment_label="Liver",
            segmented_property_category=codes.SCT.Organ,
            segmented_property_type=codes.SCT.Liver,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        ),
        hd.seg.SegmentDescription(
            segment_number=2,
            segment_label="Tumour",
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.NeoplasmMetastatic,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        ),
    ]
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixel,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=series_instance_uid,
        series_number=100,
        sop_instance_uid=sop_instance_uid,
        instance_number=1,
        manufacturer="hepavol",
        manufacturer_model_name="hepavol simulate",
        software_versions=__version__,
        device_serial_number="0",
        series_description="Ground truth: liver and tumour",
        omit_empty_frames=False,
    )
    # creation date and time from the source study, so that the same seed gives byte-identical files
    seg.InstanceCreationDate = seg.ContentDate = sources[0].StudyDate
    seg.InstanceCreationTime = seg.ContentTime = sources[0].StudyTime
    for item in seg.get("ContributingEquipmentSequence", []):
        if "ContributionDateTime" in item:
            item.ContributionDateTime = f"{sources[0].StudyDate}{sources[0].StudyTime}"
    dimension_uid = _uid(series_instance_uid, "dimension-organization")
    for item in [*seg.get("DimensionOrganizationSequence", []), *seg.get("DimensionIndexSequence", [])]:
        item.DimensionOrganizationUID = dimension_uid
    from hepavol._atomic import atomic_open

    with atomic_open(path, "wb") as fh:
        seg.save_as(fh)
    return path


def write_scan(
    patient: VirtualPatient,
    scan_index: int,
    rendered: RenderedScan,
    patient_dir: Path,
    *,
    fmt: str,
) -> dict[str, str]:
    """Write one scan; returns the paths (relative to ``patient_dir``) of ``image``, ``seg`` and ``instances``."""
    from hepavol.io import write_dicom_series, write_image

    scan = patient.scans[scan_index]
    day = scan.date.isoformat()
    instances_rel = f"truth/{day}_instances.nii.gz"
    write_image(rendered.instances, patient_dir / instances_rel)
    if fmt == "nifti":
        image_rel = f"{day}/image.nii.gz"
        seg_rel = f"{day}/seg.nii.gz"
        write_image(rendered.image, patient_dir / image_rel)
        write_image(rendered.labels, patient_dir / seg_rel)
    elif fmt == "dicom":
        study = f"{scan.date.strftime('%Y%m%d')}_{patient.modality}"
        image_rel = f"{study}/series_001"
        seg_rel = f"{study}/seg/SEG.dcm"
        key = (patient.seed, patient.index, scan_index)
        description = "ABDOMEN PORTAL VENOUS" if patient.modality == "CT" else "T2 AXIAL"
        files = write_dicom_series(
            rendered.image,
            patient_dir / image_rel,
            modality=patient.modality,
            series_description=description,
            patient_id=patient.patient_id,
            patient_name=f"SIMULATED^{patient.patient_id}",
            study_date=scan.date,
            study_instance_uid=_uid(*key, "study"),
            series_instance_uid=_uid(*key, "series"),
            frame_of_reference_uid=_uid(*key, "frame"),
            series_number=1,
        )
        _enrich_headers(files, patient, scan_index)
        write_seg(
            rendered.labels,
            files,
            patient_dir / seg_rel,
            series_instance_uid=_uid(*key, "seg-series"),
            sop_instance_uid=_uid(*key, "seg-instance"),
        )
    else:
        raise InputError(f"Unknown output format {fmt!r}; use one of {', '.join(FORMATS)}.")
    return {"image": image_rel, "seg": seg_rel, "instances": instances_rel}


def check_output_folder(out: str | os.PathLike[str]) -> Path:
    """The output folder, created if missing; an existing non-empty folder is refused (no mixed cohorts)."""
    path = Path(out)
    if path.exists():
        if not path.is_dir():
            raise InputError(f"Output '{path}' exists and is not a folder; give a new or empty folder with --out.")
        if any(path.iterdir()):
            raise InputError(
                f"Output folder '{path}' is not empty; give a new or empty folder with --out so that a simulated "
                "cohort is never mixed with other files."
            )
    path.mkdir(parents=True, exist_ok=True)
    return path
