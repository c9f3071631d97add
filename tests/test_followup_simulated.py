"""The follow-up demo patient (hepavol.simulate, CT patient index 3 of seed 1) against the simulator's truth.

The simulator (docs/simulate.md) writes per scan a truth instance map (the same lesion id at every scan, whatever
the pose) and the true RECIST 1.1 assessment computed from the analytic lesion sizes. Five scans over 34 months, the
patient posed differently at each; a new lesion at the last scan.
"""

from __future__ import annotations

import datetime
import io
from pathlib import Path

import numpy as np
import pytest

from hepavol.cli._demo_followup import DEMO_PATIENT_INDEX, DEMO_SEED, run_followup_demo
from hepavol.followup import FollowUpResult, run_followup
from hepavol.io import read_image
from hepavol.simulate import sample_patient


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, FollowUpResult]:
    workdir = tmp_path_factory.mktemp("demo")
    out = io.StringIO()
    run_followup_demo(out, workdir)
    manifest = workdir / "followup" / "scans" / "SIM-004" / "manifest.csv"
    return out.getvalue(), manifest, run_followup(manifest, keep_scans=True)


def test_demo_prints_the_table_and_writes_the_report(demo: tuple[str, Path, FollowUpResult]) -> None:
    text, manifest, _ = demo
    assert "$ hepavol follow-up followup/scans/SIM-004/manifest.csv --report followup/report" in text
    assert "best overall response" in text
    report = Path(text.split("report: ")[-1].strip())
    assert report.is_file()
    assert report.read_text().count("data:image/png;base64,") >= 2 + 2 * 5
    assert manifest.is_file()


def test_responses_equal_the_simulator_truth(demo: tuple[str, Path, FollowUpResult]) -> None:
    _, _, result = demo
    truth = sample_patient(DEMO_PATIENT_INDEX, seed=DEMO_SEED, modality="ct").truth
    assert [tp.overall_response for tp in result.timepoints] == [s.overall_response for s in truth.scans]
    assert result.progression_date == truth.progression_date
    assert result.progression_date == datetime.date(2017, 3, 2)
    assert result.timepoints[-1].new_lesion_ids != ()


def test_every_lesion_keeps_its_true_identity(demo: tuple[str, Path, FollowUpResult]) -> None:
    _, manifest, result = demo
    truth_maps = [
        read_image(manifest.parent / "truth" / f"{tp.date.isoformat()}_instances.nii.gz").array
        for tp in result.timepoints
    ]
    identity: dict[str, int] = {}
    for track in result.tracking.tracks:
        seen = set()
        for t in range(track.first_index, len(result.timepoints)):
            lesion_map = result.scans[t].lesion_map.array
            for key in track.keys[t]:
                ids = np.unique(truth_maps[t][lesion_map == int(key[1:])])
                seen |= {int(v) for v in ids if v > 0}
        assert len(seen) == 1, (track.lesion_id, seen)
        identity[track.lesion_id] = seen.pop()
    assert len(set(identity.values())) == len(identity)  # no two tracks share a true lesion
    simulated = sample_patient(DEMO_PATIENT_INDEX, seed=DEMO_SEED, modality="ct").truth
    assert [identity[t] for t in result.targets] == list(simulated.target_ids)
