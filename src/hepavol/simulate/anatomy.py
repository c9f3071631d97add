"""A simple analytic abdomen: body outline, fat, muscle, spine, organs and a liver of realistic shape.

Everything is defined as implicit functions of position in the *body frame* (LPS mm: +x patient left,
+y posterior, +z superior; origin near the centre of the abdomen at the level of the liver). A scan evaluates
them at its voxel centres after mapping them from the scanner frame to the body frame, so the same patient can
be scanned at different positions and any resolution.

The liver is the smooth union of three ellipsoids (right lobe, left lobe, caudate lobe), displaced by a smooth
random field (low-frequency cosines), cut by the abdominal wall, the diaphragm, the spine and the inferior vena
cava, and scaled so that its volume matches a target drawn in 1.2-2.2 L (issue 5). Its volume is computed by
numerical quadrature on a 2.5 mm grid (:func:`liver_volume_ml`), since the shape has no closed form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from hepavol.simulate.config import SimulationConfig

F32 = NDArray[np.float32]
Vec3 = tuple[float, float, float]


class Tissue(IntEnum):
    """Tissue classes painted into a scan before intensities are assigned (modality-specific tables)."""

    AIR = 0
    SUBCUTANEOUS_FAT = 1
    MUSCLE = 2
    VISCERAL_FAT = 3
    BOWEL = 4
    GAS = 5
    LUNG = 6
    HEART = 7
    KIDNEY = 8
    SPLEEN = 9
    STOMACH_WALL = 10
    STOMACH_FLUID = 11
    AORTA = 12
    IVC = 13
    BONE_CORTEX = 14
    BONE_MARROW = 15
    DISC = 16
    CSF = 17
    LIVER = 18
    LIVER_VESSEL = 19
    LESION = 20
    LESION_RIM = 21
    LESION_NECROSIS = 22
    CALCIFICATION = 23


@dataclass(frozen=True, slots=True, kw_only=True)
class Ellipsoid:
    """An axis-aligned ellipsoid in the body frame (centre and semi-axes in mm)."""

    centre_mm: Vec3
    semi_axes_mm: Vec3


@dataclass(frozen=True, slots=True, kw_only=True)
class Anatomy:
    """Parameters of one virtual abdomen (body frame, mm). Built by :func:`sample_anatomy`."""

    body_semi_axes_mm: tuple[float, float]
    body_harmonics: tuple[tuple[float, float], ...]
    fat_mm: float
    muscle_mm: float
    spine_y_mm: float
    vertebra_radius_mm: float
    vertebra_period_mm: float
    vertebra_phase_mm: float
    diaphragm_z_mm: float
    liver_lobes: tuple[Ellipsoid, ...]
    liver_reference_mm: Vec3
    liver_scale: float
    liver_deform: tuple[tuple[float, float, float, float, float], ...]
    bowel_waves: tuple[tuple[float, float, float, float], ...]
    kidneys: tuple[Ellipsoid, Ellipsoid]
    spleen: Ellipsoid
    stomach: Ellipsoid
    vessels: tuple[tuple[Vec3, Vec3, float], ...]
    liver_volume_ml: float

    @property
    def aorta_xy_mm(self) -> tuple[float, float]:
        return (18.0, self.spine_y_mm - self.vertebra_radius_mm - 14.0)

    @property
    def ivc_xy_mm(self) -> tuple[float, float]:
        return (-24.0, self.spine_y_mm - self.vertebra_radius_mm - 14.0)

    def liver_bounds_mm(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """A box (min, max corners, body frame mm) that contains the whole liver."""
        lo = np.full(3, np.inf)
        hi = np.full(3, -np.inf)
        ref = np.array(self.liver_reference_mm)
        for lobe in self.liver_lobes:
            c = ref + self.liver_scale * (np.array(lobe.centre_mm) - ref)
            s = self.liver_scale * np.array(lobe.semi_axes_mm)
            lo = np.minimum(lo, c - s)
            hi = np.maximum(hi, c + s)
        margin = 30.0
        return lo - margin, hi + margin


# ---------------------------------------------------------------------------------------------------- helpers
def _smin(a: F32, b: F32, k: float) -> F32:
    """Smooth minimum (union of two implicit shapes) with blending width ``k`` mm."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return (b * (1 - h) + a * h - k * h * (1 - h)).astype(np.float32)


