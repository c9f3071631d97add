"""Editing a scan's whole label map (liver and lesions): new lesions, corrective clicks, brush, undo and redo.

:class:`LabelMapEditor` is what a reader edits in the review app. It holds the label map of one scan on the
image grid and records every change as a difference, so that :meth:`~LabelMapEditor.undo` and
:meth:`~LabelMapEditor.redo` restore exactly the voxels a change touched.

- ``add_lesion_from_seed`` / ``add_lesion_from_recist``: a new lesion segmented from a click or a RECIST line
  (:class:`~hepavol.segmentation.editing.LesionEditSession`, kept within the liver and off the other lesions);
- ``include`` / ``exclude``: a corrective click on the lesion being edited, or on the lesion nearest the click
  (its component becomes the starting mask of a new :class:`LesionEditSession`);
- ``remove_lesion``: a whole lesion rejected (not a tumour);
- ``paint``: a brush stroke (a mask on the image grid) that sets lesion or liver voxels, or erases them.

Voxels a lesion gives up go back to the liver when they lie inside the liver's outline at the start (the liver
label with its holes filled: lesions inside the liver are holes of the liver label), to the background otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from hepavol.errors import InputError
from hepavol.segmentation.editing import LesionEditSession
from hepavol.volume import Volume

__all__ = ["BRUSH_MODES", "Change", "LabelMapEditor"]

BRUSH_MODES = ("lesion", "erase lesion", "liver", "erase liver")
#: How far from a click (mm) a new lesion is searched for: half of LesionEditSession's largest diameter (120 mm)
#: and a margin. Sessions work on the crop of the image within this reach, never on the whole scan.
SEED_REACH_MM = 70.0


@dataclass(frozen=True, slots=True)
class Change:
    """One edit: the flat indices it touched, their labels before and after, and what it was."""

    what: str
    index: NDArray[np.int64]
    before: NDArray[np.integer]
    after: NDArray[np.integer]

    @property
    def voxels(self) -> int:
        return int(self.index.size)


class LabelMapEditor:
    """The label map of one scan under edit (see the module docstring).

    Parameters
    ----------
    image : Volume
        The scan.
    labels : array of int, shape of the image
        The label map to start from (copied).
    liver_label : int
        The liver's label.
    tumor_labels : sequence of int
        Labels whose connected components are lesions; new lesion voxels get the first.
    """

    def __init__(self, image: Volume, labels: ArrayLike, *, liver_label: int, tumor_labels: Sequence[int]) -> None:
        arr = np.array(labels, copy=True)
        if arr.shape != image.shape:
            raise InputError(f"the label map's shape {arr.shape} is not the image's {image.shape}.")
        if not tumor_labels:
            raise InputError("give at least one tumour label.")
        self.image = image
        self.labels = arr
        self.liver_label = int(liver_label)
        self.tumor_labels = tuple(int(v) for v in tumor_labels)
        self.lesion_label = self.tumor_labels[0]
        self._start_liver = arr == self.liver_label  # the outline is that liver with its holes filled (lazily)
        self.tumor_voxels = int(np.count_nonzero(np.isin(arr, self.tumor_labels)))  # kept up to date by edits
        self._done: list[Change] = []
        self._undone: list[Change] = []
        self._session: LesionEditSession | None = None
        self._session_mask: NDArray[np.bool_] | None = None  # the session's lesion before its last correction
        self._session_box: tuple[slice, slice, slice] | None = None  # the crop the session works in

    # ------------------------------------------------------------------------------------------ state
    @property
    def changes(self) -> list[Change]:
        """The edits in force, oldest first."""
        return list(self._done)

    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    def tumor_mask(self) -> NDArray[np.bool_]:
        return np.isin(self.labels, self.tumor_labels)

    def liver_mask(self, box: tuple[slice, ...] = ()) -> NDArray[np.bool_]:
        """The liver with the lesions inside its outline (the organ lesions must stay in), in ``box`` if given."""
        labels = self.labels[box]
        tumor = np.isin(labels, self.tumor_labels)
        return np.asarray((labels == self.liver_label) | (tumor & self._outline(box)))

    # ------------------------------------------------------------------------------------------ edits
    def add_lesion_from_seed(self, point_lps: ArrayLike) -> Change:
        """A new lesion from a click inside it (LPS mm)."""
        idx = self._index(point_lps, "the click")
        if np.isin(self.labels[idx], self.tumor_labels):
            raise InputError(
                f"the click at {_fmt(point_lps)} is inside a lesion already: correct that lesion with include or "
                "exclude instead."
            )
        box = self._box_around([idx], SEED_REACH_MM)
        liver = self.liver_mask(box)
        session = LesionEditSession.from_seed(
            _crop(self.image, box), point_lps, liver_mask=liver if liver.any() else None,
            other_lesions=[np.isin(self.labels[box], self.tumor_labels)],
        )  # fmt: skip
        self._end_session()
        return self._apply_session(session, box, "new lesion from a click")

    def add_lesion_from_recist(self, p1: ArrayLike, p2: ArrayLike) -> Change:
        """A new lesion from its RECIST line (end points in LPS mm, on one slice)."""
        ends = [self._index(p1, "the line's start"), self._index(p2, "the line's end")]
        box = self._box_around(ends, SEED_REACH_MM)
        liver = self.liver_mask(box)
        session = LesionEditSession.from_recist(
            _crop(self.image, box), p1, p2, liver_mask=liver if liver.any() else None,
            other_lesions=[np.isin(self.labels[box], self.tumor_labels)],
        )  # fmt: skip
        self._end_session()
        return self._apply_session(session, box, "new lesion from a RECIST line")

    def include(self, point_lps: ArrayLike) -> Change:
        """Add a missed part to the lesion being edited (or to the lesion nearest the click)."""
        session, box = self._session_for(point_lps)
        session.include(point_lps)
        return self._apply_session(session, box, "include")

    def exclude(self, point_lps: ArrayLike) -> Change:
        """Remove a leak from the lesion being edited (or from the lesion nearest the click)."""
        session, box = self._session_for(point_lps)
        session.exclude(point_lps)
        return self._apply_session(session, box, "exclude")

    def remove_lesion(self, point_lps: ArrayLike) -> Change:
        """Remove the whole lesion under the click (not a tumour): its voxels go back to the liver or background."""
        idx = self._index(point_lps, "the click")
        tumor = self.tumor_mask()
        if not tumor[idx]:
            raise InputError(
                f"there is no lesion at {_fmt(point_lps)} mm (LPS): click inside the lesion to remove."
            )
        from hepavol.measurement import connected_components

        components = connected_components(tumor, connectivity=26)
        gone = components == components[idx]
        new = self.labels.copy()
        new[gone] = self._given_up(gone)
        self._end_session()
        return self._commit(new, "lesion removed")

    def paint(self, stroke: ArrayLike, mode: str) -> Change:
        """A brush stroke (bool mask on the image grid): ``mode`` is one of :data:`BRUSH_MODES`."""
        if mode not in BRUSH_MODES:
            raise InputError(f"brush mode '{mode}' is not one of {', '.join(BRUSH_MODES)}.")
        m = np.asarray(stroke, dtype=bool)
        if m.shape != self.labels.shape:
            raise InputError(f"the brush stroke's shape {m.shape} is not the image's {self.labels.shape}.")
        new = self.labels.copy()
        tumor = self.tumor_mask()
        if mode == "lesion":
            new[m] = self.lesion_label
        elif mode == "erase lesion":
            gone = m & tumor
            new[gone] = self._given_up(gone)
        elif mode == "liver":
            new[m & ~tumor] = self.liver_label
        else:
            new[m & (self.labels == self.liver_label)] = 0
        self._end_session()
        return self._commit(new, f"brush: {mode}")

    def undo(self) -> Change | None:
        """Take back the last edit (None when there is none)."""
        if not self._done:
            return None
        change = self._done.pop()
        self.labels.ravel()[change.index] = change.before
        self.tumor_voxels -= self._tumor_gain(change)
        self._undone.append(change)
        self._end_session()
        return change

    def redo(self) -> Change | None:
        """Do again the last edit taken back (None when there is none)."""
        if not self._undone:
            return None
        change = self._undone.pop()
        self.labels.ravel()[change.index] = change.after
        self.tumor_voxels += self._tumor_gain(change)
        self._done.append(change)
        self._end_session()
        return change

    # ------------------------------------------------------------------------------------------ internals
    def _index(self, point_lps: ArrayLike, what: str) -> tuple[int, int, int]:
        idx = np.rint(self.image.geometry.lps_to_index(np.asarray(point_lps, dtype=float))).astype(int)
        if np.any(idx < 0) or np.any(idx >= np.asarray(self.labels.shape)):
            raise InputError(f"{what} at {_fmt(point_lps)} mm (LPS) is outside the image.")
        return (int(idx[0]), int(idx[1]), int(idx[2]))

    def _session_for(self, point_lps: ArrayLike) -> tuple[LesionEditSession, tuple[slice, slice, slice]]:
        """The active session if the click is on or near its lesion, else a session on the nearest lesion."""
        idx = self._index(point_lps, "the correction")
        tumor_at_click = bool(np.isin(self.labels[idx], self.tumor_labels))
        if self._session is not None and self._session_mask is not None and self._session_box is not None:
            box = self._session_box
            inside = all(b.start <= i < b.stop for b, i in zip(box, idx, strict=True))
            if inside:
                local = tuple(i - b.start for b, i in zip(box, idx, strict=True))
                if self._session_mask[local] or not tumor_at_click:
                    return self._session, box
        tumor = self.tumor_mask()
        if not tumor.any():
            raise InputError("there is no lesion to correct on this scan: add one with a click or a RECIST line.")
        from hepavol.measurement import connected_components

        near = self._box_around([idx], SEED_REACH_MM)
        components = connected_components(tumor[near], connectivity=26)
        local = tuple(i - b.start for b, i in zip(near, idx, strict=True))
        value = int(components[local])
        if value == 0:  # the nearest lesion voxel's component
            if not components.any():
                raise InputError(
                    f"the correction at {_fmt(point_lps)} mm (LPS) is far from every lesion: click on or next to "
                    "the lesion to correct, or add a new one."
                )
            _, nearest = ndimage.distance_transform_edt(
                components == 0, sampling=self.image.geometry.spacing_mm, return_indices=True
            )
            value = int(components[tuple(nearest[:, local[0], local[1], local[2]])])
        # the whole lesion (it may reach beyond the search box), then a box around it and the click
        seed_voxel = np.argwhere(components == value)[0] + np.array([b.start for b in near])
        full = connected_components(tumor, connectivity=26) if _touches_edge(components == value) else None
        if full is not None:
            lesion = full == full[tuple(seed_voxel)]
        else:
            lesion = np.zeros(tumor.shape, dtype=bool)
            lesion[near] = components == value
        extent = np.argwhere(lesion)
        lo, hi = extent.min(axis=0), extent.max(axis=0)
        diameter_mm = float(np.max((hi - lo + 1) * np.asarray(self.image.geometry.spacing_mm)))
        box = self._box_around([tuple(lo), tuple(hi), idx], min(diameter_mm, 60.0) + 15.0)
        mask = lesion[box]
        others = np.isin(self.labels[box], self.tumor_labels) & ~mask
        liver = self.liver_mask(box)
        session = LesionEditSession.from_mask(
            _crop(self.image, box), mask, liver_mask=liver if liver.any() else None,
            other_lesions=[others] if others.any() else [],
        )  # fmt: skip
        self._session, self._session_mask, self._session_box = session, mask, box
        return session, box

    def _apply_session(self, session: LesionEditSession, box: tuple[slice, slice, slice], what: str) -> Change:
        new_mask = np.asarray(session.mask, dtype=bool)
        old_mask = self._session_mask if self._session is session else None
        region = self.labels[box].copy()  # a session changes its box only
        if old_mask is not None:
            gone = old_mask & ~new_mask
            region[gone] = self._given_up(gone, box)
        already = np.isin(region, self.tumor_labels)
        region[new_mask & ~already] = self.lesion_label
        self._session, self._session_mask, self._session_box = session, new_mask, box
        return self._commit(region, what, box)

    def _given_up(self, voxels: NDArray[np.bool_], box: tuple[slice, ...] = ()) -> NDArray[np.integer]:
        """The labels of voxels a lesion gives up: the liver inside its starting outline, else background."""
        if not voxels.any():
            return np.zeros(0, dtype=self.labels.dtype)
        inner = _bbox(voxels)
        assert inner is not None
        offset = [b.start or 0 for b in box] if box else [0, 0, 0]
        corners = [[o + s.start for o, s in zip(offset, inner, strict=True)],
                   [o + s.stop - 1 for o, s in zip(offset, inner, strict=True)]]  # fmt: skip
        around = self._box_around(corners, SEED_REACH_MM)  # wide: a lesion's hole must not be cut by the box
        outline = self._outline(around)
        full = np.zeros(self.labels.shape, dtype=bool)
        full[around] = outline
        sub = full[box] if box else full
        return np.where(sub[voxels], self.liver_label, 0).astype(self.labels.dtype)

    def _outline(self, box: tuple[slice, ...]) -> NDArray[np.bool_]:
        """The starting liver with its holes filled, in ``box`` (holes cut by the box's faces are not filled)."""
        return np.asarray(ndimage.binary_fill_holes(self._start_liver[box]))

    def _box_around(self, points: Sequence[Sequence[int]], reach_mm: float) -> tuple[slice, slice, slice]:
        pts = np.asarray(points, dtype=int)
        pad = np.ceil(reach_mm / np.asarray(self.image.geometry.spacing_mm)).astype(int)
        lo = np.maximum(pts.min(axis=0) - pad, 0)
        hi = np.minimum(pts.max(axis=0) + pad + 1, self.labels.shape)
        return (slice(int(lo[0]), int(hi[0])), slice(int(lo[1]), int(hi[1])), slice(int(lo[2]), int(hi[2])))

    def _commit(self, new: NDArray[np.integer], what: str, box: tuple[slice, ...] = ()) -> Change:
        """Record the edit that makes ``self.labels[box]`` equal to ``new`` (the whole label map without a box);
        comparing the box only saves two passes over a clinical CT's 78 MB label map per correction."""
        old = self.labels[box]
        local = np.flatnonzero(new.ravel() != old.ravel())
        if box:  # C order inside a box is C order in the volume: the same Change as a whole-volume diff
            at = np.unravel_index(local, old.shape)
            index = np.ravel_multi_index(
                tuple(i + (b.start or 0) for i, b in zip(at, box, strict=True)), self.labels.shape
            ).astype(np.int64)
        else:
            index = local.astype(np.int64)
        change = Change(what, index, old.ravel()[local].copy(), new.ravel()[local].copy())
        if index.size:
            self.labels.ravel()[index] = change.after
            self.tumor_voxels += self._tumor_gain(change)
            self._done.append(change)
            self._undone.clear()
        return change

    def _tumor_gain(self, change: Change) -> int:
        return int(
            np.isin(change.after, self.tumor_labels).sum() - np.isin(change.before, self.tumor_labels).sum()
        )

    def _end_session(self) -> None:
        self._session, self._session_mask, self._session_box = None, None, None


def _crop(image: Volume, box: tuple[slice, slice, slice]) -> Volume:
    """The part of ``image`` in ``box``, with its own geometry (same LPS positions)."""
    from hepavol.geometry import Geometry

    g = image.geometry
    start = np.array([b.start for b in box], dtype=float)
    origin = g.index_to_lps(start)
    geometry = Geometry(
        shape=(box[0].stop - box[0].start, box[1].stop - box[1].start, box[2].stop - box[2].start),
        spacing_mm=g.spacing_mm,
        origin_lps_mm=(float(origin[0]), float(origin[1]), float(origin[2])),
        direction=g.direction,
    )
    return Volume(np.asarray(image.array)[box], geometry, image.source, dict(image.metadata))


def _bbox(mask: NDArray[np.bool_]) -> tuple[slice, slice, slice] | None:
    found = ndimage.find_objects(mask.astype(np.uint8))
    return found[0] if found else None


def _touches_edge(mask: NDArray[np.bool_]) -> bool:
    """Whether a mask reaches a face of its array (a lesion cut by the search box)."""
    return bool(
        mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any() or mask[:, :, 0].any()
        or mask[:, :, -1].any()
    )  # fmt: skip


def _fmt(point: ArrayLike) -> str:
    return "(" + ", ".join(f"{v:.1f}" for v in np.asarray(point, dtype=float)) + ")"
