"""Review decisions: targets chosen by hand and eligibility overrides, kept as history and honoured by run/export."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from hepavol.errors import InputError
from hepavol.study.clinical_import import import_clinical
from hepavol.study.export import cohort_rows
from hepavol.study.importer import import_scans
from hepavol.study.models import Analysis, Patient
from hepavol.study.review import record_review, review_history
from hepavol.study.runner import plan_run, run_study
from hepavol.study.screening import run_eligibility
from hepavol.study.workspace import Workspace, init_workspace


@pytest.fixture(scope="module")
def nifti_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hepavol.simulate import simulate_cohort

    out = tmp_path_factory.mktemp("review") / "cohort"
    simulate_cohort(2, out, seed=3, modality="ct")  # SIM-001 and SIM-002 are eligible (truth.json)
    return out


@pytest.fixture
def study(tmp_path: Path, nifti_cohort: Path) -> Workspace:
    ws = init_workspace(tmp_path / "study")
    import_scans(ws, sorted(nifti_cohort.glob("SIM-*/manifest.csv")), modality="ct")
    import_clinical(ws, nifti_cohort / "clinical.csv", treatments_path=nifti_cohort / "treatments.csv")
    run_eligibility(ws)
    return ws


def _pid(ws: Workspace, original: str) -> str:
    return str(ws.pseudonymiser().pseudonym(original))


def test_targets_chosen_by_hand_are_used_by_the_next_run(study: Workspace) -> None:
    pid = _pid(study, "SIM-001")
    assert run_study(study).computed == 2
    with study.db.transaction() as session:
        auto = session.scalar(select(Analysis.targets).join(Patient).where(Patient.pseudonym == pid))
    assert auto == ["L1", "L2"]  # the two largest measurable baseline lesions
    record_review(study, pid, targets="L2", reason="L1 is poorly delimited on the baseline scan")
    jobs, summary = plan_run(study)
    assert [j.pseudonym for j in jobs] == [pid]  # only the reviewed patient is recomputed
    assert jobs[0].parameters["targets"] == ["L2"]
    assert summary.up_to_date == 1
    assert run_study(study).computed == 1
    with study.db.transaction() as session:
        targets = session.scalars(
            select(Analysis.targets).join(Patient).where(Patient.pseudonym == pid).order_by(Analysis.id)
        ).all()
    assert targets == [["L1", "L2"], ["L2"]]  # the earlier analysis is kept
    record_review(study, pid, targets="auto", reason="back to the automatic choice")
    assert plan_run(study)[0] == []  # the automatic analysis is still stored: nothing to do
    history = review_history(study, pid)
    assert [(h["field"], h["old"], h["new"]) for h in history] == [
        ("targets", None, ["L2"]),
        ("targets", ["L2"], None),
    ]
    study.close()


def test_eligibility_override_survives_a_new_screening(study: Workspace) -> None:
    pid = _pid(study, "SIM-002")
    record_review(study, pid, eligibility="exclude", reason="liver transplant listed (not in the treatment file)")
    run_eligibility(study)  # the criteria say eligible; the reviewer's exclusion stays
    run_study(study)
    with study.db.transaction() as session:
        rows, _ = cohort_rows(study, session)
    assert pid not in {r["patient_id"] for r in rows}
    assert len(rows) == 1
    record_review(study, pid, eligibility="auto", reason="decision withdrawn")
    run_study(study)
    with study.db.transaction() as session:
        rows, _ = cohort_rows(study, session)
    assert pid in {r["patient_id"] for r in rows}
    study.close()


def test_review_errors(study: Workspace) -> None:
    pid = _pid(study, "SIM-001")
    with pytest.raises(InputError, match="needs a reason"):
        record_review(study, pid, targets="L1", reason=" ")
    with pytest.raises(InputError, match="not baseline lesion ids"):
        record_review(study, pid, targets="lesion one", reason="x")
    with pytest.raises(InputError, match="at most 5"):
        record_review(study, pid, targets="L1,L2,L3,L4,L5,L6", reason="x")
    with pytest.raises(InputError, match="no patient 'P-nobody'"):
        record_review(study, "P-nobody", targets="L1", reason="x")
    with pytest.raises(InputError, match="nothing to review"):
        record_review(study, pid, reason="x")
    assert review_history(study, pid) == []  # nothing half-recorded
    study.close()


def test_review_command(study: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    from hepavol.cli import main

    pid, root = _pid(study, "SIM-001"), str(study.root)
    study.close()
    assert main(["study", "review", pid, "--exclude", "--study", root]) == 2
    assert "needs a reason" in capsys.readouterr().err
    assert main(["study", "review", pid, "--targets", "L2", "--reason", "L1 is a cyst", "--study", root]) == 0
    out = capsys.readouterr().out
    assert f"{pid}: targets None -> ['L2']" in out
    assert "L1 is a cyst" in out
    assert main(["study", "audit", "--study", root]) == 0
    assert "review" in capsys.readouterr().out


def test_reader_calls_on_non_targets_and_new_lesions_reach_the_next_run(
    study: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    from hepavol.cli import main

    assert run_study(study).computed == 2

    def stored() -> dict:
        return stored_of(pid)

    def stored_of(pid: str) -> dict:
        with study.db.transaction() as session:
            row = session.scalars(
                select(Analysis).join(Patient).where(Patient.pseudonym == pid).order_by(Analysis.id.desc())
            ).first()
            assert row is not None
            date = row.progression_date
            return {**row.result, "progression_date": None if date is None else date.isoformat()}

    def has_non_target(result: dict) -> bool:  # a baseline lesion that is not a target
        return any(not les["target"] and les["measurements"][0] for les in result["lesions"])

    candidates = [_pid(study, sim) for sim in ("SIM-001", "SIM-002")]
    with_nt = [p for p in candidates if has_non_target(stored_of(p))]
    assert with_nt, "the simulated cohort (seed 3) has a patient with non-target lesions"
    pid = with_nt[0]
    before = stored()
    dates = [tp["date"] for tp in before["timepoints"]]
    assert len(dates) >= 3
    assert before["timepoints"][1]["overall_response"] != "PD"
    root = str(study.root)
    argv = ["study", "review", pid, "--non-target", f"{dates[1]}=progression", "--reason", "liver NT grew"]
    assert main([*argv, "--study", root]) == 0
    assert f"recist-marks None -> {{'non_target': {{'{dates[1]}': 'progression'}}, 'new_lesions': {{}}}}" in (
        capsys.readouterr().out
    )
    jobs, _ = plan_run(study)
    assert [j.pseudonym for j in jobs] == [pid]
    assert run_study(study).computed == 1
    after = stored()
    # RECIST 1.1 Table 1: unequivocal progression of non-target disease is PD whatever the targets do
    assert after["timepoints"][1]["overall_response"] == "PD"
    assert after["progression_date"] == dates[1]
    # bad calls are clear errors, nothing stored
    assert main(["study", "review", pid, "--new-lesion", "L1=maybe", "--reason", "x", "--study", root]) == 2
    assert "'L1=maybe' is not --new-lesion L6=CALL with CALL one of equivocal, unequivocal, auto" in (
        capsys.readouterr().err
    )
    # 'auto' removes the call: the automatic analysis is stored already, nothing to run
    argv = ["study", "review", pid, "--non-target", f"{dates[1]}=auto", "--reason", "back to the rule"]
    assert main([*argv, "--study", root]) == 0
    assert plan_run(study)[0] == []
    study.close()


def test_a_lesion_relinked_as_new_is_pd_at_the_next_run(
    study: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    """``study review P --link DATE:L2=new``: RECIST 1.1 Table 1, an (unequivocal) new lesion is PD on its scan."""
    from hepavol.cli import main
    from hepavol.study.models import ImagingStudy, LesionMeasurement, ScanMeasurement

    assert run_study(study).computed == 2
    pid, root = _pid(study, "SIM-001"), str(study.root)

    def stored() -> tuple[dict, str | None, list[str]]:
        """The latest analysis: its result, progression date and the lesion ids of the first follow-up."""
        with study.db.transaction() as session:
            row = session.scalars(
                select(Analysis).join(Patient).where(Patient.pseudonym == pid).order_by(Analysis.id.desc())
            ).first()
            assert row is not None
            date = row.result["timepoints"][1]["date"]
            ids = session.scalars(
                select(LesionMeasurement.lesion_id)
                .join(ScanMeasurement)
                .join(ImagingStudy, ScanMeasurement.study_id == ImagingStudy.id)
                .where(
                    ScanMeasurement.analysis_id == row.id, ImagingStudy.study_date == dt.date.fromisoformat(date)
                )
                .order_by(LesionMeasurement.id)
            ).all()
            progression = None if row.progression_date is None else row.progression_date.isoformat()
            return row.result, progression, list(ids)

    before, _, lesions = stored()
    date = before["timepoints"][1]["date"]
    assert before["timepoints"][1]["overall_response"] != "PD"  # the simulated patient responds at first
    assert before["timepoints"][1]["new_lesion_ids"] == []
    assert lesions, "the first follow-up of SIM-001 shows lesions"
    key = lesions[0]  # the run's own id of that scan's largest lesion, as its lesion table shows
    argv = [
        "study",
        "review",
        pid,
        "--link",
        f"{date}:{key}=new",
        "--reason",
        "not the same lesion",
        "--study",
        root,
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"{pid}: lesion-links None -> {{'{date}': {{'segmentation': '" in out
    assert f"'links': {{'{key}': 'new'}}" in out
    assert [j.pseudonym for j in plan_run(study)[0]] == [pid]
    assert run_study(study).computed == 1
    after, progression, _ = stored()
    assert len(after["timepoints"][1]["new_lesion_ids"]) == 1  # the relinked lesion starts a track that day
    assert after["timepoints"][1]["overall_response"] == "PD"
    assert progression == date
    # malformed links are clear errors, nothing stored
    assert main(["study", "review", pid, "--link", f"{date}:L2", "--reason", "x", "--study", root]) == 2
    assert f"'{date}:L2' is not --link DATE:LESION=TRACK" in capsys.readouterr().err
    assert main(["study", "review", pid, "--link", f"2020-01-01:{key}=L1", "--reason", "x", "--study", root]) == 2
    assert f"link on 2020-01-01: {pid} has no scan that day" in capsys.readouterr().err
    assert main(["study", "review", pid, "--link", f"{date}:L99=new", "--reason", "x", "--study", root]) == 2
    assert (
        f"link on {date}: the scan has no lesion L99 (its lesions, as the run measured" in capsys.readouterr().err
    )
    # auto removes the link: the automatic analysis is stored already, nothing to run
    assert main(["study", "review", pid, "--link", f"{date}:{key}=auto", "--reason", "undo", "--study", root]) == 0
    assert plan_run(study)[0] == []
    study.close()


def test_links_made_on_another_segmentation_are_not_applied() -> None:
    from hepavol.study.review import lesion_links

    stored = {
        "2024-03-01": {"segmentation": "sha256:a", "links": {"L2": "new"}},
        "2024-05-01": {"segmentation": "sha256:b", "links": {"none": "L3"}},
    }
    # 05-01 was segmented again (hash c) since its link was made: ignored, reported as stale
    assert lesion_links(stored, {"2024-03-01": "sha256:a", "2024-05-01": "sha256:c"}) == (
        {"2024-03-01": {"L2": "new"}},
        ["2024-05-01"],
    )


def test_a_second_readers_targets_stay_out_of_the_study(
    study: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    """``study review P --second-reader NAME --targets L2``: stored under NAME, not the study's targets; the sum
    printed is the run's stored long axis of L2 on the same (imported) baseline, rounded half-up to 0.1 mm."""
    from hepavol.cli import main
    from hepavol.study.models import LesionMeasurement, ScanMeasurement

    assert run_study(study).computed == 2
    pid, root = _pid(study, "SIM-001"), str(study.root)
    with study.db.transaction() as session:
        analysis = session.scalar(select(Analysis).join(Patient).where(Patient.pseudonym == pid))
        assert analysis is not None
        targets = list(analysis.targets)
        long_axis = session.scalars(
            select(LesionMeasurement.long_axis_mm)
            .join(ScanMeasurement)
            .where(ScanMeasurement.analysis_id == analysis.id, LesionMeasurement.lesion_id == "L2")
            .order_by(ScanMeasurement.id)
        ).first()
    assert long_axis is not None
    argv = ["study", "review", pid, "--second-reader", "Dr B", "--targets", "L2", "--reason", "L1 is a cyst"]
    assert main([*argv, "--study", root]) == 0
    out = capsys.readouterr().out
    assert f"{pid}: second-read-targets None -> ['L2'] (by Dr B)" in out
    from decimal import ROUND_HALF_UP, Decimal

    expected = Decimal(repr(long_axis)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    assert "Dr B's targets on the baseline " in out
    assert f": L2 (chosen by hand), sum of diameters {expected} mm" in out
    assert plan_run(study)[0] == []  # the study's analysis is not affected
    with study.db.transaction() as session:
        assert session.scalar(select(Analysis.targets).join(Patient).where(Patient.pseudonym == pid)) == targets
    assert main(["study", "review", pid, "--second-reader", "Dr B", "--exclude", "--study", root]) == 2
    assert "--second-reader goes with --targets only" in capsys.readouterr().err
    study.close()
