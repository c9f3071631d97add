"""Liver metastases as growing ellipsoids: sampling, placement inside the liver, analytic size, rasterisation.

A lesion is an ellipsoid with fixed centre, orientation and axis ratios in the body frame; its volume follows a
:class:`~hepavol.simulate.growth.GrowthLaw` and the three semi-axes scale together (isotropic growth). Its true
volume is therefore analytic, ``4/3·π·a·b·c``, and so are its axes in any plane: every axial section of an
ellipsoid is an ellipse similar to the central one, so the true RECIST long and short axes are those of the
central axial section, whose shape matrix is the 2×2 (x, y) block of the ellipsoid's matrix in the scanner frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from hepavol.simulate.anatomy import Anatomy, liver_sdf, sample_interior_points
from hepavol.simulate.growth import GrowthLaw

Appearance = Literal["hypo", "hyper", "rim", "calcified", "necrotic"]
Mat3 = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]
Vec3 = tuple[float, float, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class LesionSpec:
    """One simulated liver metastasis (body frame, mm).

    ``axis_ratios`` are the three semi-axes divided by the longest one (the first is 1); ``rotation`` is a
    rotation matrix whose column ``k`` is the body-frame direction of semi-axis ``k``. ``onset_day`` is 0 for
    lesions present at baseline and the first day of existence for new lesions. ``contrast`` holds three numbers
    in [0, 1] that pick the lesion's intensities within the ranges of its ``appearance`` for each modality.
    """

    lesion_id: int
    centre_mm: Vec3
    rotation: Mat3
    axis_ratios: Vec3
    law: GrowthLaw
    onset_day: int
    appearance: Appearance
    contrast: Vec3
    calcification_offset: Vec3 = (0.0, 0.0, 0.0)

    @property
    def is_new(self) -> bool:
        """True for a lesion that appears after baseline."""
        return self.onset_day > 0

    def present(self, day: int) -> bool:
        """Whether the lesion exists on ``day`` (days after baseline)."""
        return day >= self.onset_day

    def volume_ml(self, day: int) -> float:
        """True (analytic) volume in mL on ``day``; 0 before onset."""
        if not self.present(day):
            return 0.0
        return self.law.volume_ml(day - self.onset_day)

    def semi_axes_mm(self, day: int) -> NDArray[np.float64]:
        """The three semi-axes in mm on ``day`` (zeros before onset): ``4/3·π·a·b·c`` equals the volume."""
        v_mm3 = self.volume_ml(day) * 1000.0
        ratios = np.array(self.axis_ratios)
        a = (3.0 * v_mm3 / (4.0 * math.pi * float(np.prod(ratios)))) ** (1.0 / 3.0)
        return a * ratios

    def shape_matrix(self, day: int, rotation_to_scanner: NDArray[np.float64]) -> NDArray[np.float64]:
        """Matrix ``A`` with the lesion = ``{p : (p − c)ᵀ A (p − c) ≤ 1}`` in the scanner frame (mm⁻²)."""
        semi = self.semi_axes_mm(day)
        r = rotation_to_scanner @ np.array(self.rotation)
        return r @ np.diag(1.0 / semi**2) @ r.T

    def axial_axes_mm(self, day: int, rotation_to_scanner: NDArray[np.float64]) -> tuple[float, float]:
        """True long and short axis (mm) of the largest axial section in the scanner frame (RECIST plane)."""
        if not self.present(day):
            return (0.0, 0.0)
        a = self.shape_matrix(day, rotation_to_scanner)
        eig = np.linalg.eigvalsh(a[:2, :2])  # (x, y) block: the central section z = const
        return (float(2.0 / math.sqrt(eig[0])), float(2.0 / math.sqrt(eig[1])))


def random_rotation(rng: np.random.Generator) -> Mat3:
    """A uniformly distributed random rotation matrix (QR of a Gaussian matrix with sign fix)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return tuple(tuple(float(v) for v in row) for row in q)  # type: ignore[return-value]