def _smax(a: F32, b: F32, k: float) -> F32:
    """Smooth maximum (intersection) with blending width ``k`` mm."""
    return -_smin(-a, -b, k)


def _ellipsoid_sdf(x: F32, y: F32, z: F32, centre: Vec3, semi: Vec3) -> F32:
    """Approximate signed distance (mm, negative inside) to an axis-aligned ellipsoid."""
    px = (x - centre[0]) / semi[0]
    py = (y - centre[1]) / semi[1]
    pz = (z - centre[2]) / semi[2]
    k0 = np.sqrt(px * px + py * py + pz * pz)
    k1 = np.sqrt((px / semi[0]) ** 2 + (py / semi[1]) ** 2 + (pz / semi[2]) ** 2)
    return (k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)).astype(np.float32)


def _inside_ellipsoid(x: F32, y: F32, z: F32, e: Ellipsoid, grow_mm: float = 0.0) -> NDArray[np.bool_]:
    c, s = e.centre_mm, e.semi_axes_mm
    return (
        ((x - c[0]) / (s[0] + grow_mm)) ** 2
        + ((y - c[1]) / (s[1] + grow_mm)) ** 2
        + ((z - c[2]) / (s[2] + grow_mm)) ** 2
    ) <= 1.0


def body_radius_mm(anat: Anatomy, theta: F32) -> F32:
    """Radius of the skin outline (mm) at polar angle ``theta`` in the axial plane (atan2(y, x))."""
    a, b = anat.body_semi_axes_mm
    c = np.cos(theta)
    s = np.sin(theta)
    r = 1.0 / np.sqrt((c / a) ** 2 + (s / b) ** 2)
    wobble = np.ones_like(theta)
    for k, (amp, phase) in enumerate(anat.body_harmonics, start=2):
        wobble = wobble + amp * np.cos(k * theta + phase)
    flat_back = 1.0 - 0.08 * np.clip(s, 0.0, None) ** 4  # the back lies flat on the table
    return (r * wobble * flat_back).astype(np.float32)


def _diaphragm_z(anat: Anatomy, x: F32, y: F32) -> F32:
    """Height (mm) of the diaphragm dome above the point (x, y): highest on the right, lower posteriorly."""
    right = np.exp(-(((x + 60.0) / 90.0) ** 2))
    left = np.exp(-(((x - 70.0) / 80.0) ** 2))
    dome = 18.0 * right + 8.0 * left - 12.0 * ((y / 120.0) ** 2)
    return (anat.diaphragm_z_mm + dome).astype(np.float32)


def liver_sdf(anat: Anatomy, x: F32, y: F32, z: F32) -> F32:
    """Implicit liver function (mm, approximately a signed distance; liver where it is < 0)."""
    ref = anat.liver_reference_mm
    s = anat.liver_scale
    parts = []
    for lobe in anat.liver_lobes:
        c = tuple(ref[i] + s * (lobe.centre_mm[i] - ref[i]) for i in range(3))
        semi = tuple(s * v for v in lobe.semi_axes_mm)
        parts.append(_ellipsoid_sdf(x, y, z, c, semi))  # type: ignore[arg-type]
    f = parts[0]
    for p in parts[1:]:
        f = _smin(f, p, 20.0)
    for kx, ky, kz, phase, amp in anat.liver_deform:
        f = f + (amp * np.cos(kx * x + ky * y + kz * z + phase)).astype(np.float32)
    # cut by the abdominal wall (liver lies against it), the diaphragm, the spine and the IVC
    r = np.hypot(x, y)
    inner = body_radius_mm(anat, np.arctan2(y, x)) - anat.fat_mm - anat.muscle_mm - 2.0
    f = _smax(f, (r - inner).astype(np.float32), 8.0)
    f = _smax(f, (z - (_diaphragm_z(anat, x, y) - 6.0)).astype(np.float32), 6.0)
    spine = np.hypot(x, y - anat.spine_y_mm) - (anat.vertebra_radius_mm + 12.0)
    f = _smax(f, (-spine).astype(np.float32), 6.0)
    ix, iy = anat.ivc_xy_mm
    ivc = np.hypot((x - ix) / 1.2, y - iy) - 13.0
    f = _smax(f, (-ivc).astype(np.float32), 4.0)
    aorta_x, aorta_y = anat.aorta_xy_mm
    aorta = np.hypot(x - aorta_x, y - aorta_y) - 16.0
    return _smax(f, (-aorta).astype(np.float32), 4.0)


