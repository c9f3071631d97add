"""RECIST 1.1 engine against the guideline's tables and the worked examples of SCIENCE.md §1.10.

Sources: Eisenhauer EA et al., Eur J Cancer 2009;45:228-247 ("RECIST 1.1"), Tables 1-3 and §4.3; the EORTC
RECIST FAQ (https://recist.eortc.org/, pages cited per test); SCIENCE.md §1 (rules with sources, worked examples
R1-R11 derived from the rules).
"""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from tests._response_helpers import assess_series, day

from hepavol.errors import TimelineError
from hepavol.response.recist import (
    Assessment,
    NewLesion,
    NewLesionFinding,
    NonTargetLesion,
    RecistDataError,
    Response,
    TargetLesion,
    assess_patient,
    is_target_pd,
    is_target_pr,
    organ_group,
    to_decimal,
)

R = Response


def _target_responses(series: list[str], **kw: object) -> list[str]:
    return [tp.target_response.value for tp in assess_series(series, **kw).timepoints]


def _overall(series: list[str], **kw: object) -> list[str]:
    return [tp.overall_response.value for tp in assess_series(series, **kw).timepoints]


# ---------------------------------------------------------------------------------------------------------------
# SCIENCE.md §1.10 worked examples (rule-derived from RECIST 1.1 §4.3.1 and the EORTC FAQ)


@pytest.mark.parametrize(
    ("case", "series", "expected"),
    [
        ("R1: baseline 80 -> 56, -30.0 % vs baseline", ["80", "56"], ["PR"]),
        ("R2: baseline 80 -> 57, -28.75 %", ["80", "57"], ["SD"]),
        ("R3: baseline 90 -> 63, exactly -30 % (float trap)", ["90", "63"], ["PR"]),
        ("R4: nadir 40 -> 48, +20 % and +8 mm", ["40", "48"], ["PD"]),
        ("R5: nadir 20 -> 24, +20 % but +4 mm", ["20", "24"], ["SD"]),
        ("R6: nadir 20 -> 25, +25 %, +5 mm", ["20", "25"], ["PD"]),
        (
            "R7: 100 -> 70 (PR) -> 84: -16 % vs baseline, +20 % / +14 mm vs nadir 70",
            ["100", "70", "84"],
            ["PR", "PD"],
        ),
        ("R11: nadir 11.4 -> 16.4, +5.0 mm exactly (float trap)", ["11.4", "16.4"], ["PD"]),
        ("issue 3: 30 -> 36 mm is PD although 36/30 - 1 >= 0.2 is False in floats", ["30", "36"], ["PD"]),
    ],
)
def test_science_worked_examples_r1_to_r7_and_r11(case: str, series: list[str], expected: list[str]) -> None:
    """SCIENCE.md §1.10 R1-R7, R11 (single target lesion, no non-target or new lesions)."""
    assert _target_responses(series) == expected, case
    assert _overall(series) == expected, case


def test_r8_eortc_pr_continues_165_63_65() -> None:
    """SCIENCE.md §1.10 R8 [cited]: SoD 165 -> 63 -> 65 gives continuing PR at week 16.

    EORTC FAQ "The definition of SD: a clarification",
    http://recist.eortc.org/faq/the-definition-of-sd-a-clarification/
    """
    result = assess_series(["165", "63", "65"], every_days=56)
    assert [tp.overall_response for tp in result.timepoints] == [R.PR, R.PR]
    assert result.timepoints[1].change_from_nadir_percent == Decimal("3.17")  # +2 mm on 63 mm
    assert result.best_overall_response == R.PR


def test_eortc_pr_maintained_when_measurements_change_slightly() -> None:
    """100 -> 70 -> 70 -> 80 -> 80 -> 80 gives PR at every time point (80 is only -20 % vs baseline but not PD).

    EORTC FAQ "Managing PR when TP measurements change slightly over time",
    http://recist.eortc.org/faq/managing-pr-when-tp-measurements-change-slightly-over-time/ (SCIENCE.md §1.3).
    """
    result = assess_series(["100", "70", "70", "80", "80", "80"])
    assert [tp.overall_response.value for tp in result.timepoints] == ["PR"] * 5
    assert result.timepoints[2].change_from_baseline_percent == Decimal("-20.00")
    assert "PR maintained" in result.timepoints[2].notes[0]
    assert result.progression_date is None


