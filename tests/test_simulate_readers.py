"""The simulator's reader model: known agreement recovered by ``hepavol agreement``; other outputs unchanged."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from hepavol.agreement import analyse_agreement, read_agreement_table
from hepavol.cli import main
from hepavol.simulate import sample_patient
from hepavol.simulate.readers import READER_COLUMNS, default_reads, expected_log_differences, reader_rows
from hepavol.simulate.writer import write_csv

SEED, PATIENTS = 11, 40


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """40 virtual patients read by A, B and A#2 (parameter level), with the true lesion volumes."""
    reads = default_reads(2, repeat=True)
    patients = [sample_patient(i, seed=SEED) for i in range(PATIENTS)]
    path = tmp_path_factory.mktemp("readers") / "readers.csv"
    write_csv([row for p in patients for row in reader_rows(p, reads)], READER_COLUMNS, path)
    truth = {
        (p.patient_id, s.date, f"L{lt.lesion_id}"): lt for p in patients for s in p.truth.scans for lt in s.lesions
    }
    return reads, read_agreement_table(path), truth, patients


def _true_log_volumes(labels: tuple[str, ...], truth: dict) -> np.ndarray:  # type: ignore[type-arg]
    out = []
    for label in labels:
        patient, date, lesion = label.split()
        out.append(math.log(truth[(patient, dt.date.fromisoformat(date), lesion)].true_volume_ml))
    return np.array(out)


def test_inter_reader_lesion_volume_agreement_is_recovered(study) -> None:  # type: ignore[no-untyped-def]
    """Known: ln(V_B/V_A) has mean 3·0.02 = 0.06 and variance 9(0.03² + 0.04²) = 0.0225 (reader model), so
    s_w² = (0.0225 + 0.06²)/2 and wCV = √(exp(s_w²) − 1) = 11.46 %; ICC(3,1) = σ_b²/(σ_b² + 0.0225/2) and
    ICC(2,1) = σ_b²/(σ_b² + 0.06²/2 + 0.0225/2) with σ_b² the variance of the true log volumes of the pairs.
    Each known value lies in hepavol's 95 % CI (ICC, bias) or within 4 standard errors (SD, wCV)."""
    reads, tables, truth, _ = study
    e = expected_log_differences(reads[0], reads[1])
    qa = analyse_agreement(tables["A"], tables["B"]).quantities["lesion_volume_ml"]
    n = qa.n
    assert n > 500
    ba = qa.bland_altman
    assert ba.bias_ci95 is not None
    assert ba.bias_ci95[0] < e["volume_mean"] < ba.bias_ci95[1]
    assert ba.sd == pytest.approx(math.sqrt(e["volume_var"]), rel=4 / math.sqrt(2 * n))
    sw2 = (e["volume_var"] + e["volume_mean"] ** 2) / 2
    known_wcv = 100 * math.sqrt(math.expm1(sw2))
    assert known_wcv == pytest.approx(11.46, abs=0.01)
    assert qa.within.wcv_percent == pytest.approx(known_wcv, rel=4 / math.sqrt(2 * n))
    var_b = float(np.var(_true_log_volumes(qa.labels, truth), ddof=1))
    icc3 = var_b / (var_b + e["volume_var"] / 2)
    icc2 = var_b / (var_b + e["volume_mean"] ** 2 / 2 + e["volume_var"] / 2)
    lo3, hi3 = qa.icc.icc_3_1.ci95 or (0, 0)
    lo2, hi2 = qa.icc.icc_2_1.ci95 or (0, 0)
    assert lo3 < icc3 < hi3
    assert lo2 < icc2 < hi2


def test_long_axis_and_intra_reader_agreement_are_recovered(study) -> None:  # type: ignore[no-untyped-def]
    """Long axis A vs B: ln(L_B/L_A) has mean 0.02 and variance 0.03² + 0.04² + 0.04² + 0.05² = 0.0066, so the
    linear-scale wCV ≈ √((0.0066 + 0.02²)/2) = 5.92 % (first order). A vs A#2 (same reader): volume bias 0
    (in the CI) and SD of ln ratios √(9·2·0.03²) = 0.127."""
    reads, tables, _, _ = study
    e = expected_log_differences(reads[0], reads[1])
    inter = analyse_agreement(tables["A"], tables["B"]).quantities["lesion_long_axis_mm"]
    known = 100 * math.sqrt((e["long_axis_var"] + e["long_axis_mean"] ** 2) / 2)
    assert inter.within.wcv_percent == pytest.approx(known, rel=0.12)
    intra = analyse_agreement(tables["A"], tables["A#2"])
    assert intra.design == "intra-reader"
    ba = intra.quantities["lesion_volume_ml"].bland_altman
    assert ba.bias_ci95 is not None
    assert ba.bias_ci95[0] < 0.0 < ba.bias_ci95[1]
    n = intra.quantities["lesion_volume_ml"].n
    assert ba.sd == pytest.approx(math.sqrt(9 * 2 * 0.03**2), rel=4 / math.sqrt(2 * n))


