"""Follow lesions through time: match the lesions of consecutive scans and chain the matches into tracks.

Inputs are the lesions of each scan as :class:`LesionObservation` s, already in one common frame (normally the
baseline scan's LPS frame after registration, :mod:`hepavol.followup.registration`): a centroid in mm and the
lesion's voxels as flat indices of one common grid (for overlap).

Rules (hepavol's, stated once):

Matching
    Between the lesions of the previous scan (plus the last position of every lesion that has disappeared, so a
    lesion that comes back keeps its identity) and those of the current scan, an optimal one-to-one assignment
    (Hungarian algorithm, :func:`scipy.optimize.linear_sum_assignment`) minimises
    ``cost = 0.5·min(d / max_distance_mm, 1) + 0.5·(1 − Dice)``, where ``d`` is the centroid distance and Dice the
    overlap of the two masks. A pair may match only if its masks overlap or ``d <= max_distance_mm``.
Merge
    A previous lesion left unmatched whose mask overlaps a current lesion (by at least ``min_overlap`` of the
    smaller of the two) has merged into it: its track gets status ``merged`` and no measurement of its own from
    then on (RECIST 1.1: lesions that have coalesced are measured as one; the merged lesion belongs to the track
    it was matched to).
Split
    A current lesion left unmatched that overlaps a previous lesion in the same way is a fragment of that lesion:
    it joins the same track, whose diameters and volumes are the sums over its fragments (RECIST 1.1: the
    longest diameters of the fragments add up).
New
    A current lesion that is neither matched nor a fragment starts a new track.
Disappeared
    A track with no lesion on a scan has volume 0 (and diameters 0) on that scan.

Tracks are numbered ``L1, L2, …`` in the order of the baseline lesions (largest first, as
:func:`hepavol.measurement.measure_scan` numbers them), then new lesions in order of appearance. Each track has a
DICOM TrackingUID made with :func:`pydicom.uid.generate_uid` from the patient id and the lesion id, so a rerun
gives the same UID.

Examples
--------
Two scans of one lesion shifted by 3 mm, and a new lesion far away:

>>> import numpy as np
>>> a = LesionObservation(key="L1", centroid_mm=(0.0, 0.0, 0.0), volume_ml=1.0, voxels=np.arange(10))
>>> b = LesionObservation(key="L1", centroid_mm=(3.0, 0.0, 0.0), volume_ml=1.1, voxels=np.arange(2, 12))
>>> c = LesionObservation(key="L2", centroid_mm=(90.0, 0.0, 0.0), volume_ml=0.5, voxels=np.arange(500, 505))
>>> result = track_lesions([[a], [b, c]], patient_id="P1")
>>> [(t.lesion_id, t.keys, t.status) for t in result.tracks]
[('L1', (('L1',), ('L1',)), 'present'), ('L2', ((), ('L2',)), 'new')]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from hepavol.errors import InputError
from hepavol.geometry import Vec3

__all__ = [
    "LesionMatching",
    "LesionObservation",
    "Track",
    "TrackEvent",
    "TrackingResult",
    "match_lesions",
    "track_lesions",
    "tracking_uid",
]

#: Default largest centroid distance (mm) for two lesions without overlap to be the same lesion.
MAX_DISTANCE_MM = 20.0
#: Default smallest overlap (fraction of the smaller mask) that makes a merge or a split.
MIN_OVERLAP = 0.1
_FORBIDDEN = 1e6


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class LesionObservation:
    """One lesion on one scan, in the common frame.

    Parameters
    ----------
    key : str
        The lesion's id on its own scan (e.g. ``measure_scan``'s ``L3``).
    centroid_mm : tuple of float
        Centroid in the common frame (LPS mm).
    volume_ml : float
        Volume in mL (used to order fragments).
    voxels : ndarray of int
        Flat indices of the lesion's voxels on the common grid (may be empty).
    """

    key: str
    centroid_mm: Vec3
    volume_ml: float
    voxels: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        v = np.unique(np.asarray(self.voxels, dtype=np.int64))
        v.flags.writeable = False
        object.__setattr__(self, "voxels", v)


@dataclass(frozen=True, slots=True, kw_only=True)
class LesionMatching:
    """Matches between a previous and a current set of lesions (indices into the two sequences)."""

    matches: tuple[tuple[int, int], ...]
    merged: tuple[tuple[int, int], ...]  # (previous lesion, current lesion it merged into)
    fragments: tuple[tuple[int, int], ...]  # (previous lesion, current fragment)
    new: tuple[int, ...]
    unmatched_previous: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackEvent:
    """Something that happened to a track at scan ``timepoint_index``: new, disappeared, reappeared, merged, split."""

    timepoint_index: int
    kind: str
    lesion_id: str
    other_lesion_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Track:
    """One lesion followed through time.

    ``keys[t]`` holds the per-scan lesion ids that make up the lesion at scan ``t`` (several for fragments, none
    when absent, merged or not yet seen). ``status`` describes the last scan: ``merged`` (joined another lesion,
    see ``merged_into``), ``disappeared`` (no voxel), ``split`` (in fragments), ``new`` (absent at baseline and
    present now) or ``present``.
    """

    lesion_id: str
    tracking_uid: str
    first_index: int
    keys: tuple[tuple[str, ...], ...]
    status: str
    merged_into: tuple[str | None, ...]

    def present(self, t: int) -> bool:
        """True when the lesion has voxels of its own on scan ``t``."""
        return bool(self.keys[t])


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackingResult:
    """All tracks of one patient and the events between scans."""

    tracks: tuple[Track, ...]
    events: tuple[TrackEvent, ...]

    def track(self, lesion_id: str) -> Track:
        """The track with this ``lesion_id``."""
        for t in self.tracks:
            if t.lesion_id == lesion_id:
                return t
        raise KeyError(lesion_id)

    def track_of(self, t: int, key: str) -> Track:
        """The track holding per-scan lesion ``key`` on scan ``t``."""
        for tr in self.tracks:
            if key in tr.keys[t]:
                return tr
        raise KeyError((t, key))


def tracking_uid(patient_id: str, lesion_id: str) -> str:
    """A DICOM UID for a lesion track, the same for the same patient and lesion id (pydicom ``generate_uid``).

    >>> tracking_uid("P1", "L1") == tracking_uid("P1", "L1"), tracking_uid("P1", "L1") == tracking_uid("P2", "L1")
    (True, False)
    """
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["hepavol-tracking", patient_id, lesion_id]))


def _intersection_counts(
    prev: Sequence[LesionObservation], curr: Sequence[LesionObservation]
) -> NDArray[np.int64]:
    out = np.zeros((len(prev), len(curr)), dtype=np.int64)
    for i, p in enumerate(prev):
        if p.voxels.size == 0:
            continue
        for j, c in enumerate(curr):
            if c.voxels.size and p.voxels[0] <= c.voxels[-1] and c.voxels[0] <= p.voxels[-1]:
                out[i, j] = np.intersect1d(p.voxels, c.voxels, assume_unique=True).size
    return out


def match_lesions(
    previous: Sequence[LesionObservation],
    current: Sequence[LesionObservation],
    *,
    max_distance_mm: float = MAX_DISTANCE_MM,
    min_overlap: float = MIN_OVERLAP,
) -> LesionMatching:
    """Match the lesions of two scans in a common frame (see the module docstring for the rules).

    Parameters
    ----------
    previous, current : sequence of LesionObservation
        The lesions of the earlier and the later scan.
    max_distance_mm : float
        Largest centroid distance (mm) at which two lesions whose masks do not overlap can be the same lesion.
    min_overlap : float
        Smallest overlap, as a fraction of the smaller mask, that makes an unmatched lesion a merge or a split.

    Returns
    -------
    LesionMatching
    """
    if max_distance_mm <= 0:
        raise InputError(f"max_distance_mm must be > 0, but it is {max_distance_mm}")
    if not 0 < min_overlap <= 1:
        raise InputError(f"min_overlap must be within (0, 1], but it is {min_overlap}")
    from scipy.optimize import linear_sum_assignment

    n, m = len(previous), len(current)
    inter = _intersection_counts(previous, current)
    size_p = np.array([p.voxels.size for p in previous], dtype=float)
    size_c = np.array([c.voxels.size for c in current], dtype=float)
    matches: list[tuple[int, int]] = []
    if n and m:
        cp = np.array([p.centroid_mm for p in previous], dtype=float)
        cc = np.array([c.centroid_mm for c in current], dtype=float)
        dist = np.linalg.norm(cp[:, None, :] - cc[None, :, :], axis=2)
        denom = size_p[:, None] + size_c[None, :]
        dice = np.divide(2.0 * inter, denom, out=np.zeros_like(dist), where=denom > 0)
        cost = 0.5 * np.minimum(dist / max_distance_mm, 1.0) + 0.5 * (1.0 - dice)
        allowed = (inter > 0) | (dist <= max_distance_mm)
        cost = np.where(allowed, cost, _FORBIDDEN)
        rows, cols = linear_sum_assignment(cost)
        matches = [(int(r), int(c)) for r, c in zip(rows, cols) if allowed[r, c]]
    matched_p = {i for i, _ in matches}
    matched_c = {j for _, j in matches}

    def significant(i: int, j: int) -> bool:
        smaller = min(size_p[i], size_c[j])
        return smaller > 0 and inter[i, j] >= min_overlap * smaller

    merged: list[tuple[int, int]] = []
    for i in range(n):
        if i in matched_p:
            continue
        candidates = [j for j in range(m) if significant(i, j)]
        if candidates:
            merged.append((i, max(candidates, key=lambda j: inter[i, j])))
    fragments: list[tuple[int, int]] = []
    for j in range(m):
        if j in matched_c:
            continue
        candidates = [i for i in range(n) if significant(i, j) and i in matched_p]
        if candidates:
            fragments.append((max(candidates, key=lambda i: inter[i, j]), j))
    fragment_c = {j for _, j in fragments}
    merged_p = {i for i, _ in merged}
    return LesionMatching(
        matches=tuple(sorted(matches)),
        merged=tuple(merged),
        fragments=tuple(fragments),
        new=tuple(j for j in range(m) if j not in matched_c and j not in fragment_c),
        unmatched_previous=tuple(i for i in range(n) if i not in matched_p and i not in merged_p),
    )


def track_lesions(
    timepoints: Sequence[Sequence[LesionObservation]],
    *,
    patient_id: str = "",
    max_distance_mm: float = MAX_DISTANCE_MM,
    min_overlap: float = MIN_OVERLAP,
) -> TrackingResult:
    """Chain the lesions of successive scans (baseline first) into tracks.

    Parameters
    ----------
    timepoints : sequence of sequences of LesionObservation
        The lesions of each scan in date order, in one common frame; baseline first, largest lesion first.
    patient_id : str
        Enters the TrackingUIDs.
    max_distance_mm, min_overlap : float
        See :func:`match_lesions`.

    Returns
    -------
    TrackingResult
    """
    if not timepoints:
        raise InputError("no scans to track lesions on; give at least a baseline")
    n_t = len(timepoints)
    keys: list[list[list[str]]] = []  # per track, per scan
    merged_into: list[list[str | None]] = []
    first: list[int] = []
    last_obs: list[list[LesionObservation]] = []  # each track's lesions on the last scan that showed it
    events: list[TrackEvent] = []

    def lesion_id(k: int) -> str:
        return f"L{k + 1}"

    def new_track(t: int) -> int:
        keys.append([[] for _ in range(n_t)])
        merged_into.append([None] * n_t)
        first.append(t)
        last_obs.append([])
        return len(keys) - 1

    for obs in timepoints[0]:
        k = new_track(0)
        keys[k][0].append(obs.key)
        last_obs[k] = [obs]
    for t in range(1, n_t):
        # Candidates: every lesion of each track on the previous scan, or its last position if it has gone.
        candidates = [(k, o) for k in range(len(keys)) if merged_into[k][t - 1] is None for o in last_obs[k]]
        current = list(timepoints[t])
        matching = match_lesions(
            [o for _, o in candidates], current, max_distance_mm=max_distance_mm, min_overlap=min_overlap
        )
        owner: dict[int, int] = {}
        for i, j in (*matching.matches, *matching.fragments):
            owner[j] = candidates[i][0]
        for j in matching.new:
            owner[j] = new_track(t)
            events.append(TrackEvent(timepoint_index=t, kind="new", lesion_id=lesion_id(owner[j])))
        for j in sorted(owner):
            keys[owner[j]][t].append(current[j].key)
        for i, j in matching.merged:
            k = candidates[i][0]
            if owner[j] == k or merged_into[k][t] is not None or keys[k][t]:
                continue  # fragments of one lesion joining again, or another fragment of k lives on
            merged_into[k][t] = lesion_id(owner[j])
            events.append(
                TrackEvent(
                    timepoint_index=t, kind="merged", lesion_id=lesion_id(k), other_lesion_id=lesion_id(owner[j])
                )
            )
        for k in range(len(keys)):
            if first[k] == t:
                last_obs[k] = [current[j] for j, kk in owner.items() if kk == k]
                continue
            if merged_into[k][t - 1] is not None:
                merged_into[k][t] = merged_into[k][t - 1]
            here = [current[j] for j, kk in owner.items() if kk == k]
            if here:
                last_obs[k] = here
                if len(here) > len(keys[k][t - 1]) > 0:
                    events.append(TrackEvent(timepoint_index=t, kind="split", lesion_id=lesion_id(k)))
                if not keys[k][t - 1] and merged_into[k][t - 1] is None:
                    events.append(TrackEvent(timepoint_index=t, kind="reappeared", lesion_id=lesion_id(k)))
            elif keys[k][t - 1] and merged_into[k][t] is None:
                events.append(TrackEvent(timepoint_index=t, kind="disappeared", lesion_id=lesion_id(k)))
    tracks = []
    last = n_t - 1
    for k in range(len(keys)):
        if merged_into[k][last] is not None:
            status = "merged"
        elif not keys[k][last]:
            status = "disappeared"
        elif first[k] > 0:
            status = "new"
        elif len(keys[k][last]) > 1:
            status = "split"
        else:
            status = "present"
        tracks.append(
            Track(
                lesion_id=lesion_id(k),
                tracking_uid=tracking_uid(patient_id, lesion_id(k)),
                first_index=first[k],
                keys=tuple(tuple(ks) for ks in keys[k]),
                status=status,
                merged_into=tuple(merged_into[k]),
            )
        )
    return TrackingResult(tracks=tuple(tracks), events=tuple(events))