def test_r9_too_small_counts_5_mm_and_is_not_cr() -> None:
    """SCIENCE.md §1.10 R9: targets 30 + 20 = 50; FU 12 + "too small" = 17 mm, -66 % -> PR, not CR.

    EORTC clarification: too small to measure = 5 mm (https://www.eortc.be/Recist/questions_clarifications.html).
    """
    base = Assessment(
        date=day(0),
        targets=(TargetLesion(lesion_id="A", diameter_mm=30), TargetLesion(lesion_id="B", diameter_mm=20)),
    )
    fu = Assessment(
        date=day(56),
        targets=(TargetLesion(lesion_id="A", diameter_mm=12), TargetLesion(lesion_id="B", too_small=True)),
    )
    tp = assess_patient([base, fu]).timepoints[0]
    assert tp.sum_of_diameters_mm == Decimal(17)
    assert tp.change_from_baseline_percent == Decimal("-66.00")
    assert tp.target_response == R.PR


def test_r10_nodal_cr_with_nonzero_sum() -> None:
    """SCIENCE.md §1.10 R10: liver 30 + node SA 18 = 48; FU liver gone, node SA 8 -> SoD 8 mm, target CR.

    RECIST 1.1 §4.3.1: CR requires every pathological node to have a short axis < 10 mm; the sum may be > 0.
    """
    base = Assessment(
        date=day(0),
        targets=(
            TargetLesion(lesion_id="L", organ="liver", diameter_mm=30),
            TargetLesion(lesion_id="N", organ="lymph_node", diameter_mm=18),
        ),
    )
    fu = Assessment(
        date=day(56),
        targets=(
            TargetLesion(lesion_id="L", organ="liver", diameter_mm=0),
            TargetLesion(lesion_id="N", organ="lymph_node", diameter_mm=8),
        ),
    )
    result = assess_patient([base, fu])
    assert result.baseline_sum_mm == Decimal(48)
    assert result.timepoints[0].sum_of_diameters_mm == Decimal(8)
    assert result.timepoints[0].target_response == R.CR
    assert result.best_overall_response == R.CR


def test_float_trap_is_real_and_avoided() -> None:
    """SCIENCE.md §1.9: float comparisons misclassify exact thresholds; the engine compares exactly."""
    assert not (36 / 30 - 1 >= 0.2)  # the trap named in issue 3
    assert not (16.4 - 11.4 >= 5)  # R11
    assert not (63 <= 0.7 * 90)  # R3
    assert is_target_pd(Decimal("36"), Decimal("30"))
    assert is_target_pd(to_decimal(16.4), to_decimal(11.4))
    assert is_target_pr(Decimal(63), Decimal(90))
    assert is_target_pr(to_decimal(9.8), to_decimal(14.0))


# ---------------------------------------------------------------------------------------------------------------
# RECIST 1.1 Table 1 (target disease) and Table 2 (non-target disease only)


def _tp(targets: list[TargetLesion], non_targets: list[str | None], new: list[str], *, nt_base: int) -> Response:
    base = Assessment(
        date=day(0),
        targets=(TargetLesion(lesion_id="T", diameter_mm=40),),
        non_targets=tuple(NonTargetLesion(lesion_id=f"NT{i}", status="present") for i in range(nt_base)),
    )
    fu = Assessment(
        date=day(56),
        targets=tuple(targets),
        non_targets=tuple(
            NonTargetLesion(lesion_id=f"NT{i}", status=s) for i, s in enumerate(non_targets) if s is not None
        ),
        new_lesions=tuple(NewLesion(lesion_id=f"N{i}", status=s) for i, s in enumerate(new)),
    )
    return assess_patient([base, fu]).timepoints[0].overall_response


