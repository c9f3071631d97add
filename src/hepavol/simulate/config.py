"""Parameters of the virtual NET cohort, with their defaults and where each default comes from.

Sources are sections of the project's scientific reference (``SCIENCE.md``) where one exists. Defaults marked
"design choice" have no published source in SCIENCE.md: they are plausible values picked so that the simulated
cohort behaves like a slow-growing small-intestinal NET cohort; change them through :class:`SimulationConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from hepavol.errors import InputError

Modality = Literal["CT", "MR"]
SizeName = Literal["small", "full"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GridSpec:
    """An axial scan grid: number of voxels and spacing along (slice, row, column) in mm."""

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]


#: Scan grids per (size, modality). ``small`` is for tests and the demo (seconds per patient); ``full`` looks
#: like a clinical acquisition (512² CT at 0.78 mm with 2.5 mm slices; 320² T2 MR with 5 mm slices).
GRIDS: dict[tuple[str, str], GridSpec] = {
    ("small", "CT"): GridSpec(shape=(60, 160, 160), spacing_mm=(5.0, 2.5, 2.5)),
    ("small", "MR"): GridSpec(shape=(60, 160, 160), spacing_mm=(5.0, 2.5, 2.5)),
    ("full", "CT"): GridSpec(shape=(120, 512, 512), spacing_mm=(2.5, 0.78125, 0.78125)),
    ("full", "MR"): GridSpec(shape=(60, 320, 320), spacing_mm=(5.0, 1.25, 1.25)),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationConfig:
    """All tunable parameters of the simulator (keyword-only, frozen; use :meth:`replace` to change some).

    Units are in the names. Probabilities are per patient unless stated otherwise.
    """

    # --- cohort and schedule -------------------------------------------------------------------------------
    #: Probability that a patient is followed by MR when ``modality="mixed"`` (design choice).
    mr_fraction: float = 0.4
    #: First and last possible baseline date (ISO); baseline dates are uniform in between (design choice).
    baseline_date_range: tuple[str, str] = ("2012-01-01", "2022-12-31")
    #: Early follow-up window in days: 3-6 months after baseline (SCIENCE.md §0, registry time points).
    early_scan_days: tuple[int, int] = (91, 183)
    #: Interval between later scans in days: every 6-12 months (issue 5; registry says "then yearly", §0).
    later_interval_days: tuple[int, int] = (183, 365)
    #: Administrative censoring: total follow-up available in months, uniform (design choice).
    follow_up_months: tuple[float, float] = (18.0, 96.0)
    #: Translation of the patient between scans relative to baseline, norm in mm (issue 5).
    shift_mm: tuple[float, float] = (20.0, 40.0)
    #: Largest rotation about the craniocaudal axis and about the two other axes, degrees (design choice).
    max_rotation_deg: tuple[float, float] = (4.0, 2.0)

    # --- tumour biology --------------------------------------------------------------------------------------
    #: Ki-67 (%) is lognormal with this median and log-SD, clipped (design choice giving ~2/3 G1, ~1/3 G2 and
    #: < 1 % G3, as in well-differentiated small-intestinal NETs; grading thresholds SCIENCE.md §3.4).
    ki67_median_percent: float = 2.0
    ki67_log_sd: float = 0.9
    ki67_range_percent: tuple[float, float] = (0.5, 40.0)
    #: Patient tumour growth rate TGR (%/month, Ferté definition, SCIENCE.md §2.1-2.2) =
    #: ``tgr_intercept + tgr_per_log_ki67 * ln(Ki-67 / median) + Normal(0, tgr_sd)``. Chosen so that about 90 %
    #: of patients lie between -2 and +5 %/month (issue 5) with a median of about 1.8 %/month, between
    #: GREPONET's 0.8 %/month cut-off and CLARINET's median TGR0 of 2.1-2.7 %/month (SCIENCE.md §2.3). With the
    #: other defaults the true median PFS is about 28 months (80 patients, seed 21), near the 22.9 months of
    #: Dromain 2021 and the 26.3 months of GREPONET's slow-growth group (SCIENCE.md §2.3).
    tgr_intercept_percent_per_month: float = 1.8
    tgr_per_log_ki67: float = 1.2
    tgr_sd_percent_per_month: float = 1.8
    #: Per-lesion deviation of the growth rate around the patient's, SD in %/month (design choice).
    lesion_tgr_sd_percent_per_month: float = 1.0
    #: Probability that a lesion regresses, and its TGR range in %/month (design choice; issue 5).
    regress_probability: float = 0.07
    regress_tgr_percent_per_month: tuple[float, float] = (-4.0, -1.0)
    #: Probability that a patient's lesions follow Gompertz rather than exponential growth (design choice).
    gompertz_probability: float = 0.5
    #: Gompertz carrying capacity as a multiple of the lesion's baseline volume (design choice).
    gompertz_capacity_factor: tuple[float, float] = (4.0, 30.0)
    #: New lesions: Poisson rate per month at TGR 0, multiplied by ``max(0.2, 1 + TGR/2)`` (design choice).
    new_lesion_rate_per_month: float = 0.01
    #: Long-axis diameter of a new lesion when it first appears, mm (design choice).
    new_lesion_diameter_mm: tuple[float, float] = (6.0, 15.0)

    # --- lesions at baseline -----------------------------------------------------------------------------------
    #: Number of liver lesions: round(lognormal(median, log-SD)) clipped to 1-30 (issue 5; design choice).
    lesion_count_median: float = 4.0
    lesion_count_log_sd: float = 1.0
    lesion_count_range: tuple[int, int] = (1, 30)
    #: Long-axis diameter at baseline: lognormal, clipped to 5-80 mm (issue 5; medians are design choices).
    #: Each patient has its own median (lognormal around ``lesion_diameter_median_mm`` with log-SD
    #: ``patient_diameter_log_sd``), so that tumour burden varies between patients as the hepatic tumour load
    #: classes do (SCIENCE.md §3.4), and lesions vary around it with log-SD ``lesion_diameter_log_sd``.
    lesion_diameter_median_mm: float = 20.0
    patient_diameter_log_sd: float = 0.45
    lesion_diameter_log_sd: float = 0.5
    lesion_diameter_range_mm: tuple[float, float] = (5.0, 80.0)
    #: Ratio of each of the two shorter semi-axes to the longest (design choice; NET metastases are round/oval).
    lesion_axis_ratio: tuple[float, float] = (0.7, 1.0)

    # --- liver ------------------------------------------------------------------------------------------------
    #: Whole-liver volume including tumour, mL, uniform (issue 5: 1.2-2.2 L).
    liver_volume_ml: tuple[float, float] = (1200.0, 2200.0)

    # --- clinical variables --------------------------------------------------------------------------------------
    #: CgA (µg/L) = ``cga_base * (1 + TTV / cga_volume_scale_ml) ** cga_exponent * lognormal(0, cga_log_sd)``,
    #: rising with tumour volume (SCIENCE.md §0 secondary aim; §4.6 raised CgA tied to liver involvement).
    cga_base_ug_per_l: float = 60.0
    cga_volume_scale_ml: float = 10.0
    cga_exponent: float = 0.6
    cga_log_sd: float = 0.5
    #: Proton-pump inhibitor use raises CgA (SCIENCE.md §4.6, Korse 2011: median 390 vs 56 µg/L, ~7x);
    #: probability and multiplicative factor are design choices.
    ppi_probability: float = 0.3
    ppi_cga_factor: float = 3.0
    #: Extra-abdominal disease: logistic in log10 of baseline tumour volume (mL) (design choice).
    extra_abdominal_logit_intercept: float = -2.5
    extra_abdominal_logit_per_log10_ml: float = 0.8
    primary_resected_probability: float = 0.7
    somatostatin_analogue_probability: float = 0.6
    #: Patients failing the eligibility criteria (SCIENCE.md §0, registry record), each independently.
    invasive_liver_treatment_probability: float = 0.04
    systemic_chemotherapy_probability: float = 0.04
    small_lesions_only_probability: float = 0.04
    insufficient_follow_up_probability: float = 0.04

    # --- image appearance ------------------------------------------------------------------------------------
    #: Portal-venous liver attenuation, HU (issue 5: about 100 HU).
    liver_hu: tuple[float, float] = (90.0, 115.0)
    #: CT noise SD in HU for the small and the full grid (design choice; smaller voxels are noisier).
    ct_noise_sd_hu: dict[str, float] = field(default_factory=lambda: {"small": 8.0, "full": 14.0})

    def replace(self, **changes: object) -> SimulationConfig:
        """A copy with some parameters changed (``dataclasses.replace``)."""
        return replace(self, **changes)  # type: ignore[arg-type]


DEFAULT_CONFIG = SimulationConfig()


def grid_for(size: str, modality: str) -> GridSpec:
    """The scan grid for a size (``small``/``full``) and modality (``CT``/``MR``)."""
    key = (size, modality.upper())
    if key not in GRIDS:
        raise InputError(
            f"Unknown scan size/modality {size!r}/{modality!r}; use size 'small' or 'full' and modality 'CT' or 'MR'."
        )
    return GRIDS[key]
