"""Volumetric response, hepatic tumour load classes and Choi criteria.

Sources: SCIENCE.md §3.1 (sphere equivalents of RECIST: PR 0.7³ − 1 = −65.7 %, PD 1.2³ − 1 = +72.8 %; published
"volumetric extrapolated from RECIST" table: PR >= 66 % decrease, PD >= 73 % increase; EORTC FAQ 73 %), §3.4 (hepatic
tumour burden classes <= 10, 11-25, 26-50, > 50 %, Luo Y et al., Eur Radiol 2019), §3.3 (Choi H et al., JCO 2007:
PR size -10 % or density -15 %; PD size +10 % and not PR by density, or new lesions).
"""

from __future__ import annotations

import datetime

import pytest

from hepavol.errors import InputError
from hepavol.response.choi import choi_response
from hepavol.response.load import (
    hepatic_tumor_load_class,
    hepatic_tumor_load_class_from_volumes,
    tumor_burden_percent,
)
from hepavol.response.recist import Response
from hepavol.response.volumetric import VolumePoint, assess_volumes, classify_volume_change

R = Response


def test_default_thresholds_are_sphere_equivalents_of_recist() -> None:
    """SCIENCE.md §3.1: a sphere whose diameter changes by -30 % / +20 % changes volume by -65.7 % / +72.8 %:
    diameter PR is just beyond the volumetric PR threshold; diameter PD (+72.8 %) just below +73 %."""
    assert classify_volume_change(0.7**3 * 100, 100) == R.PR
    assert classify_volume_change(1.2**3 * 100, 100) == R.SD  # 172.8 < 173
    assert classify_volume_change(173, 100) == R.PD


@pytest.mark.parametrize(
    ("volume", "baseline", "nadir", "expected"),
    [
        ("35.0", 100, None, R.PR),  # exactly -65 % (inclusive)
        ("35.1", 100, None, R.SD),
        ("34.9", 100, None, R.PR),
        ("172.9", 100, None, R.SD),
        ("173.0", 100, None, R.PD),  # exactly +73 % vs nadir = baseline
        ("60.55", 100, 35, R.PD),  # exactly +73 % vs nadir 35
        ("60.54", 100, 35, R.SD),  # +72.97 % vs nadir, -39.46 % vs baseline
        (0, 100, None, R.CR),
        ("0.1", 100, 0, R.PD),  # reappearance after a volume of 0
        (0, 100, 0, R.CR),
    ],
)
def test_volumetric_thresholds_exact(volume: str, baseline: int, nadir: int | None, expected: Response) -> None:
    assert classify_volume_change(volume, baseline, nadir) == expected


def test_float_trap_volumetric() -> None:
    assert not ((60.55 - 35) / 35 >= 0.73)  # exactly +73 %, but 0.7299999999999999 in floating point
    assert not (60.55 - 35 >= 0.73 * 35)
    assert classify_volume_change(60.55, 100, 35) == R.PD


def test_new_lesions_and_custom_thresholds() -> None:
    assert classify_volume_change(10, 100, new_lesions=True) == R.PD
    assert classify_volume_change(80, 100, pr_percent=-20) == R.PR
    assert classify_volume_change(130, 100, pd_percent=30) == R.PD
    assert classify_volume_change(129.9, 100, pd_percent=30) == R.SD
    with pytest.raises(InputError, match="pr_percent must be < 0"):
        classify_volume_change(10, 100, pr_percent=65)
    with pytest.raises(InputError, match="volumes must be >= 0"):
        classify_volume_change(-1, 100)


def test_assess_volumes_series() -> None:
    d = datetime.date
    points = [
        VolumePoint(date=d(2024, 7, 1), volume_ml=60.55),
        VolumePoint(date=d(2024, 1, 1), volume_ml=100.0),
        VolumePoint(date=d(2024, 4, 1), volume_ml=35.0),
        VolumePoint(date=d(2024, 9, 1), volume_ml=None),
        VolumePoint(date=d(2024, 10, 1), volume_ml=None, new_lesions=True),
    ]
    result = assess_volumes(points)
    assert [tp.response for tp in result] == [R.PR, R.PD, R.NE, R.PD]
    assert result[0].change_from_baseline_percent == -65.0
    assert result[1].change_from_nadir_percent == 73.0
    assert result[1].nadir_ml == 35.0
    with pytest.raises(InputError, match=r"baseline .* has no volume"):
        assess_volumes([VolumePoint(date=d(2024, 1, 1), volume_ml=None)])
    with pytest.raises(InputError, match="two volume points on 2024-01-01"):
        assess_volumes(
            [VolumePoint(date=d(2024, 1, 1), volume_ml=1), VolumePoint(date=d(2024, 1, 1), volume_ml=2)]
        )
    with pytest.raises(InputError, match="no volume points"):
        assess_volumes([])