def _grid_points(lo: NDArray[np.float64], hi: NDArray[np.float64], step_mm: float) -> tuple[F32, F32, F32]:
    axes = [np.arange(lo[i] + step_mm / 2, hi[i], step_mm, dtype=np.float32) for i in range(3)]
    zz, yy, xx = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return xx, yy, zz


def liver_volume_ml(anat: Anatomy, *, step_mm: float = 2.0) -> float:
    """Volume of the liver (mL) by midpoint quadrature of its implicit function on a ``step_mm`` grid."""
    lo, hi = anat.liver_bounds_mm()
    x, y, z = _grid_points(lo, hi, step_mm)
    inside = liver_sdf(anat, x, y, z) < 0
    return float(np.count_nonzero(inside)) * step_mm**3 / 1000.0


# ---------------------------------------------------------------------------------------------------- sampling
def _with_scale(anat: Anatomy, scale: float) -> Anatomy:
    values = {name: getattr(anat, name) for name in Anatomy.__dataclass_fields__}
    values["liver_scale"] = scale
    return Anatomy(**values)


def _with_diaphragm(anat: Anatomy, gap_mm: float) -> Anatomy:
    """Put the diaphragm dome just above the right lobe (``gap_mm`` below its top), so the dome caps the liver."""
    ref = anat.liver_reference_mm
    right = anat.liver_lobes[0]
    top = ref[2] + anat.liver_scale * (right.centre_mm[2] + right.semi_axes_mm[2] - ref[2])
    values = {name: getattr(anat, name) for name in Anatomy.__dataclass_fields__}
    values["diaphragm_z_mm"] = top - 18.0 + 6.0 - gap_mm
    return Anatomy(**values)


def _with_volume(anat: Anatomy, volume_ml: float) -> Anatomy:
    values = {name: getattr(anat, name) for name in Anatomy.__dataclass_fields__}
    values["liver_volume_ml"] = volume_ml
    return Anatomy(**values)


