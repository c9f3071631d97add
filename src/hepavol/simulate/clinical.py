"""Clinical variables of a virtual patient, consistent with the simulated tumour biology.

- Ki-67 (%) lognormal (design choice, see :class:`~hepavol.simulate.config.SimulationConfig`); the patient's grade
  follows from it by the WHO 2019 GEP-NET thresholds, the same function the study workspace uses
  (:func:`hepavol.study.clinical.who_2019_grade`).
- Patient TGR (%/month) rising with ln Ki-67 plus noise (the study's secondary aim correlates TGR with Ki-67,
  SCIENCE.md §0; TGR ranges in NETs, §2.3).
- CgA (µg/L) rising with total tumour volume with lognormal noise, raised by proton-pump inhibitors
  (SCIENCE.md §4.6).
- Extra-abdominal disease more likely with more liver tumour (the study correlates them, SCIENCE.md §0).
"""

from __future__ import annotations

import math

import numpy as np

from hepavol.simulate.config import SimulationConfig


def sample_ki67_percent(rng: np.random.Generator, config: SimulationConfig) -> float:
    """Ki-67 in %, lognormal, clipped to ``config.ki67_range_percent`` and rounded to 0.1 %."""
    value = config.ki67_median_percent * math.exp(config.ki67_log_sd * float(rng.normal()))
    lo, hi = config.ki67_range_percent
    return round(min(max(value, lo), hi), 1)


def sample_patient_tgr(rng: np.random.Generator, ki67_percent: float, config: SimulationConfig) -> float:
    """Patient-level TGR in %/month: linear in ln(Ki-67 / median) plus Gaussian noise, floored at −10."""
    mean = config.tgr_intercept_percent_per_month + config.tgr_per_log_ki67 * math.log(
        ki67_percent / config.ki67_median_percent
    )
    return max(-10.0, mean + config.tgr_sd_percent_per_month * float(rng.normal()))


def cga_ug_per_l(total_tumour_volume_ml: float, noise: float, ppi_use: bool, config: SimulationConfig) -> float:
    """CgA in µg/L for a total tumour volume, a standard-normal ``noise`` draw and PPI use (rounded to 1 µg/L).

    Examples
    --------
    Without noise or PPI, a 10 mL tumour burden gives 60·2^0.6 ≈ 91 µg/L with the default parameters:

    >>> from hepavol.simulate.config import DEFAULT_CONFIG
    >>> cga_ug_per_l(10.0, 0.0, False, DEFAULT_CONFIG)
    91.0
    """
    value = (
        config.cga_base_ug_per_l
        * (1.0 + total_tumour_volume_ml / config.cga_volume_scale_ml) ** config.cga_exponent
    )
    value *= math.exp(config.cga_log_sd * noise)
    if ppi_use:
        value *= config.ppi_cga_factor
    return float(round(value))


def extra_abdominal_probability(total_tumour_volume_ml: float, config: SimulationConfig) -> float:
    """Probability of extra-abdominal disease given the baseline liver tumour volume (logistic in log10 mL)."""
    logit = config.extra_abdominal_logit_intercept + config.extra_abdominal_logit_per_log10_ml * math.log10(
        max(total_tumour_volume_ml, 0.01)
    )
    return 1.0 / (1.0 + math.exp(-logit))
