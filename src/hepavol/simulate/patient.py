"""One virtual patient at parameter level (no images): biology, anatomy, lesions, schedule, clinical data, truth.

:func:`sample_patient` is cheap (about 0.1 s) and deterministic: patient ``index`` of a cohort with seed ``seed``
draws from its own :class:`numpy.random.Generator` seeded by ``SeedSequence(seed, spawn_key=(index, 0))``, so a
patient is the same whatever the cohort size, and the image noise of each scan has its own stream
(``spawn_key=(index, 1, scan)``), so images never change the parameters.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass

import numpy as np

from hepavol.errors import InputError
from hepavol.response.growth import DAYS_PER_MONTH
from hepavol.simulate.anatomy import Anatomy, sample_anatomy
from hepavol.simulate.clinical import (
    cga_ug_per_l,
    extra_abdominal_probability,
    sample_ki67_percent,
    sample_patient_tgr,
)
from hepavol.simulate.config import DEFAULT_CONFIG, Modality, SimulationConfig
from hepavol.simulate.growth import GrowthLaw, GrowthModel, tgr_to_rate
from hepavol.simulate.lesions import Appearance, LesionSpec, place_lesions, random_rotation
from hepavol.simulate.schedule import ScanEvent, sample_poses, sample_scan_days
from hepavol.simulate.truth import PatientTruth, assess_truth
from hepavol.study.clinical import who_2019_grade

MODALITY_CHOICES = ("ct", "mr", "mixed")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClinicalRecord:
    """The clinical row of one patient (``clinical.csv``). Nothing here identifies a real person."""

    patient_id: str
    modality: Modality
    age_years: int
    sex: str
    ki67_percent: float
    grade: str
    cga_ug_per_l: float
    ppi_use: bool
    extra_abdominal_disease: bool
    primary_resected: bool
    somatostatin_analogue: bool
    invasive_liver_treatment: bool
    systemic_chemotherapy: bool
    baseline_date: datetime.date
    last_scan_date: datetime.date
    n_scans: int
    eligible: bool
    ineligibility_reasons: tuple[str, ...]
    #: Every virtual patient has a well-differentiated small-intestinal NET (the study's population).
    tumour_type: str = "NET"
    primary_site: str = "small_intestine"
    differentiation: str = "well"


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualPatient:
    """Everything that defines one virtual patient; images are rendered from it by :mod:`.render`."""

    patient_id: str
    index: int
    seed: int
    modality: Modality
    tgr_percent_per_month: float
    growth_model: GrowthModel
    liver_intensity: float
    anatomy: Anatomy
    lesions: tuple[LesionSpec, ...]
    scans: tuple[ScanEvent, ...]
    horizon_day: int
    cga_by_scan_ug_per_l: tuple[float, ...]
    clinical: ClinicalRecord
    truth: PatientTruth


def patient_rng(seed: int, index: int, *stream: int) -> np.random.Generator:
    """The random generator of patient ``index`` (and optional sub-stream) for a cohort seed."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(index, *stream))))


def _resolve_modality(choice: str, rng: np.random.Generator, config: SimulationConfig) -> Modality:
    value = choice.lower()
    if value not in MODALITY_CHOICES:
        raise InputError(f"Unknown modality {choice!r}; use one of {', '.join(MODALITY_CHOICES)}.")
    draw = float(rng.uniform())  # drawn in every case so that other parameters do not depend on the choice
    if value == "ct":
        return "CT"
    if value == "mr":
        return "MR"
    return "MR" if draw < config.mr_fraction else "CT"


def _appearance(rng: np.random.Generator, diameter_mm: float) -> Appearance:
    if diameter_mm >= 40.0 and rng.uniform() < 0.5:
        return "necrotic"
    u = float(rng.uniform())
    if u < 0.55:
        return "hypo"
    if u < 0.75:
        return "hyper"
    if u < 0.92:
        return "rim"
    return "calcified"


