"""Property tests (Hypothesis) for the response engine: monotonicity, exactness against an integer oracle, signs.

Invariants from STYLE.md §2.6 and issue 3: a larger follow-up sum never gives a better response; the exact
thresholds agree with a re-derivation in integer tenths of a millimetre (RECIST 1.1 §4.3.1: PR >= 30 % decrease vs
baseline; PD >= 20 % and >= 5 mm increase vs nadir); TGR and doubling time have the sign of the change.
"""

from __future__ import annotations

import datetime
import random
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hepavol.response.growth import (
    tgr_recist,
    tgr_volume,
    volume_doubling_time,
)
from hepavol.response.load import LOAD_CLASSES, hepatic_tumor_load_class
from hepavol.response.recist import Assessment, Response, TargetLesion, assess_patient
from hepavol.response.volumetric import classify_volume_change

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True)
TARGET_RANK = {Response.CR: 0, Response.PR: 1, Response.SD: 2, Response.PD: 3}
OVERALL_RANK = {Response.CR: 0, Response.PR: 1, Response.SD: 2, Response.NE: 3, Response.PD: 4}
BASE = datetime.date(2024, 1, 1)

tenths = st.integers(min_value=0, max_value=1500)  # 0.0 to 150.0 mm


def _mm(t: int) -> Decimal:
    return Decimal(t) / 10


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[bool], list[int], list[list[int]], int, int]:
    """Target lesions (nodal flags), baseline tenths, earlier follow-ups, a lesion index and an increment."""
    n = draw(st.integers(min_value=1, max_value=4))
    nodal = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    baseline = draw(st.lists(st.integers(min_value=100, max_value=800), min_size=n, max_size=n))
    k = draw(st.integers(min_value=0, max_value=3))
    followups = [draw(st.lists(tenths, min_size=n, max_size=n)) for _ in range(k + 1)]
    which = draw(st.integers(min_value=0, max_value=n - 1))
    increment = draw(st.integers(min_value=1, max_value=300))
    return nodal, baseline, followups, which, increment


def _assess(nodal: list[bool], baseline: list[int], followups: list[list[int]], **kw: bool):  # type: ignore[no-untyped-def]
    def assessment(i: int, values: list[int]) -> Assessment:
        return Assessment(
            date=BASE + datetime.timedelta(days=56 * i),
            targets=tuple(
                TargetLesion(lesion_id=f"T{j}", organ="lymph_node" if nodal[j] else "liver", diameter_mm=_mm(v))
                for j, v in enumerate(values)
            ),
        )

    items = [assessment(0, baseline)] + [assessment(i + 1, v) for i, v in enumerate(followups)]
    return assess_patient(items, **kw)


@SETTINGS
@given(histories(), st.booleans())
def test_larger_followup_sum_never_gives_a_better_response(
    case: tuple[list[bool], list[int], list[list[int]], int, int], confirm: bool
) -> None:
    """Increasing one lesion at the last follow-up (history unchanged) never improves the target response,
    the overall response at that time point, or the best overall response."""
    nodal, baseline, followups, which, increment = case
    bigger = [list(v) for v in followups]
    bigger[-1][which] += increment
    a = _assess(nodal, baseline, followups, confirm=confirm)
    b = _assess(nodal, baseline, bigger, confirm=confirm)
    assert a.timepoints[:-1] == b.timepoints[:-1]
    ta, tb = a.timepoints[-1], b.timepoints[-1]
    assert TARGET_RANK[tb.target_response] >= TARGET_RANK[ta.target_response]
    assert OVERALL_RANK[tb.overall_response] >= OVERALL_RANK[ta.overall_response]
    assert OVERALL_RANK[b.best_overall_response] >= OVERALL_RANK[a.best_overall_response]


@SETTINGS
@given(st.integers(min_value=1, max_value=3000), tenths)
def test_single_step_matches_integer_oracle(base: int, follow: int) -> None:
    """Baseline b -> follow-up c (tenths of mm, one non-nodal target): PR iff 10(b - c) >= 3b, PD iff
    c - b >= 50 and 10(c - b) >= 2b, CR iff c = 0: integer arithmetic, no rounding anywhere."""
    result = _assess([False], [base], [[follow]]).timepoints[0].target_response
    if follow == 0:
        expected = Response.CR
    elif follow - base >= 50 and 10 * (follow - base) >= 2 * base:
        expected = Response.PD
    elif 10 * (base - follow) >= 3 * base:
        expected = Response.PR
    else:
        expected = Response.SD
    assert result == expected


positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)
days = st.floats(min_value=1, max_value=3650, allow_nan=False)


@SETTINGS
@given(positive, positive, days)
def test_tgr_and_doubling_time_have_the_sign_of_the_change(v0: float, vt: float, t: float) -> None:
    """TGR (Ferté 2014) is positive for growth, negative for shrinkage, 0 without change; so is the VDT."""
    sign = (vt > v0) - (vt < v0)
    for growth in (tgr_recist(v0, vt, t), tgr_volume(v0, vt, t)):
        rate = growth.percent_per_month
        if rate is None:  # only an overflow of extreme growth is undefined here, never a crash or infinity
            assert sign > 0
            assert "overflows" in (growth.reason or "")
            continue
        assert rate >= -100  # -100 is reached in floating point for fast shrinkage
        if sign == 0:
            assert rate == 0
        else:
            assert (rate > 0) == (sign > 0) or rate == 0  # underflow of tiny changes to 0 is allowed
    vdt = volume_doubling_time(v0, vt, t).days
    if sign == 0:
        assert vdt is None
    else:
        assert vdt is not None
        assert (vdt > 0) == (sign > 0)