# ---------------------------------------------------------------------------------------------------------------
# Hepatic tumour load (SCIENCE.md §3.4)


@pytest.mark.parametrize(
    ("percent", "label"),
    [
        (0, "<=10"),
        ("10.0", "<=10"),
        ("10.4", "11-25"),  # documented choice: exact value, inclusive upper bounds (no rounding)
        ("10.01", "11-25"),
        (25, "11-25"),
        ("25.01", "26-50"),
        (50, "26-50"),
        ("50.01", ">50"),
        (100, ">50"),
    ],
)
def test_load_class_boundaries(percent: str | int, label: str) -> None:
    assert hepatic_tumor_load_class(percent) == label


def test_load_from_volumes_exact() -> None:
    assert tumor_burden_percent(150, 1500) == 10.0
    assert hepatic_tumor_load_class_from_volumes(150, 1500) == "<=10"
    assert hepatic_tumor_load_class_from_volumes("150.01", 1500) == "11-25"
    assert hepatic_tumor_load_class_from_volumes(0.3, 1.2) == "11-25"  # 25 % exactly
    assert hepatic_tumor_load_class_from_volumes(0.6, 1.2) == "26-50"  # 50 % exactly


def test_load_errors() -> None:
    with pytest.raises(InputError, match="liver volume must be > 0"):
        tumor_burden_percent(1, 0)
    with pytest.raises(InputError, match="exceeds liver volume"):
        tumor_burden_percent(2, 1)
    with pytest.raises(InputError, match="within 0-100"):
        hepatic_tumor_load_class(101)


# ---------------------------------------------------------------------------------------------------------------
# Choi criteria (Choi H et al., JCO 2007;25:1753; table in PMC5658474 Tab2, SCIENCE.md §3.3)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"sum_mm": 90, "baseline_sum_mm": 100}, R.PR),  # size -10 % exactly
        ({"sum_mm": "90.1", "baseline_sum_mm": 100}, R.SD),
        ({"sum_mm": 95, "baseline_sum_mm": 100, "density_hu": 85, "baseline_density_hu": 100}, R.PR),  # -15 % HU
        ({"sum_mm": 95, "baseline_sum_mm": 100, "density_hu": "85.1", "baseline_density_hu": 100}, R.SD),
        ({"sum_mm": 110, "baseline_sum_mm": 100}, R.PD),  # size +10 %
        ({"sum_mm": "109.9", "baseline_sum_mm": 100}, R.SD),
        ({"sum_mm": 120, "baseline_sum_mm": 100, "density_hu": 80, "baseline_density_hu": 100}, R.PR),
        ({"sum_mm": 80, "baseline_sum_mm": 100, "new_lesions": True}, R.PD),
        ({"sum_mm": 80, "baseline_sum_mm": 100, "new_intratumoral_nodules": True}, R.PD),
        ({"sum_mm": 0, "baseline_sum_mm": 100}, R.CR),
        ({"sum_mm": 66, "baseline_sum_mm": 100, "nadir_sum_mm": 60}, R.PD),  # +10 % vs nadir
    ],
)
def test_choi(kwargs: dict[str, object], expected: Response) -> None:
    """PR: size >= 10 % down or density >= 15 % down; PD: size >= 10 % up and not PR by density; new lesions PD."""
    assert choi_response(**kwargs).response == expected  # type: ignore[arg-type]


def test_choi_density_not_usable() -> None:
    result = choi_response(sum_mm=95, baseline_sum_mm=100, density_hu=-20, baseline_density_hu=-5)
    assert result.response == R.SD
    assert "density criterion not used" in result.notes[0]
    assert result.density_change_percent is None
    one_sided = choi_response(sum_mm=95, baseline_sum_mm=100, density_hu=80)
    assert "one time point only" in one_sided.notes[0]
    with pytest.raises(InputError, match="baseline above 0"):
        choi_response(sum_mm=95, baseline_sum_mm=0)


def test_choi_reports_changes() -> None:
    result = choi_response(sum_mm=95, baseline_sum_mm=100, density_hu=100, baseline_density_hu=120)
    assert result.size_change_from_baseline_percent == -5.0
    assert result.density_change_percent == pytest.approx(-16.67)
