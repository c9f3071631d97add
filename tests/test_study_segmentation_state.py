"""Segmentation state: proposed (by hepavol) or accepted (imported, or by a reader); ``study run`` measures
accepted ones, proposals only with ``--accept-proposed``, and says which; ``study status`` counts scans by state;
nothing proposed overwrites or deactivates an accepted mask; a reader accepts through ``study review`` and the app.

The proposals here are the simulator's truth label maps stored as proposals (what ``study segment`` stores is
tested in test_study_segment.py): the figures compared are counts of scans and database states.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import select

from hepavol.errors import InputError
from hepavol.study.clinical_import import import_clinical
from hepavol.study.hashing import hash_path
from hepavol.study.importer import import_scans, import_segmentations
from hepavol.study.models import Analysis, AuditEntry, ImagingStudy, Patient, Segmentation
from hepavol.study.proposals import accept_segmentation, add_proposal, segmentation_state_counts
from hepavol.study.review import record_review
from hepavol.study.runner import plan_run, run_study, scan_input
from hepavol.study.screening import run_eligibility
from hepavol.study.workspace import Workspace, init_workspace


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hepavol.simulate import simulate_cohort

    out = tmp_path_factory.mktemp("state") / "cohort"
    simulate_cohort(1, out, seed=3, modality="ct", size="small")  # SIM-001 is eligible (truth.json)
    return out


def _manifest_without_segs(cohort: Path, folder: Path) -> tuple[Path, list[dict[str, str]]]:
    rows = list(csv.DictReader((cohort / "SIM-001" / "manifest.csv").open()))
    out = folder / "manifest.csv"
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["patient_id", "date", "image"])
        writer.writeheader()
        for row in rows:
            image = (cohort / "SIM-001" / row["image"]).resolve()
            writer.writerow({"patient_id": "SIM-001", "date": row["date"], "image": str(image)})
    return out, rows


@pytest.fixture
def study(tmp_path: Path, cohort: Path) -> tuple[Workspace, str, list[dict[str, str]]]:
    """SIM-001 imported without masks, the truth label maps stored as hepavol's proposals, screened."""
    ws = init_workspace(tmp_path / "study")
    manifest, rows = _manifest_without_segs(cohort, tmp_path)
    import_scans(ws, [manifest], modality="ct")
    import_clinical(ws, cohort / "clinical.csv", treatments_path=cohort / "treatments.csv")
    pid = str(ws.pseudonymiser().pseudonym("SIM-001"))
    segs = {row["date"]: (cohort / "SIM-001" / row["seg"]).resolve() for row in rows}
    with ws.db.transaction() as session:
        for study in session.scalars(select(ImagingStudy).order_by(ImagingStudy.study_date)):
            series = study.series[0]
            path = segs[study.study_date.isoformat()]
            add_proposal(
                session,
                series,
                path=str(path),
                content_hash=hash_path(path),
                liver_label=1,
                tumor_labels=[2],
                provenance={"method": "test", "seeds": []},
                pseudonym=pid,
            )
    run_eligibility(ws)
    return ws, pid, rows


def _counts(ws: Workspace) -> dict[str, int]:
    with ws.db.transaction() as session:
        return segmentation_state_counts(session)


def test_run_measures_proposals_only_when_told_and_records_which(
    study: tuple[Workspace, str, list[dict[str, str]]],
) -> None:
    ws, pid, rows = study
    n = len(rows)
    assert _counts(ws) == {"none": 0, "proposed": n, "accepted": 0, "signed off": 0}
    jobs, summary = plan_run(ws)
    assert jobs == []
    assert summary.eligible == 1  # eligibility was screened on the proposals
    assert "proposed by hepavol study segment and not accepted" in summary.not_ready[0][1]
    assert "--accept-proposed" in summary.not_ready[0][1]

    done = run_study(ws, accept_proposed=True)
    assert (done.computed, done.scans_proposed, done.scans_accepted) == (1, n, 0)
    with ws.db.transaction() as session:
        analysis = session.scalars(select(Analysis)).one()
        assert [s["segmentation_state"] for s in analysis.inputs] == ["proposed"] * n
        start = session.scalars(select(AuditEntry).where(AuditEntry.action == "run-start")).one()
        assert (start.details["accept_proposed"], start.details["scans_proposed"]) == (True, n)

    first = rows[0]["date"]
    assert [a.date.isoformat() for a in accept_segmentation(ws, pid, first, reason="checked")] == [first]
    assert _counts(ws) == {"none": 0, "proposed": n - 1, "accepted": 1, "signed off": 0}
    assert plan_run(ws)[0] == []  # the other scans are still proposals
    with pytest.raises(InputError, match=f"no proposed segmentation on the scan of {first}"):
        accept_segmentation(ws, pid, first)
    assert len(accept_segmentation(ws, pid, "all")) == n - 1
    jobs, summary = plan_run(ws)
    assert [j.pseudonym for j in jobs] == [pid]  # accepted: recomputed, now on accepted masks
    assert run_study(ws).computed == 1
    with ws.db.transaction() as session:
        latest = session.scalars(select(Analysis).order_by(Analysis.id.desc())).first()
        assert latest is not None
        assert [s["segmentation_state"] for s in latest.inputs] == ["accepted"] * n
        seg = session.scalars(select(Segmentation)).first()
        assert seg is not None
        assert seg.accepted_by
        assert seg.accepted_at is not None
    record_review(ws, pid, sign_off="signed")
    assert _counts(ws) == {"none": 0, "proposed": 0, "accepted": 0, "signed off": n}
    with pytest.raises(InputError, match=r"signed off .* accepting its segmentations is locked"):
        accept_segmentation(ws, pid, "all")
    ws.close()