def sample_anatomy(rng: np.random.Generator, config: SimulationConfig) -> Anatomy:
    """Draw one abdomen and scale its liver to a volume drawn uniformly in ``config.liver_volume_ml``."""
    u = rng.uniform
    body = (float(u(150.0, 178.0)), float(u(105.0, 132.0)))
    harmonics = tuple((float(u(-0.025, 0.025)), float(u(0, 2 * math.pi))) for _ in range(4))
    fat = float(u(10.0, 32.0))
    muscle = float(u(8.0, 14.0))
    spine_y = body[1] - float(u(68.0, 80.0))
    jitter = lambda v, frac: float(v * (1 + u(-frac, frac)))  # noqa: E731
    lobes = (
        Ellipsoid(
            centre_mm=(jitter(-68.0, 0.1), jitter(8.0, 0.5), jitter(-5.0, 1.0)),
            semi_axes_mm=(jitter(78.0, 0.1), jitter(88.0, 0.1), jitter(88.0, 0.1)),
        ),
        Ellipsoid(
            centre_mm=(jitter(28.0, 0.3), jitter(-45.0, 0.15), jitter(25.0, 0.3)),
            semi_axes_mm=(jitter(72.0, 0.15), jitter(38.0, 0.15), jitter(42.0, 0.15)),
        ),
        Ellipsoid(
            centre_mm=(jitter(-15.0, 0.3), jitter(28.0, 0.2), jitter(10.0, 0.5)),
            semi_axes_mm=(jitter(24.0, 0.15), jitter(24.0, 0.15), jitter(40.0, 0.15)),
        ),
    )
    deform = []
    for _ in range(6):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        k = 2 * math.pi / float(u(70.0, 200.0))
        kx, ky, kz = (float(v) for v in direction * k)
        deform.append((kx, ky, kz, float(u(0, 2 * math.pi)), float(u(1.5, 4.0))))
    waves = []
    for _ in range(10):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        k = 2 * math.pi / float(u(22.0, 45.0))
        kx, ky, kz = (float(v) for v in direction * k)
        waves.append((kx, ky, kz, float(u(0, 2 * math.pi))))
    kidney_y = spine_y + float(u(0.0, 10.0))
    kidneys = (
        Ellipsoid(centre_mm=(-72.0, kidney_y, float(u(-110.0, -85.0))), semi_axes_mm=(27.0, 25.0, 55.0)),
        Ellipsoid(centre_mm=(72.0, kidney_y, float(u(-85.0, -60.0))), semi_axes_mm=(27.0, 25.0, 55.0)),
    )
    spleen = Ellipsoid(
        centre_mm=(float(body[0] - u(75.0, 95.0)), float(spine_y + u(-15.0, 5.0)), float(u(10.0, 40.0))),
        semi_axes_mm=(float(u(20.0, 30.0)), float(u(40.0, 55.0)), float(u(45.0, 60.0))),
    )
    stomach = Ellipsoid(
        centre_mm=(float(u(50.0, 70.0)), float(u(-55.0, -35.0)), float(u(10.0, 40.0))),
        semi_axes_mm=(float(u(35.0, 50.0)), float(u(28.0, 38.0)), float(u(40.0, 55.0))),
    )
    anat = Anatomy(
        body_semi_axes_mm=body,
        body_harmonics=harmonics,
        fat_mm=fat,
        muscle_mm=muscle,
        spine_y_mm=spine_y,
        vertebra_radius_mm=float(u(17.0, 22.0)),
        vertebra_period_mm=float(u(30.0, 36.0)),
        vertebra_phase_mm=float(u(0.0, 30.0)),
        diaphragm_z_mm=float(u(70.0, 85.0)),
        liver_lobes=lobes,
        liver_reference_mm=(-40.0, 5.0, 0.0),
        liver_scale=1.0,
        liver_deform=tuple(deform),
        bowel_waves=tuple(waves),
        kidneys=kidneys,
        spleen=spleen,
        stomach=stomach,
        vessels=(),
        liver_volume_ml=0.0,
    )
    target = float(u(*config.liver_volume_ml))
    dome_gap = float(u(4.0, 12.0))
    scale = 1.0
    for _ in range(6):  # the cuts make volume(scale) sub-cubic, so iterate the cube-root update
        anat = _with_diaphragm(_with_scale(anat, scale), dome_gap)
        volume = liver_volume_ml(anat, step_mm=5.0)
        scale *= (target / volume) ** (1 / 3)
        if abs(volume / target - 1) < 0.003:
            break
    anat = _with_diaphragm(_with_scale(anat, scale), dome_gap)
    anat = _with_vessels(anat, rng)
    return _with_volume(anat, liver_volume_ml(anat, step_mm=2.5))


