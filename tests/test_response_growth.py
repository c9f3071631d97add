"""TGR against the worked examples of SCIENCE.md §2.4 (Ferté et al., Clin Cancer Res 2014;20:246-52, formula from
the authors' TGR_calculator.R: TGR = 100*(exp(3*log(D_t/D_0)/months)-1), months = days*12/365.25)."""

from __future__ import annotations

import pytest

from hepavol.response.growth import tgr_recist, tgr_volume


@pytest.mark.parametrize(
    ("d0", "dt", "days", "expected"),
    [
        (50, 55, 91, 10.036009),
        (50, 50, 91, 0.0),
        (50, 60, 91.3125, 20.000000),
        (50, 45, 91, -10.032557),
        (100, 120, 182, 9.578810),
        (40, 42, 120, 3.782405),
        # Ferté's TGR_example.txt rows (SCIENCE.md §2.4): TGR_exp of rows "120", "64", "180", "370", "93"
        (72, 60, 68, -21.716),
        (126, 102, 90, -19.297),
        (84, 98, 30, 59.871),
        (231, 122, 49, -69.568),
        (22, 22, 57, 0.000),
        # ... and TGR_ref (before -> baseline) of the same rows
        (65, 72, 52, 19.674),
        (111, 126, 38, 35.605),
        (78, 84, 121, 5.752),
        (210, 231, 13, 95.319),
        (19, 22, 28, 61.300),
    ],
)
def test_tgr_recist_worked_examples(d0: float, dt: float, days: float, expected: float) -> None:
    decimals = len(str(expected).split(".")[1])
    assert tgr_recist(d0, dt, days).percent_per_month == pytest.approx(expected, abs=0.6 * 10**-decimals)


@pytest.mark.parametrize(
    ("v0", "vt", "days", "expected"),
    [
        (100, 110, 91, 3.239274),
        (100, 172.8, 91.3125, 20.000000),
        (10_000, 12_500, 120, 5.823183),
        (100, 90, 91, -3.462705),
    ],
)
def test_tgr_volume_worked_examples(v0: float, vt: float, days: float, expected: float) -> None:
    assert tgr_volume(v0, vt, days).percent_per_month == pytest.approx(expected, abs=5e-7)


def test_volumetric_equals_diameter_form_for_spheres() -> None:
    """If V ∝ D³ both forms agree exactly (SCIENCE.md §2.2)."""
    assert tgr_volume(50**3, 57**3, 140).percent_per_month == pytest.approx(
        tgr_recist(50, 57, 140).percent_per_month
    )


@pytest.mark.parametrize(
    ("args", "reason"),
    [((0, 10, 90), "baseline is 0"), ((10, 12, 0), "interval of 0 days"), ((10, 12, -5), "interval of -5 days")],
)
def test_undefined_cases_return_none_with_reason(args: tuple[float, float, float], reason: str) -> None:
    result = tgr_recist(*args)
    assert result.percent_per_month is None
    assert reason in (result.reason or "")


def test_vanished_tumour_is_minus_100() -> None:
    assert tgr_volume(12.0, 0.0, 90).percent_per_month == -100.0
    assert tgr_recist(30.0, 0.0, 90).percent_per_month == -100.0


def test_tgr_overflow_is_undefined_not_a_crash() -> None:
    """Issue 3: undefined cases return None with a reason, never a crash or an infinity."""
    result = tgr_recist(1.0, 2376.0, 1.0)
    assert result.percent_per_month is None
    assert "overflows" in (result.reason or "")


# Volume doubling time: analytic values and SCIENCE.md §2.2 (VDT months = ln 2 / TG, computed from Ferté's TG).


def test_doubling_time_analytic() -> None:
    """STYLE.md §2.6: V doubles in 60 d -> 60 d; quadruples in 60 d -> 30 d; halves in 45 d -> -45 d."""
    from hepavol.response.growth import volume_doubling_time

    assert volume_doubling_time(10.0, 20.0, 60).days == pytest.approx(60.0, rel=1e-12)
    assert volume_doubling_time(10.0, 40.0, 60).days == pytest.approx(30.0, rel=1e-12)
    assert volume_doubling_time(10.0, 5.0, 45).days == pytest.approx(-45.0, rel=1e-12)


def test_doubling_time_from_diameters_sphere() -> None:
    """Diameters x 2^(1/3) means volume x 2 (V ∝ D³): doubling time = interval."""
    from hepavol.response.growth import volume_doubling_time_recist

    assert volume_doubling_time_recist(50.0, 50.0 * 2 ** (1 / 3), 120).days == pytest.approx(120.0, rel=1e-12)
    assert volume_doubling_time_recist(40, 80, 90).days == pytest.approx(
        30.0, rel=1e-12
    )  # volume x 8 = 3 doublings


@pytest.mark.parametrize(
    ("tgr", "months", "days"),
    [(0.8, 87.0, 2648), (4.0, 17.7, None), (20.0, 3.80, None)],
)
def test_doubling_time_from_tgr_science_2_2(tgr: float, months: float, days: int | None) -> None:
    """SCIENCE.md §2.2 [computed]: TGR 0.8 %/month -> 87.0 months (2648 days); 4 -> 17.7; 20 -> 3.80 months."""
    from hepavol.response.growth import doubling_time_from_tgr

    result = doubling_time_from_tgr(tgr)
    assert result.months == pytest.approx(months, abs=0.051 if months > 10 else 0.0051)
    if days is not None:
        assert round(result.days or 0) == days


def test_doubling_time_from_tgr_matches_tgr_volume() -> None:
    """Consistency: the VDT of tgr_volume's rate equals volume_doubling_time on the same data."""
    from hepavol.response.growth import doubling_time_from_tgr, volume_doubling_time

    rate = tgr_volume(100, 137, 77).percent_per_month
    assert rate is not None
    assert doubling_time_from_tgr(rate).days == pytest.approx(volume_doubling_time(100, 137, 77).days, rel=1e-9)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ((10, 10, 60), "no change"),
        ((10, 0, 60), "vanished"),
        ((0, 10, 60), "baseline is 0"),
        ((10, 20, 0), "interval of 0 days"),
        ((10, float("nan"), 60), "non-finite"),
    ],
)
def test_doubling_time_undefined(args: tuple[float, float, float], reason: str) -> None:
    from hepavol.response.growth import volume_doubling_time

    result = volume_doubling_time(*args)
    assert result.days is None
    assert result.months is None
    assert reason in (result.reason or "")


def test_doubling_time_from_tgr_undefined() -> None:
    from hepavol.response.growth import doubling_time_from_tgr

    assert doubling_time_from_tgr(0).days is None
    assert doubling_time_from_tgr(-100).days is None
    assert doubling_time_from_tgr(-50).days == pytest.approx(-30.4375)  # halves in one month
