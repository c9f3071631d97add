"""Faults of the machine (issue 23): a full disk, a read-only or damaged database, a folder that cannot be written.

Each gives ``error:`` with exit 2 and the fix, never a traceback or "internal error"; files that form a set (the
three export tables, a cohort's outputs) appear together or not at all; the audit never records a failed command
as a success. A full disk is a real one: a 1 MiB tmpfs filled to the last byte (mounting needs root; the tests
skip where they cannot mount, which CI does not: it runs as root).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from hepavol.cli import main
from hepavol.cohort import simulate_table, write_cohort_table
from hepavol.study.models import AuditEntry
from hepavol.study.workspace import find_workspace


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); run as root")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An empty 4 MiB file system of its own (tmpfs), unmounted afterwards."""
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "4m")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path) -> None:
    """Fill the file system to the last page (tmpfs allocates 4 KiB pages)."""
    with (disk / "filler.bin").open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def _remount_read_only(disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err
    assert "internal error" not in err


@pytest.fixture(scope="module")
def analysed_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study of 2 simulated patients, imported, assessed and run (copied by each test that changes it)."""
    from hepavol.simulate import simulate_cohort

    root = tmp_path_factory.mktemp("faults")
    cohort = root / "cohort"
    simulate_cohort(2, cohort, seed=5, fmt="dicom")
    study = root / "study"
    assert main(["study", "init", str(study)]) == 0
    assert main(["study", "import", str(cohort), "--study", str(study)]) == 0
    assert main(["study", "import-clinical", str(cohort / "clinical.csv"), "--treatments",
                 str(cohort / "treatments.csv"), "--study", str(study)]) == 0  # fmt: skip
    assert main(["study", "eligibility", "--study", str(study)]) == 0
    assert main(["study", "run", "--study", str(study), "--no-progress"]) in (0, 1)
    return study


def _audit_actions(study: Path) -> list[tuple[str, dict]]:
    ws = find_workspace(study)
    with ws.db.transaction() as session:
        rows = [(e.action, dict(e.details)) for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    ws.close()
    return rows


def test_export_to_a_full_disk_leaves_no_table_and_no_audit_entry(
    analysed_study: Path, small_disk: Path, capsys: pytest.CaptureFixture
) -> None:
    out = small_disk / "out"
    out.mkdir()
    _fill(small_disk)
    before = _audit_actions(analysed_study)
    capsys.readouterr()
    assert main(["study", "export", str(out / "cohort.csv"), "--study", str(analysed_study)]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "No space left on device" in err
    assert "disk is full" in err
    assert list(out.iterdir()) == []  # none of the 3 tables, no temporary file
    assert _audit_actions(analysed_study) == before


def test_export_with_a_read_only_database_writes_nothing(
    analysed_study: Path, small_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    study = small_disk / "study"
    shutil.copytree(analysed_study, study)
    _remount_read_only(small_disk)
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["study", "export", str(out / "cohort.csv"), "--study", str(study)]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "read-only" in err or "cannot open the study database" in err, err
    assert not out.exists() or list(out.iterdir()) == []


def test_a_damaged_database_is_named_with_the_fix(
    analysed_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    study = tmp_path / "study"
    shutil.copytree(analysed_study, study)
    db = study / "hepavol.db"
    data = bytearray(db.read_bytes())
    data[100 : len(data)] = b"\xa5" * (len(data) - 100)  # everything after the file header overwritten
    db.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        (study / f"hepavol.db{suffix}").unlink(missing_ok=True)
    capsys.readouterr()
    assert main(["study", "status", "--study", str(study)]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "damaged" in err
    assert "backup" in err


def test_a_run_on_a_full_disk_is_an_error_and_never_recorded_as_a_success(
    analysed_study: Path, small_disk: Path, capsys: pytest.CaptureFixture
) -> None:
    study = small_disk / "study"
    shutil.copytree(analysed_study, study, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    _fill(small_disk)
    capsys.readouterr()
    code = main(["study", "run", "--force", "--study", str(study), "--no-progress"])
    err = capsys.readouterr().err
    _no_traceback(err)
    assert code == 2, err
    assert "full" in err
    (small_disk / "filler.bin").unlink()  # space again, to read the audit
    actions = _audit_actions(study)
    starts = [i for i, (action, _d) in enumerate(actions) if action == "run-start"]
    assert len(starts) in (1, 2)  # the first run's, and the forced run's if the full disk let it be written
    after = [d for action, d in actions[starts[-1] :] if action == "run-end"] if len(starts) == 2 else []
    # the failed run left no end entry (the disk was full) or recorded itself as failed, never as completed
    assert all(d["outcome"] == "failed" for d in after), after
    assert main(["study", "run", "--force", "--study", str(study), "--no-progress"]) == 0  # with space: runs
    assert _audit_actions(study)[-1][1]["outcome"] == "completed"


def test_cohort_outputs_on_a_full_disk_appear_all_or_none(
    small_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    table = tmp_path / "cohort.csv"
    write_cohort_table(simulate_table(40, seed=3), table)
    out = small_disk / "report"
    out.mkdir()
    _fill(small_disk)
    capsys.readouterr()
    assert main(["cohort", str(table), "--out", str(out), "--no-pdf"]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "No space left on device" in err
    assert list(out.iterdir()) == []
    (small_disk / "filler.bin").unlink()
    assert main(["cohort", str(table), "--out", str(out), "--no-pdf"]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"results.json", "derived.csv", "report.html", "figures"} <= names
    assert not any(n.startswith(".cohort-staging-") for n in names)


def test_outputs_into_a_read_only_folder_are_a_clear_error(
    small_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    table = tmp_path / "cohort.csv"
    write_cohort_table(simulate_table(20, seed=4), table)
    _remount_read_only(small_disk)
    capsys.readouterr()
    assert main(["cohort", str(table), "--out", str(small_disk / "x"), "--no-pdf"]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "Read-only file system" in err
    assert "write to another folder" in err


def test_a_run_that_fails_as_a_whole_is_recorded_as_failed(
    analysed_study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from hepavol.errors import InputError
    from hepavol.study import runner

    study = tmp_path / "study"
    shutil.copytree(analysed_study, study)

    def full_disk(*_args: object, **_kwargs: object) -> None:  # storing a result hits a full disk
        raise InputError("the study database sqlite:///x: the disk is full (database or disk is full)")

    monkeypatch.setattr(runner, "store_result", full_disk)
    capsys.readouterr()
    assert main(["study", "run", "--force", "--study", str(study), "--no-progress"]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "disk is full" in err
    action, details = _audit_actions(study)[-1]
    assert action == "run-end"
    assert details["outcome"] == "failed"
    assert "disk is full" in details["error"]
    assert details["computed"] == 0
