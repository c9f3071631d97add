"""The study workspace end to end on a simulated DICOM cohort: import → eligibility → run → export vs the truth.

Also: a run killed by a real signal and resumed gives the same tables as an uninterrupted run; two runs at once
share the work and store each patient once; a Dask distributed scheduler and workers on loopback give the same
tables; a patient whose files are broken is recorded as failed while the others go on; PostgreSQL gives the same
results as SQLite.

The simulated cohort (``hepavol simulate --format dicom``, seed 2, 10 patients, ~50 scans) is made once per test
session and shared by the pytest-xdist workers (a file lock), then only read.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests._study_helpers import db_url  # noqa: F401  (fixture)
from tests.validators import truncate

from hepavol.cli import main
from hepavol.study.models import Analysis, RunFailure
from hepavol.study.workspace import find_workspace

SEED, N_PATIENTS = 2, 10
# The simulator's exclusion reasons and the criteria codes of hepavol.study.eligibility they correspond to.
REASON_CODES = {
    "invasive liver treatment": "invasive_liver_treatment",
    "systemic chemotherapy": "systemic_therapy",
    "lesions < 10 mm only": "no_measurable_liver_metastasis",
    "insufficient follow-up": "insufficient_follow_up",
}
HEPAVOL = [sys.executable, "-m", "hepavol"]


@pytest.fixture(scope="session")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated DICOM cohort, made once and shared by all test processes."""
    from hepavol.simulate import simulate_cohort

    shared = tmp_path_factory.getbasetemp().parent
    folder = shared / f"study_cohort_dicom_{SEED}_{N_PATIENTS}"
    with open(shared / "study_cohort.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "truth.json").exists():
            shutil.rmtree(folder, ignore_errors=True)
            simulate_cohort(N_PATIENTS, folder, seed=SEED, fmt="dicom")
        fcntl.flock(lock, fcntl.LOCK_UN)
    return folder


def _truth(cohort: Path) -> dict[str, dict]:
    return {p["patient_id"]: p for p in json.loads((cohort / "truth.json").read_text())["patients"]}


def _prepared(tmp_path: Path, cohort: Path, *, db: str | None = None, patients: list[str] | None = None) -> Path:
    """A workspace with the cohort imported (all, or only ``patients``), clinical data and eligibility."""
    study = tmp_path / "study"
    argv_db = ["--db", db] if db else []
    assert main(["study", "init", str(study), *argv_db]) == 0
    roots = [cohort / p for p in patients] if patients else [cohort]
    for root in roots:
        assert main(["study", "import", str(root), "--study", str(study), *argv_db]) == 0
    clinical = ["--treatments", str(cohort / "treatments.csv")]
    assert (
        main(
            ["study", "import-clinical", str(cohort / "clinical.csv"), *clinical, "--study", str(study), *argv_db]
        )
        == 0
    )
    assert main(["study", "eligibility", "--study", str(study), *argv_db]) == 0
    return study


def _export(study: Path, name: str, db: str | None = None) -> dict[str, list[dict[str, str]]]:
    out = study / name
    argv_db = ["--db", db] if db else []
    assert main(["study", "export", str(out / "cohort.csv"), "--study", str(study), *argv_db]) == 0
    tables = {}
    for kind in ("cohort", "cohort_lesions", "cohort_timepoints"):
        with open(out / f"{kind}.csv", newline="") as f:
            tables[kind] = list(csv.DictReader(f))
    return tables


def _pseudonyms(study: Path, db: str | None = None) -> dict[str, str]:
    ws = find_workspace(study, db_url=db)
    p = ws.pseudonymiser()
    ws.close()
    return {f"SIM-{i:03d}": p.pseudonym(f"SIM-{i:03d}") for i in range(1, N_PATIENTS + 1)}


def _check_against_truth(study: Path, cohort: Path, tables: dict, db: str | None = None, subset=None) -> None:
    truth = _truth(cohort)
    names = _pseudonyms(study, db)
    rows = {r["patient_id"]: r for r in tables["cohort"]}
    ws = find_workspace(study, db_url=db)
    from sqlalchemy import select

    from hepavol.study.models import Analysis, Patient
    from hepavol.study.runner import latest_eligibility

    with ws.db.transaction() as session:
        decisions = {
            session.get(Patient, pk).pseudonym: d
            for pk, d in latest_eligibility(session).items()  # type: ignore[union-attr]
        }
        targets = {
            session.get(Patient, a.patient_id).pseudonym: list(a.targets)  # type: ignore[union-attr]
            for a in session.scalars(select(Analysis).order_by(Analysis.id))
        }
    ws.close()
    filled = 0
    for sim_id, t in truth.items():
        if subset is not None and sim_id not in subset:
            continue
        pid = names[sim_id]
        decision = decisions[pid]
        # eligibility decisions equal the simulator's (simulate/patient.py: ineligibility_reasons)
        assert decision.eligible == t["eligible"], (sim_id, decision.reasons, t["ineligibility_reasons"])
        assert {r["code"] for r in decision.reasons} == {REASON_CODES[r] for r in t["ineligibility_reasons"]}
        if not t["eligible"]:
            assert pid not in rows
            continue
        row = rows[pid]
        scans = {s["date"]: s for s in t["scans"]}
        base = scans[row["baseline_date"]]
        assert row["baseline_date"] == t["scans"][0]["date"]
        # volumes equal the truth masks' voxel volumes (truth.json mask_* = voxel count x voxel volume)
        assert float(row["baseline_volume_ml"]) == pytest.approx(base["mask_total_tumour_volume_ml"], rel=1e-9)
        assert float(row["liver_volume_ml"]) == pytest.approx(base["mask_liver_volume_ml"], rel=1e-9)
        early = t["scans"][1]  # the simulator's second scan is its early scan, 91-183 days after baseline
        assert row["early_date"] == early["date"]
        assert float(row["early_volume_ml"]) == pytest.approx(early["mask_total_tumour_volume_ml"], rel=1e-9)
        # RECIST progression equals the simulator's true RECIST 1.1 assessment
        assert row["pfs_event"] == ("1" if t["pfs_event"] else "0"), sim_id
        expected_date = t["progression_date"] or t["scans"][-1]["date"]
        assert row["pfs_date"] == expected_date, sim_id
        assert float(row["ki67_percent"]) == pytest.approx(t["ki67_percent"])
        # issue 22: the RECIST targets' mask volumes summed, and the three largest lesions' long axes summed
        # (the same lesions at the early scan, 0 when one has disappeared), from the simulator's truth masks
        _check_lesion_sums(row, t, base, targets[pid], tables["cohort_lesions"])
        filled += _check_yearly(row, scans, targets[pid], tables)
    # the yearly columns are exercised: some patients have a 12-month scan
    assert subset is not None or filled > 0
    # nothing identifying leaves the workspace: no original id in any exported table
    text = json.dumps(tables)
    assert "SIM-" not in text


def _check_lesion_sums(row: dict[str, str], t: dict, base: dict, targets: list[str], lesions: list[dict]) -> None:
    """The optional cohort columns equal the exported lesion table's values (targets from the analysis) and, at
    baseline, the truth masks' target volumes."""
    at = {(r["date"], r["lesion_id"]): r for r in lesions if r["patient_id"] == row["patient_id"]}
    b0, e0 = row["baseline_date"], row["early_date"]
    assert float(row["baseline_target_volume_ml"]) == pytest.approx(
        sum(float(at[b0, i]["volume_ml"]) for i in targets), rel=1e-9
    )
    assert float(row["early_target_volume_ml"]) == pytest.approx(
        sum(float(at[e0, i]["volume_ml"]) if (e0, i) in at else 0.0 for i in targets), rel=1e-9
    )
    truth = {les["lesion_id"]: les for les in base["lesions"]}
    assert float(row["baseline_target_volume_ml"]) == pytest.approx(
        sum(truth[i]["mask_volume_ml"] for i in t["target_lesion_ids"]), rel=1e-6
    )
    baseline_ids = [lid for (d, lid) in at if d == b0]
    largest = sorted(baseline_ids, key=lambda i: (-float(at[b0, i]["long_axis_mm"]), i))[:3]
    assert float(row["baseline_three_largest_diameter_sum_mm"]) == pytest.approx(
        sum(float(at[b0, i]["long_axis_mm"]) for i in largest), rel=1e-9
    )
    assert float(row["early_three_largest_diameter_sum_mm"]) == pytest.approx(
        sum(float(at[e0, i]["long_axis_mm"]) if (e0, i) in at else 0.0 for i in largest), rel=1e-9
    )


def _check_yearly(row: dict[str, str], scans: dict[str, dict], targets: list[str], tables: dict) -> int:
    """The month12/24/36 columns, worked by hand from the exported scans: the scan nearest to 365.25·k days after
    the baseline within ± 91.3125 days (12 ± 3 months, months = days / 30.4375), its truth-mask volume, and the
    time-point and lesion tables' values of that scan. Returns how many yearly time points are filled."""
    import datetime as dt

    pid = row["patient_id"]
    tps = {r["date"]: r for r in tables["cohort_timepoints"] if r["patient_id"] == pid}
    at = {(r["date"], r["lesion_id"]): r for r in tables["cohort_lesions"] if r["patient_id"] == pid}
    b0 = dt.date.fromisoformat(row["baseline_date"])
    filled = 0
    for k in (1, 2, 3):
        prefix = f"month{12 * k}_"
        offsets = {d: abs((dt.date.fromisoformat(d) - b0).days - 365.25 * k) for d in tps}
        inside = sorted((off, d) for d, off in offsets.items() if off <= 91.3125)
        if not inside:
            assert all(row[prefix + f] == "" for f in ("date", "volume_ml", "lesion_count", "recist_response"))
            continue
        filled += 1
        d = inside[0][1]
        assert row[prefix + "date"] == d
        assert float(row[prefix + "volume_ml"]) == pytest.approx(scans[d]["mask_total_tumour_volume_ml"], rel=1e-9)
        assert float(row[prefix + "lesion_count"]) == float(tps[d]["lesion_count"])
        assert row[prefix + "recist_response"] == tps[d]["overall_response"]
        assert float(row[prefix + "target_volume_ml"]) == pytest.approx(
            sum(float(at[d, i]["volume_ml"]) if (d, i) in at else 0.0 for i in targets), rel=1e-9
        )
    return filled


def test_end_to_end_matches_truth(tmp_path: Path, cohort: Path) -> None:
    study = _prepared(tmp_path, cohort)
    assert main(["study", "run", "--workers", "2", "--study", str(study), "--no-progress"]) == 0
    tables = _export(study, "export")
    _check_against_truth(study, cohort, tables)
    assert any(t["eligible"] is False for t in _truth(cohort).values())  # the cohort tests exclusions too
    assert len(tables["cohort"]) == sum(t["eligible"] for t in _truth(cohort).values())
    # a second run finds nothing to do (inputs unchanged) and the export is the same
    assert main(["study", "run", "--study", str(study), "--no-progress"]) == 0
    assert _export(study, "again") == tables
    # Parquet holds the same table
    import pandas as pd

    assert main(["study", "export", str(study / "c.parquet"), "--study", str(study)]) == 0
    frame = pd.read_parquet(study / "c.parquet")
    assert list(frame["patient_id"]) == [r["patient_id"] for r in tables["cohort"]]
    # the exported table is a valid `hepavol cohort` input
    from hepavol.cohort.table import read_cohort_table

    table = read_cohort_table(study / "export" / "cohort.csv")
    assert len(table) == len(tables["cohort"])
    # ... and its yearly time points are read back (issue 22)
    assert [p.yearly.get("month12_volume_ml") for p in table.patients] == [
        pytest.approx(float(r["month12_volume_ml"])) if r["month12_volume_ml"] else None for r in tables["cohort"]
    ]


def test_end_to_end_on_postgresql(tmp_path: Path, cohort: Path, db_url: str | None) -> None:  # noqa: F811
    subset = ["SIM-003", "SIM-005", "SIM-008"]  # excluded (systemic therapy), excluded (< 10 mm), eligible
    study = _prepared(tmp_path, cohort, db=db_url, patients=subset)
    argv_db = ["--db", db_url] if db_url else []
    assert main(["study", "run", "--study", str(study), "--no-progress", *argv_db]) == 0
    tables = _export(study, "export", db_url)
    _check_against_truth(study, cohort, tables, db_url, subset=subset)
    assert len(tables["cohort"]) == 1


def _workspace_copy(study: Path, name: str) -> Path:
    copy = study.parent / name
    shutil.copytree(study, copy)
    return copy


def _analyses(study: Path) -> tuple[int, int]:
    ws = find_workspace(study)
    with ws.db.transaction() as session:
        n = session.scalar(select(func.count(Analysis.id))) or 0
        patients = session.scalar(select(func.count(func.distinct(Analysis.patient_id)))) or 0
    ws.close()
    return n, patients


def test_killed_run_resumes_to_the_same_result(tmp_path: Path, cohort: Path) -> None:
    subset = ["SIM-001", "SIM-004", "SIM-008", "SIM-010"]  # 4 eligible patients, 15 scans
    study = _prepared(tmp_path, cohort, patients=subset)
    reference = _workspace_copy(study, "reference")
    assert main(["study", "run", "--study", str(reference), "--no-progress"]) == 0
    expected = _export(reference, "export")
    n_eligible = len(expected["cohort"])
    assert n_eligible == 4

    proc = subprocess.Popen([*HEPAVOL, "study", "run", "--study", str(study), "--no-progress"])
    try:
        deadline = time.monotonic() + 300
        while _analyses(study)[0] < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)  # a real signal, uncatchable: no clean-up at all
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done, _ = _analyses(study)
    assert 2 <= done < n_eligible  # stopped halfway
    assert main(["study", "run", "--study", str(study), "--no-progress"]) == 0  # resumes at once (dead lease)
    assert _analyses(study) == (n_eligible, n_eligible)  # every patient exactly once
    assert _export(study, "export") == expected