@pytest.mark.parametrize(
    ("target_mm", "non_targets", "new", "expected", "row"),
    [
        (0, ["absent"], [], R.CR, "CR / CR / no -> CR"),
        (0, ["present"], [], R.PR, "CR / non-CR/non-PD / no -> PR"),
        (0, [None], [], R.PR, "CR / not evaluated / no -> PR"),
        (20, ["present"], [], R.PR, "PR / non-PD / no -> PR"),
        (20, [None], [], R.PR, "PR / not all evaluated / no -> PR"),
        (40, ["present"], [], R.SD, "SD / non-PD / no -> SD"),
        (40, [None], [], R.SD, "SD / not all evaluated / no -> SD"),
        (None, ["present"], [], R.NE, "not all evaluated / non-PD / no -> NE"),
        (60, ["present"], [], R.PD, "PD / any / no -> PD"),
        (20, ["progression"], [], R.PD, "any / PD / no -> PD"),
        (None, ["progression"], [], R.PD, "NE / PD -> PD (PD overrides NE, SCIENCE.md §1.9.5)"),
        (0, ["absent"], ["present"], R.PD, "any / any / yes -> PD"),
        (None, [None], ["present"], R.PD, "NE / NE / yes -> PD"),
        (0, ["absent"], ["equivocal"], R.CR, "equivocal new lesion does not change the time point"),
    ],
)
def test_recist_table_1(
    target_mm: int | None, non_targets: list[str | None], new: list[str], expected: Response, row: str
) -> None:
    """RECIST 1.1 Table 1 (Eisenhauer 2009, p. 235; SCIENCE.md §1.5), one non-target lesion at baseline."""
    targets = [] if target_mm is None else [TargetLesion(lesion_id="T", diameter_mm=target_mm)]
    assert _tp(targets, non_targets, new, nt_base=1) == expected, row


@pytest.mark.parametrize(
    ("non_targets", "new", "expected", "row"),
    [
        (["absent", "absent"], [], R.CR, "CR / no -> CR"),
        (["present", "absent"], [], R.NON_CR_NON_PD, "non-CR/non-PD / no -> NON_CR_NON_PD"),
        (["absent", None], [], R.NE, "not all evaluated / no -> NE"),
        (["progression", "absent"], [], R.PD, "unequivocal PD / any -> PD"),
        (["absent", "absent"], ["present"], R.PD, "any / yes -> PD"),
    ],
)
def test_recist_table_2_non_target_only(
    non_targets: list[str | None], new: list[str], expected: Response, row: str
) -> None:
    """RECIST 1.1 Table 2 (non-target disease only; SCIENCE.md §1.5): NON_CR_NON_PD instead of SD."""
    base = Assessment(date=day(0), non_targets=(NonTargetLesion(lesion_id="A"), NonTargetLesion(lesion_id="B")))
    fu = Assessment(
        date=day(56),
        non_targets=tuple(
            NonTargetLesion(lesion_id=k, status=s) for k, s in zip("AB", non_targets) if s is not None
        ),
        new_lesions=tuple(NewLesion(lesion_id=f"N{i}", status=s) for i, s in enumerate(new)),
    )
    result = assess_patient([base, fu])
    tp = result.timepoints[0]
    assert tp.overall_response == expected, row
    assert tp.target_response == R.ND
    assert tp.sum_of_diameters_mm is None
    assert result.baseline_sum_mm is None


def test_non_target_only_bor_is_non_cr_non_pd() -> None:
    """Non-target-only disease: best overall response NON_CR_NON_PD (RECIST 1.1 §4.3.3 prefers it to SD)."""
    base = Assessment(date=day(0), non_targets=(NonTargetLesion(lesion_id="A"),))
    fu = Assessment(date=day(56), non_targets=(NonTargetLesion(lesion_id="A", status="present"),))
    assert assess_patient([base, fu]).best_overall_response == R.NON_CR_NON_PD


# ---------------------------------------------------------------------------------------------------------------
# Not evaluated targets (SCIENCE.md §1.5 "Missing data")


