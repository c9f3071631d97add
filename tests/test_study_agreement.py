"""Per-reader reads in a study workspace: ``study import-seg --reader`` → ``study run`` → ``study agreement`` /
``study export --reader``, on a simulated two-reader study (``hepavol simulate --readers 2 --repeat-read``).

Independent paths: ``study agreement``'s results.json equals ``hepavol agreement`` on its own reads.csv; the reader
model's known agreement (:func:`hepavol.simulate.readers.expected_log_differences`) is recovered from the label
maps; a reader's exported tumour volume equals the tumour voxels of that reader's label map counted here.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from hepavol.cli import EXIT_USER_ERROR, main
from hepavol.simulate.readers import DEFAULT_READERS, expected_log_differences

SEED, PATIENTS = 3, 3


def _study(study: Path, *args: str) -> int:
    return main(["study", *args, "--study", str(study)])


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("agreement_cohort") / "sim"
    args = ["simulate", "--patients", str(PATIENTS), "--out", str(out), "--seed", str(SEED), "--quiet"]
    assert main([*args, "--readers", "2", "--repeat-read"]) == 0
    return out


@pytest.fixture(scope="module")
def one_reader(tmp_path_factory: pytest.TempPathFactory, cohort: Path) -> Path:
    """The study's own read only (the simulator's true masks), eligibility assessed and run."""
    study = tmp_path_factory.mktemp("agreement_one") / "study"
    assert main(["study", "init", str(study)]) == 0
    manifests = [str(p) for p in sorted(cohort.glob("SIM-*/manifest.csv"))]
    assert _study(study, "import-scans", *manifests, "--modality", "ct") == 0
    clinical = [str(cohort / "clinical.csv"), "--treatments", str(cohort / "treatments.csv")]
    assert _study(study, "import-clinical", *clinical) == 0
    assert _study(study, "eligibility") == 0
    assert _study(study, "run") == 0
    return study


def _copy(study: Path, dest: Path) -> Path:
    shutil.copytree(study, dest)
    return dest


@pytest.fixture(scope="module")
def readers(tmp_path_factory: pytest.TempPathFactory, one_reader: Path, cohort: Path) -> Path:
    """The same study with readers A, B and A#2 imported (import-seg --reader), then run again."""
    study = _copy(one_reader, tmp_path_factory.mktemp("agreement_two") / "study")
    for name, table in (("A", "A_segs.csv"), ("B", "B_segs.csv"), ("A#2", "A_2_segs.csv")):
        assert _study(study, "import-seg", str(cohort / table), "--reader", name) == 0
    return study


