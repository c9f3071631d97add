"""A reader's unsaved edits of one scan (a :class:`~hepavol.segmentation.label_editing.LabelMapEditor`), and the
translation of browser gestures (display indices, brush strokes on a slice) into the editor's terms (LPS mm and
masks on the image grid)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hepavol.app.volumes import LoadedScan, Overlay, lesion_overlay
from hepavol.errors import InputError
from hepavol.segmentation.label_editing import BRUSH_MODES, Change, LabelMapEditor

__all__ = ["Draft"]

MAX_BRUSH_MM = 50.0


@dataclass
class Draft:
    """Unsaved edits of one scan by one browser session."""

    scan: LoadedScan
    editor: LabelMapEditor
    based_on: int | None
    overlay: Overlay = field(init=False)
    n_lesions: int = field(init=False)

    def __post_init__(self) -> None:
        self.overlay = self.scan.overlay  # the saved state's overlay until the first edit
        self.n_lesions = self.scan.n_lesions

    @classmethod
    def start(cls, scan: LoadedScan) -> Draft:
        files = scan.files
        editor = LabelMapEditor(
            scan.image, scan.labels, liver_label=files.liver_label, tumor_labels=files.tumor_labels
        )
        return cls(scan=scan, editor=editor, based_on=files.segmentation_pk)

    def refresh(self) -> None:
        self.overlay, self.n_lesions = lesion_overlay(self.editor.labels, self.scan.files, self.scan.grid)

    def overlay_bytes(self, k: int, plane: str = "axial") -> bytes:
        return np.ascontiguousarray(self.overlay.plane(k, plane, self.scan.files.date), dtype="<u2").tobytes()

    # ------------------------------------------------------------------------------------------ gestures
    def lps(self, display_index: Any, what: str) -> NDArray[np.float64]:
        idx = _triple(display_index, what)
        stored = self.scan.grid.to_stored_continuous(idx)
        return self.scan.image.geometry.index_to_lps(stored)

    def stroke(self, body: dict[str, Any]) -> NDArray[np.bool_]:
        """A brush stroke through points (row, column) of one display slice: discs of ``radius_mm`` on that slice
        (``shape`` "disc", the default) or balls of ``radius_mm`` reaching the slices around it ("sphere", the 3D
        brush); a voxel is painted when its centre is within the radius (mm, on the voxel spacing)."""
        k = int(body.get("slice", -1))
        self.scan._k(k)
        radius = float(body.get("radius_mm", 0))
        if not 0 < radius <= MAX_BRUSH_MM:
            raise InputError(f"brush radius {radius} mm must be above 0 and at most {MAX_BRUSH_MM:g} mm.")
        shape = body.get("shape", "disc")
        if shape not in ("disc", "sphere"):
            raise InputError(f"brush shape {shape!r} is not 'disc' (on the slice) or 'sphere' (3D).")
        points = np.asarray(body.get("points") or [], dtype=float).reshape(-1, 2)
        if not len(points):
            raise InputError("the brush stroke has no points.")
        sk, sr, sc = self.scan.grid.spacing_mm
        dense = [points[0]]
        for a, b in itertools.pairwise(points):  # no gaps between discs of a fast stroke
            steps = int(np.ceil(np.hypot((b[0] - a[0]) * sr, (b[1] - a[1]) * sc) / (radius / 2))) or 1
            dense += [a + (b - a) * t for t in np.linspace(0, 1, steps + 1)[1:]]
        stored = np.zeros(self.scan.grid.stored_shape, dtype=bool)
        view = self.scan.grid.view(stored)  # writing into the view writes the stored grid
        n, rows, cols = self.scan.grid.shape
        rr, cc = np.mgrid[:rows, :cols]
        reach = int(np.floor(radius / sk)) if shape == "sphere" else 0
        for kk in range(max(k - reach, 0), min(k + reach, n - 1) + 1):
            left = radius**2 - ((kk - k) * sk) ** 2  # the squared radius of the ball's disc on slice kk
            plane = np.zeros((rows, cols), dtype=bool)
            for r, c in dense:
                plane |= ((rr - r) * sr) ** 2 + ((cc - c) * sc) ** 2 <= left
            view[kk] = plane
        return stored

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """One gesture (``action``: seed, recist, include, exclude, brush, undo, redo); what it changed."""
        action = body.get("action")
        editor = self.editor
        change: Change | None
        if action == "seed":
            change = editor.add_lesion_from_seed(self.lps(body.get("point"), "the click"))
        elif action == "recist":
            a, b = self.lps(body.get("point"), "the line's start"), self.lps(body.get("end"), "the line's end")
            change = editor.add_lesion_from_recist(a, b)
        elif action == "include":
            change = editor.include(self.lps(body.get("point"), "the include click"))
        elif action == "exclude":
            change = editor.exclude(self.lps(body.get("point"), "the exclude click"))
        elif action == "remove":
            change = editor.remove_lesion(self.lps(body.get("point"), "the lesion to remove"))
        elif action == "brush":
            mode = body.get("mode")
            if mode not in BRUSH_MODES:
                raise InputError(f"brush mode {mode!r} is not one of {', '.join(BRUSH_MODES)}.")
            change = editor.paint(self.stroke(body), mode)
        elif action == "undo":
            change = editor.undo()
        elif action == "redo":
            change = editor.redo()
        else:
            raise InputError(
                f"unknown edit {action!r}: seed, recist, include, exclude, remove, brush, undo or redo."
            )
        self.refresh()
        return self.state(change.what if change is not None else None, change.voxels if change is not None else 0)

    def state(self, what: str | None = None, voxels: int = 0) -> dict[str, Any]:
        voxel_ml = self.scan.image.geometry.voxel_volume_mm3 / 1000.0
        return {
            "what": what,
            "changed_voxels": voxels,
            "edits": len(self.editor.changes),
            "can_undo": self.editor.can_undo,
            "can_redo": self.editor.can_redo,
            "tumor_volume_ml": round(self.editor.tumor_voxels * voxel_ml, 3),
            "lesions": self.n_lesions,
        }

    @property
    def changed_voxels(self) -> int:
        base = self.scan.labels
        return int(np.count_nonzero(base != self.editor.labels))


def _triple(value: Any, what: str) -> tuple[float, float, float]:
    try:
        a, b, c = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{what} needs a point [slice, row, column], not {value!r}.") from None
    return a, b, c