def test_a_proposal_never_overwrites_or_deactivates_an_accepted_mask(
    study: tuple[Workspace, str, list[dict[str, str]]], cohort: Path, tmp_path: Path
) -> None:
    ws, pid, rows = study
    expert = (cohort / "SIM-001" / rows[0]["seg"]).resolve()
    import numpy as np

    from hepavol.io import read_image, write_image

    # an expert mask (one voxel changed, so that it differs from the proposal) imported after the proposal
    labels = read_image(expert)
    array = np.asarray(labels.array).copy()
    array[0, 0, 0] = 1
    expert_path = tmp_path / "expert.nii.gz"
    write_image(labels.with_array(array), expert_path)
    import_segmentations(ws, seg=expert_path, patient_id="SIM-001", date=rows[0]["date"])
    with ws.db.transaction() as session:
        study_row = session.scalars(select(ImagingStudy).order_by(ImagingStudy.study_date)).first()
        assert study_row is not None
        scan, _ = scan_input(study_row)
        assert scan is not None
        assert scan.segmentation_state == "accepted"
        series = study_row.series[0]
        accepted_pk = scan.segmentation_pk
        # a later proposal on that scan (another run of study segment) is stored inactive
        other = tmp_path / "proposal.nii.gz"
        array[0, 0, 1] = 1
        write_image(labels.with_array(array), other)
        seg, new = add_proposal(session, series, path=str(other), content_hash=hash_path(other), liver_label=1,
                                tumor_labels=[2], provenance={"method": "test"}, pseudonym=pid)  # fmt: skip
        assert new
        assert not seg.active
        assert seg.state == "proposed"
    with ws.db.transaction() as session:
        study_row = session.scalars(select(ImagingStudy).order_by(ImagingStudy.study_date)).first()
        assert study_row is not None
        scan, _ = scan_input(study_row, accept_proposed=True)
        assert scan is not None
        assert scan.segmentation_pk == accepted_pk
    assert _counts(ws)["accepted"] == 1
    ws.close()


def test_cli_accept_and_run_say_which(
    study: tuple[Workspace, str, list[dict[str, str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    from hepavol.cli import main

    ws, pid, rows = study
    root = str(ws.root)
    ws.close()
    n = len(rows)
    assert main(["study", "status", "--study", root]) == 0
    assert f"segmentations: 0 none, {n} proposed, 0 accepted, 0 signed off (scans)" in capsys.readouterr().out
    assert main(["study", "run", "--study", root, "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "not ready" in captured.err
    assert "--accept-proposed" in captured.err
    assert main(["study", "run", "--accept-proposed", "--study", root, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"segmentations: 0 scan(s) on accepted segmentations, {n} on segmentations proposed" in out
    day = rows[1]["date"]
    assert main(["study", "review", pid, "--accept-segmentation", day, "--study", root]) == 0
    out = capsys.readouterr().out
    assert f"{pid}: segmentation of {day} accepted" in out
    assert "proposed segmentation accepted" in out  # the review history
    assert main(["study", "review", pid, "--accept-segmentation", "2099-01-01", "--study", root]) == 2
    assert f"{pid} has no scan on 2099-01-01" in capsys.readouterr().err


def test_app_accepts_a_proposal_with_the_reader(study: tuple[Workspace, str, list[dict[str, str]]]) -> None:
    from starlette.testclient import TestClient

    from hepavol.app.server import AppState, create_app

    ws, pid, _rows = study
    state = AppState(ws=ws, reader="Dr Reader")
    client = TestClient(create_app(state), base_url="http://127.0.0.1")
    assert client.get(f"/?token={state.token}", follow_redirects=False).status_code == 303
    csrf = client.get("/api/session").json()["csrf"]
    scans = client.get(f"/api/patients/{pid}").json()["scans"]
    assert {s["segmentation_state"] for s in scans} == {"proposed"}
    url = f"/api/patients/{pid}/scans/{scans[0]['study_pk']}/accept-segmentation"
    assert client.post(url, json={}).status_code == 403  # no CSRF token
    response = client.post(url, json={"reason": "looks right"}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200
    assert response.json()["scans"][0]["segmentation_state"] == "accepted"
    again = client.post(url, json={}, headers={"X-CSRF-Token": csrf})
    assert again.status_code == 400
    assert "no proposed segmentation" in again.json()["error"]
    with ws.db.transaction() as session:
        seg = session.scalars(select(Segmentation).where(Segmentation.state == "accepted")).one()
        assert seg.accepted_by == "Dr Reader"
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "accept-segmentation")).one()
        assert entry.actor == "Dr Reader"
    ws.close()


def test_accepting_for_an_unknown_patient_is_refused(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "empty")
    with pytest.raises(InputError, match="no patient 'P-nobody'"):
        accept_segmentation(ws, "P-nobody", "all")
    with ws.db.transaction() as session:
        assert session.scalars(select(Patient)).all() == []
    ws.close()
