"""hepavol.study.eligibility: NCT03689231's criteria, their boundaries, missing data, the flow table, and the
simulator's truth reproduced from its clinical.csv, treatments.csv and truth.json."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from hepavol.errors import InputError
from hepavol.simulate import DEFAULT_CONFIG, SimulationConfig
from hepavol.study.clinical import ClinicalRecord, Treatment, read_clinical
from hepavol.study.eligibility import (
    CRITERIA,
    EligibilityDecision,
    LesionSummary,
    ScanSummary,
    assess_eligibility,
    flow_table,
    format_flow_table,
)

BASE = dt.date(2020, 1, 1)


def _record(**changes: object) -> ClinicalRecord:
    values: dict[str, object] = {
        "patient_id": "H1",
        "line": 2,
        "tumour_type": "NET",
        "primary_site": "small_intestine",
        "differentiation": "well",
        "ki67_percent": 2.0,
        "grade": "G1",
        "cga_ug_l": 100.0,
        "extra_abdominal": False,
        "primary_resected": True,
        "treatments": (),
    }
    values.update(changes)
    return ClinicalRecord(**values)  # type: ignore[arg-type]


def _lesions(*sizes_mm: float | None) -> tuple[LesionSummary, ...]:
    return tuple(LesionSummary(lesion_id=f"L{i + 1}", long_axis_mm=s) for i, s in enumerate(sizes_mm))


def _scans(*days: int, sizes: tuple[float | None, ...] = (25.0,), modality: str = "CT") -> list[ScanSummary]:
    return [
        ScanSummary(date=BASE + dt.timedelta(days=d), modality=modality, lesions=_lesions(*sizes)) for d in days
    ]


def _tx(kind: str, start_day: int, end_day: int | None, line: int = 2) -> Treatment:
    return Treatment(
        kind=kind,
        start_date=BASE + dt.timedelta(days=start_day),
        end_date=None if end_day is None else BASE + dt.timedelta(days=end_day),
        line=line,
    )


def test_eligible_patient() -> None:
    d = assess_eligibility(_record(treatments=(_tx("somatostatin_analogue", -200, None),)), _scans(0, 120, 400))
    assert d.eligible
    assert d.status == "included"
    assert d.reasons == ()
    assert (d.baseline_date, d.early_date, d.follow_up_end_date) == (
        BASE,
        BASE + dt.timedelta(days=120),
        BASE + dt.timedelta(days=400),
    )
    assert d.modality == "CT"
    assert d.measurable_lesion_ids == ("L1",)
    assert d.criteria_version == "NCT03689231/hepavol-1 (early scan 91-183 days after baseline)"


@pytest.mark.parametrize(
    ("size_mm", "thickness_mm", "measurable"),
    [
        # RECIST 1.1 §3.1.1 (Eisenhauer et al., EJC 2009;45:228-247; SCIENCE.md §1.1): measurable = long axis
        # >= 10 mm on CT/MR with slices <= 5 mm, >= 2 x slice thickness with thicker slices
        (10.0, None, True),
        (9.99, None, False),
        (10.0, 5.0, True),
        (11.99, 6.0, False),
        (12.0, 6.0, True),
    ],
)
def test_measurable_boundary(size_mm: float, thickness_mm: float | None, measurable: bool) -> None:
    scans = [
        ScanSummary(date=BASE, modality="CT", lesions=_lesions(size_mm), slice_thickness_mm=thickness_mm),
        *_scans(100),
    ]
    d = assess_eligibility(_record(), scans)
    assert d.eligible is measurable
    assert d.small_lesion_ids == (() if measurable else ("L1",))
    if not measurable:
        assert d.reason_codes == ("no_measurable_liver_metastasis",)
        assert "largest long axis" in d.reasons[0].text


def test_small_lesions_flagged_in_eligible_patient() -> None:
    d = assess_eligibility(_record(), _scans(0, 100, sizes=(30.0, 9.5, 4.0, 10.0)))
    assert d.eligible
    assert d.small_lesion_ids == ("L2", "L3")
    assert d.measurable_lesion_ids == ("L1", "L4")
    assert any("2 baseline liver lesion(s) below 10 mm" in w for w in d.warnings)


@pytest.mark.parametrize(
    ("day", "in_window"),
    [
        # registry: early scan 3-6 months after baseline (SCIENCE.md §0); 3 x 30.4375 = 91.3 days and
        # 6 x 30.4375 = 182.6 days (mean month 365.25/12, SCIENCE.md §2.2), window rounded outwards to days 91-183
        (90, False),
        (91, True),
        (183, True),
        (184, False),
    ],
)
def test_early_window_boundary(day: int, in_window: bool) -> None:
    d = assess_eligibility(_record(), _scans(0, day))
    assert d.eligible is in_window
    assert d.early_date == (BASE + dt.timedelta(days=day) if in_window else None)
    if not in_window:
        assert d.reason_codes == ("insufficient_follow_up",)
        assert f"later CT scans on day(s) {day}" in d.reasons[0].text


def test_early_scan_is_first_in_window_and_window_is_configurable() -> None:
    d = assess_eligibility(_record(), _scans(0, 30, 95, 150, 400))
    assert d.early_date == BASE + dt.timedelta(days=95)
    d = assess_eligibility(_record(), _scans(0, 30, 95, 150), early_window_days=(120, 200))
    assert d.early_date == BASE + dt.timedelta(days=150)
    assert "early scan 120-200 days" in d.criteria_version


def test_baseline_is_the_first_scan_whatever_the_order() -> None:
    scans = list(reversed(_scans(0, 100, 300)))
    d = assess_eligibility(_record(), scans)
    assert (d.baseline_date, d.early_date) == (BASE, BASE + dt.timedelta(days=100))


@pytest.mark.parametrize(
    ("treatment", "code"),
    [
        # during follow-up = the treatment shares a day with [baseline, last scan] (both inclusive)
        (_tx("tace", -1, -1), None),  # the day before baseline: prior treatment
        (_tx("tace", 0, 0), "invasive_liver_treatment"),  # on the baseline day
        (_tx("rfa", 400, 400), "invasive_liver_treatment"),  # on the last scan day
        (_tx("liver_surgery", 401, 401), None),  # after the last scan
        (_tx("chemotherapy", -300, -1), None),  # ended the day before baseline
        (_tx("everolimus", -300, 0), "systemic_therapy"),  # ended on the baseline day
        (_tx("sunitinib", -300, None), "systemic_therapy"),  # ongoing since before baseline
        (_tx("prrt", 200, 250), "systemic_therapy"),
        (_tx("sirt", 50, 50), "invasive_liver_treatment"),
        (_tx("somatostatin_analogue", 10, None), None),  # allowed
        (_tx("primary_resection", 30, 30), None),  # allowed by the registry record
    ],
)
def test_treatment_during_follow_up(treatment: Treatment, code: str | None) -> None:
    d = assess_eligibility(_record(treatments=(treatment,)), _scans(0, 100, 400))
    assert d.reason_codes == (() if code is None else (code,))
    if code is not None:
        assert f"(treatments line {treatment.line})" in d.reasons[0].text


def test_texts_without_file_lines() -> None:
    """Records rebuilt from a database (line 0) give texts without line numbers."""
    rec = _record(line=0, primary_site=None, treatments=(_tx("tace", 5, 5, line=0),))
    d = assess_eligibility(rec, _scans(0, 100))
    assert [r.text for r in d.reasons] == [
        "primary site not recorded: cannot confirm a well-differentiated small-intestinal NET",
        "tace 2020-01-06",
    ]
    d = assess_eligibility(_record(line=3, primary_site=None), _scans(0, 100))
    assert d.reasons[0].text == (
        "primary site not recorded (clinical line 3): cannot confirm a well-differentiated small-intestinal NET"
    )


def test_prior_and_other_treatments_warn() -> None:
    d = assess_eligibility(_record(treatments=(_tx("tace", -30, -30), _tx("other", 50, None))), _scans(0, 100))
    assert d.eligible
    assert any(w.startswith("treatment before baseline: tace") for w in d.warnings)
    assert any("treatment 'other' during follow-up" in w for w in d.warnings)


def test_follow_up_end_cuts_the_treatment_window() -> None:
    """A TACE after (for example) RECIST progression does not exclude when follow_up_end is the progression date."""
    rec = _record(treatments=(_tx("tace", 300, 300),))
    assert assess_eligibility(rec, _scans(0, 100, 400)).reason_codes == ("invasive_liver_treatment",)
    d = assess_eligibility(rec, _scans(0, 100, 400), follow_up_end=BASE + dt.timedelta(days=299))
    assert d.eligible
    assert d.follow_up_end_date == BASE + dt.timedelta(days=299)


def test_every_failed_criterion_is_reported_in_order() -> None:
    rec = _record(primary_site="pancreas", treatments=(_tx("tace", 10, 10), _tx("everolimus", 5, None)))
    d = assess_eligibility(rec, _scans(0, 40, sizes=(8.0,)))
    assert d.reason_codes == (
        "not_si_net",
        "no_measurable_liver_metastasis",
        "invasive_liver_treatment",
        "systemic_therapy",
        "insufficient_follow_up",
    )
    assert d.status == "excluded"
    assert d.reasons[0].text.startswith("primary site pancreas")
    assert d.reasons[0].label == "not a well-differentiated small-intestinal NET"


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        ({"tumour_type": "NEC", "differentiation": "poorly"}, "tumour type NEC, poorly differentiated"),
        ({"tumour_type": "MiNEN", "differentiation": None}, "tumour type MiNEN"),
        ({"primary_site": "unknown"}, "primary site unknown"),
        ({"primary_site": "duodenum"}, "primary site duodenum"),
        ({"primary_site": "pancreas", "tumour_type": None, "differentiation": None}, "primary site pancreas"),
    ],
)
def test_not_small_intestinal_net(changes: dict[str, object], text: str) -> None:
    d = assess_eligibility(_record(**changes), _scans(0, 100))
    assert d.reason_codes == ("not_si_net",)
    assert d.reasons[0].text.startswith(text)
    assert not d.reasons[0].missing_data


@pytest.mark.parametrize(
    ("clinical", "scans", "code"),
    [
        (None, _scans(0, 100), "no_clinical_data"),
        (_record(tumour_type=None, differentiation=None), _scans(0, 100), "tumour_type_not_recorded"),
        (_record(primary_site=None), _scans(0, 100), "tumour_type_not_recorded"),
        (_record(), [ScanSummary(date=BASE, modality="CT"), *_scans(100)], "lesions_not_measured"),
        (_record(treatments_recorded=False), _scans(0, 100), "treatments_not_recorded"),
        (_record(undated_treatment_categories=("systemic",)), _scans(0, 100), "treatments_not_recorded"),
    ],
)
def test_missing_data_is_not_assessable(
    clinical: ClinicalRecord | None, scans: list[ScanSummary], code: str
) -> None:
    """Missing data never lets a patient in silently: the patient is 'not assessable', with the reason."""
    d = assess_eligibility(clinical, scans)
    assert not d.eligible
    assert d.reason_codes == (code,)
    assert d.reasons[0].missing_data
    assert d.status == "not assessable"


def test_missing_data_with_a_recorded_failure_is_excluded() -> None:
    d = assess_eligibility(None, _scans(0, 30))
    assert d.reason_codes == ("no_clinical_data", "insufficient_follow_up")
    assert d.status == "excluded"


def test_no_liver_metastasis_and_no_scan() -> None:
    extra_hepatic = (LesionSummary(lesion_id="N1", long_axis_mm=30.0, in_liver=False),)
    scans = [ScanSummary(date=BASE, modality="MR", lesions=extra_hepatic), *_scans(100, modality="MR")]
    assert assess_eligibility(_record(), scans).reason_codes == ("no_liver_metastasis",)
    scans = [ScanSummary(date=BASE, modality="MR", lesions=()), *_scans(100, modality="MR")]
    assert assess_eligibility(_record(), scans).reason_codes == ("no_liver_metastasis",)
    d = assess_eligibility(_record(), [])
    assert d.reason_codes == ("no_baseline_scan", "insufficient_follow_up")
    assert d.baseline_date is None


def test_lesion_marked_not_measurable() -> None:
    """Poorly limited or DWI-only lesions are not measurable whatever their size (registry exclusions)."""
    lesions = (LesionSummary(lesion_id=7, long_axis_mm=40.0, measurable=False),)
    d = assess_eligibility(_record(), [ScanSummary(date=BASE, modality="CT", lesions=lesions), *_scans(100)])
    assert d.reason_codes == ("no_measurable_liver_metastasis",)
    assert any("lesion 7 (40.0 mm) is marked not measurable" in w for w in d.warnings)


def test_modalities_are_kept_apart() -> None:
    """The early scan must have the baseline's modality (the study keeps CT and MR cohorts apart, SCIENCE.md §0)."""
    scans = [*_scans(0), *_scans(100, modality="MRI"), ScanSummary(date=BASE, modality="PT")]
    d = assess_eligibility(_record(), scans)
    assert d.reason_codes == ("insufficient_follow_up",)
    assert any("1 MR scan(s) ignored" in w for w in d.warnings)
    assert any("scans of modality PT ignored" in w for w in d.warnings)
    d = assess_eligibility(_record(), _scans(0, 100, modality="MRI"))
    assert d.eligible
    assert d.modality == "MR"
    assert any("mixed_modalities = true" in w for w in assess_eligibility(_record(), scans).warnings)