def test_missed_small_lesions_at_the_known_rate(study) -> None:  # type: ignore[no-untyped-def]
    """Reader B misses a non-target lesion below 10 mm with probability 0.15 and never a target: the observed
    share of such lesions absent from B's table lies in its exact 95 % CI around 0.15."""
    from scipy import stats

    _, tables, _, patients = study
    b = tables["B"]
    eligible = missed = 0
    for p in patients:
        targets = set(p.truth.target_ids)
        for s in p.truth.scans:
            ids = {r.lesion_id for r in b.scans[(p.patient_id, s.date)]}
            for lt in s.lesions:
                name = f"L{lt.lesion_id}"
                if lt.lesion_id in targets:
                    assert name in ids
                elif lt.long_axis_mm < 10.0:
                    eligible += 1
                    missed += name not in ids
    assert eligible > 100
    ci = stats.binomtest(missed, eligible).proportion_ci(method="exact")
    assert ci.low < 0.15 < ci.high


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_simulate_readers_leaves_other_outputs_byte_identical(tmp_path: Path) -> None:
    """``hepavol simulate --readers 2`` adds readers.csv and generator.readers in truth.json; every other file is
    byte-identical to a run without the option (same seed)."""
    plain, with_reads = tmp_path / "plain", tmp_path / "reads"
    assert main(["simulate", "--patients", "1", "--out", str(plain), "--seed", "4", "--quiet"]) == 0
    args = ["simulate", "--patients", "1", "--out", str(with_reads), "--seed", "4", "--quiet", "--readers", "2"]
    assert main(args) == 0
    a, b = _digests(plain), _digests(with_reads)
    extra = set(b) - set(a)
    assert {"readers.csv", "A_segs.csv", "B_segs.csv"} <= extra
    assert all(k.startswith("SIM-001/readers/") for k in extra - {"readers.csv", "A_segs.csv", "B_segs.csv"})
    assert not set(a) - set(b)
    assert {k for k in a if a[k] != b[k]} == {"truth.json"}
    ta = json.loads((plain / "truth.json").read_text())
    tb = json.loads((with_reads / "truth.json").read_text())
    assert [r["name"] for r in tb["generator"].pop("readers")] == ["A", "B"]
    assert ta == tb
    header = (with_reads / "readers.csv").read_text().splitlines()[0]
    assert header == "patient_id,date,reader,lesion_id,volume_ml,long_axis_mm,target"


def test_simulate_readers_option_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["simulate", "--patients", "1", "--out", str(tmp_path / "x"), "--readers", "3"]) == 2
    assert "--readers must be 2" in capsys.readouterr().err
    assert main(["simulate", "--patients", "1", "--out", str(tmp_path / "y"), "--repeat-read"]) == 2
    assert "--repeat-read needs --readers 2" in capsys.readouterr().err


def test_reader_label_maps_follow_the_reads(tmp_path: Path) -> None:
    """Each read's label map of a scan scales the true lesions as its readers.csv row does: B's tumour voxel
    volume over the true mask's equals B's analytic total over the true total within 5 % (voxelisation on the
    2.5 × 2.5 × 5 mm grid); the liver is the true liver; the _segs.csv table points at the maps."""
    import csv

    from hepavol.io import read_image

    out = tmp_path / "sim"
    assert (
        main(["simulate", "--patients", "1", "--out", str(out), "--seed", "4", "--quiet", "--readers", "2"]) == 0
    )
    truth = json.loads((out / "truth.json").read_text())["patients"][0]
    reads = list(csv.DictReader((out / "readers.csv").open()))
    segs = {r["date"]: r["seg"] for r in csv.DictReader((out / "B_segs.csv").open())}
    assert set(segs) == {s["date"] for s in truth["scans"]}
    for scan in truth["scans"]:
        true_map = read_image(out / truth["folder"] / scan["seg"]).array
        b_map = read_image(out / segs[scan["date"]]).array
        assert np.array_equal(true_map > 0, b_map > 0)  # the same liver (tumour inside it)
        voxel_ml = float(np.prod(scan["geometry"]["spacing_mm"])) / 1000.0
        b_mask_ml = int((b_map == 2).sum()) * voxel_ml
        b_ml = sum(float(r["volume_ml"] or 0) for r in reads if r["reader"] == "B" and r["date"] == scan["date"])
        ratio_mask = b_mask_ml / scan["mask_total_tumour_volume_ml"]
        ratio_true = b_ml / scan["total_tumour_volume_ml"]
        assert ratio_mask == pytest.approx(ratio_true, rel=0.05)
