"""Library entry points: :func:`simulate_patient` and :func:`simulate_cohort` (what ``hepavol simulate`` runs)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hepavol._version import __version__
from hepavol.errors import InputError
from hepavol.simulate.config import DEFAULT_CONFIG, SimulationConfig, grid_for
from hepavol.simulate.growth import rate_to_tgr
from hepavol.simulate.patient import MODALITY_CHOICES, VirtualPatient, sample_patient
from hepavol.simulate.readers import (
    READER_COLUMNS,
    ReaderModel,
    reader_draws,
    reader_folder_name,
    reader_label_map,
    reader_rows,
)
from hepavol.simulate.render import render_scan
from hepavol.simulate.treatments import TREATMENT_COLUMNS, patient_treatments
from hepavol.simulate.writer import (
    CLINICAL_COLUMNS,
    FORMATS,
    MANIFEST_COLUMNS,
    check_output_folder,
    clinical_row,
    write_csv,
    write_json,
    write_scan,
    write_truth_cohort_table,
)

SIZES = ("small", "full")
TRUTH_FORMAT = "hepavol-simulation-truth"
TRUTH_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatedPatient:
    """What :func:`simulate_patient` wrote: the patient, its folder, manifest and truth record."""

    patient: VirtualPatient
    folder: Path
    manifest: Path
    truth: dict[str, Any]
    seconds: float
    reader_segs: tuple[tuple[str, str, str], ...] = ()  # (read name, date, label map relative to the cohort)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatedCohort:
    """What :func:`simulate_cohort` wrote."""

    folder: Path
    clinical_csv: Path
    treatments_csv: Path
    truth_json: Path
    truth_cohort_csv: Path
    patients: tuple[SimulatedPatient, ...]
    readers_csv: Path | None = None


def _check_options(modality: str, size: str, fmt: str, seed: int = 0) -> None:
    if seed < 0:
        raise InputError(f"The seed must be a non-negative integer, but it is {seed}; pass e.g. --seed 0.")
    if modality.lower() not in MODALITY_CHOICES:
        raise InputError(f"Unknown modality {modality!r}; use one of {', '.join(MODALITY_CHOICES)}.")
    if size not in SIZES:
        raise InputError(f"Unknown size {size!r}; use one of {', '.join(SIZES)}.")
    if fmt not in FORMATS:
        raise InputError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")


def _r(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


def _measured_axes(rendered_instances: Any) -> dict[int, tuple[float, float]]:
    """Long and short axis (mm) of each lesion measured on the voxelised instance map (RECIST in-plane)."""
    from hepavol.measurement import measure_scan

    ids = rendered_instances.array
    liver_label = int(ids.max()) + 1  # no voxel carries it: every non-zero id is a lesion
    m = measure_scan(rendered_instances, liver_label=liver_label, instances=True)
    return {lesion.label: (lesion.long_axis_mm, lesion.short_axis_mm) for lesion in m.lesions}


def simulate_patient(
    index: int,
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    modality: str = "mixed",
    size: str = "small",
    fmt: str = "nifti",
    config: SimulationConfig = DEFAULT_CONFIG,
    reads: Sequence[ReaderModel] = (),
) -> SimulatedPatient:
    """Simulate patient ``index`` of the cohort with ``seed`` and write its scans under ``out/<patient_id>``.

    Parameters
    ----------
    index : int
        0-based position in the cohort (patient id ``SIM-{index+1:03d}``).
    out : str or os.PathLike
        Cohort folder; the patient's folder is created inside it.
    seed : int
        Cohort seed (the result is the same for the same seed, index, options and config).
    modality : {"ct", "mr", "mixed"}
        Imaging modality of the follow-up.
    size : {"small", "full"}
        Scan grid: ``small`` 160×160×60 voxels of 2.5×2.5×5 mm; ``full`` 512×512×120 at 0.78×0.78×2.5 mm (CT)
        or 320×320×60 at 1.25×1.25×5 mm (MR).
    fmt : {"nifti", "dicom"}
        NIfTI files, or DICOM series plus DICOM SEG in one study per scan.
    config : SimulationConfig
        Simulation parameters.
    reads : sequence of ReaderModel
        Also write each read's label map of every scan (:func:`hepavol.simulate.readers.reader_label_map`) as
        ``readers/NAME/DATE_seg.nii.gz`` in the patient's folder.

    Returns
    -------
    SimulatedPatient
        With the truth record of the patient (the element of ``truth.json["patients"]``).
    """
    _check_options(modality, size, fmt, seed)
    start = time.perf_counter()
    patient = sample_patient(index, seed=seed, modality=modality, config=config)
    folder = Path(out) / patient.patient_id
    grid = grid_for(size, patient.modality)
    voxel_ml = grid.spacing_mm[0] * grid.spacing_mm[1] * grid.spacing_mm[2] / 1000.0
    rows: list[dict[str, Any]] = []
    scans_truth: list[dict[str, Any]] = []
    from hepavol.io import write_image

    draws = reader_draws(patient, reads) if reads else {}
    reader_segs: list[tuple[str, str, str]] = []
    for i, scan in enumerate(patient.scans):
        rendered = render_scan(patient, i, size=size, config=config)
        paths = write_scan(patient, i, rendered, folder, fmt=fmt)
        for k, model in enumerate(reads):
            rel = f"readers/{reader_folder_name(model.name)}/{scan.date.isoformat()}_seg.nii.gz"
            write_image(reader_label_map(patient, i, rendered.labels, draws, k), folder / rel)
            reader_segs.append((model.name, scan.date.isoformat(), f"{patient.patient_id}/{rel}"))
        rows.append(
            {
                "date": scan.date.isoformat(),
                "image": paths["image"],
                "seg": paths["seg"],
                "patient_id": patient.patient_id,
            }
        )
        counts = rendered.lesion_voxel_counts()
        axes = _measured_axes(rendered.instances)
        labels = rendered.labels.array
        st = patient.truth.scans[i]
        lesion_records: list[dict[str, Any]] = []
        for lt in st.lesions:
            n = counts.get(lt.lesion_id, 0)
            mask_long, mask_short = axes.get(lt.lesion_id, (0.0, 0.0))
            lesion_records.append(
                {
                    "lesion_id": lt.lesion_id,
                    "role": lt.role,
                    "true_volume_ml": _r(lt.true_volume_ml, 6),
                    "mask_volume_ml": _r(n * voxel_ml, 6),
                    "mask_voxel_count": n,
                    "semi_axes_mm": [_r(v, 3) for v in lt.semi_axes_mm],
                    "long_axis_mm": _r(lt.long_axis_mm, 3),
                    "short_axis_mm": _r(lt.short_axis_mm, 3),
                    "max_diameter_3d_mm": _r(lt.max_diameter_3d_mm, 3),
                    "mask_long_axis_mm": _r(mask_long, 3),
                    "mask_short_axis_mm": _r(mask_short, 3),
                    "centre_lps_mm": [_r(v, 3) for v in lt.centre_lps_mm],
                }
            )
        mask_tumour = sum(r["mask_volume_ml"] for r in lesion_records)
        scans_truth.append(
            {
                "index": i,
                "date": scan.date.isoformat(),
                "day": scan.day,
                "image": paths["image"],
                "seg": paths["seg"],
                "instances": paths["instances"],
                "pose": {
                    "rotation": [[_r(v, 8) for v in row] for row in scan.pose.rotation],
                    "translation_mm": [_r(v, 3) for v in scan.pose.translation_mm],
                    "rotation_deg": _r(scan.pose.rotation_angle_deg(), 3),
                },
                "geometry": rendered.image.geometry.to_dict(),
                "total_tumour_volume_ml": _r(st.total_tumour_volume_ml, 6),
                "mask_total_tumour_volume_ml": _r(mask_tumour, 6),
                "mask_liver_volume_ml": _r(int((labels > 0).sum()) * voxel_ml, 6),
                "lesion_count": len(st.lesions),
                "sum_of_diameters_mm": st.sum_of_diameters_mm,
                "target_response": st.target_response,
                "non_target_response": st.non_target_response,
                "new_lesions": st.new_lesions,
                "overall_response": st.overall_response,
                "cga_ug_per_l": patient.cga_by_scan_ug_per_l[i],
                "lesions": lesion_records,
            }
        )
    manifest = folder / "manifest.csv"
    write_csv(rows, MANIFEST_COLUMNS, manifest)
    truth = patient.truth
    record: dict[str, Any] = {
        "patient_id": patient.patient_id,
        "modality": patient.modality,
        "folder": patient.patient_id,
        "manifest": f"{patient.patient_id}/manifest.csv",
        "tgr_percent_per_month": _r(patient.tgr_percent_per_month, 4),
        "growth_model": patient.growth_model,
        "ki67_percent": patient.clinical.ki67_percent,
        "liver_volume_ml": _r(patient.anatomy.liver_volume_ml, 1),
        "eligible": patient.clinical.eligible,
        "ineligibility_reasons": list(patient.clinical.ineligibility_reasons),
        "target_lesion_ids": list(truth.target_ids),
        "non_target_lesion_ids": list(truth.non_target_ids),
        "best_overall_response": truth.best_overall_response,
        "progression_date": None if truth.progression_date is None else truth.progression_date.isoformat(),
        "pfs_days": truth.pfs_days,
        "pfs_event": truth.pfs_event,
        "recist_warnings": list(truth.recist_warnings),
        "lesions": [
            {
                "lesion_id": s.lesion_id,
                "onset_day": s.onset_day,
                "new": s.is_new,
                "appearance": s.appearance,
                "growth_model": s.law.model,
                "tgr_percent_per_month": _r(rate_to_tgr(s.law.rate_per_month), 4),
                "volume_at_onset_ml": _r(s.law.volume0_ml, 6),
                "capacity_ml": None if s.law.capacity_ml is None else _r(s.law.capacity_ml, 4),
                "axis_ratios": [_r(v, 4) for v in s.axis_ratios],
            }
            for s in patient.lesions
        ],
        "ttv_curve": [
            {
                "date": s["date"],
                "day": s["day"],
                "true_volume_ml": s["total_tumour_volume_ml"],
                "mask_volume_ml": s["mask_total_tumour_volume_ml"],
            }
            for s in scans_truth
        ],
        "ttv_curve_monthly": [
            {"day": day, "true_volume_ml": _r(sum(s.volume_ml(day) for s in patient.lesions), 6)}
            for day in range(0, patient.scans[-1].day + 1, 30)
        ],
        "scans": scans_truth,
    }
    return SimulatedPatient(
        patient=patient,
        folder=folder,
        manifest=manifest,
        truth=record,
        seconds=time.perf_counter() - start,
        reader_segs=tuple(reader_segs),
    )


def simulate_cohort(
    n_patients: int,
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    modality: str = "mixed",
    size: str = "small",
    fmt: str = "nifti",
    config: SimulationConfig = DEFAULT_CONFIG,
    progress: Callable[[int, int, SimulatedPatient], None] | None = None,
    reads: Sequence[ReaderModel] = (),
) -> SimulatedCohort:
    """Simulate ``n_patients`` virtual patients into the new or empty folder ``out``.

    Writes every patient's scans and ``manifest.csv`` (see :func:`simulate_patient`), then ``clinical.csv``,
    ``treatments.csv`` (dated treatments, :mod:`hepavol.simulate.treatments`), ``truth.json`` and
    ``truth_cohort.csv`` (the eligible patients' true values as a ``hepavol cohort`` table) for the cohort.
    ``progress(done, total, patient)`` is called after each patient. With ``reads`` (reader models,
    :mod:`hepavol.simulate.readers`) it also writes ``readers.csv``: every read's lesion measurements in the
    ``hepavol agreement`` format; each read's label maps (``P/readers/NAME/DATE_seg.nii.gz``) with a
    ``NAME_segs.csv`` (``patient_id,date,seg``, the ``study import-seg`` table); and the models under
    ``generator.readers`` of ``truth.json``. Without, the outputs are those of earlier versions byte for byte.

    Raises
    ------
    InputError
        For a patient count below 1, an unknown option, or an output folder that exists and is not empty.
    """
    if n_patients < 1:
        raise InputError(f"The number of patients must be at least 1, but it is {n_patients}.")
    _check_options(modality, size, fmt, seed)
    folder = check_output_folder(out)
    done: list[SimulatedPatient] = []
    for i in range(n_patients):
        result = simulate_patient(
            i, folder, seed=seed, modality=modality, size=size, fmt=fmt, config=config, reads=reads
        )
        done.append(result)
        if progress is not None:
            progress(i + 1, n_patients, result)
    clinical = folder / "clinical.csv"
    write_csv([clinical_row(p.patient.clinical) for p in done], CLINICAL_COLUMNS, clinical)
    treatments = folder / "treatments.csv"
    write_csv([row for p in done for row in patient_treatments(p.patient)], TREATMENT_COLUMNS, treatments)
    write_truth_cohort_table([p.patient for p in done], folder / "truth_cohort.csv")
    readers_csv = None
    if reads:
        readers_csv = folder / "readers.csv"
        write_csv([row for p in done for row in reader_rows(p.patient, reads)], READER_COLUMNS, readers_csv)
        for model in reads:
            segs = [
                {"patient_id": p.patient.patient_id, "date": date, "seg": rel}
                for p in done
                for name, date, rel in p.reader_segs
                if name == model.name
            ]
            write_csv(segs, ("patient_id", "date", "seg"), folder / f"{reader_folder_name(model.name)}_segs.csv")
    truth_path = folder / "truth.json"
    config_dict = asdict(config)
    generator: dict[str, Any] = {
        "hepavol_version": __version__,
        "seed": seed,
        "patients": n_patients,
        "modality": modality,
        "size": size,
        "format": fmt,
        "config": config_dict,
    }
    if reads:
        generator["readers"] = [r.to_dict() for r in reads]
    write_json(
        {
            "format": TRUTH_FORMAT,
            "version": TRUTH_VERSION,
            "generator": generator,
            "conventions": {
                "coordinates": "DICOM LPS mm of each scan's own grid (scanner frame)",
                "labels": {"liver": 1, "tumour": 2},
                "instances": "lesion_id per voxel, the same id at every scan of a patient",
                "true_volume_ml": "analytic volume 4/3·π·a·b·c of the lesion ellipsoid",
                "mask_volume_ml": "voxel count of the lesion in the instance map × voxel volume",
                "long_axis_mm": "true RECIST long axis: largest axial section of the ellipsoid (analytic)",
                "mask_long_axis_mm": "long axis measured on the instance map by hepavol.measurement.measure_scan",
                "liver_volume_ml": "whole liver including tumour, numerical quadrature on a 2.5 mm grid",
                "recist": "hepavol.response.recist.assess_patient on the true axes; see hepavol.simulate.truth",
                "pfs_days": "days from baseline to the first scan with overall PD (event) or to the last scan",
            },
            "patients": [p.truth for p in done],
        },
        truth_path,
    )
    return SimulatedCohort(
        folder=folder,
        clinical_csv=clinical,
        treatments_csv=treatments,
        truth_json=truth_path,
        truth_cohort_csv=folder / "truth_cohort.csv",
        patients=tuple(done),
        readers_csv=readers_csv,
    )