@SETTINGS
@given(
    st.integers(min_value=1, max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=1, max_value=10**5),
)
def test_volumetric_response_is_monotone(base: int, nadir_extra: int, volume: int, increment: int) -> None:
    """A larger total volume never gives a better volumetric response (same baseline and nadir)."""
    nadir = min(base, nadir_extra)
    rank = {Response.CR: 0, Response.PR: 1, Response.SD: 2, Response.PD: 3}
    a = classify_volume_change(volume, base, nadir)
    b = classify_volume_change(volume + increment, base, nadir)
    assert rank[b] >= rank[a]


@SETTINGS
@given(st.integers(min_value=0, max_value=10000), st.integers(min_value=0, max_value=10000))
def test_load_class_is_monotone(a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    order = LOAD_CLASSES.index
    assert order(hepatic_tumor_load_class(Decimal(lo) / 100)) <= order(hepatic_tumor_load_class(Decimal(hi) / 100))


# --------------------------------------------------------------------------------------------------------------
# Invariance of the read-table assessment (issue 19): row order, lesion ids and a shift of every date say nothing
# about the disease, so they must not change a response.

_NT_STATUS = ("present", "absent", "progression")
_Row = tuple[str, datetime.date, str, str, str, str, str]
_NEW_STATUS = ("present", "equivocal")


@st.composite
def read_tables(draw: st.DrawFn) -> list[_Row]:
    """One patient's rows: 1-4 targets (some nodes), 0-2 non-targets, 1-4 follow-ups with gaps of 1-120 days,
    target diameters in tenths of a millimetre (some not evaluated), new lesions (present or equivocal)."""
    n_t = draw(st.integers(1, 4))
    n_nt = draw(st.integers(0, 2))
    organs = ["lymph_node" if draw(st.booleans()) else "liver" for _ in range(n_t)]
    start = datetime.date(2005, 1, 1) + datetime.timedelta(days=draw(st.integers(0, 5000)))
    gaps = draw(st.lists(st.integers(1, 120), min_size=1, max_size=4))
    dates = [start]
    for g in gaps:
        dates.append(dates[-1] + datetime.timedelta(days=g))
    rows = []
    for i, d in enumerate(dates):
        for j in range(n_t):
            lo = 100 if i == 0 else 0
            value = draw(st.one_of(st.none(), st.integers(lo, 800))) if i else draw(st.integers(lo, 800))
            diameter = "" if value is None else str(_mm(value))
            rows.append(("P", d, f"T{j}", organs[j], "target", diameter, ""))
        for j in range(n_nt):
            status = "present" if i == 0 else draw(st.sampled_from(_NT_STATUS))
            rows.append(("P", d, f"NT{j}", "lung", "non_target", "", status))
        if i and draw(st.integers(0, 4)) == 0:
            rows.append(("P", d, f"N{i}", "bone", "new", "", draw(st.sampled_from(_NEW_STATUS))))
    return rows


def _csv(rows: list[_Row]) -> str:
    lines = ["patient_id,date,lesion_id,organ,category,diameter_mm,status"]
    lines += [
        ",".join((p, d.isoformat(), lid, organ, cat, dia, status)) for p, d, lid, organ, cat, dia, status in rows
    ]
    return "\n".join(lines) + "\n"


def _responses(text: str, shift_days: int = 0) -> tuple[object, ...] | str:
    """Best overall response, progression date and per time point (date, sum, responses), dates moved back by
    ``shift_days``; or the error's class name."""
    import io

    from hepavol.errors import HepavolError
    from hepavol.response.table import assess_table, read_recist_table

    back = datetime.timedelta(days=shift_days)
    try:
        (r,) = assess_table(read_recist_table(io.StringIO(text), name="t.csv"))
    except HepavolError as exc:
        return type(exc).__name__
    return (
        r.best_overall_response,
        None if r.progression_date is None else r.progression_date - back,
        r.baseline_sum_mm,
        tuple(
            (tp.date - back, tp.sum_of_diameters_mm, tp.change_from_nadir_mm, tp.target_response,
             tp.non_target_response, tp.new_lesions, tp.overall_response)
            for tp in r.timepoints
        ),
    )  # fmt: skip


@SETTINGS
@given(read_tables(), st.randoms(use_true_random=False))
def test_row_order_does_not_change_responses(rows: list[_Row], rnd: random.Random) -> None:
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    assert _responses(_csv(shuffled)) == _responses(_csv(rows))


@SETTINGS
@given(read_tables(), st.lists(st.text("ABCXYZ-_é0123456789", min_size=1, max_size=6), min_size=12, unique=True))
def test_renaming_lesions_does_not_change_responses(rows: list[_Row], names: list[str]) -> None:
    ids = sorted({r[2] for r in rows})
    assume(len(names) >= len(ids))
    rename = dict(zip(ids, names))
    renamed = [(p, d, rename[lid], organ, cat, dia, status) for p, d, lid, organ, cat, dia, status in rows]
    assert _responses(_csv(renamed)) == _responses(_csv(rows))


@SETTINGS
@given(read_tables(), st.integers(min_value=-1500, max_value=1500))
def test_shifting_every_date_does_not_change_responses(rows: list[_Row], shift: int) -> None:
    later = datetime.timedelta(days=shift)
    moved = [(p, d + later, lid, organ, cat, dia, status) for p, d, lid, organ, cat, dia, status in rows]
    assert _responses(_csv(moved), shift_days=shift) == _responses(_csv(rows))
