"""Lesion tracking: matching, chaining, new/disappeared/merged/split lesions on voxelised spheres.

Truth is the construction: each test builds lesions whose identity is known and checks the track of every one.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from hepavol.errors import InputError
from hepavol.tracking import LesionObservation, match_lesions, track_lesions, tracking_uid

SHAPE = (64, 64, 64)  # 1 mm voxels, LPS position = index (identity grid)
_Z, _Y, _X = np.indices(SHAPE)


def blob(key: str, *centres_radii: tuple[tuple[float, float, float], float]) -> LesionObservation:
    """A lesion made of one or more balls (centre in mm = index, radius in mm)."""
    mask = np.zeros(SHAPE, bool)
    for (z, y, x), r in centres_radii:
        mask |= (_Z - z) ** 2 + (_Y - y) ** 2 + (_X - x) ** 2 <= r * r
    idx = np.argwhere(mask)
    return LesionObservation(
        key=key,
        centroid_mm=tuple(float(v) for v in idx.mean(axis=0)),  # type: ignore[arg-type]
        volume_ml=mask.sum() / 1000.0,
        voxels=np.flatnonzero(mask),
    )


def ids(result, t):  # type: ignore[no-untyped-def]
    """{per-scan key: lesion_id} on scan t."""
    return {key: tr.lesion_id for tr in result.tracks for key in tr.keys[t]}


def test_growing_and_shrinking_lesions_keep_their_identity() -> None:
    # Three lesions; on the follow-up they have grown/shrunk and moved by a residual 4 mm; the per-scan ids are
    # shuffled (measure_scan numbers by size, which changes).
    base = [blob("L1", ((20, 20, 20), 8)), blob("L2", ((40, 40, 40), 6)), blob("L3", ((20, 45, 30), 4))]
    fu = [blob("L1", ((44, 40, 40), 9)), blob("L2", ((20, 45, 34), 7)), blob("L3", ((22, 22, 18), 3))]
    result = track_lesions([base, fu], patient_id="P")
    assert ids(result, 1) == {"L1": "L2", "L2": "L3", "L3": "L1"}
    assert [t.status for t in result.tracks] == ["present"] * 3
    assert result.events == ()


def test_optimal_assignment_beats_greedy_nearest() -> None:
    # Two small lesions 10 mm apart, both shifted by +6 mm in x (no overlap left). Greedy nearest-first pairs
    # prev B (x=30) with curr A2 (x=26, d=4) first, leaving A->B2 (16 mm): total 20 mm. The optimal assignment
    # A->A2 (6) + B->B2 (6) = 12 mm is the truth.
    prev = [blob("A", ((30, 30, 20), 1.5)), blob("B", ((30, 30, 30), 1.5))]
    curr = [blob("A2", ((30, 30, 26), 1.5)), blob("B2", ((30, 30, 36), 1.5))]
    m = match_lesions(prev, curr, max_distance_mm=20)
    assert m.matches == ((0, 0), (1, 1))


def test_new_disappeared_and_reappearing_lesions() -> None:
    a0, b0 = blob("L1", ((20, 20, 20), 7)), blob("L2", ((45, 45, 45), 5))
    a1, c1 = blob("L1", ((20, 20, 21), 6)), blob("L2", ((45, 15, 15), 4))  # b gone, c new
    a2, b2, c2 = blob("L1", ((20, 20, 21), 5)), blob("L3", ((45, 45, 46), 3)), blob("L2", ((45, 15, 15), 5))
    result = track_lesions([[a0, b0], [a1, c1], [a2, b2, c2]], patient_id="P")
    assert [t.lesion_id for t in result.tracks] == ["L1", "L2", "L3"]
    l2 = result.track("L2")
    assert l2.keys == (("L2",), (), ("L3",))  # vanished, then back at its place: same identity, not new
    assert result.track("L3").keys == ((), ("L2",), ("L2",))
    assert result.track("L3").status == "new"
    kinds = {(e.timepoint_index, e.kind, e.lesion_id) for e in result.events}
    assert kinds == {(1, "disappeared", "L2"), (1, "new", "L3"), (2, "reappeared", "L2")}


def test_two_lesions_merge_into_one() -> None:
    a0, b0 = blob("L1", ((30, 30, 22), 6)), blob("L2", ((30, 30, 40), 5))
    merged = blob("L1", ((30, 30, 22), 8), ((30, 30, 31), 7), ((30, 30, 40), 7))
    later = blob("L1", ((30, 30, 23), 8), ((30, 30, 32), 8), ((30, 30, 41), 7))
    result = track_lesions([[a0, b0], [merged], [later]], patient_id="P")
    l1, l2 = result.tracks
    assert l1.keys == (("L1",), ("L1",), ("L1",))
    assert l1.status == "present"
    assert l2.keys == (("L2",), (), ())
    assert l2.status == "merged"
    assert l2.merged_into == (None, "L1", "L1")
    assert [(e.timepoint_index, e.kind, e.lesion_id, e.other_lesion_id) for e in result.events] == [
        (1, "merged", "L2", "L1")
    ]


def test_one_lesion_splits_into_fragments_that_stay_on_its_track() -> None:
    whole = blob("L1", ((30, 30, 22), 8), ((30, 30, 31), 7), ((30, 30, 40), 7))
    other = blob("L2", ((10, 10, 10), 4))
    f1, f2 = blob("L1", ((30, 30, 23), 6)), blob("L2", ((30, 30, 40), 5))
    f1b, f2b = blob("L1", ((30, 30, 23), 5)), blob("L2", ((30, 30, 41), 5))
    other1 = blob("L3", ((10, 10, 10), 4))
    result = track_lesions([[whole, other], [f1, f2, other1], [f1b, f2b, other1]], patient_id="P")
    l1, l2 = result.tracks
    assert l1.keys == (("L1",), ("L1", "L2"), ("L1", "L2"))
    assert l1.status == "split"
    assert l2.keys == (("L2",), ("L3",), ("L3",))
    assert [(e.timepoint_index, e.kind, e.lesion_id) for e in result.events] == [(1, "split", "L1")]


def test_max_distance_decides_between_moved_and_new() -> None:
    prev = [blob("L1", ((30, 30, 10), 3))]
    curr = [blob("L1", ((30, 30, 35), 3))]  # 25 mm away, no overlap
    default = track_lesions([prev, curr])
    assert [(t.keys, t.status) for t in default.tracks] == [((("L1",), ()), "disappeared"), (((), ("L1",)), "new")]
    wide = track_lesions([prev, curr], max_distance_mm=30)
    assert [t.keys for t in wide.tracks] == [(("L1",), ("L1",))]


def test_overlap_matches_beyond_the_distance_limit() -> None:
    # A large lesion growing eccentrically: centroid moves 12 mm but the masks overlap, so it matches at 10 mm.
    prev = [blob("L1", ((30, 30, 20), 8))]
    curr = [blob("L1", ((30, 30, 20), 8), ((30, 30, 40), 14))]
    assert match_lesions(prev, curr, max_distance_mm=10).matches == ((0, 0),)


def test_tracking_uid_is_a_stable_dicom_uid() -> None:
    uid = tracking_uid("SIM-001", "L2")
    assert uid == tracking_uid("SIM-001", "L2")
    assert uid != tracking_uid("SIM-001", "L3")
    # DICOM PS3.5 §9.1: digits and dots, at most 64 characters, no leading zero in a component.
    assert len(uid) <= 64
    assert re.fullmatch(r"(0|[1-9]\d*)(\.(0|[1-9]\d*))*", uid)
    result = track_lesions([[blob("L1", ((30, 30, 30), 4))]], patient_id="SIM-001")
    assert result.tracks[0].tracking_uid == tracking_uid("SIM-001", "L1")


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(InputError, match="max_distance_mm must be > 0, but it is 0"):
        match_lesions([], [], max_distance_mm=0)
    with pytest.raises(InputError, match="min_overlap"):
        match_lesions([], [], min_overlap=1.5)
    with pytest.raises(InputError, match="at least a baseline"):
        track_lesions([])
