"""A reader's RECIST 1.1 calls (non-target status, equivocal new lesions) replace hepavol's rules (issue 17).

Phantom and hand computation: tests/test_followup_pipeline.py (targets L1, L2; L6 = lesion F, new on 2024-05-01;
the non-targets progress unequivocally on 2024-07-01 by the volume rule). Expected values from RECIST 1.1
(Eisenhauer et al., Eur J Cancer 2009; SCIENCE.md §1.4-1.5):
- Table 1: target PR + non-target non-PD + no (unequivocal) new lesion = PR; unequivocal non-target progression
  or an unequivocal new lesion = PD.
- §4.3.2: an equivocal new lesion is not PD; PD is declared only when a later scan confirms it (then dated back).
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from tests._followup_helpers import write_patient

from hepavol.errors import InputError
from hepavol.followup import run_followup
from hepavol.followup.pipeline import ReaderMarks

MAR, MAY, JUL = datetime.date(2024, 3, 1), datetime.date(2024, 5, 1), datetime.date(2024, 7, 1)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_patient(tmp_path_factory.mktemp("phantom"))


def test_equivocal_new_lesion_and_non_target_called_present_give_no_progression(manifest: Path) -> None:
    marks = ReaderMarks(non_target={JUL: "present"}, new_lesions={"L6": "equivocal"})
    result = run_followup(manifest, reader_marks=marks)
    tps = result.timepoints
    # 05-01: target PR, non-target present, new lesion equivocal: PR (not PD as without the marks).
    # 07-01: target PR (+4 mm over the nadir), non-target present by the reader, L6 still equivocal: PR.
    assert [tp.overall_response for tp in tps] == [None, "PR", "PR", "PR"]
    assert [tp.non_target_status for tp in tps] == ["present", "present", "present", "present"]
    assert result.progression_date is None
    assert result.best_overall_response == "PR"
    # the volumetric criteria count unequivocal new lesions only: 05-01 TTV (512 + 216 + 216.1 + F 125) r³ = -78 % of
    # baseline (PR, not PD by the new lesion); 07-01 the merged D+E (1445 r³) lift TTV to +167 % over the nadir
    # (>= +73 %): PD by volume whatever the reader says of the non-targets (test_followup_pipeline.py)
    assert [tp.volumetric_response for tp in tps] == [None, "PR", "PR", "PD"]


def test_non_target_progression_called_by_the_reader_is_pd_on_that_date(manifest: Path) -> None:
    result = run_followup(manifest, reader_marks=ReaderMarks(non_target={MAR: "progression"}))
    assert [tp.overall_response for tp in result.timepoints][:2] == [None, "PD"]
    assert result.progression_date == MAR
    assert result.best_overall_response == "PD"


def test_an_equivocal_lesion_confirmed_later_dates_pd_back(manifest: Path) -> None:
    # The reader was unsure of L6 and later confirmed it: unequivocal again, PD on its first scan (05-01), as
    # without any mark (hand computation in test_followup_pipeline.py).
    result = run_followup(manifest, reader_marks=ReaderMarks(new_lesions={"L6": "unequivocal"}))
    assert result.progression_date == MAY


@pytest.mark.parametrize(
    ("marks", "message"),
    [
        (
            ReaderMarks(non_target={datetime.date(2024, 4, 1): "progression"}),
            r"no scan that day \(scans: 2024-01-01",
        ),
        (ReaderMarks(non_target={datetime.date(2024, 1, 1): "absent"}), "baseline 2024-01-01"),
        (
            ReaderMarks(non_target={MAR: "worse"}),
            "'worse' on 2024-03-01 must be one of present, absent, progression",
        ),
        (
            ReaderMarks(new_lesions={"L1": "equivocal"}),
            r"L1: it is not a lesion first seen after baseline \(new "
            "lesions: L6",
        ),
        (ReaderMarks(new_lesions={"L6": "maybe"}), "'maybe' for L6 must be one of equivocal, unequivocal"),
    ],
)
def test_bad_marks_are_clear_errors(manifest: Path, marks: ReaderMarks, message: str) -> None:
    with pytest.raises(InputError, match=message):
        run_followup(manifest, reader_marks=marks)