def _two_targets(fu_a: float | None, fu_b: float | None) -> Response:
    base = Assessment(
        date=day(0),
        targets=(TargetLesion(lesion_id="A", diameter_mm=20), TargetLesion(lesion_id="B", diameter_mm=20)),
    )
    targets = [TargetLesion(lesion_id=k, diameter_mm=v) for k, v in (("A", fu_a), ("B", fu_b)) if v is not None]
    return assess_patient([base, Assessment(date=day(56), targets=tuple(targets))]).timepoints[0].target_response


def test_missing_target_gives_ne_unless_measured_ones_prove_pd() -> None:
    """Only some lesions measured: NE, unless the measured ones already meet PD (nadir 40: PD needs >= 48 mm)."""
    assert _two_targets(30, None) == R.NE
    assert _two_targets(47.9, None) == R.NE
    assert _two_targets(48, None) == R.PD
    assert _two_targets(None, None) == R.NE


def test_target_row_with_empty_value_is_not_evaluated() -> None:
    result = assess_series(["40", None, "30"])
    assert [tp.target_response for tp in result.timepoints] == [R.NE, R.SD]
    assert result.timepoints[0].sum_of_diameters_mm is None
    assert result.timepoints[0].change_from_nadir_mm is None


# ---------------------------------------------------------------------------------------------------------------
# Nadir, PD date, reappearance, equivocal new lesions


def test_nadir_includes_baseline_and_earlier_followups() -> None:
    """SCIENCE.md §1.9.2: nadir = running minimum over baseline and earlier follow-ups."""
    result = assess_series(["50", "45", "48", "54"])
    assert [tp.nadir_mm for tp in result.timepoints] == [Decimal(50), Decimal(45), Decimal(45)]
    assert [tp.change_from_nadir_mm for tp in result.timepoints] == [Decimal(-5), Decimal(3), Decimal(9)]
    assert [tp.target_response for tp in result.timepoints] == [R.SD, R.SD, R.PD]  # 54 = 45 * 1.2
    assert result.progression_date == day(3 * 56)


def test_progression_date_is_first_pd_and_later_points_are_still_listed() -> None:
    """FDA 2007 guidance, Appendix 2: the progression date is the first time progression can be declared."""
    result = assess_series(["50", "61", "40"])
    assert result.progression_date == day(56)
    assert [tp.overall_response for tp in result.timepoints] == [R.PD, R.SD]  # 40 mm: -20 % vs baseline
    assert result.best_overall_response == R.PD  # BOR uses the time points up to the first PD


def test_reappearing_lesion_is_not_automatically_pd() -> None:
    """EORTC FAQ "Does a new lesion always result in PD?" (http://recist.eortc.org/faq/does-a-new-lesion-always-
    result-in-pd/): a lesion that disappears and comes back is PD only by the usual rules unless CR was assigned."""
    base = Assessment(
        date=day(0),
        targets=(TargetLesion(lesion_id="A", diameter_mm=30), TargetLesion(lesion_id="B", diameter_mm=30)),
    )
    fu1 = Assessment(
        date=day(56),
        targets=(TargetLesion(lesion_id="A", diameter_mm=0), TargetLesion(lesion_id="B", diameter_mm=20)),
    )
    fu2 = Assessment(
        date=day(112),
        targets=(TargetLesion(lesion_id="A", diameter_mm=3), TargetLesion(lesion_id="B", diameter_mm=20)),
    )
    result = assess_patient([base, fu1, fu2])
    assert [tp.overall_response for tp in result.timepoints] == [R.PR, R.PR]  # 23 mm: +3 mm vs nadir 20


def test_reappearance_after_cr_is_pd() -> None:
    """RECIST 1.1 Table 3 footnote: after a true CR any reappearing disease is PD, even 0 -> 4 mm (< +5 mm)."""
    result = assess_series(["30", "0", "4"])
    assert [tp.overall_response for tp in result.timepoints] == [R.CR, R.PD]
    assert "reappeared after CR" in result.timepoints[1].notes[0]
    assert result.progression_date == day(112)
    assert result.best_overall_response == R.CR


