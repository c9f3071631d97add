"""Corrective clicks on one lesion's 3D mask: an editing session that keeps its state between corrections.

:class:`LesionEditSession` starts from a click, a RECIST line (:func:`hepavol.segmentation.segment_lesion`) or a
mask (e.g. from another tool), then takes corrections:

- ``include(point)``: a missed part; ``exclude(point)``: a leak. Each correction re-solves the lesion on a box
  around it by a random walker with a prior (:mod:`hepavol.segmentation._walker`; see ``_solve``): seeds at the
  clicks, the starting mask's core and the RECIST line, a spatial prior from the starting mask widened by the
  includes and narrowed by the excludes (with a shadow behind each exclude, seen from the lesion's anchor), and
  intensity models re-estimated from that evidence. Of the solve, only what the clicks asked for is kept
  (``_local_change``): the added pieces that reach an include, the removed pieces that reach an exclude, within
  a reach of each click; the rest of the border stays as it was (a correction is not a restart). An include on a
  part unlike both the lesion and the tissue around it (a faint rim) takes that intensity as lesion.
- ``replace_mask(mask)``: a mask edited by hand (brush) becomes the new starting state; earlier clicks are dropped.
- ``undo()``: back to the state before the last call.

The result is recomputed from the starting mask and the *set* of all clicks, so it does not depend on the order
in which the clicks came. Every correction works on the box around the lesion and its clicks, not on the image.
With a liver mask, the lesion is kept within the liver dilated by :data:`LIVER_MARGIN_MM`; that margin is a
barrier of the random walk, not a background seed (the liver's own edge is not taken as the lesion's edge, it only
clips it). The first result's border (``_refine_border``) is moved to :data:`EDGE_FRACTION` of the way from the
lesion's intensity to the tissue's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from hepavol.errors import InputError
from hepavol.volume import Volume

if TYPE_CHECKING:
    from hepavol.segmentation.litemedsam import LiteMedSAM

#: Margin (mm) beyond the liver's outline that a liver lesion may occupy.
LIVER_MARGIN_MM = 3.0
#: Half-width of the lesion intensity band, in robust spreads.
BAND_K = 2.5
#: A correction farther than this from the lesion (mm) or than the lesion's diameter, whichever is larger, is
#: refused.
FAR_MIN_MM = 15.0
#: The first result's border lies where the intensity has gone this share of the way from the lesion to the
#: tissue around it (0.5: half-way), moved by up to BORDER_PASSES voxel layers; the tissue's intensity is taken
#: on a ring BORDER_RING_MM outside the mask.
EDGE_FRACTION = 0.8
BORDER_PASSES = 3
BORDER_RING_MM = (1.5, 4.0)
#: Radius (mm) of the ball around a click taken as certain (lesion for an include, background for an exclude).
CLICK_RADIUS_MM = 2.0
#: The box re-solved after a correction: the lesion and its clicks padded by this many equivalent radii
#: (at least ROI_PAD_MIN_MM).
ROI_PAD_RADII = 0.75
ROI_PAD_MIN_MM = 10.0
#: At most this many unknowns in the random walk (larger boxes are worked on blocks of voxels).
WALK_VOXELS = 300_000
#: Edge sensitivity of the random walk: an edge of the lesion's contrast has weight exp(-WALK_BETA).
WALK_BETA = 10.0
#: Weight of the intensity prior against the edge weights (each voxel has up to 6 edges of weight <= 1).
PRIOR_WEIGHT = 0.05
#: Prior probabilities are kept within [PRIOR_CLIP, 1 - PRIOR_CLIP].
PRIOR_CLIP = 0.02
#: Gaussian smoothing (mm) of the image the random walk works on.
WALK_SMOOTH_MM = 0.6
#: Log-odds of the prior fall by 1 per this many mm outside the evidence's border (at least), or per this
#: share of the lesion's equivalent radius.
PRIOR_SCALE_MM = 2.0
PRIOR_SCALE_RADII = 0.15
#: The intensity models' log-odds are capped at this magnitude.
INTENSITY_LOGIT_MAX = 6.0
#: Voxels of the starting mask deeper than this share of its largest depth are lesion seeds.
CORE_DEPTH = 0.5
#: Background intensity ring around the starting mask: from RING_MM[0] mm, at least RING_MM[1] mm wide.
RING_MM = (0.0, 5.0)
#: Take the convex hull of the evidence (starting mask and include balls) as lesion evidence too.
HULL = 1.0
HULL_ALWAYS = 0.0
#: An exclude pushes the prior towards background behind it (0 for no, else the half-width of the region
#: behind it in units of its distance to the nearest lesion point, plus its ball's radius).
SHADOW = 1.0
#: The shadow starts this many mm behind the exclude ball's front.
SHADOW_SLACK_MM = 0.0
#: The shadow looks away from the lesion's anchor (1), not from the nearest anchor or include (0).
SHADOW_FROM_ANCHOR = 1
#: A correction changes the mask within its radius plus this many lesion radii of it (at least twice its radius).
LOCAL_RADII = 1.5
RIM_RULE = 1
#: Histogram bins of the intensity models.
HIST_BINS = 48
#: Weight of the click balls in the intensity models relative to the starting mask's voxels.
CLICK_WEIGHT = 0.3
#: Weight of the exclude balls in the background model of their own part of the box, relative to the lesion's.
EXCLUDE_WEIGHT = 0.5

#: A correction changes the previous mask near its own click only (1), instead of recomputing the mask from the
#: starting mask and the set of all clicks (0, order-independent, but a new click can undo an earlier gain).
INCREMENTAL = 1
#: Move the learned first result's border too (as the classical one's, :data:`EDGE_FRACTION`).
LEARNED_REFINE = 0

Index = tuple[int, int, int]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class EditResult:
    """The state of a :class:`LesionEditSession` after one call.

    Attributes
    ----------
    mask : ndarray of bool, shape (slices, rows, columns)
        The lesion on the image grid (a copy).
    volume_ml : float
        Volume of the mask in millilitres.
    changed_voxels : int
        Number of voxels that changed (added or removed) with this call.
    changed_box : tuple of slice, or None
        Bounding box (slice, row, column) of the changed voxels; None when nothing changed.
    warnings : tuple of str
        Messages for the user (nothing changed, a correction clipped at the liver...).
    """

    mask: NDArray[np.bool_]
    volume_ml: float
    changed_voxels: int
    changed_box: tuple[slice, slice, slice] | None
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class _State:
    base: NDArray[np.bool_]
    anchor: Index
    includes: tuple[Index, ...]
    excludes: tuple[Index, ...]
    mask: NDArray[np.bool_]


def _bbox(mask: NDArray[np.bool_]) -> tuple[slice, slice, slice] | None:
    if not mask.any():
        return None
    out = []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        out.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return (out[0], out[1], out[2])


def _convex_hull(mask: NDArray[np.bool_], spacing: tuple[float, float, float]) -> NDArray[np.bool_] | None:
    """The voxels whose centres lie in the convex hull of the voxels of ``mask`` (None when it is flat)."""
    from scipy.spatial import ConvexHull, QhullError

    box = _bbox(mask)
    if box is None:
        return None
    sub = mask[box]
    edge = sub & ~ndimage.binary_erosion(sub)
    pts = np.argwhere(edge).astype(np.float64)
    if len(pts) < 5:
        return None
    try:
        hull = ConvexHull(pts * np.array(spacing))
    except QhullError:
        return None
    grid = np.indices(sub.shape, dtype=np.float64).reshape(3, -1).T * np.array(spacing)
    inside = np.ones(len(grid), dtype=bool)
    for eq in hull.equations:
        inside &= grid @ eq[:3] + eq[3] <= 1e-6
    out = np.zeros(mask.shape, dtype=bool)
    out[box] = inside.reshape(sub.shape) | sub
    return out


class _LiverZone:
    """The liver dilated by ``margin_mm``, computed on demand on the boxes asked for (a whole-liver distance
    transform costs seconds on a 512x512 CT; a lesion's work needs a box around it). Exact: each box is computed
    on itself padded by the margin, so a liver voxel within the margin of the box is seen."""

    def __init__(self, liver: NDArray[np.bool_], spacing: tuple[float, float, float], margin_mm: float) -> None:
        self.liver = liver
        self.spacing = spacing
        self.margin_mm = margin_mm
        self.shape = liver.shape
        self._box: tuple[slice, slice, slice] | None = None
        self._zone: NDArray[np.bool_] | None = None

    def _covers(self, box: tuple[slice, ...]) -> bool:
        return self._box is not None and all(
            c.start <= b.start and b.stop <= c.stop for b, c in zip(box, self._box, strict=True)
        )

    def __getitem__(self, box_in: tuple[slice, ...]) -> NDArray[np.bool_]:
        box = tuple(slice(*sl.indices(n)[:2]) for sl, n in zip(box_in, self.shape, strict=True))
        if not self._covers(box):
            if self._box is not None:  # grow the computed box to hold both (corrections move around the lesion)
                box_all = tuple(
                    slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(box, self._box, strict=True)
                )
            else:
                box_all = box
            reach = [math.ceil(self.margin_mm / h) + 1 for h in self.spacing]
            big = tuple(
                slice(max(b.start - r, 0), min(b.stop + r, n))
                for b, r, n in zip(box_all, reach, self.shape, strict=True)
            )
            sub = self.liver[big]
            if sub.all():
                zone = np.ones(sub.shape, dtype=bool)
            elif not sub.any():
                zone = np.zeros(sub.shape, dtype=bool)
            else:
                zone = ndimage.distance_transform_edt(~sub, sampling=self.spacing) <= self.margin_mm + 1e-6
            inner = tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(box_all, big, strict=True))
            self._box = (box_all[0], box_all[1], box_all[2])
            self._zone = np.asarray(zone[inner], dtype=bool)
        assert self._box is not None
        assert self._zone is not None
        rel = tuple(slice(b.start - c.start, b.stop - c.start) for b, c in zip(box, self._box, strict=True))
        return self._zone[rel]

    def full(self) -> NDArray[np.bool_]:
        """The zone on the whole image grid."""
        return self[(slice(None), slice(None), slice(None))].copy()


def _fmt(point: ArrayLike) -> str:
    return str(np.round(np.asarray(point, dtype=float), 1).tolist())


class LesionEditSession:
    """An editing session on one lesion: a 3D mask corrected by include and exclude clicks (LPS mm).

    Parameters
    ----------
    image : Volume
        CT (HU or windowed) or MR volume.
    liver_mask : ndarray of bool, optional
        The liver on the image grid; the lesion is kept within it dilated by :data:`LIVER_MARGIN_MM`.
    other_lesions : sequence of ndarray of bool
        Other lesions on the image grid: never part of this one; an include inside one is refused.
    max_diameter_mm : float
        Largest lesion diameter searched for from a seed (mm).

    Examples
    --------
    A 10 mm sphere (40) in a background of 0, started from a mask of its upper half, completed by one include:

    >>> import numpy as np
    >>> from hepavol.geometry import Geometry, identity_direction
    >>> g = Geometry(shape=(30, 30, 30), spacing_mm=(1.0, 1.0, 1.0), origin_lps_mm=(0.0, 0.0, 0.0),
    ...              direction=identity_direction())
    >>> z, y, x = np.mgrid[:30, :30, :30]
    >>> ball = (z - 15) ** 2 + (y - 15) ** 2 + (x - 15) ** 2 <= 100
    >>> session = LesionEditSession.from_mask(Volume(np.where(ball, 40.0, 0.0), g), ball & (x <= 15))
    >>> result = session.include((22.0, 15.0, 15.0))  # LPS (x, y, z) = (column, row, slice) here
    >>> bool(2.243 < result.volume_ml < 4.18879)  # grows from the half ball towards the whole (4/3 pi 1000 mm3)
    True
    """

    def __init__(
        self,
        image: Volume,
        *,
        liver_mask: ArrayLike | None = None,
        other_lesions: Sequence[ArrayLike] = (),
        max_diameter_mm: float = 120.0,
    ) -> None:
        self.image = image
        self.geometry = image.geometry
        self.shape: tuple[int, int, int] = tuple(int(v) for v in image.geometry.shape)  # type: ignore[assignment]
        self.spacing: tuple[float, float, float] = tuple(float(v) for v in image.geometry.spacing_mm)  # type: ignore[assignment]
        self.voxel_ml = float(np.prod(self.spacing)) / 1000.0
        self.max_diameter_mm = float(max_diameter_mm)
        self._raw = np.asarray(image.array)
        self.liver_zone: _LiverZone | None = None
        if liver_mask is not None:
            liver = self._grid_mask(liver_mask, "liver_mask")
            if not liver.any():
                raise InputError("The liver mask is empty; pass the liver label map (label 1) or omit the liver.")
            self.liver_zone = _LiverZone(liver, self.spacing, LIVER_MARGIN_MM)
        self.others = np.zeros(self.shape, dtype=bool)
        self._other_list = [self._grid_mask(m, "other_lesions") for m in other_lesions]
        for m in self._other_list:
            self.others |= m
        self._history: list[_State] = []
        self._include_cache: dict[tuple[int, Index], NDArray[np.bool_]] = {}
        # what a correction's solve needs that does not depend on the clicks (per box, per starting mask)
        self._box_cache: dict[
            tuple[object, ...], tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_], float]
        ] = {}
        self._base_cache: dict[
            tuple[object, ...], tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64]]
        ] = {}
        self._depth_cache: dict[int, tuple[tuple[slice, slice, slice], NDArray[np.float64]]] = {}
        self._model: tuple[float, float] | None = None
        self._outside: float | None = None
        self._line: tuple[Index, Index] | None = None
        self._last_roi: tuple[slice, slice, slice] = (slice(0, 0), slice(0, 0), slice(0, 0))

    # ------------------------------------------------------------------------------------------ construction
    @classmethod
    def from_seed(
        cls,
        image: Volume,
        point_lps: ArrayLike,
        *,
        liver_mask: ArrayLike | None = None,
        other_lesions: Sequence[ArrayLike] = (),
        max_diameter_mm: float = 120.0,
    ) -> LesionEditSession:
        """Start from one click inside the lesion (LPS mm), segmented by :func:`segment_lesion`."""
        from hepavol.segmentation.lesion import segment_lesion

        session = cls(image, liver_mask=liver_mask, other_lesions=other_lesions, max_diameter_mm=max_diameter_mm)
        anchor = session._index(point_lps, "seed")
        seg = segment_lesion(image, seed_lps_mm=point_lps, max_diameter_mm=max_diameter_mm)
        session._start(session._refine_border(np.asarray(seg.mask, dtype=bool), anchor), anchor, seg.warnings)
        return session

    @classmethod
    def from_recist(
        cls,
        image: Volume,
        p1: ArrayLike,
        p2: ArrayLike,
        *,
        liver_mask: ArrayLike | None = None,
        other_lesions: Sequence[ArrayLike] = (),
        max_diameter_mm: float = 120.0,
        model: LiteMedSAM | None = None,
    ) -> LesionEditSession:
        """Start from a RECIST line (end points in LPS mm, on one slice), segmented by :func:`segment_lesion`,
        or by LiteMedSAM when a ``model`` is given (:mod:`hepavol.segmentation.litemedsam`)."""
        from hepavol.segmentation.lesion import segment_lesion

        session = cls(image, liver_mask=liver_mask, other_lesions=other_lesions, max_diameter_mm=max_diameter_mm)
        a = np.asarray(p1, dtype=float)
        b = np.asarray(p2, dtype=float)
        session._index(a, "RECIST end point")
        session._index(b, "RECIST end point")
        anchor = session._index(0.5 * (a + b), "RECIST midpoint")
        session._line = (session._index(a, "RECIST end point"), session._index(b, "RECIST end point"))
        if model is not None:
            from hepavol.segmentation.litemedsam import segment_recist_litemedsam

            allowed = ~session.others
            if session.liver_zone is not None:
                allowed &= session.liver_zone.full()
            first = segment_recist_litemedsam(model, session._raw, session.spacing, session._line, allowed=allowed)
            if LEARNED_REFINE:
                first = session._refine_border(first, anchor)
            session._start(first, anchor, ())
            return session
        seg = segment_lesion(image, recist_lps_mm=(a, b), max_diameter_mm=max_diameter_mm)
        session._start(session._refine_border(np.asarray(seg.mask, dtype=bool), anchor), anchor, seg.warnings)
        return session

    @classmethod
    def from_mask(
        cls,
        image: Volume,
        mask: ArrayLike,
        *,
        liver_mask: ArrayLike | None = None,
        other_lesions: Sequence[ArrayLike] = (),
        max_diameter_mm: float = 120.0,
    ) -> LesionEditSession:
        """Start from a mask on the image grid (e.g. drawn by hand or from another tool)."""
        session = cls(image, liver_mask=liver_mask, other_lesions=other_lesions, max_diameter_mm=max_diameter_mm)
        m = session._grid_mask(mask, "mask")
        if not m.any():
            raise InputError("The starting mask is empty; start from a seed or a RECIST line instead.")
        session._start(m, session._deepest(m), ())
        return session

    def _start(self, mask: NDArray[np.bool_], anchor: Index, warnings: Sequence[str]) -> None:
        mask = self._constrain(mask)
        if not mask.any():
            mask = np.zeros(self.shape, dtype=bool)
            mask[anchor] = True
            warnings = (*warnings, "the first result was empty; the mask is the clicked voxel, add includes")
        self._set_model(mask)
        self._include_cache.clear()
        self._history.append(_State(mask, anchor, (), (), mask))
        self.first_warnings = tuple(warnings)

    def _refine_border(self, mask: NDArray[np.bool_], anchor: Index) -> NDArray[np.bool_]:
        """Move the first result's border to where the intensity has gone :data:`EDGE_FRACTION` of the way from
        the lesion's median to the surrounding tissue's median (a ring :data:`BORDER_RING_MM` outside the mask,
        in the liver when it is known): up to :data:`BORDER_PASSES` layers of the (lightly smoothed) border are
        added or removed. With 0.5 this is the half-way rule; expert outlines of liver tumours (3D-IRCADb-01)
        run along the outer side of the partial-volume transition, nearer the parenchyma."""
        box0 = _bbox(mask)
        if box0 is None:
            return mask
        pad = [math.ceil(BORDER_RING_MM[1] / h) + BORDER_PASSES + 1 for h in self.spacing]
        box = tuple(
            slice(max(b.start - k, 0), min(b.stop + k, n)) for b, k, n in zip(box0, pad, self.shape, strict=True)
        )
        sub = mask[box]
        img = np.asarray(
            ndimage.gaussian_filter(
                self._raw[box].astype(np.float64), [0.5 * min(self.spacing) / s for s in self.spacing]
            ),
            dtype=np.float64,
        )
        conn = ndimage.generate_binary_structure(3, 1)
        inner = sub & ~ndimage.binary_erosion(sub, conn)
        dist_out = ndimage.distance_transform_edt(~sub, sampling=self.spacing)
        ring = (dist_out > BORDER_RING_MM[0]) & (dist_out <= BORDER_RING_MM[1]) & ~self.others[box]
        if self.liver_zone is not None and (ring & self.liver_zone[box]).sum() >= 8:
            ring &= self.liver_zone[box]
        core = sub & ~inner
        if ring.sum() < 8 or (core.sum() < 4 and sub.sum() < 4):
            return mask
        med_in = float(np.median(img[core if core.sum() >= 4 else sub]))
        med_out = float(np.median(img[ring]))
        if abs(med_in - med_out) < 1e-6:
            return mask
        frac = (img - med_in) / (med_out - med_in)
        lesion_like = frac < EDGE_FRACTION
        allowed = ~self.others[box]
        if self.liver_zone is not None:
            allowed &= self.liver_zone[box]
        new = sub
        for _ in range(BORDER_PASSES):
            inner = new & ~ndimage.binary_erosion(new, conn)
            outer1 = ndimage.binary_dilation(new, conn) & ~new & allowed
            nxt = (new & ~inner) | ((inner | outer1) & lesion_like)
            if np.array_equal(nxt, new):
                break
            new = nxt
        if not new.any():
            return mask
        out = np.zeros_like(mask)
        out[box] = new
        return self._keep_anchored(out, [anchor]) if out[anchor] else out

    # ------------------------------------------------------------------------------------------ public API
    @property
    def mask(self) -> NDArray[np.bool_]:
        """The current lesion mask (a copy), shape (slices, rows, columns)."""
        return self._history[-1].mask.copy()

    @property
    def history(self) -> list[tuple[str, tuple[float, float, float] | None]]:
        """The calls so far as (kind, LPS point in mm): ``start``, ``include``, ``exclude``, ``replace_mask``."""
        out: list[tuple[str, tuple[float, float, float] | None]] = []
        prev: _State | None = None
        for s in self._history:
            if prev is None:
                out.append(("start", None))
            elif s.base is not prev.base:
                out.append(("replace_mask", None))
            else:
                kind, idx = (
                    ("include", s.includes[-1]) if s.includes != prev.includes else ("exclude", s.excludes[-1])
                )
                lps = self.geometry.index_to_lps(np.array(idx, dtype=float))
                out.append((kind, (float(lps[0]), float(lps[1]), float(lps[2]))))
            prev = s
        return out

    @property
    def anchor_index(self) -> Index:
        """(slice, row, column) of the lesion's anchor: the seed, the RECIST midpoint or the mask's deepest voxel."""
        return self._history[-1].anchor

    @property
    def intensity_model(self) -> tuple[float, float]:
        """(median, robust spread) of the starting mask's smoothed intensities (image units)."""
        assert self._model is not None
        return self._model

    def result(self) -> EditResult:
        """The current state as an :class:`EditResult` (nothing changed)."""
        m = self.mask
        return EditResult(mask=m, volume_ml=float(m.sum()) * self.voxel_ml, changed_voxels=0, changed_box=None)

    def include(self, point_lps: ArrayLike) -> EditResult:
        """Add the missed part of the lesion at ``point_lps`` (LPS mm)."""
        idx = self._index(point_lps, "include point")
        self._check_near(idx, point_lps, "include point")
        if self.others[idx]:
            raise InputError(
                f"The include point {_fmt(point_lps)} (LPS mm) lies inside another lesion of this call; an include "
                "adds to this lesion only. Click the missed part of this lesion, or correct the other lesion."
            )
        s = self._history[-1]
        if idx in s.includes:
            return self._push(
                s, s.base, s.anchor, s.includes, s.excludes, ("this include point was already given",)
            )
        excludes = tuple(e for e in s.excludes if e != idx)
        return self._push(s, s.base, s.anchor, (*s.includes, idx), excludes)

    def exclude(self, point_lps: ArrayLike) -> EditResult:
        """Remove the leak at ``point_lps`` (LPS mm) from the lesion."""
        idx = self._index(point_lps, "exclude point")
        self._check_near(idx, point_lps, "exclude point")
        s = self._history[-1]
        if idx in s.excludes:
            return self._push(
                s, s.base, s.anchor, s.includes, s.excludes, ("this exclude point was already given",)
            )
        includes = tuple(i for i in s.includes if i != idx)
        return self._push(s, s.base, s.anchor, includes, (*s.excludes, idx))

    def replace_mask(self, mask: ArrayLike) -> EditResult:
        """Make a mask edited by hand the new state (earlier clicks are dropped; ``undo`` brings them back)."""
        m = self._grid_mask(mask, "mask")
        if not m.any():
            raise InputError("The replacement mask is empty; a lesion needs at least one voxel.")
        m = self._constrain(m)
        s = self._history[-1]
        anchor = s.anchor if m[s.anchor] else self._deepest(m)
        self._set_model(m)
        self._include_cache.clear()
        return self._push(s, m, anchor, (), ())

    def undo(self) -> EditResult:
        """Go back to the state before the last call (the start cannot be undone)."""
        if len(self._history) < 2:
            raise InputError("Nothing to undo: the session is at its starting mask.")
        old = self._history.pop()
        new = self._history[-1]
        if new.base is not old.base:
            self._set_model(new.base)
            self._include_cache.clear()
        return self._diff(old.mask, new.mask, ())

    # ------------------------------------------------------------------------------------------ internals
    def _grid_mask(self, mask: ArrayLike, what: str) -> NDArray[np.bool_]:
        arr = np.asarray(mask.array if isinstance(mask, Volume) else mask)
        if arr.shape != self.shape:
            raise InputError(
                f"Argument '{what}' has shape {arr.shape} but the image has {self.shape} voxels (slice, row, "
                "column); resample it onto the image grid."
            )
        return np.asarray(arr > 0 if arr.dtype != bool else arr, dtype=bool).copy()

    def _index(self, point_lps: ArrayLike, what: str) -> Index:
        from hepavol.segmentation.lesion import point_to_index

        i = point_to_index(self.image, point_lps, what=what)
        return (int(i[0]), int(i[1]), int(i[2]))

    def _dilate_mm(self, mask: NDArray[np.bool_], radius_mm: float) -> NDArray[np.bool_]:
        box = _bbox(mask)
        out = np.zeros_like(mask)
        if box is None:
            return out
        reach = [math.ceil(radius_mm / s) + 1 for s in self.spacing]
        grown = tuple(
            slice(max(b.start - r, 0), min(b.stop + r, n)) for b, r, n in zip(box, reach, self.shape, strict=True)
        )
        dist = ndimage.distance_transform_edt(~mask[grown], sampling=self.spacing)
        out[grown] = dist <= radius_mm + 1e-6
        return out

    def _constrain(
        self, mask: NDArray[np.bool_], box: tuple[slice, slice, slice] | None = None
    ) -> NDArray[np.bool_]:
        """``mask`` outside other lesions and within the liver zone; ``box`` holds all of ``mask`` when given."""
        box = _bbox(mask) if box is None else box
        out = np.zeros(self.shape, dtype=bool)
        if box is None:
            return out
        sub = mask[box] & ~self.others[box]
        if self.liver_zone is not None:
            sub &= self.liver_zone[box]
        out[box] = sub
        return out

    def _deepest(self, mask: NDArray[np.bool_]) -> Index:
        box = _bbox(mask)
        assert box is not None
        dt = ndimage.distance_transform_edt(np.pad(mask[box], 1), sampling=self.spacing)[1:-1, 1:-1, 1:-1]
        k = np.unravel_index(int(np.argmax(dt)), dt.shape)
        return (int(k[0] + box[0].start), int(k[1] + box[1].start), int(k[2] + box[2].start))

    def _shadow(
        self,
        q: Index,
        fg_pts: list[Index],
        dq: NDArray[np.float64],
        r_q: float,
        to_c: object,
        cgrid: NDArray[np.float64],
        cs: tuple[float, float, float],
    ) -> NDArray[np.float64]:
        """Signed 'outside' distance (mm) that an exclude at ``q`` gives: positive in its ball (radius ``r_q``)
        and, with :data:`SHADOW`, behind the plane through ``q`` facing the nearest lesion point (the lesion,
        mostly convex, does not continue beyond a point that is not lesion), within a cylinder of the ball's
        radius plus the distance to that point."""
        out = r_q - dq
        if not SHADOW:
            return np.asarray(out, dtype=np.float64)
        sp = np.array(self.spacing)
        near = (
            fg_pts[0]
            if SHADOW_FROM_ANCHOR
            else min(fg_pts, key=lambda p: float((((np.array(p) - np.array(q)) * sp) ** 2).sum()))
        )
        v = (np.array(q, dtype=float) - np.array(near, dtype=float)) * sp
        length = float(np.linalg.norm(v))
        if length < 1e-6:
            return np.asarray(out, dtype=np.float64)
        u = v / length
        cq = to_c(q)  # type: ignore[operator]
        rel = [(cgrid[a] - cq[a]) * cs[a] for a in range(3)]
        proj = rel[0] * u[0] + rel[1] * u[1] + rel[2] * u[2]
        lateral = np.sqrt(np.maximum(dq**2 - proj**2, 0.0))
        width = r_q + SHADOW * length
        shadow = np.where(lateral <= width, proj + r_q - SHADOW_SLACK_MM, -np.inf)
        return np.asarray(np.maximum(out, shadow), dtype=np.float64)

    def _depth_at(self, mask: NDArray[np.bool_], idx: Index) -> float:
        """Distance (mm) from a voxel of ``mask`` to the nearest voxel outside it (the map is kept per mask)."""
        hit = self._depth_cache.get(id(mask))
        if hit is None or hit[1].shape != tuple(b.stop - b.start for b in hit[0]):
            box = _bbox(mask)
            if box is None:
                return 0.0
            dt = ndimage.distance_transform_edt(np.pad(mask[box], 1), sampling=self.spacing)[1:-1, 1:-1, 1:-1]
            hit = (box, np.asarray(dt, dtype=np.float64))
            self._depth_cache = {id(mask): hit}
        box, dt = hit
        if not all(b.start <= i < b.stop for i, b in zip(idx, box, strict=True)):
            return 0.0
        return float(dt[tuple(i - b.start for i, b in zip(idx, box, strict=True))])

    def _radius_mm(self, mask: NDArray[np.bool_]) -> float:
        return float((3.0 * max(int(mask.sum()), 1) * self.voxel_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0))

    def _check_near(self, idx: Index, point_lps: ArrayLike, what: str) -> None:
        s = self._history[-1]
        limit = max(FAR_MIN_MM, 2.0 * self._radius_mm(s.mask))
        d = self._distance_to(s.mask, idx, limit)
        if d > limit:
            raise InputError(
                f"The {what} {_fmt(point_lps)} (LPS mm) is {'more than ' if math.isinf(d) else ''}"
                f"{(limit if math.isinf(d) else d):.1f} mm from the lesion, farther than {limit:.1f} mm (the lesion's "
                f"diameter, at least {FAR_MIN_MM:.0f} mm): click on or next to the lesion, or start a new lesion "
                "with --seed."
            )

    def _distance_to(self, mask: NDArray[np.bool_], idx: Index, limit_mm: float) -> float:
        if mask[idx]:
            return 0.0
        box = self._ball_box(idx, limit_mm)
        sub = mask[box]
        if not sub.any():
            return math.inf
        pts = np.argwhere(sub) + np.array([b.start for b in box])
        d = np.sqrt((((pts - np.array(idx)) * np.array(self.spacing)) ** 2).sum(axis=1))
        return float(d.min())

    def _ball_box(self, idx: Index, radius_mm: float) -> tuple[slice, slice, slice]:
        r = [math.ceil(radius_mm / s) for s in self.spacing]
        b = [slice(max(i - k, 0), min(i + k + 1, n)) for i, k, n in zip(idx, r, self.shape, strict=True)]
        return (b[0], b[1], b[2])

    def _set_model(self, mask: NDArray[np.bool_]) -> None:
        box = _bbox(mask)
        assert box is not None
        vals = self._smooth(box)[mask[box]]
        med = float(np.median(vals))
        spread = float(np.median(np.abs(vals - med))) * 1.4826
        self._model = (med, max(spread, self._noise(box), 1e-6))
        lo_hi = [slice(max(b.start - 4, 0), min(b.stop + 4, n)) for b, n in zip(box, self.shape, strict=True)]
        big = (lo_hi[0], lo_hi[1], lo_hi[2])
        conn = ndimage.generate_binary_structure(3, 1)
        sub = mask[big]
        ring = ndimage.binary_dilation(sub, conn, iterations=3) & ~ndimage.binary_dilation(sub, conn)
        if self.liver_zone is not None and (ring & self.liver_zone[big]).sum() >= 8:
            ring &= self.liver_zone[big]
        self._outside = float(np.median(self._smooth(big)[ring])) if ring.any() else None

    def _smooth(self, box: tuple[slice, ...]) -> NDArray[np.float64]:
        sub = self._raw[box].astype(np.float64)
        sigma = [min(1.0, 0.8 / s * min(self.spacing)) for s in self.spacing]
        return np.asarray(ndimage.gaussian_filter(sub, sigma), dtype=np.float64)

    def _noise(self, box: tuple[slice, slice, slice]) -> float:
        """Robust in-plane noise (image units), on at most 9 evenly spaced slices of ``box``."""
        z = np.unique(np.linspace(box[0].start, box[0].stop - 1, 9).round().astype(int))
        sub = self._raw[z][:, box[1], box[2]].astype(np.float64)
        resid = sub - ndimage.uniform_filter(sub, size=(1, 3, 3))
        return float(np.median(np.abs(resid)) * 1.4826 * 1.125 * 0.5)

    def _push(
        self,
        prev: _State,
        base: NDArray[np.bool_],
        anchor: Index,
        includes: tuple[Index, ...],
        excludes: tuple[Index, ...],
        warnings: tuple[str, ...] = (),
    ) -> EditResult:
        new = None
        notes: tuple[str, ...] = ()
        if base is prev.base:
            added = (set(includes) - set(prev.includes)) | (set(excludes) - set(prev.excludes))
            new = next(iter(added)) if len(added) == 1 else None
        if base is prev.base and includes == prev.includes and excludes == prev.excludes:
            mask = prev.mask.copy()
        else:
            mask, notes = self._compute(
                base, anchor, includes, excludes, prev=prev if new is not None else None, new=new
            )
        self._history.append(_State(base, anchor, includes, excludes, mask))
        return self._diff(prev.mask, mask, (*warnings, *notes))

    def _diff(self, old: NDArray[np.bool_], new: NDArray[np.bool_], warnings: tuple[str, ...]) -> EditResult:
        changed = old ^ new
        n = int(changed.sum())
        if n == 0 and not warnings:
            warnings = ("the correction changed nothing",)
        return EditResult(
            mask=new.copy(),
            volume_ml=float(new.sum()) * self.voxel_ml,
            changed_voxels=n,
            changed_box=_bbox(changed),
            warnings=warnings,
        )

    def _compute(
        self,
        base: NDArray[np.bool_],
        anchor: Index,
        includes: tuple[Index, ...],
        excludes: tuple[Index, ...],
        *,
        prev: _State | None = None,
        new: Index | None = None,
    ) -> tuple[NDArray[np.bool_], tuple[str, ...]]:
        """The mask from the starting mask and the set of clicks; with :data:`INCREMENTAL` and a ``prev`` state
        that lacks only the click ``new``, the previous mask changed near ``new`` only (the solve still takes
        every click as a seed)."""
        if not includes and not excludes:
            return base.copy(), ()
        if INCREMENTAL and prev is not None and new is not None and prev.mask.any():
            mask = self._solve(prev.mask, anchor, includes, excludes, only=new)
        else:
            mask = self._solve(base, anchor, includes, excludes)
        mask = self._constrain(mask, self._last_roi)  # the solve's result lies in its box
        notes: list[str] = []
        if not mask[self._last_roi].any():
            notes.append("the corrections removed the whole lesion; undo or add an include")
        return mask, tuple(notes)

    def _solve(
        self,
        base: NDArray[np.bool_],
        anchor: Index,
        includes: tuple[Index, ...],
        excludes: tuple[Index, ...],
        *,
        start: bool = False,
        only: Index | None = None,
    ) -> NDArray[np.bool_]:
        """Re-solve the whole lesion on a box around it from all clicks so far (a random walker with a prior,
        :mod:`hepavol.segmentation._walker`).

        The prior of each voxel joins (adds in log-odds) where the evidence puts the lesion and what its
        intensity says. Where: the starting mask (log-odds falling off with the signed distance to its border
        on the scale :data:`PRIOR_SCALE_MM`), widened by a ball around every include as large as the include's
        distance to the starting mask (the simulated or real user clicks the middle of a missed part), narrowed
        by a ball around every exclude as large as its depth in the starting mask (or distance to it). Intensity:
        histograms of the lesion (the mask so formed) against the background (a ring around it and the exclude
        balls), re-estimated each time. Seeds: a ball of :data:`CLICK_RADIUS_MM` at the anchor and at each
        include (lesion) and at each exclude (background), the middle of the RECIST line, the core of the
        starting mask outside the exclude balls; background outside the liver (dilated by the margin), in other
        lesions and on the box's faces. The box is worked on blocks of voxels when large (at most
        :data:`WALK_VOXELS`). Everything depends on the *set* of clicks, not their order.
        """
        from hepavol.segmentation._walker import block_mean, random_walk, upsample

        fg_pts = [anchor, *sorted(includes)]
        ex_pts = sorted(excludes)
        radius = max(self._radius_mm(base), 3.0)
        limit = 3.0 * radius + FAR_MIN_MM
        inc_r = {p: max(self._distance_to(base, p, limit), CLICK_RADIUS_MM) for p in includes}
        inc_r = {p: (radius if math.isinf(r) else r) for p, r in inc_r.items()}
        ex_r = {}
        for q in ex_pts:
            if base[q]:
                ex_r[q] = max(self._depth_at(base, q), CLICK_RADIUS_MM)
            else:
                d = self._distance_to(base, q, limit)
                ex_r[q] = max(CLICK_RADIUS_MM, 0.0 if math.isinf(d) else d)
        pad_mm = max(ROI_PAD_MIN_MM, ROI_PAD_RADII * radius)
        bb = _bbox(base)
        lo = np.array([b.start for b in bb], dtype=float) if bb is not None else np.array(anchor, dtype=float)
        hi = np.array([b.stop for b in bb], dtype=float) if bb is not None else np.array(anchor, dtype=float) + 1
        sp = np.array(self.spacing)
        for p in fg_pts:
            r = inc_r.get(p, 0.0) / sp
            lo = np.minimum(lo, np.array(p) - r)
            hi = np.maximum(hi, np.array(p) + r + 1)
        for q in ex_pts:
            lo = np.minimum(lo, q)
            hi = np.maximum(hi, np.array(q) + 1)
        roi_l = []
        for a in range(3):
            r_vox = math.ceil(pad_mm / self.spacing[a])
            roi_l.append(slice(max(int(lo[a]) - r_vox, 0), min(math.ceil(hi[a]) + r_vox, self.shape[a])))
        roi = (roi_l[0], roi_l[1], roi_l[2])
        rshape = tuple(b.stop - b.start for b in roi)
        extent_mm3 = float(np.prod([n * h for n, h in zip(rshape, self.spacing, strict=True)]))
        target = max(min(self.spacing), (extent_mm3 / WALK_VOXELS) ** (1.0 / 3.0))
        f3 = tuple(max(1, round(target / h)) for h in self.spacing)
        f = (f3[0], f3[1], f3[2])
        cs = (self.spacing[0] * f[0], self.spacing[1] * f[1], self.spacing[2] * f[2])
        key = (tuple((b.start, b.stop) for b in roi), f)
        prep = self._box_cache.get(key)
        if prep is None:
            sub_img = self._raw[roi].astype(np.float64)
            sm = ndimage.gaussian_filter(sub_img, [WALK_SMOOTH_MM / h for h in self.spacing], truncate=3.0)
            allowed0 = ~self.others[roi]
            if self.liver_zone is not None:
                allowed0 &= self.liver_zone[roi]
            prep = (
                block_mean(np.asarray(sm, dtype=np.float64), f),
                allowed0,
                block_mean(allowed0.astype(np.float64), f) >= 0.5,
                self._noise(roi),
            )
            self._box_cache = {key: prep}
        g, allowed, allowed_c, noise = prep
        cshape = g.shape
        cgrid = np.indices(cshape, dtype=np.float64)
        origin = np.array([b.start for b in roi], dtype=np.float64)

        def to_c(p: Index) -> NDArray[np.float64]:
            return (np.array(p, dtype=np.float64) - origin + 0.5) / np.array(f) - 0.5

        def dist_to(p: Index) -> NDArray[np.float64]:
            c = to_c(p)
            return np.sqrt(sum(((cgrid[a] - c[a]) * cs[a]) ** 2 for a in range(3)))

        def ball(dist: NDArray[np.float64], r_mm: float) -> NDArray[np.bool_]:
            out = dist <= r_mm
            out[np.unravel_index(int(np.argmin(dist)), cshape)] = True
            return np.asarray(out, dtype=bool)

        scale = max(PRIOR_SCALE_MM, PRIOR_SCALE_RADII * radius)
        bkey = (id(base), *key)
        bprep = self._base_cache.get(bkey)
        if bprep is None:
            base_c0 = block_mean(base[roi].astype(np.float64), f) >= 0.5
            bprep = (
                base_c0,
                np.asarray(
                    ndimage.distance_transform_edt(np.pad(base_c0, 1), sampling=cs)[1:-1, 1:-1, 1:-1],
                    dtype=np.float64,
                ),
                np.asarray(ndimage.distance_transform_edt(~base_c0, sampling=cs), dtype=np.float64),
            )
            self._base_cache = {bkey: bprep}
        base_c, inside, outside = bprep
        sd = np.where(base_c, -inside, outside)  # signed distance (mm) to the starting mask's border
        fg_balls = np.zeros(cshape, dtype=bool)
        for p in fg_pts:
            dp = dist_to(p)
            fg_balls |= ball(dp, CLICK_RADIUS_MM)
            if p in inc_r:
                sd = np.minimum(sd, dp - inc_r[p])
        ex_balls = np.zeros(cshape, dtype=bool)
        ex_zone = np.zeros(cshape, dtype=bool)
        ex_d: list[tuple[NDArray[np.float64], float]] = []
        for q in ex_pts:
            dq = dist_to(q)
            ex_balls |= ball(dq, CLICK_RADIUS_MM)
            ex_zone |= dq <= ex_r[q]
            ex_d.append((self._shadow(q, fg_pts, dq, ex_r[q], to_c, cgrid, cs), ex_r[q]))
            sd = np.maximum(sd, ex_d[-1][0])
        if HULL and (
            includes or HULL_ALWAYS
        ):  # metastases are mostly convex: the evidence's convex hull is lesion too
            hull = _convex_hull(sd < 0, cs)
            if hull is not None:
                h_in = ndimage.distance_transform_edt(np.pad(hull, 1), sampling=cs)[1:-1, 1:-1, 1:-1]
                h_out = ndimage.distance_transform_edt(~hull, sampling=cs)
                sd = np.minimum(sd, np.where(hull, -h_in, h_out))
                for e, _ in ex_d:
                    sd = np.maximum(sd, e)
        if self._line is not None and (start or (self._history and base is self._history[0].base)):
            a_c, b_c = to_c(self._line[0]), to_c(self._line[1])
            for t in np.linspace(0.15, 0.85, 15):
                k = np.clip(np.rint(a_c + t * (b_c - a_c)).astype(int), 0, np.array(cshape) - 1)
                fg_balls[tuple(k)] = True
        where = sd < 0  # the lesion as the evidence has it
        core = (inside >= max(CORE_DEPTH * float(inside.max()), 1e-9)) & base_c & ~ex_zone
        # intensity models
        ring = (sd > 0) & (sd <= max(RING_MM[1], 0.5 * radius)) & allowed_c & ~fg_balls
        lo_v, hi_v = np.percentile(g[allowed_c] if allowed_c.any() else g, [0.5, 99.5])
        if hi_v <= lo_v:
            hi_v = lo_v + 1.0
        bins = np.linspace(lo_v, hi_v, HIST_BINS + 1)

        def hist(values: NDArray[np.float64]) -> NDArray[np.float64]:
            h, _ = np.histogram(np.clip(values, lo_v, hi_v), bins=bins)
            h = ndimage.gaussian_filter1d(h.astype(np.float64), 1.0)
            return np.asarray(h / max(h.sum(), 1e-9), dtype=np.float64)

        fg_s = where & allowed_c & ~ex_balls
        contrast_parts: list[float] = []  # the edge of a different-looking part against the tissue around
        med_ring = float(np.median(g[ring])) if ring.any() else None
        tissue = (sd > max(RING_MM[1], 0.5 * radius)) & allowed_c  # beyond the ring: the tissue around
        med_t = float(np.median(g[tissue])) if tissue.any() else med_ring
        spread_t = 0.0
        if tissue.any() and med_t is not None:
            spread_t = max(1.4826 * float(np.median(np.abs(g[tissue] - med_t))), noise, 1e-6)
        if includes and fg_s.any() and med_ring is not None and med_t is not None:
            # an include on a part that looks different from the lesion and from the tissue around it (a faint
            # rim, a necrotic centre) says that intensity is lesion here: it is not taken as background from the
            # ring around the mask (an include on tissue-like voxels, e.g. the lesion's partial-volume border on
            # CT, keeps the tissue as background)
            med_fg = float(np.median(g[fg_s]))
            spread_fg = max(1.4826 * float(np.median(np.abs(g[fg_s] - med_fg))), noise, 1e-6)
            for p in includes:
                c_p = float(np.median(g[ball(dist_to(p), CLICK_RADIUS_MM)]))
                if RIM_RULE and abs(c_p - med_fg) > BAND_K * spread_fg and abs(c_p - med_t) > BAND_K * spread_t:
                    ring &= np.abs(g - c_p) > BAND_K * spread_fg
                    contrast_parts.append(abs(c_p - med_t))
        h_fg = hist(g[fg_s]) if fg_s.any() else hist(g[fg_balls])
        if includes:
            h_fg = (1.0 - CLICK_WEIGHT) * h_fg + CLICK_WEIGHT * hist(g[fg_balls])
        h_bg = hist(g[ring]) if ring.any() else hist(g[~where])
        if ex_pts:
            h_bg = (1.0 - EXCLUDE_WEIGHT) * h_bg + EXCLUDE_WEIGHT * hist(g[ex_balls])
        floor = 1e-3
        bin_of = np.clip(np.digitize(g, bins) - 1, 0, HIST_BINS - 1)
        logit_int = np.log((h_fg + floor) / (h_bg + floor))
        logit = np.clip(logit_int[bin_of], -INTENSITY_LOGIT_MAX, INTENSITY_LOGIT_MAX) - sd / scale
        prior = 1.0 / (1.0 + np.exp(-np.clip(logit, -30.0, 30.0)))
        if contrast_parts:  # the faintest different-looking part's edge against the tissue
            contrast_edge = min(contrast_parts)
        else:
            contrast_edge = (
                abs(float(np.median(g[fg_s])) - float(np.median(g[ring]))) if (fg_s.any() and ring.any()) else 0.0
            )
        contrast = max(contrast_edge, 3.0 * noise * 0.3, 1e-3)
        # seeds
        fg_seed = fg_balls | core
        bg_seed = ex_balls | ~allowed_c
        faces = np.zeros(cshape, dtype=bool)
        for a in range(3):
            sl: list[slice | int] = [slice(None)] * 3
            if roi[a].start > 0:
                sl[a] = 0
                faces[tuple(sl)] = True
            if roi[a].stop < self.shape[a]:
                sl[a] = -1
                faces[tuple(sl)] = True
        bg_seed |= faces & ~fg_balls
        fg_seed &= ~bg_seed | fg_balls
        bg_seed &= ~fg_balls
        x = random_walk(
            g,
            fg_seed,
            bg_seed,
            prior,
            spacing_mm=cs,
            contrast=contrast,
            beta=WALK_BETA,
            prior_weight=PRIOR_WEIGHT,
            barrier=~allowed_c,
        )
        xf = upsample(x, f, rshape)
        self._debug = {"x": x, "prior": prior, "roi": roi, "f": f, "g": g}
        self._last_roi = roi
        sub = (xf > 0.5) & allowed
        if not start:
            if only is not None:
                inc_r = {p: r for p, r in inc_r.items() if p == only}
                ex_r = {p: r for p, r in ex_r.items() if p == only}
            sub = self._local_change(base[roi], sub, roi, inc_r, ex_r, radius)
        sub = self._keep_components(sub, fg_pts, roi)
        sub = ndimage.binary_fill_holes(sub) & allowed
        out = np.zeros(self.shape, dtype=bool)
        out[roi] = sub
        return out

    def _keep_components(
        self, sub: NDArray[np.bool_], fg_pts: list[Index], roi: tuple[slice, slice, slice]
    ) -> NDArray[np.bool_]:
        """The pieces of ``sub`` (on the box ``roi``) that hold the anchor or an include (else the largest)."""
        labels, n = ndimage.label(sub)
        if n <= 1:
            return sub
        keep = set()
        for p in fg_pts:
            lp = tuple(i - b.start for i, b in zip(p, roi, strict=True))
            if labels[lp] > 0:
                keep.add(int(labels[lp]))
        if not keep:
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            keep = {int(np.argmax(sizes))}
        return np.asarray(np.isin(labels, sorted(keep)), dtype=bool)

    def _local_change(
        self,
        base: NDArray[np.bool_],
        solved: NDArray[np.bool_],
        roi: tuple[slice, slice, slice],
        inc_r: dict[Index, float],
        ex_r: dict[Index, float],
        radius: float,
    ) -> NDArray[np.bool_]:
        """Keep the solved mask's changes to ``base`` only where the clicks asked for them (not a restart).

        An include adds, an exclude removes: of the voxels the solve adds (removes), the pieces (26-connected)
        that reach an include's (exclude's) own ball are kept, where a click's ball has the radius ``r`` of its
        error (an include's distance to the starting mask, an exclude's depth in it or distance to it) plus
        :data:`CLICK_RADIUS_MM`; and only within ``r + max(r, LOCAL_RADII x the lesion's radius)`` of the click.
        Re-estimating the lesion's border elsewhere is left to the clicks there. Depends on the set of clicks
        only, not their order.
        """
        origin = np.array([b.start for b in roi], dtype=np.float64)
        st = np.ones((3, 3, 3), dtype=bool)
        out = base.copy()
        for part, clicks in ((solved & ~base, inc_r), (base & ~solved, ex_r)):
            if not clicks or not part.any():
                continue
            zone = np.zeros(base.shape, dtype=bool)
            own = np.zeros(base.shape, dtype=bool)
            for p, r in clicks.items():
                reach = r + max(r, LOCAL_RADII * radius)
                local = np.array(p, dtype=np.float64) - origin
                sl = []
                for a in range(3):
                    k = math.ceil(reach / self.spacing[a])
                    sl.append(slice(max(int(local[a]) - k, 0), min(int(local[a]) + k + 1, base.shape[a])))
                box = (sl[0], sl[1], sl[2])
                grid = np.ogrid[box]
                d2 = sum(((grid[a] - local[a]) * self.spacing[a]) ** 2 for a in range(3))
                zone[box] |= d2 <= reach**2
                own[box] |= d2 <= (r + CLICK_RADIUS_MM) ** 2
            labels, n = ndimage.label(part & zone, structure=st)
            if n == 0:
                continue
            hit = np.unique(labels[own & (labels > 0)])
            out ^= np.isin(labels, hit[hit > 0])
        return out

    def _keep_anchored(self, mask: NDArray[np.bool_], fg: list[Index]) -> NDArray[np.bool_]:
        """Keep the parts of ``mask`` that contain an anchor or an include (pieces cut off by a cut go)."""
        box = _bbox(mask)
        if box is None:
            return mask
        labels, n = ndimage.label(mask[box])
        if n <= 1:
            return mask
        keep = set()
        for f in fg:
            if all(b.start <= i < b.stop for i, b in zip(f, box, strict=True)):
                lab = int(labels[tuple(i - b.start for i, b in zip(f, box, strict=True))])
                if lab > 0:
                    keep.add(lab)
        if not keep:
            return mask
        out = np.zeros_like(mask)
        out[box] = np.isin(labels, sorted(keep))
        return out