def _surface_points(n: int) -> NDArray[np.float64]:
    """``n`` nearly uniform unit vectors (Fibonacci sphere)."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = math.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


_UNIT_SPHERE = _surface_points(400)

#: Smallest distance between the bounding spheres of two lesions at their largest size, mm. Above the 6.1 mm
#: diagonal of a 2.5 × 2.5 × 5 mm voxel, so two lesions never touch in a 26-connected label map of the small grid
#: (or any finer grid): connected components of the tumour label are exactly the lesions.
MIN_GAP_MM = 7.0


def _fits(
    anat: Anatomy,
    centre: NDArray[np.float64],
    rotation: NDArray[np.float64],
    semi: NDArray[np.float64],
    placed: list[tuple[NDArray[np.float64], float]],
    margin_mm: float,
) -> bool:
    radius = float(semi.max())
    for other_centre, other_radius in placed:
        if np.linalg.norm(centre - other_centre) < radius + other_radius + MIN_GAP_MM:
            return False
    pts = centre + (_UNIT_SPHERE * semi) @ rotation.T
    f = liver_sdf(anat, *(pts[:, i].astype(np.float32) for i in range(3)))
    return bool(np.all(f < -margin_mm))


def place_lesions(
    anat: Anatomy,
    rng: np.random.Generator,
    drafts: list[LesionSpec],
    horizon_day: int,
    *,
    min_diameter_mm: float,
    margin_mm: float = 2.0,
    tries: int = 150,
) -> list[LesionSpec]:
    """Give each draft lesion a centre where it stays inside the liver and apart from the others (by
    :data:`MIN_GAP_MM`) until ``horizon_day``; a lesion that does not fit is shrunk (volume × 0.6, up to 4 times), then dropped.

    Lesions are placed largest first. Drafts whose long axis would fall below ``min_diameter_mm`` at onset are
    dropped. Lesion ids are renumbered 1..n in onset order, then by decreasing size.
    """
    order = sorted(drafts, key=lambda d: -_max_volume(d, horizon_day))
    placed: list[tuple[NDArray[np.float64], float]] = []
    out: list[LesionSpec] = []
    for draft in order:
        spec = draft
        for _shrink in range(5):
            onset_long_axis = 2.0 * float(spec.semi_axes_mm(spec.onset_day).max())
            if onset_long_axis < min_diameter_mm:
                break
            semi = _max_semi_axes(spec, horizon_day)
            rotation = np.array(spec.rotation)
            candidates = sample_interior_points(anat, rng, tries, margin_mm=float(semi.min()) + margin_mm)
            found = None
            for c in candidates:
                if _fits(anat, c, rotation, semi, placed, margin_mm):
                    found = c
                    break
            if found is not None:
                placed.append((found, float(semi.max())))
                out.append(_replace(spec, centre_mm=(float(found[0]), float(found[1]), float(found[2]))))
                break
            law = spec.law
            spec = _replace(
                spec,
                law=GrowthLaw(
                    volume0_ml=law.volume0_ml * 0.6,
                    rate_per_month=law.rate_per_month,
                    model=law.model,
                    capacity_ml=None if law.capacity_ml is None else law.capacity_ml * 0.6,
                ),
            )
    out.sort(key=lambda s: (s.onset_day, -s.law.volume0_ml))
    return [_replace(s, lesion_id=i) for i, s in enumerate(out, start=1)]


def _max_volume(spec: LesionSpec, horizon_day: int) -> float:
    return max(spec.volume_ml(spec.onset_day), spec.volume_ml(max(horizon_day, spec.onset_day)))


def _max_semi_axes(spec: LesionSpec, horizon_day: int) -> NDArray[np.float64]:
    day = spec.onset_day if spec.volume_ml(spec.onset_day) >= spec.volume_ml(horizon_day) else horizon_day
    return spec.semi_axes_mm(max(day, spec.onset_day))


def _replace(spec: LesionSpec, **changes: object) -> LesionSpec:
    values = {name: getattr(spec, name) for name in LesionSpec.__dataclass_fields__}
    values.update(changes)
    return LesionSpec(**values)


def rasterise(
    spec: LesionSpec,
    day: int,
    points_body_mm: tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]],
) -> tuple[NDArray[np.bool_], NDArray[np.float32]]:
    """Inside mask and normalised radius ``ρ`` (0 at the centre, 1 on the surface) at body-frame points."""
    semi = spec.semi_axes_mm(day)
    r = np.array(spec.rotation, dtype=np.float64)
    x, y, z = (p - np.float32(c) for p, c in zip(points_body_mm, spec.centre_mm))
    rho2 = np.zeros(x.shape, dtype=np.float32)
    for k in range(3):
        u = x * np.float32(r[0, k]) + y * np.float32(r[1, k]) + z * np.float32(r[2, k])
        rho2 += (u / np.float32(semi[k])) ** 2
    rho = np.sqrt(rho2)
    return rho <= 1.0, rho


def calcification_mask(
    spec: LesionSpec,
    day: int,
    points_body_mm: tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]],
) -> NDArray[np.bool_]:
    """A small calcified focus (radius 2-4 mm) inside a lesion of appearance ``calcified``."""
    semi = spec.semi_axes_mm(day)
    radius = float(min(4.0, max(2.0, 0.25 * semi.min())))
    off = np.array(spec.calcification_offset) * (semi.min() - radius) * 0.8
    centre = np.array(spec.centre_mm) + np.array(spec.rotation) @ off
    x, y, z = points_body_mm
    return ((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) <= radius**2