def test_node_reappears_only_at_10_mm() -> None:
    """EORTC FAQ "Abnormal lymph node" (http://recist.eortc.org/faq/abnormal-lymph-node-2/): a node "reappears"
    only at a short axis of 10 mm or more."""
    assert _overall(["20", "8", "9.9"], organ="lymph_node") == ["CR", "CR"]
    assert _overall(["20", "8", "10"], organ="lymph_node") == ["CR", "PD"]


def test_non_target_reappearing_after_cr_is_pd() -> None:
    base = Assessment(
        date=day(0),
        targets=(TargetLesion(lesion_id="T", diameter_mm=30),),
        non_targets=(NonTargetLesion(lesion_id="A"),),
    )
    fu1 = Assessment(
        date=day(56),
        targets=(TargetLesion(lesion_id="T", diameter_mm=0),),
        non_targets=(NonTargetLesion(lesion_id="A", status="absent"),),
    )
    fu2 = Assessment(
        date=day(112),
        targets=(TargetLesion(lesion_id="T", diameter_mm=0),),
        non_targets=(NonTargetLesion(lesion_id="A", status="present"),),
    )
    result = assess_patient([base, fu1, fu2])
    assert [(tp.non_target_response, tp.overall_response) for tp in result.timepoints] == [
        (R.CR, R.CR),
        (R.PD, R.PD),
    ]


def _equivocal(second: str | None, lesion_id: str = "N1") -> tuple[list[Response], datetime.date | None]:
    t = (TargetLesion(lesion_id="T", diameter_mm=40),)
    fus = [
        Assessment(date=day(56), targets=t, new_lesions=(NewLesion(lesion_id="N1", status="equivocal"),)),
        Assessment(
            date=day(112),
            targets=t,
            new_lesions=() if second is None else (NewLesion(lesion_id=lesion_id, status=second),),
        ),
    ]
    result = assess_patient([Assessment(date=day(0), targets=t), *fus])
    return [tp.overall_response for tp in result.timepoints], result.progression_date


def test_equivocal_new_lesion_confirmed_later_dates_pd_back() -> None:
    """RECIST 1.1 §4.3.2 / SCIENCE.md §1.4: if an equivocal lesion is later confirmed, PD is dated to the first
    scan that showed it (FDA 2007 guidance App. 2: the date the new lesion was first observed)."""
    responses, pd_date = _equivocal("present")
    assert responses == [R.PD, R.PD]
    assert pd_date == day(56)


def test_equivocal_new_lesion_not_confirmed_is_not_pd() -> None:
    assert _equivocal(None) == ([R.SD, R.SD], None)
    assert _equivocal("equivocal") == ([R.SD, R.SD], None)
    responses, pd_date = _equivocal("present", lesion_id="N2")  # a different lesion: PD at its own scan
    assert (responses, pd_date) == ([R.SD, R.PD], day(112))


def test_new_lesion_finding_field() -> None:
    t = (TargetLesion(lesion_id="T", diameter_mm=40),)
    result = assess_patient(
        [
            Assessment(date=day(0), targets=t),
            Assessment(date=day(56), targets=t, new_lesions=(NewLesion(lesion_id="N", status="equivocal"),)),
            Assessment(date=day(112), targets=t),
        ]
    )
    assert [tp.new_lesions for tp in result.timepoints] == [NewLesionFinding.EQUIVOCAL, NewLesionFinding.NONE]


# ---------------------------------------------------------------------------------------------------------------
# Best overall response: SD minimum duration, confirmation (RECIST 1.1 §4.4, Table 3)


@pytest.mark.parametrize(
    ("days", "then", "sd_min_days", "expected"),
    [
        (42, None, 42, R.SD),  # exactly the minimum: met (inclusive)
        (41, None, 42, R.NE),  # SD too early, nothing after: NE
        (41, "80", 42, R.PD),  # SD too early, then PD: PD
        (35, None, 30, R.SD),  # --sd-min-days 30
        (20, None, 0, R.SD),
    ],
)
def test_sd_minimum_duration(days: int, then: str | None, sd_min_days: int, expected: Response) -> None:
    """RECIST 1.1 §4.4.1 / SCIENCE.md §1.6: SD must be met at least once after a protocol minimum interval."""
    series = ["50", "52"] if then is None else ["50", "52", then]
    assert assess_series(series, every_days=days, sd_min_days=sd_min_days).best_overall_response == expected


