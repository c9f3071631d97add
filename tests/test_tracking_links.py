"""A reader's links over the automatic tracking (hepavol.tracking, issue 17): merge, split, new, disappeared.

Lesions are small synthetic observations (centroids in mm, voxels as flat indices, as in the module's doctest); the
expected tracks follow from the rules in the module docstring by hand: a link decides the tracks and lesions it
names on its scan, everything else is matched automatically, and later scans are matched to the relinked tracks.
"""

from __future__ import annotations

import numpy as np
import pytest

from hepavol.errors import InputError
from hepavol.tracking import LesionObservation, TrackingResult, parse_link, track_lesions


def obs(key: str, x: float, start: int, n: int = 10) -> LesionObservation:
    return LesionObservation(
        key=key, centroid_mm=(x, 0.0, 0.0), volume_ml=n / 10, voxels=np.arange(start, start + n)
    )


# baseline: L1 at x=0 (voxels 0-9), L2 at x=50 (voxels 500-509); automatic matching keeps each where it is
BASE = [obs("L1", 0.0, 0), obs("L2", 50.0, 500)]
SAME = [obs("L1", 1.0, 1), obs("L2", 51.0, 501)]


def keys(result: TrackingResult) -> dict[str, tuple[tuple[str, ...], ...]]:
    return {t.lesion_id: t.keys for t in result.tracks}


def test_without_links_the_lesions_keep_their_tracks() -> None:
    assert keys(track_lesions([BASE, SAME])) == {"L1": (("L1",), ("L1",)), "L2": (("L2",), ("L2",))}


def test_a_swap_by_the_reader_is_kept_on_later_scans() -> None:
    # scan 1: the reader swaps the two; scan 2 (no link) is matched to the relinked tracks: L1 follows x=51
    result = track_lesions([BASE, SAME, SAME], links={1: {"L1": "L2", "L2": "L1"}})
    assert keys(result) == {"L1": (("L1",), ("L2",), ("L2",)), "L2": (("L2",), ("L1",), ("L1",))}
    assert all(t.status == "present" for t in result.tracks)


def test_new_makes_a_track_and_the_old_one_disappears() -> None:
    # the scan's L2 is a new lesion: track L2 is left without candidates (x=50 is 49 mm from L1's x=1): gone
    result = track_lesions([BASE, SAME], links={1: {"L2": "new"}})
    assert keys(result) == {"L1": (("L1",), ("L1",)), "L2": (("L2",), ()), "L3": ((), ("L2",))}
    assert [(t.lesion_id, t.status) for t in result.tracks] == [
        ("L1", "present"),
        ("L2", "disappeared"),
        ("L3", "new"),
    ]
    assert [(e.kind, e.lesion_id, e.by_reader) for e in result.events] == [
        ("new", "L3", True),
        ("disappeared", "L2", False),
    ]


def test_none_says_a_track_has_no_lesion_and_its_match_becomes_new() -> None:
    result = track_lesions([BASE, SAME], links={1: {"none": "L2"}})
    assert keys(result) == {"L1": (("L1",), ("L1",)), "L2": (("L2",), ()), "L3": ((), ("L2",))}


def test_merge_lasts_until_a_link_gives_the_track_a_lesion_again() -> None:
    # scan 1: one lesion over both (voxels 0-509, x=25); the reader says it is L2 and L1 coalesced, measured on L2
    # (automatically it would be L1's by the smaller distance, 25 mm each, then the index).
    # scan 2 (no link): L1 stays merged into L2. scan 3: two lesions again, the reader gives the left one to L1;
    # the right one matches L2 by overlap.
    one = [obs("L1", 25.0, 0, 510)]
    two = [obs("L1", 2.0, 2), obs("L2", 52.0, 502)]
    result = track_lesions([BASE, one, one, two], links={1: {"L1": "L2+L1"}, 3: {"L1": "L1"}})
    l1, l2 = result.tracks
    assert l1.keys == (("L1",), (), (), ("L1",))
    assert l1.merged_into == (None, "L2", "L2", None)
    assert l2.keys == (("L2",), ("L1",), ("L1",), ("L2",))
    assert l2.merged_into == (None, None, None, None)
    assert (l1.status, l2.status) == ("present", "present")
    merged = [e for e in result.events if e.kind == "merged"]
    assert [(e.timepoint_index, e.lesion_id, e.other_lesion_id, e.by_reader) for e in merged] == [
        (1, "L1", "L2", True)
    ]


def test_two_lesions_on_one_track_are_its_fragments() -> None:
    # the scan's L2 (far from L1) is a fragment of L1 by the reader: L1 in two fragments (split); L2 gone
    result = track_lesions([BASE, SAME], links={1: {"L1": "L1", "L2": "L1"}})
    assert keys(result) == {"L1": (("L1",), ("L1", "L2")), "L2": (("L2",), ())}
    assert [t.status for t in result.tracks] == ["split", "disappeared"]


@pytest.mark.parametrize(
    ("links", "message"),
    [
        ({0: {"L1": "L2"}}, r"links on 2024-01-01: .* the baseline's lesions are each their own track"),
        ({1: {"L7": "L1"}}, r"link 'L7=L1' on 2024-03-01: the scan has no lesion L7 \(its lesions: L1, L2\)"),
        (
            {1: {"L1": "L3"}},
            r"link 'L1=L3' on 2024-03-01: there is no track L3 before this scan \(tracks: L1, L2\)",
        ),
        ({1: {"L1": "L1+L2", "none": "L2"}}, r"links 'L1=L1\+L2' and 'none=L2' on 2024-03-01 both name track L2"),
        ({1: {"none": "L1", "L2": "L1"}}, r"link 'L2=L1' on 2024-03-01 gives track L1 a lesion, but 'none=L1'"),
        ({1: {"L1": "L1+L1"}}, r"link 'L1=L1\+L1': the value must be a track"),
    ],
)
def test_bad_links_are_clear_errors(links: dict[int, dict[str, str]], message: str) -> None:
    with pytest.raises(InputError, match=message):
        track_lesions([BASE, SAME], links=links, scan_names=["2024-01-01", "2024-03-01"])


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("lesion", "L1", "'lesion' is not a lesion of the scan"), ("none", "new", "'none' takes the tracks"),
     ("L1", "L0", "the value must be a track")],
)  # fmt: skip
def test_parse_link_refuses_malformed_links(key: str, value: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_link(key, value)
