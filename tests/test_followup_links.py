"""A reader's relinks of the tracking (issue 17) change the RECIST and volumetric responses and the TGR.

The phantom of tests/test_followup_pipeline.py (A, B targets L1, L2; C = L3 gone on 2024-05-01; D = L4 and E = L5
merge on 2024-07-01; F = L6 new on 2024-05-01), whose automatic tracking is checked there against the truth.
Expected values by hand from RECIST 1.1 (Eisenhauer et al., Eur J Cancer 2009;45:228-47; SCIENCE.md §1.3-1.5) and
Ferté et al. 2014 (TGR, SCIENCE.md §2.4), on the lesions' measured long axes:

- §4.3: a lesion in fragments is measured as the sum of its fragments' long axes; PR is -30 % or less of the
  baseline sum, PD +20 % and +5 mm over the nadir, SD in between.
- Table 1: a new lesion is PD whatever the targets do.
"""

from __future__ import annotations

import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from tests._followup_helpers import write_patient

from hepavol.errors import InputError
from hepavol.followup import FollowUpResult, run_followup
from hepavol.response.growth import DAYS_PER_MONTH

JAN, MAR, MAY, JUL = (datetime.date(2024, m, 1) for m in (1, 3, 5, 7))


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_patient(tmp_path_factory.mktemp("phantom"))


@pytest.fixture(scope="module")
def auto(manifest: Path) -> FollowUpResult:
    return run_followup(manifest)


def key(result: FollowUpResult, track: str, t: int) -> str:
    """The scan's own lesion id of a track on scan t (one lesion)."""
    (k,) = result.tracking.track(track).keys[t]
    return k


def long_axis(result: FollowUpResult, t: int, lesion: str) -> float:
    return next(x.long_axis_mm for x in result.scans[t].measurement.lesions if x.lesion_id == lesion)


def d1(mm: float) -> Decimal:
    return Decimal(repr(mm)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def test_c_as_a_fragment_of_target_a_makes_03_01_sd_and_changes_the_tgr(
    manifest: Path, auto: FollowUpResult
) -> None:
    a, b, c = key(auto, "L1", 1), key(auto, "L2", 1), key(auto, "L3", 1)
    result = run_followup(manifest, links={MAR: {a: "L1", c: "L1"}})
    assert result.tracking.track("L1").keys[1] == tuple(sorted((a, c)))
    assert result.tracking.track("L3").keys[1] == ()  # C is in L1 now: L3 has gone
    s0 = d1(long_axis(auto, 0, key(auto, "L1", 0))) + d1(long_axis(auto, 0, key(auto, "L2", 0)))
    s1 = d1(long_axis(auto, 1, a) + long_axis(auto, 1, c)) + d1(long_axis(auto, 1, b))
    tps = result.timepoints
    assert tps[1].sum_of_diameters_mm == pytest.approx(float(s1), abs=1e-9)
    change = (s1 - s0) / s0
    assert Decimal("-0.30") < change < Decimal("0.20")  # hand: 16 + 8 + 12 = 36 mm vs 50 mm (-28 %): SD
    assert [tp.target_response for tp in tps] == [None, "SD", "PR", "PR"]
    # 05-01: C gone, A + B = 28 mm again (PR), F new: PD as without the link; best response SD instead of PR
    assert [tp.overall_response for tp in tps] == [None, "SD", "PD", "PD"]
    assert result.best_overall_response == "SD"
    assert result.progression_date == MAY
    months = (MAR - JAN).days / DAYS_PER_MONTH
    tgr = 100 * ((float(s1) / float(s0)) ** (3 / months) - 1)  # Ferté 2014: TGR = 100 (exp(3 log(D1/D0) / T) - 1)
    assert tps[1].tgr_recist_percent_per_month == pytest.approx(tgr, rel=1e-9)
    assert tps[1].tgr_recist_percent_per_month != pytest.approx(auto.timepoints[1].tgr_recist_percent_per_month)
    # the total tumour volume counts every lesion whatever its track: the volumetric TGR does not change
    assert [tp.tgr_volume_percent_per_month for tp in tps] == [
        tp.tgr_volume_percent_per_month for tp in auto.timepoints
    ]


@pytest.mark.parametrize("how", ["none", "new"])
def test_c_unmatched_on_03_01_is_a_new_lesion_and_pd(manifest: Path, auto: FollowUpResult, how: str) -> None:
    # "none=L3" (L3 has no lesion on 03-01) or "<C's lesion>=new": the same by hand, as no other track is
    # within 20 mm of C's lesion, which starts track L6; F becomes L7
    links = {"none": "L3"} if how == "none" else {key(auto, "L3", 1): "new"}
    result = run_followup(manifest, links={MAR: links})
    assert result.tracking.track("L6").keys == ((), (key(auto, "L3", 1),), (), ())
    assert result.tracking.track("L7").keys[2] == auto.tracking.track("L6").keys[2]
    tps = result.timepoints
    assert tps[1].new_lesion_ids == ("L6",)
    assert tps[1].gone_lesion_ids == ("L3",)
    assert tps[1].target_response == "PR"  # the targets are unchanged
    assert [tp.overall_response for tp in tps] == [None, "PD", "PD", "PD"]  # Table 1: a new lesion is PD
    assert [tp.volumetric_response for tp in tps] == [None, "PD", "PD", "PD"]
    assert (result.progression_date, result.best_overall_response) == (MAR, "PD")


def test_the_merge_is_measured_on_the_track_the_reader_names(manifest: Path, auto: FollowUpResult) -> None:
    merged = key(auto, "L4", 3)  # D and E coalesced on 07-01 (automatically: L4, L5 merged into it)
    result = run_followup(manifest, links={JUL: {merged: "L5+L4"}})
    l4, l5 = result.tracking.track("L4"), result.tracking.track("L5")
    assert (l4.keys[3], l4.merged_into[3], l4.status) == ((), "L5", "merged")
    assert (l5.keys[3], l5.merged_into[3], l5.status) == ((merged,), None, "present")
    # both are non-targets: their total volume, so every response, is the same as with the automatic merge
    assert [tp.overall_response for tp in result.timepoints] == [tp.overall_response for tp in auto.timepoints]
    assert [tp.non_target_status for tp in result.timepoints] == [tp.non_target_status for tp in auto.timepoints]


def test_links_on_a_day_without_scan_are_refused(manifest: Path) -> None:
    with pytest.raises(
        InputError, match=r"links on 2024-04-01: the patient has no scan that day \(scans: 2024-01-01"
    ):
        run_followup(manifest, links={datetime.date(2024, 4, 1): {"L1": "L1"}})