def test_two_runs_at_once_share_the_work(tmp_path: Path, cohort: Path) -> None:
    subset = ["SIM-001", "SIM-008", "SIM-010"]  # 3 eligible patients, 10 scans
    study = _prepared(tmp_path, cohort, patients=subset)
    reference = _workspace_copy(study, "reference")
    assert main(["study", "run", "--study", str(reference), "--no-progress"]) == 0
    expected = _export(reference, "export")
    runs = [
        subprocess.Popen(
            [*HEPAVOL, "study", "run", "--study", str(study), "--no-progress"], stdout=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0].decode() for p in runs]
    assert [p.returncode for p in runs] == [0, 0], outputs
    n = len(expected["cohort"])
    assert _analyses(study) == (n, n)
    assert _export(study, "export") == expected


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[str]:
    """A real dask.distributed scheduler and one worker (2 processes) on loopback."""
    port_file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", str(port_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(port_file.read_text())["address"]
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "2", "--nthreads", "1",
             "--no-dashboard", "--host", "127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()


def test_run_on_a_dask_cluster(tmp_path: Path, cohort: Path, dask_cluster: str) -> None:
    subset = ["SIM-008", "SIM-010"]  # 2 eligible patients, 6 scans
    study = _prepared(tmp_path, cohort, patients=subset)
    reference = _workspace_copy(study, "reference")
    assert main(["study", "run", "--study", str(reference), "--no-progress"]) == 0
    assert main(["study", "run", "--scheduler", dask_cluster, "--study", str(study), "--no-progress"]) == 0
    assert _export(study, "export") == _export(reference, "export")
    ws = find_workspace(study)
    with ws.db.transaction() as session:
        workers = set(session.scalars(select(Analysis.worker)))
    ws.close()
    pids = {int(w.split(":")[1]) for w in workers if w is not None}
    assert len(pids) == len(workers)
    assert os.getpid() not in pids  # computed in the Dask worker processes, not here


