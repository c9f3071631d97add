"""``run_followup`` on a longitudinal phantom whose truth is known (tests/_followup_helpers.py).

Scenario (body frame; the patient is shifted by 20-45 mm and rotated by up to 4 degrees at every follow-up):

======  ==========  ==========  ==========  ==========
lesion  2024-01-01  2024-03-01  2024-05-01  2024-07-01
======  ==========  ==========  ==========  ==========
A       r 15        r 8         r 8         r 9
B       r 10        r 6         r 6         r 7
C       r 7         r 4         gone        gone
D       r 5         r 5         r 5         merged with E (two balls r 9, 16 mm apart)
E       r 4.5       r 4.5       r 4.5       (merged into D)
F       -           -           r 5 (new)   r 6
======  ==========  ==========  ==========  ==========

Hand computation of the truth (RECIST 1.1, SCIENCE.md §1.3-1.5; LD = 2r; volumes in units of 4/3·π mm³ = r³):

- Targets: the two largest measurable, A (30 mm) and B (20 mm). Baseline sum 50 mm.
- 03-01: sum 16 + 12 = 28 mm, -44 % vs baseline: target PR. Non-targets C+D+E = 64 + 125 + 91.1 = 280.1 vs
  baseline 343 + 125 + 91.1 = 559.1: present. No new lesion. Overall **PR**.
  TTV 512 + 216 + 280.1 = 1008.1 vs 3375 + 1000 + 559.1 = 4934.1: -79.6 %, below -65 %: volumetric **PR**.
- 05-01: sum 28 mm = nadir: target PR (maintained). Non-targets 0 + 125 + 91.1 = 216.1, nadir 280.1: present.
  New lesion F: overall **PD** (first PD: progression date). Volumetric: new lesion, **PD**.
- 07-01: sum 18 + 14 = 32 mm vs nadir 28 mm (+14 %, +4 mm): not PD, target PR. Non-targets: D and E merged,
  2·729 minus their lens (π(4·9 + 16)(2·9 − 16)²/12 mm³ = 13.0 r³) = 1445 vs nadir 216.1 (+569 % >= 73 %):
  unequivocal progression. New lesion F still there. Overall **PD**; volumetric **PD** (new lesion).
- Best overall response PR (before the first PD).
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import numpy as np
import pytest
from tests._followup_helpers import DATES, LESIONS, POSES, PhantomLesion, Pose, render, write_patient

from hepavol.followup import FollowUpResult, run_followup
from hepavol.response.growth import DAYS_PER_MONTH
from hepavol.tracking import tracking_uid

BALL = 4.0 / 3.0 * math.pi / 1000.0  # mL per r³ (r in mm)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> FollowUpResult:
    manifest = write_patient(tmp_path_factory.mktemp("phantom"))
    return run_followup(manifest, keep_scans=True)


def truth_names(result: FollowUpResult, t: int, keys: tuple[str, ...]) -> set[str]:
    """Names of the truth lesions under the per-scan lesions ``keys`` of scan ``t``."""
    instances = render(t)[2].array
    lesion_map = result.scans[t].lesion_map.array
    names = set()
    for key in keys:
        values = np.unique(instances[lesion_map == int(key[1:])])
        names |= {LESIONS[v - 1].name for v in values if v > 0}
    return names


def test_every_lesion_is_tracked_to_its_identity(result: FollowUpResult) -> None:
    expected = {  # lesion_id -> truth lesion(s) at each scan (None: not yet seen; set(): no voxel of its own)
        "L1": [{"A"}, {"A"}, {"A"}, {"A"}],
        "L2": [{"B"}, {"B"}, {"B"}, {"B"}],
        "L3": [{"C"}, {"C"}, set(), set()],
        "L4": [{"D"}, {"D"}, {"D"}, {"D", "E"}],
        "L5": [{"E"}, {"E"}, {"E"}, set()],
        "L6": [None, None, {"F"}, {"F"}],
    }
    tracks = {t.lesion_id: t for t in result.tracking.tracks}
    assert set(tracks) == set(expected)
    for lesion_id, per_scan in expected.items():
        track = tracks[lesion_id]
        for t, names in enumerate(per_scan):
            if names is None:
                assert t < track.first_index
            else:
                assert truth_names(result, t, track.keys[t]) == names, (lesion_id, t)
    statuses = {lesion.lesion_id: lesion.status for lesion in result.lesions}
    assert statuses == {
        "L1": "present",
        "L2": "present",
        "L3": "disappeared",
        "L4": "present",
        "L5": "merged",
        "L6": "new",
    }
    assert tracks["L5"].merged_into == (None, None, None, "L4")
    for lesion in result.lesions:
        assert lesion.tracking_uid == tracking_uid("PHANTOM-1", lesion.lesion_id)


def test_responses_equal_the_hand_computed_truth(result: FollowUpResult) -> None:
    assert result.targets == ("L1", "L2")
    tps = result.timepoints
    assert [tp.overall_response for tp in tps] == [None, "PR", "PD", "PD"]
    assert [tp.target_response for tp in tps] == [None, "PR", "PR", "PR"]
    assert [tp.non_target_status for tp in tps] == ["present", "present", "present", "progression"]
    assert [tp.volumetric_response for tp in tps] == [None, "PR", "PD", "PD"]
    assert [tp.new_lesion_ids for tp in tps] == [(), (), ("L6",), ()]
    assert [tp.gone_lesion_ids for tp in tps] == [(), (), ("L3",), ()]
    assert [tp.lesion_count for tp in tps] == [5, 5, 5, 4]
    assert result.best_overall_response == "PR"
    assert result.progression_date == datetime.date(2024, 5, 1)


def test_measurements_follow_the_truth(result: FollowUpResult) -> None:
    lesions = {lesion.lesion_id: lesion for lesion in result.lesions}
    radii = {"L1": LESIONS[0].radii_mm, "L2": LESIONS[1].radii_mm}
    for lesion_id, rs in radii.items():
        for point, r in zip(lesions[lesion_id].points, rs):
            # Pixel-edge long axis of a voxelised ball: from 2r up to about two pixels (2.5 mm) more.
            assert 2 * r - 1.0 <= point.long_axis_mm <= 2 * r + 5.0, (lesion_id, point)
    # Truth total tumour volume (sum of r³ per scan, module docstring) and the measured one.
    truth_ttv = [sum(les.radii_mm[t] ** 3 for les in LESIONS[:3]) for t in range(4)]
    truth_ttv = [v + 125 + 91.125 for v in truth_ttv[:3]] + [truth_ttv[3] + 1445.0]
    truth_ttv = [v + LESIONS[5].radii_mm[t] ** 3 for t, v in enumerate(truth_ttv)]
    for tp, v in zip(result.timepoints, truth_ttv):
        assert tp.total_tumor_volume_ml == pytest.approx(v * BALL, rel=0.12)
    t1 = result.timepoints[1]
    assert t1.volume_change_from_baseline_percent == pytest.approx(100 * (truth_ttv[1] / truth_ttv[0] - 1), abs=3)
    # TGR (Ferte 2014) of the truth volumes, 60 days: 100·((V1/V0)^(1/months) − 1).
    months = (DATES[1] - DATES[0]).days / DAYS_PER_MONTH
    truth_tgr = 100 * ((truth_ttv[1] / truth_ttv[0]) ** (1 / months) - 1)
    assert t1.tgr_volume_percent_per_month == pytest.approx(truth_tgr, abs=3)
    # Consistency of the JSON sums with the RECIST engine's view: baseline sum is the two targets' long axes.
    base = [lesions[k].points[0].long_axis_mm for k in ("L1", "L2")]
    assert result.timepoints[0].sum_of_diameters_mm == pytest.approx(sum(round(v, 1) for v in base), abs=1e-9)


def test_registration_recovers_each_pose(result: FollowUpResult) -> None:
    liver = render(0)[1].array > 0
    pts = result.scans[0].image.geometry.index_to_lps(np.argwhere(liver)[::20])
    for t in range(1, 4):
        reg = result.timepoints[t].registration
        truth = POSES[t].matrix
        error = np.linalg.norm(reg.to_followup(pts) - (pts @ truth[:3, :3].T + truth[:3, 3]), axis=1)
        assert error.max() < 2.0, (t, error.max())  # voxels are 2.5 x 2.5 x 5 mm
        assert reg.dice_before < 0.7
        assert reg.dice_after > 0.95
        assert reg.warnings == ()


def test_centroids_are_in_the_baseline_frame(result: FollowUpResult) -> None:
    # The baseline pose is the identity, so the baseline frame is the body frame of the truth.
    lesions = {lesion.lesion_id: lesion for lesion in result.lesions}
    for lesion_id, truth in (("L1", LESIONS[0]), ("L2", LESIONS[1]), ("L6", LESIONS[5])):
        for point in lesions[lesion_id].points:
            assert point.centroid_mm is not None
            assert np.linalg.norm(np.subtract(point.centroid_mm, truth.centre_mm)) < 2.0, (lesion_id, point)


def test_json_has_exactly_the_issue_keys(result: FollowUpResult) -> None:
    d = result.to_dict()
    assert list(d) == ["patient_id", "targets", "registration", "lesions", "timepoints"]
    assert d["patient_id"] == "PHANTOM-1"
    assert set(d["lesions"][0]) == {"lesion_id", "tracking_uid", "status", "target", "measurements"}
    assert set(d["lesions"][0]["measurements"][0]) == {
        "date",
        "volume_ml",
        "long_axis_mm",
        "short_axis_mm",
        "centroid_mm",
    }
    assert set(d["timepoints"][0]) == {
        "date",
        "total_tumor_volume_ml",
        "lesion_count",
        "new_lesion_ids",
        "sum_of_diameters_mm",
        "overall_response",
        "volume_change_from_baseline_percent",
        "volumetric_response",
        "tgr_recist_percent_per_month",
        "tgr_volume_percent_per_month",
        "tgr_recist_percent_per_month_vs_previous",
        "tgr_volume_percent_per_month_vs_previous",
    }
    base = d["timepoints"][0]
    assert base["overall_response"] is None
    assert base["volumetric_response"] is None
    assert base["tgr_volume_percent_per_month"] is None
    gone = next(les for les in d["lesions"] if les["lesion_id"] == "L3")
    assert gone["measurements"][2] == {
        "date": "2024-05-01",
        "volume_ml": 0.0,
        "long_axis_mm": 0.0,
        "short_axis_mm": 0.0,
        "centroid_mm": None,
    }
    new = next(les for les in d["lesions"] if les["lesion_id"] == "L6")
    assert [m["date"] for m in new["measurements"]] == ["2024-05-01", "2024-07-01"]
    assert [r["kind"] for r in d["registration"]] == ["identity", "rigid", "rigid", "rigid"]


SPLIT_MERGE = (
    PhantomLesion("A", (30.0, 0.0, 0.0), (12.0, 0.0, 0.0)),
    PhantomLesion("A1", (22.0, 0.0, 0.0), (0.0, 6.0, 10.5)),  # A splits into A1 and A2 ...
    PhantomLesion("A2", (40.0, 0.0, 0.0), (0.0, 6.0, 10.5)),
    PhantomLesion("B", (-10.0, 0.0, 0.0), (8.0, 8.0, 10.5)),
    PhantomLesion("M", (5.0, 0.0, 0.0), (0.0, 0.0, 10.5)),  # ... and everything coalesces at the third scan
)
SPLIT_MERGE_POSES = (
    POSES[0],
    Pose((1.0, 0.0, 2.0), (20.0, -10.0, 5.0)),
    Pose((0.0, 2.0, -2.0), (-25.0, 15.0, 0.0)),
)


def test_fragments_add_up_and_merged_targets_are_measured_once(tmp_path: Path) -> None:
    """RECIST 1.1 (SCIENCE.md §1.2): a fragmented lesion's LDs add up; coalesced lesions are measured as one.

    Truth: targets A (24 mm) and B (16 mm), sum 40. Scan 2: A in two fragments of 12 mm, B 16: sum 40, SD.
    Scan 3: one blob from x = -20.5 to 50.5 mm (71 mm), both targets in it: sum 71 vs nadir 40 (+78 %): PD.
    """
    manifest = write_patient(tmp_path, scans=3, lesions=SPLIT_MERGE, poses=SPLIT_MERGE_POSES)
    result = run_followup(manifest, keep_scans=True)
    assert result.targets == ("L1", "L2")
    a, b = result.tracking.tracks
    assert len(a.keys[1]) == 2  # A's two fragments on scan 2
    assert b.keys[1] != ()
    kinds = [(e.timepoint_index, e.kind) for e in result.tracking.events]
    assert (1, "split") in kinds
    assert (2, "merged") in kinds
    assert {a.status, b.status} == {"merged", "present"}

    def ld(t: int, keys: tuple[str, ...]) -> float:
        return sum(les.long_axis_mm for les in result.scans[t].measurement.lesions if les.lesion_id in keys)

    def d1(v: float) -> float:  # RECIST values are rounded half-up to 0.1 mm before summing
        return math.floor(v * 10 + 0.5) / 10

    sums = [tp.sum_of_diameters_mm for tp in result.timepoints]
    assert sums[1] == pytest.approx(d1(ld(1, a.keys[1])) + d1(ld(1, b.keys[1])), abs=1e-9)
    blob = result.scans[2].measurement.lesions
    assert len(blob) == 1
    assert sums[2] == pytest.approx(d1(blob[0].long_axis_mm), abs=1e-9)
    assert 40 - 1 <= sums[1] <= 40 + 10  # truth 40 mm; the mesh maximum adds ~1 pixel per lesion
    assert 71 - 1 <= sums[2] <= 71 + 5
    assert [tp.overall_response for tp in result.timepoints] == [None, "SD", "PD"]
