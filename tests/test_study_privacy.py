"""Privacy of a study (issue 23): no identifying folder or file name in messages, failures or the audit trail,
and a workspace private to its owner whatever the umask.

The export imitates a PACS export whose folders are named after the patients (``DUPONT_JEANNE_MRN4471901/...``);
everything a user or a reader of the database sees is then searched for the names, MRNs and original ids.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import stat
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.validators import truncate

from hepavol.cli import main
from hepavol.study.models import AuditEntry, RunFailure
from hepavol.study.redact import WITHHELD, PathRedactor, scan_labels
from hepavol.study.workspace import find_workspace

# folder name per simulated patient (SIM-008, SIM-010 of the shared simulated cohort of test_study_pipeline)
IDENTIFYING = {"SIM-008": "DUPONT_JEANNE_MRN4471901", "SIM-010": "LEFEVRE_ANNE_MRN4471903"}
FORBIDDEN = ("DUPONT", "JEANNE", "LEFEVRE", "MRN447", "SIM-008", "SIM-010")


@pytest.fixture(scope="module")
def named_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hepavol.simulate import simulate_cohort

    cohort = tmp_path_factory.mktemp("sim") / "cohort"
    simulate_cohort(10, cohort, seed=2, fmt="dicom")
    data = tmp_path_factory.mktemp("export") / "PACS export"  # a space in the path too
    for original, folder in IDENTIFYING.items():
        shutil.copytree(cohort / original, data / folder)
    for name in ("clinical.csv", "treatments.csv"):
        shutil.copy(cohort / name, data / name)
    return data


def _no_identity(text: str, where: str) -> None:
    for word in FORBIDDEN:
        assert word not in text, f"{word!r} appears in {where}: {text[:2000]}"


def test_identifying_folder_names_never_reach_messages_failures_audit_or_exports(
    tmp_path: Path, named_export: Path, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "data"
    shutil.copytree(named_export, data)
    study = tmp_path / "study"
    assert main(["study", "init", str(study)]) == 0
    assert main(["study", "import", str(data), "--study", str(study)]) == 0
    assert main(["study", "import-clinical", str(data / "clinical.csv"), "--treatments", str(data / "treatments.csv"),
                 "--study", str(study)]) == 0  # fmt: skip
    assert main(["study", "eligibility", "--study", str(study)]) == 0
    broken = sorted((data / IDENTIFYING["SIM-010"]).glob("*/seg/SEG.dcm"))[-1]
    truncate(broken, 2000)  # truncated after the import: this patient's run fails
    capsys.readouterr()

    assert main(["study", "run", "--study", str(study), "--no-progress"]) == 1
    run = capsys.readouterr()
    assert "failed: P-" in run.err  # the failure is reported, by pseudonym
    assert "segmentation>" in run.err  # and names the file by its label
    assert main(["study", "status", "--study", str(study)]) == 0
    assert main(["study", "audit", "--study", str(study)]) == 0
    assert main(["study", "export", str(study / "out" / "cohort.csv"), "--study", str(study)]) == 0
    later = capsys.readouterr()
    for name, text in (("run stdout", run.out), ("run stderr", run.err), ("status/audit/export", later.out),
                       ("status/audit/export stderr", later.err)):  # fmt: skip
        _no_identity(text, name)

    ws = find_workspace(study)
    with ws.db.transaction() as session:
        failures = [f.error for f in session.scalars(select(RunFailure))]
        audit = [repr((e.action, e.entity_key, e.details)) for e in session.scalars(select(AuditEntry))]
    ws.close()
    assert len(failures) == 1
    assert "SEG.dcm" not in failures[0] or "<P-" in failures[0]
    for text in failures:
        _no_identity(text, "run_failures")
    for text in audit:
        _no_identity(text, "the audit trail")
    for table in (study / "out").glob("*.csv"):
        _no_identity(table.read_text(), table.name)

    # the owner maps the label in the failure back to the file, on the console only (nothing stored)
    label = re.search(r"<(P-\w+) \d{4}-\d\d-\d\d segmentation>", failures[0])
    assert label is not None, failures[0]
    assert main(["study", "status", "--paths", label[1], "--study", str(study)]) == 0
    shown = capsys.readouterr().out
    row = next(line for line in shown.splitlines() if line.startswith(label[0]))
    assert row.split(None, 3)[-1].strip() == str(broken)
    assert "DUPONT" not in shown  # only the patient asked for
    ws = find_workspace(study)
    with ws.db.transaction() as session:
        assert len(list(session.scalars(select(AuditEntry)))) == len(audit)  # not audited: paths may hold names
    ws.close()
    assert main(["study", "status", "--paths", "P-nobody", "--study", str(study)]) == 2
    assert "no patient P-nobody" in capsys.readouterr().err


def test_a_message_keeps_the_part_below_a_labelled_folder_and_withholds_unknown_paths() -> None:
    labels = scan_labels(
        "P-abc",
        [
            ("2019-03-04", "/x/DUPONT_J/CT1", "/x/DUPONT_J/CT1/seg/SEG.dcm"),
            ("2019-09-02", "/x/DUPONT_J/CT2", None),
        ],
    )
    redactor = PathRedactor(labels, workspace=Path("/study"))
    assert redactor.text("Segmentation '/x/DUPONT_J/CT1/seg/SEG.dcm' does not exist") == (
        "Segmentation '<P-abc 2019-03-04 segmentation>' does not exist"
    )
    assert redactor.text("cannot read /x/DUPONT_J/CT2/IM0007: truncated") == (
        "cannot read <P-abc 2019-09-02 image>/IM0007: truncated"
    )
    assert redactor.text("lock '/x/DUPONT_J/notes.txt'") == "lock '<P-abc>/notes.txt'"  # the patient folder
    assert redactor.text("wrote /study/exports/a.csv") == "wrote <study>/exports/a.csv"
    assert redactor.text("elsewhere '/home/u/MARTIN PAUL/x.dcm' and /tmp/MARTIN/y") == (
        f"elsewhere '{WITHHELD}' and {WITHHELD}"
    )
    # a path that only starts like a labelled one is another file: /x/DUPONT_J is not a folder of /x/DUPONT_JR
    assert redactor.text("'/x/DUPONT_JR/a'") == f"'{WITHHELD}'"
    assert redactor.text("'/x/DUPONT_J/CT10/a'") == "'<P-abc>/CT10/a'"  # CT10 is not CT1, but in the folder


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_workspace_is_private_whatever_the_umask(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    old = os.umask(0o022)  # the usual umask: files 0644, folders 0755
    try:
        shared = tmp_path / "shared"
        shared.mkdir(mode=0o777)
        os.chmod(shared, 0o777)
        study = shared / "study"
        study.mkdir()
        os.chmod(study, 0o755)  # an empty folder that others can read
        assert main(["study", "init", str(study)]) == 0
        err = capsys.readouterr().err
        assert "warning:" in err
        assert "other users" in err
        assert main(["study", "status", "--study", str(study)]) == 0  # opens the database: WAL and SHM appear
        assert _mode(study) == 0o700
        for name in ("hepavol.db", "pseudonym.key", "study.toml"):
            assert _mode(study / name) == 0o600, name
        for extra in ("hepavol.db-wal", "hepavol.db-shm"):
            if (study / extra).exists():
                assert _mode(study / extra) == 0o600, extra
        out = study / "exports"
        assert main(["study", "export", str(out / "cohort.csv"), "--study", str(study)]) == 0
        assert _mode(out) == 0o700
        with (out / "cohort.csv").open(newline="") as f:
            assert next(csv.reader(f))  # a header row
        assert _mode(out / "cohort.csv") == 0o600
    finally:
        os.umask(old)