def _draft_lesion(
    rng: np.random.Generator,
    *,
    diameter_mm: float,
    onset_day: int,
    patient_rate: float,
    model: GrowthModel,
    config: SimulationConfig,
) -> LesionSpec:
    ratios = np.sort(rng.uniform(*config.lesion_axis_ratio, size=2))[::-1]
    axis_ratios = (1.0, float(ratios[0]), float(ratios[1]))
    a = diameter_mm / 2.0
    volume0_ml = 4.0 / 3.0 * math.pi * a**3 * axis_ratios[1] * axis_ratios[2] / 1000.0
    if rng.uniform() < config.regress_probability:
        rate = tgr_to_rate(float(rng.uniform(*config.regress_tgr_percent_per_month)))
    else:
        rate = patient_rate + tgr_to_rate(config.lesion_tgr_sd_percent_per_month * float(rng.normal()))
    capacity = volume0_ml * float(rng.uniform(*config.gompertz_capacity_factor))
    direction = rng.normal(size=3)
    direction = direction / np.linalg.norm(direction) * float(rng.uniform(0.0, 1.0))
    return LesionSpec(
        lesion_id=0,
        centre_mm=(0.0, 0.0, 0.0),
        rotation=random_rotation(rng),
        axis_ratios=axis_ratios,
        law=GrowthLaw(volume0_ml=volume0_ml, rate_per_month=rate, model=model, capacity_ml=capacity),
        onset_day=onset_day,
        appearance=_appearance(rng, diameter_mm),
        contrast=(float(rng.uniform()), float(rng.uniform()), float(rng.uniform())),
        calcification_offset=(float(direction[0]), float(direction[1]), float(direction[2])),
    )


def _lognormal_clipped(rng: np.random.Generator, median: float, log_sd: float, lo: float, hi: float) -> float:
    return float(min(max(median * math.exp(log_sd * float(rng.normal())), lo), hi))