def _with_vessels(anat: Anatomy, rng: np.random.Generator) -> Anatomy:
    """Add portal and hepatic vein branches: segments from the hilum / IVC to random points deep in the liver."""
    interior = sample_interior_points(anat, rng, 10, margin_mm=15.0)
    hilum = (anat.liver_reference_mm[0] + 10.0, anat.liver_reference_mm[1] + 10.0, -25.0)
    ix, iy = anat.ivc_xy_mm
    confluence = (ix, iy, anat.diaphragm_z_mm - 15.0)
    vessels: list[tuple[Vec3, Vec3, float]] = []
    for i, p in enumerate(interior):
        start = hilum if i % 2 == 0 else confluence
        radius = float(rng.uniform(2.0, 4.5))
        vessels.append((start, (float(p[0]), float(p[1]), float(p[2])), radius))
    values = {name: getattr(anat, name) for name in Anatomy.__dataclass_fields__}
    values["vessels"] = tuple(vessels)
    return Anatomy(**values)


def sample_interior_points(
    anat: Anatomy, rng: np.random.Generator, n: int, *, margin_mm: float
) -> NDArray[np.float64]:
    """``n`` random points (body frame mm) at least about ``margin_mm`` inside the liver surface."""
    lo, hi = anat.liver_bounds_mm()
    out: list[NDArray[np.float64]] = []
    for _ in range(100):
        pts = rng.uniform(lo, hi, size=(max(4 * n, 64), 3))
        f = liver_sdf(anat, *(pts[:, i].astype(np.float32) for i in range(3)))
        out.extend(pts[f < -margin_mm])
        if len(out) >= n:
            break
    return np.array(out[:n], dtype=float).reshape(-1, 3)


# ---------------------------------------------------------------------------------------------------- painting
def _segment_distance(x: F32, y: F32, z: F32, a: Vec3, b: Vec3) -> F32:
    ab = np.subtract(b, a)
    denom = float(ab @ ab)
    t = ((x - a[0]) * ab[0] + (y - a[1]) * ab[1] + (z - a[2]) * ab[2]) / denom
    t = np.clip(t, 0.0, 1.0)
    return np.sqrt((x - a[0] - t * ab[0]) ** 2 + (y - a[1] - t * ab[1]) ** 2 + (z - a[2] - t * ab[2]) ** 2).astype(
        np.float32
    )


def paint_tissues(anat: Anatomy, x: F32, y: F32, z: F32) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """Tissue class of every point (body frame mm) and the liver mask (the whole organ, tumours included)."""
    t = np.zeros(x.shape, dtype=np.uint8)  # Tissue.AIR
    liver = np.zeros(x.shape, dtype=bool)
    r = np.hypot(x, y)
    theta = np.arctan2(y, x)
    skin = body_radius_mm(anat, theta)
    inside = r <= skin
    if inside.any():  # paint only inside the body (about 40 % of a scan's voxels)
        t[inside], liver[inside] = _paint_body(
            anat, x[inside], y[inside], z[inside], r[inside], theta[inside], skin[inside]
        )
    return t, liver


