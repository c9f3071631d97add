"""Editing a scan's whole label map (liver and lesions): new lesions, corrective clicks, brush, undo and redo.

:class:`LabelMapEditor` is what a reader edits in the review app. It holds the label map of one scan on the
image grid and records every change as a difference, so that :meth:`~LabelMapEditor.undo` and
:meth:`~LabelMapEditor.redo` restore exactly the voxels a change touched.

- ``add_lesion_from_seed`` / ``add_lesion_from_recist``: a new lesion segmented from a click or a RECIST line
  (:class:`~hepavol.segmentation.editing.LesionEditSession`, kept within the liver and off the other lesions);
- ``include`` / ``exclude``: a corrective click on the lesion being edited, or on the lesion nearest the click
  (its component becomes the starting mask of a new :class:`LesionEditSession`);
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
        self._outline = ndimage.binary_fill_holes(arr == self.liver_label)
        self._done: list[Change] = []
        self._undone: list[Change] = []
        self._session: LesionEditSession | None = None
        self._session_mask: NDArray[np.bool_] | None = None

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

    def liver_mask(self) -> NDArray[np.bool_]:
        """The liver with its lesions (the organ the lesions must stay in)."""
        return np.asarray((self.labels == self.liver_label) | (self.tumor_mask() & self._outline))

    # ------------------------------------------------------------------------------------------ edits
    def add_lesion_from_seed(self, point_lps: ArrayLike) -> Change:
        """A new lesion from a click inside it (LPS mm)."""
        idx = self._index(point_lps, "the click")
        if self.tumor_mask()[idx]:
            raise InputError(
                f"the click at {_fmt(point_lps)} is inside a lesion already: correct that lesion with include or "
                "exclude instead."
            )
        liver = self.liver_mask()
        session = LesionEditSession.from_seed(
            self.image, point_lps, liver_mask=liver if liver.any() else None, other_lesions=[self.tumor_mask()]
        )
        return self._apply_session(session, "new lesion from a click")

    def add_lesion_from_recist(self, p1: ArrayLike, p2: ArrayLike) -> Change:
        """A new lesion from its RECIST line (end points in LPS mm, on one slice)."""
        liver = self.liver_mask()
        session = LesionEditSession.from_recist(
            self.image, p1, p2, liver_mask=liver if liver.any() else None, other_lesions=[self.tumor_mask()]
        )
        return self._apply_session(session, "new lesion from a RECIST line")

    def include(self, point_lps: ArrayLike) -> Change:
        """Add a missed part to the lesion being edited (or to the lesion nearest the click)."""
        session = self._session_for(point_lps)
        session.include(point_lps)
        return self._apply_session(session, "include")

    def exclude(self, point_lps: ArrayLike) -> Change:
        """Remove a leak from the lesion being edited (or from the lesion nearest the click)."""
        session = self._session_for(point_lps)
        session.exclude(point_lps)
        return self._apply_session(session, "exclude")

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
        self._undone.append(change)
        self._end_session()
        return change

    def redo(self) -> Change | None:
        """Do again the last edit taken back (None when there is none)."""
        if not self._undone:
            return None
        change = self._undone.pop()
        self.labels.ravel()[change.index] = change.after
        self._done.append(change)
        self._end_session()
        return change

    # ------------------------------------------------------------------------------------------ internals
    def _index(self, point_lps: ArrayLike, what: str) -> tuple[int, int, int]:
        idx = np.rint(self.image.geometry.lps_to_index(np.asarray(point_lps, dtype=float))).astype(int)
        if np.any(idx < 0) or np.any(idx >= np.asarray(self.labels.shape)):
            raise InputError(f"{what} at {_fmt(point_lps)} mm (LPS) is outside the image.")
        return (int(idx[0]), int(idx[1]), int(idx[2]))

    def _session_for(self, point_lps: ArrayLike) -> LesionEditSession:
        """The active session if the click is on or near its lesion, else a session on the nearest lesion."""
        idx = self._index(point_lps, "the correction")
        tumor = self.tumor_mask()
        if self._session is not None and self._session_mask is not None:
            own = self._session_mask
            if own[idx] or not tumor[idx]:
                return self._session
        if not tumor.any():
            raise InputError("there is no lesion to correct on this scan: add one with a click or a RECIST line.")
        from hepavol.measurement import connected_components

        components = connected_components(tumor, connectivity=26)
        value = int(components[idx])
        if value == 0:  # the nearest lesion voxel's component
            _, nearest = ndimage.distance_transform_edt(
                components == 0, sampling=self.image.geometry.spacing_mm, return_indices=True
            )
            value = int(components[tuple(nearest[:, idx[0], idx[1], idx[2]])])
        mask = components == value
        others = tumor & ~mask
        liver = self.liver_mask()
        session = LesionEditSession.from_mask(
            self.image,
            mask,
            liver_mask=liver if liver.any() else None,
            other_lesions=[others] if others.any() else [],
        )
        self._session, self._session_mask = session, mask
        return session

    def _apply_session(self, session: LesionEditSession, what: str) -> Change:
        new_mask = np.asarray(session.mask, dtype=bool)
        old_mask = self._session_mask if self._session is session and self._session_mask is not None else None
        new = self.labels.copy()
        if old_mask is not None:
            gone = old_mask & ~new_mask
            new[gone] = self._given_up(gone)
        new[new_mask] = np.where(np.isin(self.labels[new_mask], self.tumor_labels), self.labels[new_mask],
                                 self.lesion_label)  # fmt: skip
        self._session, self._session_mask = session, new_mask
        return self._commit(new, what)

    def _given_up(self, voxels: NDArray[np.bool_]) -> NDArray[np.integer]:
        """The labels of voxels a lesion gives up: the liver inside its starting outline, else background."""
        return np.where(self._outline[voxels], self.liver_label, 0).astype(self.labels.dtype)

    def _commit(self, new: NDArray[np.integer], what: str) -> Change:
        index = np.flatnonzero(new.ravel() != self.labels.ravel()).astype(np.int64)
        change = Change(what, index, self.labels.ravel()[index].copy(), new.ravel()[index].copy())
        if index.size:
            self.labels.ravel()[index] = change.after
            self._done.append(change)
            self._undone.clear()
        return change

    def _end_session(self) -> None:
        self._session, self._session_mask = None, None


def _fmt(point: ArrayLike) -> str:
    return "(" + ", ".join(f"{v:.1f}" for v in np.asarray(point, dtype=float)) + ")"
