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
Reader's links
    A reader may relink the lesions of a follow-up scan by hand (``links``, :func:`parse_link`): ``L2 → L3`` (the
    scan's lesion L2 is track L3; two lesions linked to one track are its fragments: a split), ``L2 → new`` (a
    new lesion), ``L4 → L4+L5`` (tracks L4 and L5 have coalesced into the scan's lesion L4, which is measured on
    L4; L5 is merged into L4 from then on, until a later link gives it a lesion again) and ``none → L3`` (no lesion
    of the scan is track L3: it has disappeared). The tracks and lesions a link names on a scan are taken out of
    that scan's automatic matching; the others are matched by the rules above. Later scans are matched against
    the tracks as relinked.

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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from hepavol.errors import InputError
from hepavol.geometry import Vec3

__all__ = [
    "NEW_TRACK",
    "NO_LESION",
    "LesionMatching",
    "LesionObservation",
    "Track",
    "TrackEvent",
    "TrackingResult",
    "match_lesions",
    "parse_link",
    "track_lesions",
    "tracking_uid",
]

#: Default largest centroid distance (mm) for two lesions without overlap to be the same lesion.
MAX_DISTANCE_MM = 20.0
#: Default smallest overlap (fraction of the smaller mask) that makes a merge or a split.
MIN_OVERLAP = 0.1
_FORBIDDEN = 1e6
#: The link value of a lesion that starts a new track, and the link key that names tracks without a lesion.
NEW_TRACK, NO_LESION = "new", "none"


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
    by_reader: bool = False  # made by a reader's link rather than by the matching rules


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


def _is_lesion_id(text: str) -> bool:
    return text.startswith("L") and text[1:].isdigit() and int(text[1:]) > 0


def parse_link(key: str, value: str) -> tuple[str, ...]:
    """The tracks a reader's link ``key → value`` names (see the module docstring); ``()`` for a new lesion.

    ``key`` is a lesion of the scan (``L2``) or ``none``; ``value`` is a track (``L3``), ``new`` or tracks joined
    by ``+`` (``L4+L5``: a merge, measured on the first; after ``none``: the tracks without a lesion).

    >>> parse_link("L2", "L4+L5"), parse_link("L2", "new"), parse_link("none", "L3")
    (('L4', 'L5'), (), ('L3',))

    Raises
    ------
    InputError
        A key or value that is not of these forms.
    """
    if key != NO_LESION and not _is_lesion_id(key):
        raise InputError(
            f"link '{key}={value}': '{key}' is not a lesion of the scan (L2, as its lesion table shows) or "
            f"'{NO_LESION}'."
        )
    if value == NEW_TRACK:
        if key == NO_LESION:
            raise InputError(
                f"link '{key}={value}': '{NO_LESION}' takes the tracks that have no lesion (none=L3)."
            )
        return ()
    tracks = tuple(part.strip() for part in value.split("+"))
    bad = [t for t in tracks if not _is_lesion_id(t)]
    if bad or len(set(tracks)) != len(tracks):
        raise InputError(
            f"link '{key}={value}': the value must be a track (L3), tracks merged into the lesion (L4+L5, measured "
            f"on the first) or '{NEW_TRACK}'."
        )
    return tracks


