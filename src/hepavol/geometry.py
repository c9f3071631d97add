"""The one geometry core of hepavol: a regular voxel grid in DICOM patient coordinates (LPS, mm).

Conventions (used everywhere in hepavol, stated once here):

- Arrays are indexed ``(slice, row, column)`` (as scikit-image and highdicom do), never x/y/z.
- Positions are DICOM patient coordinates: +x towards the patient's Left, +y Posterior, +z Superior (LPS), in mm.
- ``origin_lps_mm`` is the centre of voxel ``(0, 0, 0)``.
- ``direction`` is a 3×3 matrix whose *column* ``k`` is the unit LPS vector along array axis ``k``. For a DICOM
  series, column 2 (the column axis) is the first ImageOrientationPatient triplet, column 1 (the row axis) the
  second, and column 0 the slice normal oriented towards increasing slice position.
- The centre of voxel ``i = (s, r, c)`` is at ``origin + direction @ (spacing * i)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hepavol.errors import GeometryError

Vec3 = tuple[float, float, float]
Mat3 = tuple[Vec3, Vec3, Vec3]

#: Default tolerances to decide that two grids are the same (mm for positions and spacings, unitless for the
#: direction cosines). A segmentation written by another tool usually repeats the image geometry to 1e-4 mm.
GRID_ATOL_MM = 1e-3
DIRECTION_ATOL = 1e-4

_AXIS_LETTERS = (("L", "R"), ("P", "A"), ("S", "I"))


def _as_vec3(values: ArrayLike, name: str) -> Vec3:
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise GeometryError(f"Argument '{name}' must be 3 finite numbers, but it is {values!r}.")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


@dataclass(frozen=True, slots=True, kw_only=True)
class Geometry:
    """A regular voxel grid in DICOM LPS patient coordinates (mm).

    Parameters
    ----------
    shape : tuple of int, shape (3,)
        Number of voxels along the (slice, row, column) axes.
    spacing_mm : tuple of float, shape (3,)
        Distance between voxel centres along the (slice, row, column) axes in mm.
    origin_lps_mm : tuple of float, shape (3,)
        LPS position of the centre of voxel (0, 0, 0) in mm.
    direction : 3×3 tuple of float
        Row-major matrix whose column ``k`` is the unit LPS vector of array axis ``k``.

    Examples
    --------
    >>> g = Geometry(shape=(10, 10, 10), spacing_mm=(2.5, 0.7, 0.7), origin_lps_mm=(0.0, 0.0, 0.0),
    ...              direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)))
    >>> round(g.voxel_volume_mm3 * 1000, 6)
    1225.0
    """

    shape: tuple[int, int, int]
    spacing_mm: Vec3
    origin_lps_mm: Vec3
    direction: Mat3

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        if len(shape) != 3 or any(n < 1 for n in shape):
            raise GeometryError(f"Argument 'shape' must be 3 positive integers, but it is {self.shape!r}.")
        spacing = _as_vec3(self.spacing_mm, "spacing_mm")
        if any(s <= 0 for s in spacing):
            raise GeometryError(
                f"Argument 'spacing_mm' must be positive along every axis, but it is {spacing!r}. "
                "Check PixelSpacing / slice positions or the header of the file."
            )
        origin = _as_vec3(self.origin_lps_mm, "origin_lps_mm")
        d = np.asarray(self.direction, dtype=float)
        if d.shape != (3, 3) or not np.all(np.isfinite(d)):
            raise GeometryError(f"Argument 'direction' must be a 3×3 matrix, but it is {self.direction!r}.")
        norms = np.linalg.norm(d, axis=0)
        if np.any(np.abs(norms - 1.0) > 1e-3):
            raise GeometryError(
                f"Argument 'direction' must have unit columns, but their norms are {np.round(norms, 4).tolist()}."
            )
        d = d / norms
        gram = d.T @ d
        if np.max(np.abs(gram - np.eye(3))) > 1e-3:
            raise GeometryError(
                "Argument 'direction' must be orthogonal (a sheared grid, e.g. from CT gantry tilt, is not "
                f"supported), but the axes' cosines are {np.round(gram, 4).tolist()}. Resample the image onto an "
                "orthogonal grid first."
            )
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing_mm", spacing)
        object.__setattr__(self, "origin_lps_mm", origin)
        object.__setattr__(self, "direction", tuple(tuple(float(v) for v in row) for row in d))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_affine(cls, affine: ArrayLike, shape: Sequence[int]) -> Geometry:
        """Build a geometry from a 4×4 matrix mapping (slice, row, column) indices to LPS mm."""
        a = np.asarray(affine, dtype=float)
        if a.shape != (4, 4):
            raise GeometryError(f"Argument 'affine' must be 4×4, but its shape is {a.shape}.")
        m = a[:3, :3]
        spacing = np.linalg.norm(m, axis=0)
        if np.any(spacing <= 0):
            raise GeometryError(f"Argument 'affine' has a zero-length axis: {a.tolist()}.")
        direction = m / spacing
        return cls(
            shape=(int(shape[0]), int(shape[1]), int(shape[2])),
            spacing_mm=_as_vec3(spacing, "spacing_mm"),
            origin_lps_mm=_as_vec3(a[:3, 3], "origin_lps_mm"),
            direction=tuple(tuple(float(v) for v in row) for row in direction),  # type: ignore[arg-type]
        )

    # ------------------------------------------------------------------ derived values
    @property
    def direction_matrix(self) -> NDArray[np.float64]:
        """3×3 array; column ``k`` is the unit LPS vector of array axis ``k``."""
        return np.array(self.direction, dtype=float)

    @property
    def affine(self) -> NDArray[np.float64]:
        """4×4 array mapping homogeneous (slice, row, column) indices to LPS mm."""
        a = np.eye(4)
        a[:3, :3] = self.direction_matrix * np.array(self.spacing_mm)
        a[:3, 3] = self.origin_lps_mm
        return a

    @property
    def voxel_volume_mm3(self) -> float:
        """float: The volume of one voxel in cubic millimetres."""
        s0, s1, s2 = self.spacing_mm
        return s0 * s1 * s2

    @property
    def slice_normal(self) -> Vec3:
        """Unit LPS vector along the slice axis (axis 0)."""
        d = self.direction_matrix
        return (float(d[0, 0]), float(d[1, 0]), float(d[2, 0]))

    @property
    def orientation_code(self) -> str:
        """Three letters naming where the (column, row, slice) axes point, e.g. ``LPS`` (ITK convention)."""
        d = self.direction_matrix
        letters = []
        for axis in (2, 1, 0):
            v = d[:, axis]
            k = int(np.argmax(np.abs(v)))
            letters.append(_AXIS_LETTERS[k][0 if v[k] > 0 else 1])
        return "".join(letters)

    def index_to_lps(self, index: ArrayLike) -> NDArray[np.float64]:
        """LPS mm of voxel (slice, row, column) indices; ``index`` has shape (3,) or (N, 3); fractional allowed."""
        idx = np.asarray(index, dtype=float)
        pts = (idx * np.array(self.spacing_mm)) @ self.direction_matrix.T + np.array(self.origin_lps_mm)
        return pts

    def lps_to_index(self, points_mm: ArrayLike) -> NDArray[np.float64]:
        """Fractional (slice, row, column) indices of LPS points in mm; shape (3,) or (N, 3)."""
        p = np.asarray(points_mm, dtype=float) - np.array(self.origin_lps_mm)
        return (p @ self.direction_matrix) / np.array(self.spacing_mm)

    # ------------------------------------------------------------------ comparison and display
    def differences(
        self, other: Geometry, *, atol_mm: float = GRID_ATOL_MM, direction_atol: float = DIRECTION_ATOL
    ) -> list[str]:
        """Names of the properties on which two grids differ beyond the tolerances (empty list: same grid)."""
        diffs: list[str] = []
        if self.shape != other.shape:
            diffs.append("shape")
        if np.max(np.abs(np.subtract(self.spacing_mm, other.spacing_mm))) > atol_mm:
            diffs.append("spacing")
        if np.max(np.abs(np.subtract(self.origin_lps_mm, other.origin_lps_mm))) > atol_mm:
            diffs.append("origin")
        if np.max(np.abs(self.direction_matrix - other.direction_matrix)) > direction_atol:
            diffs.append("direction")
        return diffs

    def describe(self) -> str:
        """One line for messages: shape, spacing, origin and orientation."""
        sp = ", ".join(f"{v:.4g}" for v in self.spacing_mm)
        org = ", ".join(f"{v:.2f}" for v in self.origin_lps_mm)
        d = ", ".join("(" + ", ".join(f"{v:.4f}" for v in row) + ")" for row in self.direction)
        return (
            f"shape={self.shape} (slice, row, column), spacing_mm=({sp}), origin_lps_mm=({org}), "
            f"orientation={self.orientation_code}, direction=[{d}]"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description: ``shape``, ``spacing_mm``, ``origin_mm`` (LPS) and ``direction``."""
        return {
            "shape": list(self.shape),
            "spacing_mm": [round(v, 6) for v in self.spacing_mm],
            "origin_mm": [round(v, 6) for v in self.origin_lps_mm],
            "direction": [[round(v, 8) for v in row] for row in self.direction],
        }

    def __repr__(self) -> str:
        sp = ", ".join(f"{v:.2f}" for v in self.spacing_mm)
        return f"Geometry(shape: {self.shape}; spacing_mm: ({sp}); orientation: {self.orientation_code})"