def _json(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(path.read_text())


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_reader_imports_leave_the_study_read_unchanged(
    readers: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Masks imported with --reader are that reader's versions: study run finds nothing new to measure in the
    study's own read (it measures the readers' reads: test_study_run_stores_each_readers_analysis)."""
    study = _copy(readers, tmp_path / "study")
    capsys.readouterr()
    assert _study(study, "run") == 0
    assert "analysed now 0" in capsys.readouterr().out


def _analyses(study: Path) -> dict[tuple[str, str | None], list[tuple[int, str]]]:
    """(pseudonym, reader) → [(analysis id, input hash)] of every stored analysis."""
    import sqlalchemy as sa

    from hepavol.study.models import Analysis, Patient
    from hepavol.study.workspace import find_workspace

    ws = find_workspace(study)
    out: dict[tuple[str, str | None], list[tuple[int, str]]] = {}
    with ws.db.transaction() as session:
        query = sa.select(Patient.pseudonym, Analysis.reader, Analysis.id, Analysis.input_hash).join(Patient)
        for pseudonym, reader, pk, digest in session.execute(query.order_by(Analysis.id)):
            out.setdefault((pseudonym, reader), []).append((pk, digest))
    ws.close()
    return out


def _export(study: Path, dest: Path, reader: str) -> dict[str, bytes]:
    assert _study(study, "export", str(dest / "cohort.csv"), "--reader", reader) == 0
    return {p.name: p.read_bytes() for p in sorted(dest.iterdir())}


def test_study_run_stores_each_readers_analysis(
    readers: Path, cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``study run`` stores every named reader's analysis (``analyses.reader``) beside the study's own; the
    reader's exported tables and agreement from those stored analyses are byte-for-byte those measured on the fly
    before the run; a second run computes nothing; a new segmentation of one reader's scan recomputes that
    reader's analysis of that patient only."""
    from hepavol.io import read_image, write_image
    from hepavol.volume import Volume

    study = _copy(readers, tmp_path / "study")
    eligible = sorted({p for p, r in _analyses(study) if r is None})
    assert len(eligible) == PATIENTS - _ineligible(study)
    capsys.readouterr()
    on_the_fly = _export(study, tmp_path / "fly", "B")
    assert len(on_the_fly["cohort.csv"].decode().splitlines()) == 1 + len(eligible)
    assert f"reader B: {len(eligible)} patient(s) measured now, their stored analysis was not up to date" in (
        capsys.readouterr().err
    )
    agree = ["agreement", "--readers", "A,B", "--no-pdf", "--out"]
    assert _study(study, *agree, str(tmp_path / "agr_fly")) == 0
    study_read = _analyses(study)

    capsys.readouterr()
    assert _study(study, "run") == 0
    out = capsys.readouterr().out
    n = 3 * len(eligible)  # readers A, A#2 and B read every scan of the simulated study
    assert "analysed now 0" in out
    assert f"reader analyses (A, A#2, B): computed now {n}, already up to date 0" in out
    stored = _analyses(study)
    assert {k: v for k, v in stored.items() if k[1] is None} == study_read  # the study's own read unchanged
    assert sorted(k for k in stored if k[1] is not None) == sorted(
        (p, r) for p in eligible for r in ("A", "A#2", "B")
    )
    assert all(len(v) == 1 for v in stored.values())

    capsys.readouterr()
    assert _export(study, tmp_path / "stored", "B") == on_the_fly
    assert _study(study, *agree, str(tmp_path / "agr_stored")) == 0
    assert "measured now" not in capsys.readouterr().err
    assert _json(tmp_path / "agr_stored" / "results.json") == _json(tmp_path / "agr_fly" / "results.json")
    assert (tmp_path / "agr_stored" / "reads.csv").read_bytes() == (
        tmp_path / "agr_fly" / "reads.csv"
    ).read_bytes()

    assert _study(study, "run") == 0
    assert f"reader analyses (A, A#2, B): computed now 0, already up to date {n}" in capsys.readouterr().out
    assert _analyses(study) == stored

    # reader B segments one patient's baseline again (one tumour voxel less): only that analysis is new
    pseudonyms = _pseudonyms(study)
    first = eligible[0]
    baseline = min(r["date"] for r in _rows(cohort / "B_segs.csv") if r["patient_id"] == pseudonyms[first])
    row = next(
        r for r in _rows(cohort / "B_segs.csv") if r["patient_id"] == pseudonyms[first] and r["date"] == baseline
    )
    seg = read_image(cohort / row["seg"])
    array = np.array(seg.array)
    array[tuple(np.argwhere(array == 2)[0])] = 1
    edited = write_image(Volume(array, seg.geometry), tmp_path / "b_edited.nii.gz")
    args = ["import-seg", str(edited), "--patient", pseudonyms[first], "--date", baseline, "--reader", "B"]
    assert _study(study, *args) == 0
    capsys.readouterr()
    assert _study(study, "run") == 0
    assert f"reader analyses (A, A#2, B): computed now 1, already up to date {n - 1}" in capsys.readouterr().out
    after = _analyses(study)
    assert {k: v for k, v in after.items() if k != (first, "B")} == {
        k: v for k, v in stored.items() if k != (first, "B")
    }
    assert after[(first, "B")][0] == stored[(first, "B")][0]  # the earlier analysis is kept (history)
    assert len(after[(first, "B")]) == 2


def test_study_agreement_equals_hepavol_agreement_on_its_table(readers: Path, tmp_path: Path) -> None:
    """results.json of ``study agreement`` = results.json of ``hepavol agreement DIR/reads.csv`` (the same
    analysis reached from the table alone); the issue's keys are there; both readers read every scan."""
    out = tmp_path / "agr"
    assert _study(readers, "agreement", "--readers", "A,B", "--out", str(out), "--no-pdf") == 0
    table = out / "reads.csv"
    assert table.read_text().splitlines()[0] == "patient_id,date,reader,lesion_id,volume_ml,long_axis_mm,target"
    assert main(["agreement", str(table), "--readers", "A,B", "--out", str(tmp_path / "ind"), "--no-pdf"]) == 0
    mine, independent = _json(out / "results.json"), _json(tmp_path / "ind" / "results.json")
    assert mine == independent
    for key in ("total_tumor_volume_ml", "sum_of_diameters_mm", "volume_change_percent", "sld_change_percent"):
        assert {"icc_2_1", "icc_3_1", "bland_altman", "wcv", "repeatability_coefficient"} <= set(mine[key])
        assert set(mine[key]["icc_2_1"]) >= {"value", "ci95"}
        assert set(mine[key]["bland_altman"]) >= {"bias", "loa95"}
    assert mine["readers"] == {"first": "A", "second": "B"}
    assert mine["counts"]["patients"] == PATIENTS - _ineligible(readers)
    assert mine["counts"]["scans_read_by_first_only"] == mine["counts"]["scans_read_by_second_only"] == 0
    assert (out / "report.html").is_file()
    assert (out / "pairs.csv").is_file()


def _ineligible(study: Path) -> int:
    from hepavol.study.runner import latest_eligibility
    from hepavol.study.workspace import find_workspace

    ws = find_workspace(study)
    with ws.db.transaction() as session:
        n = sum(1 for d in latest_eligibility(session).values() if not d.eligible)
    ws.close()
    return n


def test_known_inter_and_intra_reader_agreement_is_recovered(readers: Path, tmp_path: Path) -> None:
    """Reader model (simulate/readers.py): ln(V_B/V_A) of a lesion has mean 3·(0.02 − 0) = 0.06 and variance
    9·(0.03² + 0.04²) = 0.0225; A vs A#2 mean 0 and variance 9·2·0.03² = 0.0162. Measured here on the readers'
    label maps (voxelised, measured by study run's code): each known mean lies in the bias's 95 % CI and each
    known SD within 4 standard errors (SE of an SD ≈ SD/√(2n)), as in test_simulate_readers.py."""
    e = expected_log_differences(DEFAULT_READERS[0], DEFAULT_READERS[1])
    assert (e["volume_mean"], e["volume_var"]) == pytest.approx((0.06, 0.0225))
    assert _study(readers, "agreement", "--readers", "A,B", "--out", str(tmp_path / "inter"), "--no-pdf") == 0
    assert _study(readers, "agreement", "--repeat", "A", "--out", str(tmp_path / "intra"), "--no-pdf") == 0
    for name, mean, var in (("inter", e["volume_mean"], e["volume_var"]), ("intra", 0.0, 9 * 2 * 0.03**2)):
        res = _json(tmp_path / name / "results.json")
        ba = res["lesion_volume_ml"]["bland_altman"]
        n = ba["n"]
        assert n >= 20, name
        assert ba["bias_ci95"][0] < mean < ba["bias_ci95"][1], name
        assert ba["sd_of_differences"] == pytest.approx(math.sqrt(var), rel=4 / math.sqrt(2 * n)), name
    assert _json(tmp_path / "intra" / "results.json")["design"] == "intra-reader"
    assert _json(tmp_path / "inter" / "results.json")["design"] == "inter-reader"


def test_export_per_reader_and_primary_reader(readers: Path, cohort: Path, tmp_path: Path) -> None:
    """``study export --reader B``: B's baseline tumour volume = the tumour voxels (label 2) of B's baseline label
    map × the voxel volume, counted here with numpy; without --reader the export follows [readers] primary_reader
    (B here), and ``--reader study`` is the study's own read (stored analyses, the true masks: other volumes)."""
    from hepavol.io import read_image

    study = _copy(readers, tmp_path / "study")
    assert _study(study, "export", str(tmp_path / "b" / "cohort.csv"), "--reader", "B") == 0
    assert _study(study, "export", str(tmp_path / "own" / "cohort.csv"), "--reader", "study") == 0
    config = study / "study.toml"
    text = config.read_text(encoding="utf-8")
    assert '# primary_reader = "study"' in text  # the template documents the setting
    config.write_text(text.replace('# primary_reader = "study"', 'primary_reader = "B"'), encoding="utf-8")
    assert _study(study, "export", str(tmp_path / "primary" / "cohort.csv")) == 0
    b, own = _rows(tmp_path / "b" / "cohort.csv"), _rows(tmp_path / "own" / "cohort.csv")
    assert (tmp_path / "primary" / "cohort.csv").read_bytes() == (tmp_path / "b" / "cohort.csv").read_bytes()
    assert [r["patient_id"] for r in b] == [r["patient_id"] for r in own]
    assert [r["baseline_volume_ml"] for r in b] != [r["baseline_volume_ml"] for r in own]
    segs = {(r["patient_id"], r["date"]): r["seg"] for r in _rows(cohort / "B_segs.csv")}
    pseudonyms = _pseudonyms(study)
    for row in b:
        original = pseudonyms[row["patient_id"]]
        image = read_image(cohort / segs[(original, row["baseline_date"])])
        voxel_ml = float(np.prod(image.geometry.spacing_mm)) / 1000.0
        assert float(row["baseline_volume_ml"]) == pytest.approx(int((image.array == 2).sum()) * voxel_ml)


def _pseudonyms(study: Path) -> dict[str, str]:
    from hepavol.study.workspace import find_workspace

    ws = find_workspace(study)
    p = ws.pseudonymiser()
    ws.close()
    return {p.pseudonym(f"SIM-{i:03d}"): f"SIM-{i:03d}" for i in range(1, PATIENTS + 1)}


def _error(capsys: pytest.CaptureFixture[str], study: Path, *args: str) -> str:
    capsys.readouterr()
    assert _study(study, *args) == EXIT_USER_ERROR
    return capsys.readouterr().err


def test_one_reader_only(one_reader: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, one_reader, "agreement", "--out", str(tmp_path / "x"))
    assert (
        "error: this study has one reader only (study): agreement needs a second read of the same scans. Import a "
        "second reader's masks with hepavol study import-seg TABLE --reader NAME, or read blinded in the review "
        "app (hepavol study serve --blinded --reader NAME)." in err
    )
    assert not (tmp_path / "x").exists()


def test_unknown_reader_and_bad_choices(readers: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "x")
    err = _error(capsys, readers, "agreement", "--readers", "A,C", "--out", out)
    assert (
        "error: --readers: unknown reader 'C'; the readers of this study are study, A, A#2, B ('study' is the "
        "study's own read). Check the spelling, or import that reader's masks with hepavol study import-seg "
        "--reader NAME." in err
    )
    err = _error(capsys, readers, "agreement", "--out", out)
    assert "error: this study has 4 readers (study, A, A#2, B); choose two with --readers A,B" in err
    err = _error(capsys, readers, "agreement", "--repeat", "B", "--out", out)
    assert "error: --repeat B: no repeated read 'B#2' in this study" in err
    err = _error(capsys, readers, "export", str(tmp_path / "c.csv"), "--reader", "C")
    assert "error: --reader: unknown reader 'C'; the readers of this study are study, A, A#2, B" in err
    assert not (tmp_path / "x").exists()


def test_import_seg_reader_name_checks(
    one_reader: Path, cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """'study' names the study's own read; masks identical to another read's are refused."""
    study = _copy(one_reader, tmp_path / "study")
    err = _error(capsys, study, "import-seg", str(cohort / "B_segs.csv"), "--reader", "study")
    assert "error: reader name 'study' is the study's own read" in err
    assert _study(study, "import-seg", str(cohort / "B_segs.csv"), "--reader", "B") == 0
    err = _error(capsys, study, "import-seg", str(cohort / "B_segs.csv"), "--reader", "C")
    assert "is identical to one already in reader B's read" in err
    assert "it cannot also be reader C's read" in err


def test_no_common_scans(
    one_reader: Path, cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reader C read only SIM-001's scans, reader D only SIM-002's: no scan in common."""
    study = _copy(one_reader, tmp_path / "study")
    for reader, source, patient in (("C", "A_segs.csv", "SIM-001"), ("D", "B_segs.csv", "SIM-002")):
        for row in _rows(cohort / source):
            if row["patient_id"] == patient:
                seg = str(cohort / row["seg"])
                args = ["import-seg", seg, "--patient", patient, "--date", row["date"], "--reader", reader]
                assert _study(study, *args) == 0
    err = _error(capsys, study, "agreement", "--readers", "C,D", "--out", str(tmp_path / "x"))
    assert "error: readers 'C' (" in err
    assert (
        "have no scan in common: agreement needs the same scans read by both. Import the second reader's " in err
    )


def test_a_blinded_readers_own_targets_make_their_sum_of_diameters(
    readers: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """B chooses one target (``study review --second-reader B --targets L1``, L1 = the largest lesion of B's
    baseline segmentation): B's baseline rows in reads.csv mark exactly one target, whose long axis is B's
    baseline sum of diameters as second_read_targets gives it; A keeps the automatic targets (2 largest)."""
    from hepavol.study.second_reads import second_read_targets
    from hepavol.study.workspace import find_workspace

    study = _copy(readers, tmp_path / "study")
    pid = sorted(_pseudonyms(study))[0]
    ws = find_workspace(study)
    before = second_read_targets(ws, pid, "B")
    ws.close()
    # the fixture is deterministic (simulate --seed 3): its first patient has at least 2 measurable lesions
    assert len([x for x in before.lesions if x["measurable"]]) >= 2
    assert _study(study, "review", pid, "--second-reader", "B", "--targets", "L1", "--reason", "one target") == 0
    ws = find_workspace(study)
    chosen = second_read_targets(ws, pid, "B")
    ws.close()
    assert chosen.targets == ["L1"]
    assert _study(study, "agreement", "--readers", "A,B", "--out", str(tmp_path / "agr"), "--no-pdf") == 0
    rows = [r for r in _rows(tmp_path / "agr" / "reads.csv") if r["patient_id"] == pid]
    baseline = min(r["date"] for r in rows)
    b = [r for r in rows if r["reader"] == "B" and r["date"] == baseline and r["target"] == "yes"]
    a = [r for r in rows if r["reader"] == "A" and r["date"] == baseline and r["target"] == "yes"]
    assert len(b) == 1
    assert len(a) == 2
    assert round(float(b[0]["long_axis_mm"]), 1) == pytest.approx(chosen.sum_of_diameters_mm)


def test_a_readers_analysis_is_never_the_patients(readers: Path, tmp_path: Path) -> None:
    """With the study's own analysis of a patient removed and the readers' stored, the worklist says 'never run'
    (not 'to redo'), the review view has no current analysis, and export leaves the patient out as not analysed:
    no query that picks the patient's analysis takes a reader's."""
    import sqlalchemy as sa

    from hepavol.study import reading
    from hepavol.study.export import export_tables
    from hepavol.study.models import Analysis, Patient
    from hepavol.study.runner import delete_analysis
    from hepavol.study.workspace import find_workspace

    study = _copy(readers, tmp_path / "study")
    assert _study(study, "run") == 0
    ws = find_workspace(study)
    with ws.db.transaction() as session:
        pid, pk = session.execute(
            sa.select(Patient.pseudonym, Analysis.id).join(Patient).where(Analysis.reader.is_(None)).limit(1)
        ).one()
        readers_of_pid = session.scalar(
            sa.select(sa.func.count(Analysis.id))
            .join(Patient)
            .where(Patient.pseudonym == pid, Analysis.reader.is_not(None))
        )
        delete_analysis(session, pk)
    assert readers_of_pid == 3
    row = next(r for r in reading.worklist(ws) if r.pseudonym == pid)
    assert (row.analysis, row.best_overall_response) == (reading.NEVER, None)
    assert reading.patient_read(ws, pid).targets == []
    summary = export_tables(ws, tmp_path / "out" / "cohort.csv", reader="study")
    ws.close()
    assert (pid, "not analysed (run hepavol study run)") in summary.left_out


def test_export_writes_the_reader_agreement_beside_the_tables(
    readers: Path, one_reader: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a second reader, ``study export`` writes ``<stem>_agreement.json`` beside the three tables: byte for
    byte the results.json of ``study agreement --readers B,A``; with several readers to choose from or one reader
    only, it writes none and says why (and removes an earlier one, which would describe another read);
    ``hepavol cohort`` on the exported table takes its repeatability from it and says so."""
    study = _copy(readers, tmp_path / "study")
    assert _study(study, "run") == 0
    out = tmp_path / "out"
    capsys.readouterr()
    assert _study(study, "export", str(out / "cohort.csv"), "--reader", "B", "--agreement-with", "A") == 0
    said = capsys.readouterr().out
    assert f"exported {PATIENTS - _ineligible(study)} patient(s): " in said
    assert (
        f"reader agreement of B and A (as hepavol study agreement --readers B,A): {out / 'cohort_agreement.json'}; "
        f"hepavol cohort {out / 'cohort.csv'} uses it" in said
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "cohort.csv", "cohort_agreement.json", "cohort_lesions.csv", "cohort_timepoints.csv"]  # fmt: skip
    assert _study(study, "agreement", "--readers", "B,A", "--out", str(tmp_path / "agr"), "--no-pdf") == 0
    assert (out / "cohort_agreement.json").read_bytes() == (tmp_path / "agr" / "results.json").read_bytes()
    assert _json(out / "cohort_agreement.json")["readers"] == {"first": "B", "second": "A"}

    capsys.readouterr()
    assert (
        main(["cohort", str(out / "cohort.csv"), "--out", str(tmp_path / "c"), "--bootstrap", "0", "--no-pdf"])
        == 0
    )
    said = capsys.readouterr().out
    wcv = _json(out / "cohort_agreement.json")["total_tumor_volume_ml"]["wcv"]["value"]
    assert (
        f"repeatability: within-patient CV {wcv:.2f} % of the total tumour volume from the reader agreement"
        in said
    )
    source = _json(tmp_path / "c" / "results.json")["head_to_head"]["repeatability"]["source"]
    assert (source["file"], source["wcv_percent"]) == (str(out / "cohort_agreement.json"), wcv)
    assert (
        source["agreement"]["quantities"]["total_tumor_volume_ml"]["icc_2_1"]["value"]
        == (_json(out / "cohort_agreement.json")["total_tumor_volume_ml"]["icc_2_1"]["value"])
    )
    assert "<h3>Reader agreement</h3>" in (tmp_path / "c" / "report.html").read_text()

    capsys.readouterr()
    assert _study(study, "export", str(out / "cohort.csv"), "--reader", "B") == 0
    said = capsys.readouterr()
    assert (
        "no reader agreement written: the study has 2 other readers besides B (study, A): choose one with "
        "--agreement-with NAME" in said.out
    )
    assert "removed the earlier cohort_agreement.json: it described another read than this export's" in said.err
    assert not (out / "cohort_agreement.json").exists()
    err = _error(capsys, study, "export", str(tmp_path / "x.csv"), "--reader", "B", "--agreement-with", "B")
    assert "error: --agreement-with B: that is the exported read itself; give the other reader." in err

    alone = _copy(one_reader, tmp_path / "alone")
    capsys.readouterr()
    assert _study(alone, "export", str(tmp_path / "one" / "cohort.csv")) == 0
    assert "no reader agreement written: the study has one reader only (study)" in capsys.readouterr().out
    assert not (tmp_path / "one" / "cohort_agreement.json").exists()


def test_reader_analyses_on_postgresql(cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same two-reader flow on PostgreSQL (skipped without a server unless make test requires it): study run
    stores each reader's analysis; a second run computes none; export --reader B from the stored analyses equals
    the one measured on the fly before the run, and its <stem>_agreement.json equals study agreement's."""
    from tests._study_helpers import fresh_postgres_database

    with fresh_postgres_database() as url:
        monkeypatch.setenv("HEPAVOL_DB", url)
        study = tmp_path / "study"
        assert main(["study", "init", str(study)]) == 0
        manifests = [str(p) for p in sorted(cohort.glob("SIM-*/manifest.csv"))]
        assert _study(study, "import-scans", *manifests, "--modality", "ct") == 0
        clinical = [str(cohort / "clinical.csv"), "--treatments", str(cohort / "treatments.csv")]
        assert _study(study, "import-clinical", *clinical) == 0
        assert _study(study, "eligibility") == 0
        for name, table in (("A", "A_segs.csv"), ("B", "B_segs.csv")):
            assert _study(study, "import-seg", str(cohort / table), "--reader", name) == 0
        # the study's own read is the true masks: A and B are the two others; B against A by choice
        on_the_fly = _export(study, tmp_path / "fly", "B")
        assert _study(study, "run") == 0
        stored = _analyses(study)
        eligible = sorted({p for p, r in stored if r is None})
        assert sorted(k for k in stored if k[1] is not None) == sorted(
            (p, r) for p in eligible for r in ("A", "B")
        )
        assert _study(study, "run") == 0
        assert _analyses(study) == stored
        out = tmp_path / "stored"
        assert _study(study, "export", str(out / "cohort.csv"), "--reader", "B", "--agreement-with", "A") == 0
        assert (out / "cohort.csv").read_bytes() == on_the_fly["cohort.csv"]
        assert (out / "cohort_lesions.csv").read_bytes() == on_the_fly["cohort_lesions.csv"]
        assert _study(study, "agreement", "--readers", "B,A", "--out", str(tmp_path / "agr"), "--no-pdf") == 0
        assert (out / "cohort_agreement.json").read_bytes() == (tmp_path / "agr" / "results.json").read_bytes()