def test_unreachable_scheduler_is_a_clear_error(
    tmp_path: Path, cohort: Path, capsys: pytest.CaptureFixture
) -> None:
    study = _prepared(tmp_path, cohort, patients=["SIM-010"])
    assert main(["study", "run", "--scheduler", "tcp://127.0.0.1:1", "--study", str(study)]) == 2
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:1'" in capsys.readouterr().err


def test_a_failing_patient_is_recorded_and_the_others_go_on(
    tmp_path: Path, cohort: Path, capsys: pytest.CaptureFixture
) -> None:
    # a private copy of two patients, one of which gets a broken segmentation after the import
    data = tmp_path / "data"
    for p in ("SIM-008", "SIM-010"):
        shutil.copytree(cohort / p, data / p)
    for name in ("clinical.csv", "treatments.csv"):
        shutil.copy(cohort / name, data / name)
    study = tmp_path / "study"
    assert main(["study", "init", str(study)]) == 0
    assert main(["study", "import", str(data), "--study", str(study)]) == 0
    assert main(["study", "import-clinical", str(data / "clinical.csv"), "--treatments", str(data / "treatments.csv"),
                 "--study", str(study)]) == 0  # fmt: skip
    assert main(["study", "eligibility", "--study", str(study)]) == 0
    broken = sorted((data / "SIM-010").glob("*/seg/SEG.dcm"))[-1]
    truncate(broken, 2000)  # truncated after the import
    capsys.readouterr()
    assert main(["study", "run", "--study", str(study), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "failed: P-" in captured.err
    assert "analysed now 1" in captured.out
    ws = find_workspace(study)
    with ws.db.transaction() as session:
        failures = session.scalars(select(RunFailure)).all()
        assert len(failures) == 1
        assert "segmentation>" in failures[0].error  # the file, by its label (no patient folder)
        assert session.scalar(select(func.count(Analysis.id))) == 1
    ws.close()
    assert main(["study", "status", "--study", str(study)]) == 0
    assert "1 failed on their current inputs" in capsys.readouterr().out


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_9_of_a_parallel_run_leaves_no_orphan_process(tmp_path: Path, cohort: Path) -> None:
    # issue 23: the forkserver, the resource tracker and the workers (~700 MB) kept running without a parent
    study = _prepared(tmp_path, cohort, patients=["SIM-001", "SIM-004", "SIM-008", "SIM-010"])
    proc = subprocess.Popen([*HEPAVOL, "study", "run", "--workers", "2", "--study", str(study), "--no-progress"])
    try:
        deadline = time.monotonic() + 120
        family: set[int] = set()
        while time.monotonic() < deadline and proc.poll() is None:
            family = _descendants(proc.pid)
            if len(family) >= 4:  # forkserver, resource tracker, 2 workers
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be killed"
        assert len(family) >= 3, family
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(p) for p in family):
        time.sleep(0.2)
    left = sorted(p for p in family if _alive(p))
    for p in left:  # do not leave them to the rest of the suite
        os.kill(p, signal.SIGKILL)
    assert left == [], f"processes left running after kill -9: {left}"


def test_an_mr_follow_up_of_a_ct_patient_is_compared_only_when_study_toml_says_so(
    tmp_path: Path, cohort: Path
) -> None:
    """Issue 22: the registry keeps CT and MR cohorts apart, so by default an MR scan of a patient followed by CT
    is left out of eligibility and of the analysis (with a warning saying how to include it); with
    ``[followup] mixed_modalities = true`` it is a time point of the follow-up and eligibility says that volumes
    are then compared across modalities. SIM-001: 4 CT scans (truth.json), the last one relabelled MR here."""
    from hepavol.study.models import ImagingStudy, Patient
    from hepavol.study.runner import latest_eligibility

    study = _prepared(tmp_path, cohort, patients=["SIM-001"])
    pseudonym = _pseudonyms(study)["SIM-001"]
    ws = find_workspace(study)
    with ws.db.transaction() as session:
        last = session.scalars(select(ImagingStudy).order_by(ImagingStudy.study_date.desc())).first()
        assert last is not None
        last.modality = "MR"
        last_date = last.study_date.isoformat()
    ws.close()

    def timepoints() -> list[str]:
        assert main(["study", "eligibility", "--study", str(study)]) == 0
        assert main(["study", "run", "--study", str(study), "--no-progress"]) == 0
        return sorted(r["date"] for r in _export(study, f"export_{len(list(study.glob('export_*')))}")[
            "cohort_timepoints"])  # fmt: skip

    def warnings() -> list[str]:
        ws = find_workspace(study)
        with ws.db.transaction() as session:
            patient = session.scalars(select(Patient).where(Patient.pseudonym == pseudonym)).one()
            out = list(latest_eligibility(session)[patient.id].warnings or [])
        ws.close()
        return out

    apart = timepoints()
    assert len(apart) == 3
    assert last_date not in apart
    assert any("1 MR scan(s) ignored" in w and "mixed_modalities = true" in w for w in warnings())

    toml = study / "study.toml"
    toml.write_text(toml.read_text().replace("mixed_modalities = false", "mixed_modalities = true"))
    mixed = timepoints()
    assert mixed == sorted([*apart, last_date])
    assert any("1 MR scan(s) compared with the CT baseline" in w for w in warnings())

    toml.write_text(toml.read_text().replace("mixed_modalities = true", 'mixed_modalities = "yes"'))
    assert main(["study", "status", "--study", str(study)]) == 2  # a clear error, no traceback