def identity_direction() -> Mat3:
    """Direction of a grid whose (slice, row, column) axes point to +z (S), +y (P), +x (L)."""
    return ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))


def check_same_grid(
    reference: Geometry,
    other: Geometry,
    *,
    reference_name: str = "image",
    other_name: str = "segmentation",
    hint: str = "Pass --resample-seg to resample the segmentation onto the image grid (nearest neighbour).",
    atol_mm: float = GRID_ATOL_MM,
    direction_atol: float = DIRECTION_ATOL,
) -> None:
    """Raise :class:`GeometryError` printing both geometries when two grids differ beyond tolerance."""
    diffs = reference.differences(other, atol_mm=atol_mm, direction_atol=direction_atol)
    if diffs:
        raise GeometryError(
            f"{other_name} and {reference_name} are on different grids (they differ in {', '.join(diffs)}; "
            f"tolerance {atol_mm} mm):\n"
            f"  {reference_name}: {reference.describe()}\n"
            f"  {other_name}: {other.describe()}\n"
            f"{hint}"
        )


def angle_between_deg(u: ArrayLike, v: ArrayLike) -> float:
    """Angle between two 3-vectors in degrees."""
    a = np.asarray(u, dtype=float)
    b = np.asarray(v, dtype=float)
    c = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))