def sample_patient(
    index: int,
    *,
    seed: int = 0,
    modality: str = "mixed",
    config: SimulationConfig = DEFAULT_CONFIG,
) -> VirtualPatient:
    """Draw virtual patient number ``index`` (0-based) of the cohort with ``seed``, without rendering images.

    Parameters
    ----------
    index : int
        Position of the patient in the cohort (0-based); the patient id is ``SIM-{index+1:03d}``.
    seed : int
        Cohort seed; the same (seed, index, modality, config) always gives the same patient.
    modality : {"ct", "mr", "mixed"}
        Imaging modality of the patient's follow-up (one modality per patient, as in the study, SCIENCE.md §0);
        ``mixed`` draws MR with probability ``config.mr_fraction``.
    config : SimulationConfig
        Simulation parameters.

    Returns
    -------
    VirtualPatient
    """
    if index < 0:
        raise InputError(f"Argument 'index' must be >= 0, but it is {index}.")
    if seed < 0:
        raise InputError(f"The seed must be a non-negative integer, but it is {seed}; pass e.g. --seed 0.")
    rng = patient_rng(seed, index, 0)
    patient_id = f"SIM-{index + 1:03d}"
    mod = _resolve_modality(modality, rng, config)
    ki67 = sample_ki67_percent(rng, config)
    tgr = sample_patient_tgr(rng, ki67, config)
    model: GrowthModel = "gompertz" if rng.uniform() < config.gompertz_probability else "exponential"
    flags = {
        "invasive_liver_treatment": bool(rng.uniform() < config.invasive_liver_treatment_probability),
        "systemic_chemotherapy": bool(rng.uniform() < config.systemic_chemotherapy_probability),
        "small_lesions_only": bool(rng.uniform() < config.small_lesions_only_probability),
        "insufficient_follow_up": bool(rng.uniform() < config.insufficient_follow_up_probability),
    }
    age = int(min(max(round(float(rng.normal(62.0, 11.0))), 30), 88))
    sex = "F" if rng.uniform() < 0.5 else "M"
    ppi = bool(rng.uniform() < config.ppi_probability)
    primary_resected = bool(rng.uniform() < config.primary_resected_probability)
    ssa = bool(rng.uniform() < config.somatostatin_analogue_probability)
    start = datetime.date.fromisoformat(config.baseline_date_range[0])
    end = datetime.date.fromisoformat(config.baseline_date_range[1])
    baseline_date = start + datetime.timedelta(days=int(rng.integers(0, (end - start).days + 1)))
    liver_intensity = float(rng.uniform(*config.liver_hu)) if mod == "CT" else float(rng.uniform(260.0, 340.0))

    anatomy = sample_anatomy(rng, config)

    months = float(rng.uniform(*config.follow_up_months))
    horizon = 0 if flags["insufficient_follow_up"] else int(months * DAYS_PER_MONTH)
    days = sample_scan_days(rng, horizon, config)
    horizon = max(days)

    patient_rate = tgr_to_rate(tgr)
    n = round(config.lesion_count_median * math.exp(config.lesion_count_log_sd * float(rng.normal())))
    n = min(max(n, config.lesion_count_range[0]), config.lesion_count_range[1])
    drafts = []
    for _ in range(n):
        if flags["small_lesions_only"]:
            d = float(rng.uniform(5.0, 9.5))
        else:
            d = _lognormal_clipped(
                rng,
                config.lesion_diameter_median_mm,
                config.lesion_diameter_log_sd,
                *config.lesion_diameter_range_mm,
            )
        drafts.append(
            _draft_lesion(rng, diameter_mm=d, onset_day=0, patient_rate=patient_rate, model=model, config=config)
        )
    # new lesions: Poisson process over the follow-up, faster for faster-growing disease
    rate_per_day = config.new_lesion_rate_per_month * max(0.2, 1.0 + tgr / 2.0) / DAYS_PER_MONTH
    t = 0.0
    while rate_per_day > 0:
        t += float(rng.exponential(1.0 / rate_per_day))
        if t > horizon:
            break
        d = float(rng.uniform(*config.new_lesion_diameter_mm))
        drafts.append(
            _draft_lesion(
                rng, diameter_mm=d, onset_day=max(1, int(t)), patient_rate=patient_rate, model=model, config=config
            )
        )
    lesions = place_lesions(
        anatomy, rng, drafts, horizon, min_diameter_mm=config.lesion_diameter_range_mm[0] * 0.999
    )
    if not any(not s.is_new for s in lesions):  # keep at least one baseline lesion (inclusion criterion)
        small = _draft_lesion(
            rng, diameter_mm=8.0, onset_day=0, patient_rate=patient_rate, model=model, config=config
        )
        lesions = place_lesions(anatomy, rng, [small, *lesions], horizon, min_diameter_mm=1.0)

    poses = sample_poses(rng, len(days), config)
    scans = [
        ScanEvent(index=i, day=d, date=baseline_date + datetime.timedelta(days=d), pose=p)
        for i, (d, p) in enumerate(zip(days, poses))
    ]
    truth = assess_truth(lesions, scans, patient_id)
    if truth.progression_date is not None:  # follow-up stops at the first true progression
        scans = [s for s in scans if s.date <= truth.progression_date]
        truth = assess_truth(lesions, scans, patient_id)

    cga_noise = float(rng.normal())
    cga = tuple(cga_ug_per_l(st.total_tumour_volume_ml, cga_noise, ppi, config) for st in truth.scans)
    extra = bool(rng.uniform() < extra_abdominal_probability(truth.scans[0].total_tumour_volume_ml, config))

    reasons = []
    if flags["invasive_liver_treatment"]:
        reasons.append("invasive liver treatment")
    if flags["systemic_chemotherapy"]:
        reasons.append("systemic chemotherapy")
    if not truth.target_ids:
        reasons.append("lesions < 10 mm only")
    if len(scans) < 2:
        reasons.append("insufficient follow-up")
    clinical = ClinicalRecord(
        patient_id=patient_id,
        modality=mod,
        age_years=age,
        sex=sex,
        ki67_percent=ki67,
        grade=who_2019_grade(ki67),
        cga_ug_per_l=cga[0],
        ppi_use=ppi,
        extra_abdominal_disease=extra,
        primary_resected=primary_resected,
        somatostatin_analogue=ssa,
        invasive_liver_treatment=flags["invasive_liver_treatment"],
        systemic_chemotherapy=flags["systemic_chemotherapy"],
        baseline_date=baseline_date,
        last_scan_date=scans[-1].date,
        n_scans=len(scans),
        eligible=not reasons,
        ineligibility_reasons=tuple(reasons),
    )
    return VirtualPatient(
        patient_id=patient_id,
        index=index,
        seed=seed,
        modality=mod,
        tgr_percent_per_month=tgr,
        growth_model=model,
        liver_intensity=liver_intensity,
        anatomy=anatomy,
        lesions=tuple(lesions),
        scans=tuple(scans),
        horizon_day=horizon,
        cga_by_scan_ug_per_l=cga,
        clinical=clinical,
        truth=truth,
    )