def test_no_followup_gives_ne() -> None:
    result = assess_series(["50"])
    assert result.timepoints == ()
    assert result.best_overall_response == R.NE
    assert result.progression_date is None


@pytest.mark.parametrize(
    ("series", "every_days", "expected", "row"),
    [
        (["100", "0", "0"], 28, R.CR, "CR then CR (>= 28 days) -> CR"),
        (["100", "0", "0"], 27, R.SD, "CR then CR only 27 days later: not confirmed; SD duration met"),
        (["100", "60", "60"], 28, R.PR, "PR then PR -> PR"),
        (["100", "60", "0"], 28, R.PR, "PR then CR -> PR"),
        (["100", "60", "80"], 56, R.SD, "PR then SD -> SD"),
        (["100", "60", "130"], 56, R.SD, "PR then PD -> SD (minimum duration met)"),
        (["100", "60", "130"], 30, R.PD, "PR then PD -> PD (minimum duration not met)"),
        (["100", "60", None], 56, R.SD, "PR then NE -> SD (minimum duration met)"),
        (["100", "60", None], 30, R.NE, "PR then NE -> NE (minimum duration not met)"),
        (["100", None, None], 56, R.NE, "NE then NE -> NE"),
    ],
)
def test_confirmation_table_3(series: list[str | None], every_days: int, expected: Response, row: str) -> None:
    """RECIST 1.1 Table 3 (best overall response when confirmation of CR and PR is required; SCIENCE.md §1.6)."""
    result = assess_series(series, every_days=every_days, confirm=True)
    assert result.best_overall_response == expected, row


def test_confirmation_mode_changes_pr_carry_forward() -> None:
    """Without confirmation 100 -> 70 -> 80 is PR, PR (PR maintained); with it the PR is unconfirmed, so the
    second time point is SD and the best overall response SD (RECIST 1.1 Table 3 "PR, SD -> SD")."""
    plain = assess_series(["100", "70", "80"])
    confirmed = assess_series(["100", "70", "80"], confirm=True)
    assert [tp.overall_response for tp in plain.timepoints] == [R.PR, R.PR]
    assert plain.best_overall_response == R.PR
    assert [tp.overall_response for tp in confirmed.timepoints] == [R.PR, R.SD]
    assert confirmed.best_overall_response == R.SD
    # once confirmed (70 then 70, 56 days apart), the PR is maintained
    later = assess_series(["100", "70", "70", "80"], confirm=True)
    assert [tp.overall_response for tp in later.timepoints] == [R.PR, R.PR, R.PR]


def test_bor_without_confirmation_single_pr() -> None:
    assert assess_series(["100", "60", "130"]).best_overall_response == R.PR


# ---------------------------------------------------------------------------------------------------------------
# Validation warnings and errors


def test_warnings_for_target_selection_and_measurability() -> None:
    """RECIST 1.1 §4.2: at most 5 targets, 2 per organ (nodes one organ; paired organs one: EORTC FAQ
    http://recist.eortc.org/faq/paired-organs/); measurable >= 10 mm, nodes >= 15 mm short axis (§3.1)."""
    targets = (
        TargetLesion(lesion_id="L1", organ="liver", diameter_mm=30),
        TargetLesion(lesion_id="L2", organ="liver", diameter_mm="9.9"),
        TargetLesion(lesion_id="P1", organ="left lung", diameter_mm=20),
        TargetLesion(lesion_id="P2", organ="lung_right", diameter_mm=20),
        TargetLesion(lesion_id="P3", organ="Lung", diameter_mm=20),
        TargetLesion(lesion_id="N1", organ="lymph_node", diameter_mm="14.9"),
    )
    warnings = assess_patient([Assessment(date=day(0), targets=targets)]).warnings
    text = "\n".join(warnings)
    assert "6 target lesions; RECIST 1.1 allows at most 5" in text
    assert "3 target lesions in organ 'lung' (P1, P2, P3)" in text
    assert "organ 'liver'" not in text  # 2 liver targets are allowed
    assert "'L2' measures 9.9 mm, below the measurable 10 mm" in text
    assert "'N1' (lymph node) has short axis 14.9 mm, below the measurable 15 mm" in text
    assert len(warnings) == 4


