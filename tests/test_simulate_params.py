"""Simulator at parameter level (no images): distributions within the documented ranges, analytic truth.

References: issue 5 (ranges: 1-30 lesions of 5-80 mm, liver 1.2-2.2 L, TGR mostly -2..+5 %/month, early scan at
3-6 months then every 6-12 months, shifts of 20-40 mm); SCIENCE.md §3.4 (WHO 2019 grade from Ki-67), §2.4 (TGR
worked examples), §1.3 (RECIST PD: +20 % and +5 mm vs nadir), §1.4 (non-target PD: +72.8 % volume).
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from hepavol.response.growth import DAYS_PER_MONTH, tgr_volume
from hepavol.simulate import DEFAULT_CONFIG, sample_patient
from hepavol.simulate.anatomy import liver_sdf
from hepavol.simulate.clinical import sample_ki67_percent, sample_patient_tgr
from hepavol.simulate.growth import GrowthLaw, tgr_to_rate
from hepavol.simulate.patient import patient_rng
from hepavol.study.clinical import who_2019_grade

N_PATIENTS = 40


@pytest.fixture(scope="module")
def cohort() -> list:
    return [sample_patient(i, seed=11) for i in range(N_PATIENTS)]


def test_liver_volume_in_range(cohort: list) -> None:
    # issue 5: 1.2-2.2 L; the volume is calibrated on a 5 mm grid and reported on a 2.5 mm grid, so allow 1 %.
    volumes = np.array([p.anatomy.liver_volume_ml for p in cohort])
    assert volumes.min() >= 1200 * 0.99
    assert volumes.max() <= 2200 * 1.01
    assert volumes.max() - volumes.min() > 500  # the range is actually used


def test_liver_volume_is_a_converged_quadrature(cohort: list) -> None:
    # The 2.5 mm midpoint quadrature agrees with a finer 1.5 mm one within 0.5 %.
    from hepavol.simulate.anatomy import liver_volume_ml

    anat = cohort[0].anatomy
    assert liver_volume_ml(anat, step_mm=1.5) == pytest.approx(anat.liver_volume_ml, rel=0.005)


def test_lesion_counts_and_sizes_in_range(cohort: list) -> None:
    counts = []
    for p in cohort:
        baseline = [s for s in p.lesions if not s.is_new]
        counts.append(len(baseline))
        assert 1 <= len(baseline) <= 30, p.patient_id
        for s in baseline:
            d = 2 * float(s.semi_axes_mm(0).max())
            # 5-80 mm (issue 5); lesions that did not fit were shrunk by volume factors of 0.6 (never below 5 mm)
            assert 5.0 * 0.999 <= d <= 80.0 + 1e-6, (p.patient_id, s.lesion_id, d)
    assert max(counts) >= 8
    assert min(counts) == 1


def test_lesions_inside_liver_and_apart(cohort: list) -> None:
    """Every lesion, at its largest size over follow-up, lies inside the liver and does not touch another."""
    sphere = np.random.default_rng(0).normal(size=(500, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    for p in cohort[:20]:
        horizon = p.horizon_day
        big = []
        for s in p.lesions:
            day = max((s.onset_day, horizon), key=s.volume_ml)
            semi = s.semi_axes_mm(day)
            pts = np.array(s.centre_mm) + (sphere * semi) @ np.array(s.rotation).T
            f = liver_sdf(p.anatomy, *(pts[:, i].astype(np.float32) for i in range(3)))
            assert np.all(f < 0), (p.patient_id, s.lesion_id)
            big.append((np.array(s.centre_mm), float(semi.max())))
        for i in range(len(big)):
            for j in range(i):
                assert np.linalg.norm(big[i][0] - big[j][0]) > big[i][1] + big[j][1] + 6.2, p.patient_id


def test_schedule_in_documented_windows(cohort: list) -> None:
    for p in cohort:
        days = [s.day for s in p.scans]
        assert days[0] == 0
        if len(days) > 1:
            assert 91 <= days[1] <= 183  # early scan 3-6 months (SCIENCE.md §0)
        for a, b in itertools.pairwise(days[1:]):
            assert 183 <= b - a <= 365  # then every 6-12 months (issue 5)
        base = np.array(p.scans[0].pose.translation_mm)
        for s in p.scans[1:]:
            shift = float(np.linalg.norm(np.array(s.pose.translation_mm) - base))
            assert 20.0 - 1e-9 <= shift <= 40.0 + 1e-9
            assert s.pose.rotation_angle_deg() <= math.hypot(4.0, 2.0, 2.0) + 1e-9
            r = s.pose.matrix
            np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


def test_follow_up_stops_at_true_progression(cohort: list) -> None:
    events = 0
    for p in cohort:
        t = p.truth
        responses = [s.overall_response for s in t.scans[1:]]
        if t.pfs_event:
            events += 1
            assert responses[-1] == "PD", p.patient_id
            assert "PD" not in responses[:-1], p.patient_id
            assert t.pfs_days == p.scans[-1].day
        else:
            assert "PD" not in responses
            assert t.pfs_days == p.scans[-1].day
    assert 0 < events < len(cohort)


def test_recist_truth_follows_the_rules(cohort: list) -> None:
    """Independent check of target PD: SoD up ≥ 20 % and ≥ 5 mm vs the nadir (SCIENCE.md §1.3), exact."""
    checked = 0
    for p in cohort:
        t = p.truth
        if not t.target_ids:
            continue
        sums = [Fraction(str(s.sum_of_diameters_mm)) for s in t.scans]
        nadir = sums[0]
        for s, value in zip(t.scans[1:], sums[1:]):
            pd = value >= nadir * Fraction(6, 5) and value - nadir >= 5
            assert (s.target_response == "PD") == pd, (p.patient_id, s.date)
            if s.target_response == "PD" or s.new_lesions == "unequivocal":
                assert s.overall_response == "PD"
            if not pd:
                nadir = min(nadir, value)
            checked += 1
    assert checked > 50


def test_new_lesions_are_pd(cohort: list) -> None:
    found = 0
    for p in cohort:
        for st in p.truth.scans[1:]:
            new = [lt for lt in st.lesions if lt.new]
            assert (st.new_lesions == "unequivocal") == bool(new)
            if new:
                found += 1
                assert st.overall_response == "PD"
    assert found >= 1


def test_grade_from_ki67_who_2019(cohort: list) -> None:
    # SCIENCE.md §3.4: G1 < 3 %, G2 3-20 %, G3 > 20 %.
    assert [who_2019_grade(v) for v in (0.5, 2.9, 3.0, 20.0, 20.1)] == ["G1", "G1", "G2", "G2", "G3"]
    for p in cohort:
        assert p.clinical.grade == who_2019_grade(p.clinical.ki67_percent)


def test_ki67_and_tgr_distributions() -> None:
    """Over 4000 draws: most TGR in -2..+5 %/month (issue 5), median near CLARINET's 2.1-2.7 (SCIENCE.md §2.3)
    and positively correlated with Ki-67; grades mostly G1/G2 as in small-intestinal NETs."""
    rng = patient_rng(5, 0)
    ki = np.array([sample_ki67_percent(rng, DEFAULT_CONFIG) for _ in range(4000)])
    tgr = np.array([sample_patient_tgr(rng, k, DEFAULT_CONFIG) for k in ki])
    assert ki.min() >= 0.5
    assert ki.max() <= 40.0
    g1 = np.mean(ki < 3)
    assert 0.55 < g1 < 0.8
    assert np.mean(ki > 20) < 0.02
    assert np.mean((tgr >= -2) & (tgr <= 5)) > 0.8
    assert 0.5 < np.median(tgr) < 2.7
    assert stats.spearmanr(ki, tgr).statistic > 0.3


def test_cga_rises_with_tumour_volume(cohort: list) -> None:
    ttv = [p.truth.scans[0].total_tumour_volume_ml for p in cohort]
    cga = [p.clinical.cga_ug_per_l for p in cohort]
    assert min(cga) > 0
    assert stats.spearmanr(ttv, cga).statistic > 0.3


def test_eligibility_reasons_are_consistent(cohort: list) -> None:
    reasons = set()
    for p in cohort:
        c = p.clinical
        assert c.eligible == (not c.ineligibility_reasons)
        assert ("lesions < 10 mm only" in c.ineligibility_reasons) == (not p.truth.target_ids)
        assert ("insufficient follow-up" in c.ineligibility_reasons) == (c.n_scans < 2)
        assert ("invasive liver treatment" in c.ineligibility_reasons) == c.invasive_liver_treatment
        reasons.update(c.ineligibility_reasons)
    eligible = sum(p.clinical.eligible for p in cohort)
    assert 0.6 * len(cohort) < eligible < len(cohort)
    assert reasons  # some patients fail the criteria


def test_failing_patients_of_each_kind() -> None:
    cfg = DEFAULT_CONFIG.replace(small_lesions_only_probability=1.0, insufficient_follow_up_probability=1.0)
    p = sample_patient(0, seed=3, config=cfg)
    assert p.clinical.n_scans == 1
    assert set(p.clinical.ineligibility_reasons) >= {"lesions < 10 mm only", "insufficient follow-up"}


def test_growth_laws() -> None:
    # SCIENCE.md §2.4: 100 → 172.8 mL in 91.3125 days is TGR 20 %/month; hepavol's own TGR must agree.
    law = GrowthLaw(volume0_ml=100.0, rate_per_month=tgr_to_rate(20.0))
    assert law.volume_ml(91.3125) == pytest.approx(172.8, rel=1e-12)
    assert tgr_volume(100.0, law.volume_ml(200.0), 200.0).percent_per_month == pytest.approx(20.0, rel=1e-12)
    # Gompertz: same initial specific rate, bounded by the capacity, V(0) = V0.
    g = tgr_to_rate(5.0)
    gz = GrowthLaw(volume0_ml=10.0, rate_per_month=g, model="gompertz", capacity_ml=100.0)
    assert gz.volume_ml(0) == pytest.approx(10.0)
    h = 1e-3
    slope = (math.log(gz.volume_ml(h * DAYS_PER_MONTH)) - math.log(gz.volume_ml(0))) / h
    assert slope == pytest.approx(g, rel=1e-3)
    assert gz.volume_ml(365 * 40) == pytest.approx(100.0, rel=1e-3)
    assert gz.volume_ml(365) < GrowthLaw(volume0_ml=10.0, rate_per_month=g).volume_ml(365)


def test_true_axes_match_a_brute_force_section(cohort: list) -> None:
    """The analytic RECIST axes equal the extent of the axial section found by ray casting from the centre."""
    p = next(p for p in cohort if len(p.scans) > 1)
    scan = p.scans[1]
    for s in p.lesions[:5]:
        if not s.present(scan.day):
            continue
        long_mm, short_mm = s.axial_axes_mm(scan.day, scan.pose.matrix)
        semi = s.semi_axes_mm(scan.day)
        r = scan.pose.matrix @ np.array(s.rotation)
        theta = np.linspace(0, np.pi, 20001)
        dirs = np.stack([np.cos(theta), np.sin(theta), np.zeros_like(theta)], axis=1)
        local = dirs @ r  # coordinates along the semi-axes
        radius = 1.0 / np.sqrt(((local / semi) ** 2).sum(axis=1))
        assert long_mm == pytest.approx(2 * radius.max(), rel=1e-6)
        assert short_mm == pytest.approx(2 * radius.min(), rel=1e-6)
        # volume 4/3·π·a·b·c
        assert s.volume_ml(scan.day) * 1000 == pytest.approx(4 / 3 * math.pi * float(np.prod(semi)), rel=1e-12)


def test_patient_is_independent_of_cohort_size_and_modality_option() -> None:
    a = sample_patient(4, seed=2, modality="mixed")
    b = sample_patient(4, seed=2, modality="mixed")
    assert a.clinical == b.clinical
    assert a.lesions == b.lesions
    assert a.scans == b.scans
    c = sample_patient(4, seed=2, modality="ct")
    assert c.modality == "CT"
    assert c.lesions == a.lesions
    d = sample_patient(4, seed=3)
    assert d.lesions != a.lesions