def test_modalities_mixed_when_the_study_says_so() -> None:
    """study.toml ``[followup] mixed_modalities = true``: the MR scan 100 days after a CT baseline is the early
    scan (day 100 is inside 91-183), and a warning says that volumes are compared across CT and MR."""
    scans = [*_scans(0), *_scans(100, modality="MRI")]
    d = assess_eligibility(_record(), scans, mixed_modalities=True)
    assert d.eligible
    assert d.modality == "CT"
    assert d.early_date == BASE + dt.timedelta(days=100)
    assert any("1 MR scan(s) compared with the CT baseline" in w for w in d.warnings)


@pytest.mark.parametrize(
    ("kwargs", "scans", "match"),
    [
        (
            {"early_window_days": (183, 91)},
            _scans(0),
            r"'early_window_days' must be whole days with 0 < first <= last",
        ),
        ({"early_window_days": (91.0, 183)}, _scans(0), r"'early_window_days' must be whole days"),
        ({"early_window_days": 91}, _scans(0), r"'early_window_days' must be two whole numbers"),
        ({"follow_up_end": BASE - dt.timedelta(days=1)}, _scans(0), r"'follow_up_end' \(2019-12-31\) is before"),
        ({}, _scans(0, sizes=(-1.0,)), r"lesion 'L1': long_axis_mm must be a finite number >= 0.*but it is -1.0"),
        ({}, _scans(0, sizes=(float("nan"),)), r"long_axis_mm must be a finite number"),
        ({}, [ScanSummary(date=BASE, modality="CT", slice_thickness_mm=0.0)], r"slice_thickness_mm must be > 0"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], scans: list[ScanSummary], match: str) -> None:
    with pytest.raises(InputError, match=match):
        assess_eligibility(_record(), scans, **kwargs)  # type: ignore[arg-type]


def test_flow_table_counts_first_reason_and_any_reason() -> None:
    decisions = [
        assess_eligibility(_record(), _scans(0, 100)),  # included
        assess_eligibility(_record(), _scans(0, 100)),  # included
        assess_eligibility(_record(treatments=(_tx("tace", 5, 5),)), _scans(0, 30)),  # invasive + follow-up
        assess_eligibility(_record(), _scans(0, 30)),  # follow-up
        assess_eligibility(_record(primary_site=None), _scans(0, 100)),  # not assessable
    ]
    rows = flow_table(decisions)
    by_step = {r.step: r.patients for r in rows if r.step != "reason"}
    assert by_step == {"screened": 5, "excluded": 3, "not_assessable": 1, "included": 2}
    reasons = {r.code: (r.patients, r.patients_any_reason) for r in rows if r.step == "reason"}
    assert list(reasons) == [c.code for c in CRITERIA]
    assert reasons["invasive_liver_treatment"] == (1, 1)
    assert reasons["insufficient_follow_up"] == (1, 2)  # first reason of one patient, a reason of two
    assert reasons["tumour_type_not_recorded"] == (1, 1)
    assert sum(first for first, _ in reasons.values()) == by_step["excluded"]
    text = format_flow_table(rows, title="VOLUNET")
    lines = text.splitlines()
    assert lines[0] == "VOLUNET"
    assert lines[2].split() == ["Screened", "5"]
    assert "  no early scan 3-6 months after baseline" in text
    row = next(line for line in lines if "no early scan" in line)
    assert row.split()[-2:] == ["1", "2"]
    row = next(line for line in lines if "tumour type or primary site not recorded [missing data]" in line)
    assert row.split()[-2:] == ["1", "1"]
    assert lines[-1].split() == ["Included", "2"]


# ---- the simulator's truth --------------------------------------------------------------------------------------

# simulator reason → criterion code (hepavol.simulate.patient.sample_patient)
SIM_REASONS = {
    "invasive liver treatment": "invasive_liver_treatment",
    "systemic chemotherapy": "systemic_therapy",
    "lesions < 10 mm only": "no_measurable_liver_metastasis",
    "insufficient follow-up": "insufficient_follow_up",
}


def _boosted_config() -> SimulationConfig:
    return DEFAULT_CONFIG.replace(
        invasive_liver_treatment_probability=0.3,
        systemic_chemotherapy_probability=0.3,
        small_lesions_only_probability=0.3,
        insufficient_follow_up_probability=0.3,
    )


def test_simulated_cohort_decisions_equal_the_truth(tmp_path: Path) -> None:
    """On simulate_cohort's files (clinical.csv, treatments.csv, truth.json with the true lesion long axes),
    assess_eligibility gives the simulator's eligibility and its reasons for every patient."""
    from hepavol.simulate import simulate_cohort

    # seed 0 with every exclusion made likely: SIM-001..004 are (insufficient follow-up), (invasive liver
    # treatment, lesions < 10 mm), eligible, (systemic, lesions < 10 mm, insufficient follow-up)
    cohort = simulate_cohort(4, tmp_path / "sim", seed=0, fmt="nifti", config=_boosted_config())
    table = read_clinical(cohort.clinical_csv, treatments_path=cohort.treatments_csv)
    truth = json.loads(cohort.truth_json.read_text())
    decisions = []
    seen: set[str] = set()
    for p in truth["patients"]:
        scans = [
            ScanSummary(
                date=dt.date.fromisoformat(s["date"]),
                modality=p["modality"],
                lesions=tuple(
                    LesionSummary(lesion_id=lesion["lesion_id"], long_axis_mm=lesion["long_axis_mm"])
                    for lesion in s["lesions"]
                ),
                slice_thickness_mm=s["geometry"]["spacing_mm"][0],
            )
            for s in p["scans"]
        ]
        d = assess_eligibility(table.get(p["patient_id"]), scans)
        decisions.append(d)
        assert d.eligible == p["eligible"], p["patient_id"]
        assert set(d.reason_codes) == {SIM_REASONS[r] for r in p["ineligibility_reasons"]}, p["patient_id"]
        seen.update(d.reason_codes)
        assert d.baseline_date == dt.date.fromisoformat(p["scans"][0]["date"])
        small = {les["lesion_id"] for les in p["scans"][0]["lesions"] if les["long_axis_mm"] < 10.0}
        assert set(d.small_lesion_ids) == small
    assert seen == set(SIM_REASONS.values())  # the cohort holds every exclusion reason
    assert any(d.eligible for d in decisions)
    rows = {r.step: r.patients for r in flow_table(decisions) if r.step != "reason"}
    assert rows["included"] == sum(p["eligible"] for p in truth["patients"])


def test_sampled_patients_decisions_equal_the_truth(tmp_path: Path) -> None:
    """The same property on more patients at parameter level (no images), with the true (unrounded) axes."""
    from hepavol.simulate import sample_patient
    from hepavol.simulate.treatments import TREATMENT_COLUMNS, patient_treatments
    from hepavol.simulate.writer import CLINICAL_COLUMNS, clinical_row, write_csv

    patients = [sample_patient(i, seed=7, config=_boosted_config()) for i in range(16)]
    write_csv([clinical_row(p.clinical) for p in patients], CLINICAL_COLUMNS, tmp_path / "clinical.csv")
    write_csv([r for p in patients for r in patient_treatments(p)], TREATMENT_COLUMNS, tmp_path / "treatments.csv")
    table = read_clinical(tmp_path / "clinical.csv", treatments_path=tmp_path / "treatments.csv")
    combos = set()
    for p in patients:
        scans = [
            ScanSummary(
                date=s.date,
                modality=p.modality,
                lesions=tuple(
                    LesionSummary(lesion_id=t.lesion_id, long_axis_mm=t.long_axis_mm) for t in s.lesions
                ),
            )
            for s in p.truth.scans
        ]
        d = assess_eligibility(table.get(p.patient_id), scans)
        assert d.eligible == p.clinical.eligible
        assert set(d.reason_codes) == {SIM_REASONS[r] for r in p.clinical.ineligibility_reasons}
        combos.add(d.reason_codes)
    assert len(combos) >= 5  # several combinations of reasons, not only single ones


def test_decision_is_frozen() -> None:
    d = assess_eligibility(_record(), _scans(0, 100))
    assert isinstance(d, EligibilityDecision)
    with pytest.raises(AttributeError):
        d.eligible = False  # type: ignore[misc]
