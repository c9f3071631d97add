"""A seeded generator of cohort tables whose true effects are known, for tests, demos and power checks.

The model (all parameters are keyword arguments):

- early scan 90–180 days after baseline (the registry's 3–6 month window);
- true log volume ratio at the early scan ~ Normal(``mean_log_ratio``, ``sd_log_ratio``);
- sum of diameters of two target lesions follows the sphere relation D ∝ V^(1/3) with multiplicative measurement
  noise (``sld_noise_sd`` on the log scale), so SLD change is a noisier view of the same growth;
- landmark PFS: exponential from the early scan with hazard ``baseline_hazard_per_day · HR^(change/10)``,
  where change = volume change in percentage points and HR = ``true_hr_per_10pct``; administrative censoring
  uniform over ``follow_up_days``;
- a fraction ``early_progression_fraction`` progresses at the early scan (pfs_date = early_date, volume
  +80 % or more) and ``no_early_scan_fraction`` has no early scan;
- CgA rises with baseline volume, Ki-67 with growth, extra-abdominal disease with volume (for the secondary
  endpoints), grade from Ki-67 (WHO 2019: G1 < 3 %, G2 3–20 %, G3 > 20 %).

Patient ids are ``SIM001``...; dates start in 2015. Nothing here is real patient data.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from hepavol.cohort.table import CohortTable, PatientRecord


def simulate_table(
    n: int,
    *,
    seed: int,
    true_hr_per_10pct: float = 1.3,
    baseline_hazard_per_day: float = 1.0 / 900.0,
    mean_log_ratio: float = 0.05,
    sd_log_ratio: float = 0.25,
    sld_noise_sd: float = 0.08,
    follow_up_days: tuple[int, int] = (360, 1800),
    early_progression_fraction: float = 0.05,
    no_early_scan_fraction: float = 0.03,
    mr_fraction: float = 0.4,
    target_noise_sd: float = 0.15,
) -> CohortTable:
    """Simulate a cohort table of ``n`` patients (deterministic for a given ``seed``).

    Parameters
    ----------
    n : int
        Number of patients.
    seed : int
        Seed of NumPy's ``default_rng``.
    true_hr_per_10pct : float
        True hazard ratio of landmark PFS per +10 percentage points of early total-volume change.
    target_noise_sd : float
        SD (log scale) of how much the two target lesions' growth differs from the whole liver's; the target
        volume and the three largest metastases' diameters are drawn from a second generator (seeded
        ``seed + 1``), so the other columns are the same as without them.
    baseline_hazard_per_day : float
        Hazard (per day) of a patient whose volume did not change.

    Examples
    --------
    >>> t = simulate_table(20, seed=1)
    >>> len(t), t.modalities
    (20, ('CT', 'MR'))
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, but it is {n}")
    rng = np.random.default_rng(seed)
    rng_targets = np.random.default_rng(seed + 1)
    beta = math.log(true_hr_per_10pct) / 10.0
    start = dt.date(2015, 1, 1)
    patients: list[PatientRecord] = []
    for i in range(n):
        baseline_date = start + dt.timedelta(days=int(rng.integers(0, 3 * 365)))
        interval = int(rng.integers(90, 181))
        early_date = baseline_date + dt.timedelta(days=interval)
        v0 = float(np.exp(rng.normal(math.log(60.0), 1.1)))
        liver = float(1500.0 + rng.normal(0, 150) + v0)
        log_ratio = float(rng.normal(mean_log_ratio, sd_log_ratio))
        kind = rng.random()
        no_early = kind < no_early_scan_fraction
        early_pd = (not no_early) and kind < no_early_scan_fraction + early_progression_fraction
        if early_pd:
            log_ratio = max(log_ratio, math.log(1.8)) + abs(float(rng.normal(0, 0.1)))
        v1 = v0 * math.exp(log_ratio)
        target_fraction = float(rng.uniform(0.2, 0.6))
        d0 = 2.0 * (6.0 * target_fraction * v0 * 1000.0 / 2.0 / math.pi) ** (1.0 / 3.0)  # two equal spheres, mm
        sld0 = d0 * math.exp(float(rng.normal(0, sld_noise_sd)))
        sld1 = d0 * math.exp(log_ratio / 3.0) * math.exp(float(rng.normal(0, sld_noise_sd)))
        change_pp = 100.0 * (math.exp(log_ratio) - 1.0)
        # Target lesions and the three largest metastases: the liver's growth plus a lesion-level deviation.
        target_ratio = log_ratio + float(rng_targets.normal(0, target_noise_sd))
        tv0 = target_fraction * v0
        tv1 = tv0 * math.exp(target_ratio)
        three_fraction = min(1.0, target_fraction * float(rng_targets.uniform(1.0, 1.6)))
        d3_0 = 3.0 * (6.0 * three_fraction * v0 * 1000.0 / 3.0 / math.pi) ** (1.0 / 3.0)  # three equal spheres
        three_ratio = log_ratio + float(rng_targets.normal(0, target_noise_sd))
        d3_base = d3_0 * math.exp(float(rng_targets.normal(0, sld_noise_sd)))
        d3_early = d3_0 * math.exp(three_ratio / 3.0) * math.exp(float(rng_targets.normal(0, sld_noise_sd)))
        if no_early:
            days = max(1, int(rng.integers(30, interval)))
            pfs_date = baseline_date + dt.timedelta(days=days)
            event = bool(rng.random() < 0.5)
        elif early_pd:
            pfs_date, event = early_date, True
        else:
            hazard = baseline_hazard_per_day * math.exp(beta * change_pp)
            t_event = float(rng.exponential(1.0 / hazard))
            t_cens = float(rng.uniform(*follow_up_days))
            days = max(1, round(min(t_event, t_cens)))
            event = t_event <= t_cens
            pfs_date = early_date + dt.timedelta(days=days)
        z_growth = (log_ratio - mean_log_ratio) / sd_log_ratio
        ki67 = float(np.clip(math.exp(rng.normal(math.log(3.0) + 0.35 * z_growth, 0.6)), 0.5, 40.0))
        grade = "G1" if ki67 < 3 else ("G2" if ki67 <= 20 else "G3")
        cga = float(math.exp(rng.normal(math.log(150.0) + 0.5 * math.log(v0 / 60.0), 0.8)))
        lesions = float(min(20, 1 + rng.poisson(2.0 + 2.0 * max(0.0, math.log(v0 / 20.0)))))
        p_extra = 1.0 / (1.0 + math.exp(-(-1.2 + 0.6 * math.log(v0 / 60.0))))
        extra = bool(rng.random() < p_extra)
        patients.append(
            PatientRecord(
                line=i + 2,
                patient_id=f"SIM{i + 1:03d}",
                modality="MR" if rng.random() < mr_fraction else "CT",
                baseline_date=baseline_date,
                early_date=None if no_early else early_date,
                baseline_volume_ml=round(v0, 3),
                early_volume_ml=None if no_early else round(v1, 3),
                baseline_sld_mm=round(sld0, 1),
                early_sld_mm=None if no_early else round(sld1, 1),
                lesion_count=lesions,
                liver_volume_ml=round(liver, 1),
                pfs_event=event,
                pfs_date=pfs_date,
                ki67_percent=round(ki67, 1),
                cga_ug_l=round(cga, 1),
                extra_abdominal=extra,
                grade=grade,
                baseline_target_volume_ml=round(tv0, 3),
                early_target_volume_ml=None if no_early else round(tv1, 3),
                baseline_three_largest_diameter_sum_mm=round(d3_base, 1),
                early_three_largest_diameter_sum_mm=None if no_early else round(d3_early, 1),
            )
        )
    return CohortTable(tuple(patients), f"simulate_table(n={n}, seed={seed})")