def test_nodes_count_as_one_organ() -> None:
    targets = tuple(TargetLesion(lesion_id=f"N{i}", organ="lymph_node", diameter_mm=20) for i in range(3))
    (warning,) = assess_patient([Assessment(date=day(0), targets=targets)]).warnings
    assert "organ 'lymph_node'" in warning


@pytest.mark.parametrize(
    ("organ", "group"),
    [
        ("Left lung", "lung"),
        ("kidney_r", "kidney"),
        ("ovaries", "ovary"),
        ("lymph-node", "lymph_node"),
        ("liver", "liver"),
    ],
)
def test_organ_group(organ: str, group: str) -> None:
    assert organ_group(organ) == group


def test_errors_name_date_and_lesion() -> None:
    base = Assessment(date=day(0), targets=(TargetLesion(lesion_id="T", diameter_mm=20),))
    late = Assessment(date=day(56), targets=(TargetLesion(lesion_id="X", diameter_mm=20),))
    with pytest.raises(RecistDataError, match=r"target lesion 'X' first appears on 2024-02-26") as exc:
        assess_patient([base, late], patient_id="P9")
    assert exc.value.lesion_id == "X"
    assert exc.value.date == day(56)
    assert isinstance(exc.value, TimelineError)
    twice = Assessment(
        date=day(0),
        targets=(TargetLesion(lesion_id="T", diameter_mm=20),),
        non_targets=(NonTargetLesion(lesion_id="T"),),
    )
    with pytest.raises(RecistDataError, match=r"lesion 'T' is recorded twice on 2024-01-01"):
        assess_patient([twice])
    new_at_baseline = Assessment(date=day(0), new_lesions=(NewLesion(lesion_id="N"),))
    with pytest.raises(RecistDataError, match=r"'N' is a new lesion at baseline"):
        assess_patient([new_at_baseline])
    unmeasured = Assessment(date=day(0), targets=(TargetLesion(lesion_id="T"),))
    with pytest.raises(RecistDataError, match=r"baseline target lesion 'T' has no diameter"):
        assess_patient([unmeasured])
    changed = Assessment(date=day(56), non_targets=(NonTargetLesion(lesion_id="T"),))
    with pytest.raises(RecistDataError, match=r"'T' is 'non_target' on 2024-02-26 but 'target' earlier"):
        assess_patient([base, changed])
    with pytest.raises(RecistDataError, match=r"two assessments on 2024-01-01"):
        assess_patient([base, base])
    with pytest.raises(RecistDataError, match=r"has no assessment"):
        assess_patient([])


def test_bad_values_in_data_classes() -> None:
    with pytest.raises(ValueError, match="negative"):
        TargetLesion(lesion_id="T", diameter_mm=-1)
    with pytest.raises(ValueError, match="too_small with a diameter"):
        TargetLesion(lesion_id="T", diameter_mm=3, too_small=True)
    with pytest.raises(ValueError, match="not a number"):
        TargetLesion(lesion_id="T", diameter_mm="12,5")
    with pytest.raises(ValueError, match="not a finite number"):
        TargetLesion(lesion_id="T", diameter_mm=float("nan"))
    with pytest.raises(ValueError, match="'gone' is not a valid NonTargetStatus"):
        NonTargetLesion(lesion_id="A", status="gone")


def test_input_order_does_not_matter_and_floats_are_read_as_printed() -> None:
    series = assess_series([46.0, 32.2])  # SCIENCE.md §1.9: (b-c)/b >= 0.3 is False in floats for 46.0 -> 32.2
    assert series.timepoints[0].target_response == R.PR
    from tests._response_helpers import single_target_series

    items = single_target_series(["50", "40", "62"])
    assert assess_patient(list(reversed(items))) == assess_patient(items)