def _paint_body(
    anat: Anatomy, x: F32, y: F32, z: F32, r: F32, theta: F32, skin: F32
) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    t = np.zeros(x.shape, dtype=np.uint8)
    wall = skin - anat.fat_mm
    cavity_r = wall - anat.muscle_mm
    t[r <= skin] = Tissue.SUBCUTANEOUS_FAT
    t[r <= wall] = Tissue.MUSCLE
    # lower ribs in the wall over the liver and spleen: short bright arcs whose phase drifts along z
    ribs = (r <= wall) & (r >= cavity_r + 1.0) & (z > -70.0) & (np.sin(theta) < 0.75)
    t[ribs & (np.cos(11.0 * theta + z / 14.0) > 0.8)] = Tissue.BONE_CORTEX
    cavity = r <= cavity_r
    # abdominal content: bowel loops, mesenteric fat and a few gas pockets from a smooth random field
    field = np.zeros(x.shape, dtype=np.float32)
    for kx, ky, kz, phase in anat.bowel_waves:
        field += np.cos(kx * x + ky * y + kz * z + phase).astype(np.float32)
    field /= math.sqrt(len(anat.bowel_waves) / 2)
    t[cavity] = Tissue.VISCERAL_FAT
    t[cavity & (field > -0.3)] = Tissue.BOWEL
    t[cavity & (field > 1.9)] = Tissue.GAS
    # chest: lungs and heart above the diaphragm, the diaphragm itself is a muscle band
    dz = z - _diaphragm_z(anat, x, y)
    t[cavity & (dz > -5.0)] = Tissue.MUSCLE
    t[cavity & (dz > 0.0)] = Tissue.LUNG
    heart = Ellipsoid(centre_mm=(25.0, -35.0, anat.diaphragm_z_mm + 55.0), semi_axes_mm=(60.0, 50.0, 55.0))
    t[cavity & (dz > 0.0) & _inside_ellipsoid(x, y, z, heart)] = Tissue.HEART
    # paraspinal muscles
    sy = anat.spine_y_mm
    for side in (-1.0, 1.0):
        para = ((x - side * 38.0) / 30.0) ** 2 + ((y - (sy + 42.0)) / 24.0) ** 2 <= 1.0
        t[para & (r <= wall)] = Tissue.MUSCLE
    below = dz < -5.0
    for kidney in anat.kidneys:
        t[below & _inside_ellipsoid(x, y, z, kidney, 5.0)] = Tissue.VISCERAL_FAT
        t[below & _inside_ellipsoid(x, y, z, kidney)] = Tissue.KIDNEY
    t[below & _inside_ellipsoid(x, y, z, anat.spleen)] = Tissue.SPLEEN
    st = anat.stomach
    in_stomach = below & _inside_ellipsoid(x, y, z, st)
    t[in_stomach] = Tissue.STOMACH_WALL
    lumen = below & _inside_ellipsoid(x, y, z, st, -5.0)
    t[lumen] = Tissue.STOMACH_FLUID
    t[lumen & (y < st.centre_mm[1] - 0.4 * st.semi_axes_mm[1])] = Tissue.GAS  # air rises anteriorly (supine)
    # great vessels
    ax, ay = anat.aorta_xy_mm
    t[(np.hypot(x - ax, y - ay) <= 11.0) & (r <= cavity_r)] = Tissue.AORTA
    ix, iy = anat.ivc_xy_mm
    t[(np.hypot((x - ix) / 1.2, y - iy) <= 11.0) & (r <= cavity_r)] = Tissue.IVC
    # spine: vertebral bodies with cortex, discs, canal, posterior elements
    rv = anat.vertebra_radius_mm
    dv = np.hypot(x, y - sy)
    disc = np.mod(z - anat.vertebra_phase_mm, anat.vertebra_period_mm) < 6.0
    t[dv <= rv] = Tissue.BONE_CORTEX
    t[(dv <= rv - 2.5) & ~disc] = Tissue.BONE_MARROW
    t[(dv <= rv) & disc] = Tissue.DISC
    arch = (np.hypot(x, y - (sy + rv + 9.0)) <= 13.0) | ((np.abs(x) <= 4.0) & (y > sy + rv) & (y < sy + rv + 34.0))
    t[arch & ~disc] = Tissue.BONE_CORTEX
    t[np.hypot(x, y - (sy + rv + 9.0)) <= 8.0] = Tissue.CSF
    # liver with its vessels
    lo, hi = anat.liver_bounds_mm()
    near = (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]) & (z >= lo[2]) & (z <= hi[2])
    liver = np.zeros(x.shape, dtype=bool)
    liver[near] = liver_sdf(anat, x[near], y[near], z[near]) < 0
    t[liver] = Tissue.LIVER
    if anat.vessels and liver.any():
        in_liver = np.nonzero(liver)
        lx, ly, lz = x[in_liver], y[in_liver], z[in_liver]
        vessel = np.zeros(lx.shape, dtype=bool)
        for a, b, radius in anat.vessels:
            vessel |= _segment_distance(lx, ly, lz, a, b) <= radius
        sub = t[in_liver]
        sub[vessel] = Tissue.LIVER_VESSEL
        t[in_liver] = sub
    return t, liver