def track_lesions(
    timepoints: Sequence[Sequence[LesionObservation]],
    *,
    patient_id: str = "",
    max_distance_mm: float = MAX_DISTANCE_MM,
    min_overlap: float = MIN_OVERLAP,
    links: Mapping[int, Mapping[str, str]] | None = None,
    scan_names: Sequence[str] | None = None,
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
    links : mapping of int to mapping of str to str, optional
        A reader's links by scan index (``{2: {"L2": "L3", "none": "L5"}}``, see the module docstring); not on
        the baseline (index 0).
    scan_names : sequence of str, optional
        A name for each scan (its date) in error messages.

    Returns
    -------
    TrackingResult

    Raises
    ------
    InputError
        A link on the baseline or on no scan, naming a lesion the scan does not have, a track that does not exist
        yet on that scan, or a track twice.
    """
    if not timepoints:
        raise InputError("no scans to track lesions on; give at least a baseline")
    names = list(scan_names) if scan_names is not None else [f"scan {t}" for t in range(len(timepoints))]
    for t in links or {}:
        if not 0 < t < len(timepoints):
            raise InputError(
                f"links on {names[t] if 0 <= t < len(names) else f'scan {t}'}: links relink the lesions of a "
                "follow-up scan to earlier ones; the baseline's lesions are each their own track."
            )
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
        current = list(timepoints[t])
        forced_lesions, forced_merges, forced_gone = _scan_links(
            (links or {}).get(t, {}), current, len(keys), first, t, names[t]
        )
        forced_tracks = {k for ks in forced_lesions.values() for k in ks} | set(forced_gone)
        free = [j for j in range(len(current)) if j not in forced_lesions]
        # Candidates: every lesion of each track on the previous scan, or its last position if it has gone.
        candidates = [
            (k, o)
            for k in range(len(keys))
            if merged_into[k][t - 1] is None and k not in forced_tracks
            for o in last_obs[k]
        ]
        matching = match_lesions(
            [o for _, o in candidates],
            [current[j] for j in free],
            max_distance_mm=max_distance_mm,
            min_overlap=min_overlap,
        )
        owner: dict[int, int] = {}
        for i, jj in (*matching.matches, *matching.fragments):
            owner[free[jj]] = candidates[i][0]
        starts = sorted([free[jj] for jj in matching.new] + [j for j, ks in forced_lesions.items() if not ks])
        for j in starts:
            owner[j] = new_track(t)
            events.append(
                TrackEvent(
                    timepoint_index=t, kind="new", lesion_id=lesion_id(owner[j]), by_reader=j in forced_lesions
                )
            )
        for j, ks in forced_lesions.items():
            if ks:
                owner[j] = ks[0]
        for j in sorted(owner):
            keys[owner[j]][t].append(current[j].key)
        unmerged = {k for j, ks in forced_lesions.items() for k in ks[:1]} | set(forced_gone)
        for k, into in forced_merges:
            merged_into[k][t] = lesion_id(into)
            events.append(
                TrackEvent(
                    timepoint_index=t,
                    kind="merged",
                    lesion_id=lesion_id(k),
                    other_lesion_id=lesion_id(into),
                    by_reader=True,
                )
            )
        for i, jj in matching.merged:
            j = free[jj]
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
            if merged_into[k][t - 1] is not None and k not in unmerged and merged_into[k][t] is None:
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


def _scan_links(
    links: Mapping[str, str],
    current: Sequence[LesionObservation],
    n_tracks: int,
    first: Sequence[int],
    t: int,
    name: str,
) -> tuple[dict[int, tuple[int, ...]], list[tuple[int, int]], list[int]]:
    """A scan's links as (lesion index → its tracks, () for new; (merged track, into); tracks without lesion)."""
    index = {o.key: j for j, o in enumerate(current)}
    existing = [f"L{k + 1}" for k in range(n_tracks) if first[k] < t]
    lesions: dict[int, tuple[int, ...]] = {}
    merges: list[tuple[int, int]] = []
    gone: list[int] = []
    seen: dict[int, str] = {}  # track → the link that names it as merged or gone

    def track(text: str, link: str) -> int:
        k = int(text[1:]) - 1
        if not (0 <= k < n_tracks and first[k] < t):
            raise InputError(
                f"link '{link}' on {name}: there is no track {text} before this scan (tracks: "
                f"{', '.join(existing)}); link the lesion to one of them or to 'new'."
            )
        return k

    for key, value in links.items():
        link = f"{key}={value}"
        names = parse_link(key, value)
        ks = tuple(track(n, link) for n in names)
        if key == NO_LESION:
            gone += ks
            exclusive = ks
        else:
            if key not in index:
                raise InputError(
                    f"link '{link}' on {name}: the scan has no lesion {key} (its lesions: "
                    f"{', '.join(index) or 'none'}); its segmentation may have changed since the link was made."
                )
            lesions[index[key]] = ks
            merges += [(k, ks[0]) for k in ks[1:]]
            exclusive = ks[1:]
        for k in exclusive:
            if k in seen:
                raise InputError(
                    f"links '{seen[k]}' and '{link}' on {name} both name track L{k + 1} as merged or without a "
                    "lesion; keep one."
                )
            seen[k] = link
    for j, ks in lesions.items():
        if ks and ks[0] in seen:
            raise InputError(
                f"link '{current[j].key}={links[current[j].key]}' on {name} gives track L{ks[0] + 1} a lesion, but "
                f"'{seen[ks[0]]}' says it has none of its own there; keep one."
            )
    return lesions, merges, gone
