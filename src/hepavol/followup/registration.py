"""Align a follow-up scan to the baseline scan on the liver masks (SimpleITK), so lesion positions compare.

Method (hepavol's):

1. Both liver masks (tumour voxels inside the liver count as liver) are resampled to an isotropic
   ``work_spacing_mm`` grid and turned into signed distance maps (mm, clipped to ±30 mm).
2. Rigid stage: a 3D Euler transform (rotation about the baseline liver's centre of mass plus translation),
   started at the translation between the two centres of mass, minimises the mean squared difference of the
   distance maps: Levenberg–Marquardt on two levels (maps smoothed by 2 voxels, then as they are), see
   :mod:`hepavol.followup._rigid_fit` (ITK's regular-step gradient descent reached the same transform in about
   3× the time; issue 20).
3. Optional affine stage (``affine=True``): a 12-parameter affine transform started from the rigid result, same
   metric, by ITK's regular-step gradient descent on three resolution levels (absorbs breathing and liver-shape
   changes, at the cost of also absorbing true growth of the organ).
4. Quality: the Dice coefficient of the two liver masks on the baseline grid before (scanner positions as they
   are) and after registration. A Dice after registration below ``min_dice`` gives a warning.

The transform maps a **baseline** LPS point to the matching **follow-up** LPS point (ITK's fixed → moving
convention, what :func:`SimpleITK.Resample` needs to bring a follow-up volume onto the baseline grid);
:meth:`Registration.to_baseline` applies its inverse to follow-up points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hepavol.errors import InputError
from hepavol.followup._rigid_fit import fit_rigid
from hepavol.geometry import Geometry
from hepavol.volume import Volume

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["MIN_DICE", "PreparedBaseline", "Registration", "prepare_baseline", "register_to_baseline"]

#: Liver-mask Dice after registration below which the alignment is reported as poor.
MIN_DICE = 0.8
_CLIP_MM = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    """A transform from the baseline frame to a follow-up frame, with its quality.

    ``matrix`` is the 4×4 homogeneous matrix mapping a baseline LPS point (mm) to the follow-up LPS point;
    ``rotation_deg`` the rotation angles about the L, P and S axes (rigid part; for an affine result, of the
    rigid stage), ``translation_mm`` the last column of ``matrix``.
    """

    kind: str
    matrix: tuple[tuple[float, ...], ...]
    rotation_deg: tuple[float, float, float]
    translation_mm: tuple[float, float, float]
    dice_before: float
    dice_after: float
    warnings: tuple[str, ...] = ()

    @classmethod
    def identity(cls) -> Registration:
        """The baseline's own registration (identity, Dice 1)."""
        eye = tuple(tuple(float(v) for v in row) for row in np.eye(4))
        return cls(
            kind="identity",
            matrix=eye,
            rotation_deg=(0.0, 0.0, 0.0),
            translation_mm=(0.0, 0.0, 0.0),
            dice_before=1.0,
            dice_after=1.0,
        )

    @property
    def matrix_array(self) -> NDArray[np.float64]:
        """``matrix`` as a 4×4 array."""
        return np.array(self.matrix, dtype=float)

    def to_followup(self, points_mm: ArrayLike) -> NDArray[np.float64]:
        """Map baseline LPS points (shape (3,) or (n, 3)) to the follow-up frame."""
        p = np.asarray(points_mm, dtype=float)
        m = self.matrix_array
        return p @ m[:3, :3].T + m[:3, 3]

    def to_baseline(self, points_mm: ArrayLike) -> NDArray[np.float64]:
        """Map follow-up LPS points (shape (3,) or (n, 3)) to the baseline frame."""
        p = np.asarray(points_mm, dtype=float)
        inv = np.linalg.inv(self.matrix_array)
        return p @ inv[:3, :3].T + inv[:3, 3]

    def sitk_transform(self) -> sitk.AffineTransform:
        """The transform as a SimpleITK affine transform (baseline point → follow-up point)."""
        import SimpleITK as sitk

        m = self.matrix_array
        t = sitk.AffineTransform(3)
        t.SetMatrix(tuple(float(v) for v in m[:3, :3].reshape(-1)))
        t.SetTranslation(tuple(float(v) for v in m[:3, 3]))
        return t

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return {
            "kind": self.kind,
            "matrix": [list(row) for row in self.matrix],
            "rotation_deg": list(self.rotation_deg),
            "translation_mm": list(self.translation_mm),
            "liver_dice_before": self.dice_before,
            "liver_dice_after": self.dice_after,
            "warnings": list(self.warnings),
        }


def _homogeneous(transform: Any) -> NDArray[np.float64]:
    """4×4 matrix of an ITK matrix-offset transform: T(x) = A (x − c) + c + t."""
    a = np.array(transform.GetMatrix(), dtype=float).reshape(3, 3)
    c = np.array(transform.GetCenter(), dtype=float)
    t = np.array(transform.GetTranslation(), dtype=float)
    m = np.eye(4)
    m[:3, :3] = a
    m[:3, 3] = c + t - a @ c
    return m


def _reference(geometry: Geometry, spacing_mm: float) -> sitk.Image:
    """An isotropic grid covering ``geometry``'s field of view in its orientation."""
    import SimpleITK as sitk

    extent = np.array(geometry.shape) * np.array(geometry.spacing_mm)
    size = [max(math.ceil(e / spacing_mm), 1) for e in extent]
    ref = sitk.Image(*reversed(size), sitk.sitkUInt8)
    ref.SetSpacing((spacing_mm,) * 3)
    first_corner = geometry.index_to_lps(np.full(3, -0.5))
    origin = first_corner + geometry.direction_matrix @ np.full(3, spacing_mm / 2.0)
    ref.SetOrigin(tuple(float(v) for v in origin))
    ref.SetDirection(tuple(geometry.direction_matrix[:, ::-1].reshape(-1)))
    return ref


Box = tuple[slice, slice, slice]


def mask_box(array: NDArray[Any], *, pad: int = 0) -> Box | None:
    """The (slice, row, column) bounding box of the non-zero voxels grown by ``pad`` voxels (None when empty)."""
    rows = np.any(array, axis=2)
    z = np.flatnonzero(rows.any(axis=1))
    if z.size == 0:
        return None
    y = np.flatnonzero(rows.any(axis=0))
    x = np.flatnonzero(np.any(array[z[0] : z[-1] + 1], axis=(0, 1)))
    return tuple(  # type: ignore[return-value]
        slice(max(int(a[0]) - pad, 0), min(int(a[-1]) + 1 + pad, n)) for a, n in zip((z, y, x), array.shape)
    )


def crop_to_sitk(array: NDArray[Any], geometry: Geometry, box: Box) -> sitk.Image:
    """The voxels of ``array[box]`` as a SimpleITK image at their place in ``geometry``'s LPS frame."""

    return place_crop(np.ascontiguousarray(array[box]), geometry, box)


def place_crop(voxels: NDArray[Any], geometry: Geometry, box: Box) -> sitk.Image:
    """``voxels`` (the shape of ``box``) as a SimpleITK image at ``box``'s place in ``geometry``'s LPS frame."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(voxels)
    img.SetSpacing(tuple(reversed(geometry.spacing_mm)))
    img.SetOrigin(tuple(float(v) for v in geometry.index_to_lps([s.start for s in box])))
    img.SetDirection(tuple(geometry.direction_matrix[:, ::-1].reshape(-1)))
    return img


def reach_box(
    moving_geometry: Geometry, moving_box: Box, fixed_geometry: Geometry, fixed_to_moving: NDArray[np.float64]
) -> Box | None:
    """The voxels of the fixed grid whose centre a 4×4 ``fixed_to_moving`` map sends into ``moving_box``.

    A box of the fixed grid (grown by one voxel, cut at its faces) holding every fixed voxel whose mapped centre
    lies within half a voxel of ``moving_box``'s voxels (so that nearest-neighbour resampling can take a value
    from that box); None when no fixed voxel can.
    """
    lo = np.array([s.start for s in moving_box], float) - 0.5
    hi = np.array([s.stop for s in moving_box], float) - 0.5
    corners = np.array([[(lo, hi)[k][a] for a, k in enumerate(bits)] for bits in np.ndindex(2, 2, 2)])
    inv = np.linalg.inv(fixed_to_moving)
    pts = moving_geometry.index_to_lps(corners) @ inv[:3, :3].T + inv[:3, 3]
    idx = fixed_geometry.lps_to_index(pts)
    first = np.floor(idx.min(axis=0)).astype(int) - 1
    last = np.ceil(idx.max(axis=0)).astype(int) + 1
    shape = np.array(fixed_geometry.shape)
    first, last = np.maximum(first, 0), np.minimum(last + 1, shape)
    if np.any(first >= last):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(first, last))  # type: ignore[return-value]


def union_box(a: Box, b: Box | None) -> Box:
    """The smallest box holding both boxes."""
    if b is None:
        return a
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))  # type: ignore[return-value]


def resample_crop(
    moving: sitk.Image, fixed_geometry: Geometry, fixed_box: Box, transform: Any, pixel: int
) -> NDArray[Any]:
    """Nearest-neighbour resampling of ``moving`` onto the ``fixed_box`` part of the fixed grid (0 outside)."""
    import SimpleITK as sitk

    ref = sitk.Image([s.stop - s.start for s in reversed(fixed_box)], pixel)
    ref.SetSpacing(tuple(reversed(fixed_geometry.spacing_mm)))
    ref.SetOrigin(tuple(float(v) for v in fixed_geometry.index_to_lps([s.start for s in fixed_box])))
    ref.SetDirection(tuple(fixed_geometry.direction_matrix[:, ::-1].reshape(-1)))
    out = sitk.Resample(moving, ref, transform, sitk.sitkNearestNeighbor, 0, pixel)
    return sitk.GetArrayFromImage(out)


def _distance_map(
    mask: sitk.Image, geometry: Geometry, spacing_mm: float, *, crop_pad_mm: float | None = None
) -> sitk.Image:
    """Signed distance map (mm, clipped) of a mask on an isotropic grid over ``geometry``'s field of view.

    ``mask`` is the float32 mask (or the part of it holding every foreground voxel, with a margin of one voxel)
    in ``geometry``'s frame; ``crop_pad_mm`` keeps only the mask's box grown by that much (None: the whole field
    of view).
    """
    import SimpleITK as sitk

    ref = _reference(geometry, spacing_mm)
    if crop_pad_mm is not None:
        # The metric only needs the liver's neighbourhood: the fixed map is cut to the mask's box + 20 mm, the
        # moving one to its box + 40 mm (where the fixed voxels land, with room for the search). The mask lies
        # wholly inside the cut, so its distances there are those of the whole field of view.
        ref = _sub_grid(ref, mask, crop_pad_mm)
    coarse = sitk.Resample(mask, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32) >= 0.5
    dist = sitk.SignedMaurerDistanceMap(
        coarse, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    return sitk.Clamp(sitk.Cast(dist, sitk.sitkFloat32), sitk.sitkFloat32, -_CLIP_MM, _CLIP_MM)


def _sub_grid(ref: sitk.Image, mask: sitk.Image, pad_mm: float) -> sitk.Image:
    """The part of ``ref``'s grid (same orientation as ``mask``) around ``mask``'s extent grown by ``pad_mm``."""
    import SimpleITK as sitk

    direction = np.array(ref.GetDirection(), float).reshape(3, 3)
    spacing = np.array(ref.GetSpacing(), float)
    origin = np.array(ref.GetOrigin(), float)
    size = np.array(mask.GetSize(), float)
    corners = np.array(
        [mask.TransformContinuousIndexToPhysicalPoint(c * (size - 1)) for c in ((0, 0, 0), (1, 1, 1))]
    )
    idx = ((corners - origin) @ direction) / spacing
    pad = pad_mm / spacing
    lo = np.maximum(np.floor(idx.min(axis=0) - pad), 0).astype(int)
    hi = np.minimum(np.ceil(idx.max(axis=0) + pad) + 1, np.array(ref.GetSize())).astype(int)
    if np.any(hi <= lo):
        return ref
    out = sitk.Image([int(v) for v in hi - lo], sitk.sitkUInt8)
    out.SetSpacing(ref.GetSpacing())
    out.SetDirection(ref.GetDirection())
    out.SetOrigin(ref.TransformIndexToPhysicalPoint([int(v) for v in lo]))
    return out


def _inner_mask(image: sitk.Image, margin_vox: int) -> sitk.Image:
    """1 inside the image except within ``margin_vox`` voxels of its faces (where the field of view cuts)."""
    import SimpleITK as sitk

    size = image.GetSize()
    arr = np.zeros(tuple(reversed(size)), np.uint8)
    m = [min(margin_vox, max((n - 1) // 2, 0)) for n in reversed(size)]
    arr[m[0] : arr.shape[0] - m[0], m[1] : arr.shape[1] - m[1], m[2] : arr.shape[2] - m[2]] = 1
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(image)
    return out


def _run(fixed: sitk.Image, moving: sitk.Image, initial: Any, *, iterations: int, margin_vox: int) -> Any:
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    if margin_vox > 0:
        reg.SetMetricFixedMask(_inner_mask(fixed, margin_vox))
        reg.SetMetricMovingMask(_inner_mask(moving, margin_vox))
    reg.SetMetricAsMeanSquares()
    reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=4.0, minStep=1e-3, numberOfIterations=iterations, relaxationFactor=0.6
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(_SHRINK)
    reg.SetSmoothingSigmasPerLevel(_SIGMAS)
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(initial, inPlace=False)
    out = reg.Execute(fixed, moving)
    return out


_SHRINK = [4, 2, 1]
_SIGMAS = [2.0, 1.0, 0.0]


@dataclass(frozen=True, slots=True, eq=False)
class _Mask:
    """A liver mask cut to its bounding box (+1 voxel): uint8 and float32 SimpleITK crops, centre of mass."""

    array: NDArray[Any]
    geometry: Geometry
    box: Box
    crop: sitk.Image
    centre_mm: NDArray[np.float64]
    count: int


def _prepare(mask: Volume) -> _Mask | None:

    arr = np.asarray(mask.array)
    box = mask_box(arr, pad=1)
    if box is None:
        return None
    sub = np.asarray(arr[box] != 0, np.uint8)
    count = int(np.count_nonzero(sub))
    # Centre of mass (what ITK's moments initializer computes, from the same voxels): mean index to LPS.
    index = [float(sub.sum(axis=tuple(a for a in range(3) if a != k)) @ np.arange(sub.shape[k])) for k in range(3)]
    mean = np.array(index) / count + [s.start for s in box]
    img = place_crop(sub, mask.geometry, box)
    return _Mask(
        array=arr,
        geometry=mask.geometry,
        box=box,
        crop=img,
        centre_mm=mask.geometry.index_to_lps(mean),
        count=count,
    )


def _dice(base: _Mask, fu: _Mask, matrix: NDArray[np.float64], transform: Any) -> float:
    """Dice of the baseline mask and the follow-up mask resampled onto the baseline grid (nearest neighbour)."""
    import SimpleITK as sitk

    region = union_box(base.box, reach_box(fu.geometry, fu.box, base.geometry, matrix))
    moved = resample_crop(fu.crop, base.geometry, region, transform, sitk.sitkUInt8)
    a = base.array[region] != 0
    b = moved != 0
    denom = base.count + int(np.count_nonzero(b))
    return 2.0 * float(np.count_nonzero(a & b)) / denom if denom else 0.0


@dataclass(frozen=True, slots=True, eq=False)
class PreparedBaseline:
    """A baseline liver mask made ready for :func:`register_to_baseline` once for all its follow-ups: its crop
    and centre of mass, and its distance map on the work grid (what each registration would otherwise redo)."""

    mask: _Mask
    distance_map: sitk.Image
    work_spacing_mm: float


def prepare_baseline(baseline_liver: Volume, *, work_spacing_mm: float = 4.0) -> PreparedBaseline:
    """Prepare the baseline liver mask once (see :class:`PreparedBaseline`); raises InputError if it is empty."""
    import SimpleITK as sitk

    if work_spacing_mm <= 0:
        raise InputError(f"work_spacing_mm must be > 0, but it is {work_spacing_mm}")
    base = _prepare(baseline_liver)
    if base is None:
        raise InputError(
            f"The baseline liver mask {baseline_liver.source or ''} is empty; registration needs the liver."
        )
    fixed = _distance_map(sitk.Cast(base.crop, sitk.sitkFloat32), base.geometry, work_spacing_mm, crop_pad_mm=20.0)
    return PreparedBaseline(mask=base, distance_map=fixed, work_spacing_mm=work_spacing_mm)


def register_to_baseline(
    baseline_liver: Volume | PreparedBaseline,
    followup_liver: Volume,
    *,
    affine: bool = False,
    work_spacing_mm: float = 4.0,
    iterations: int = 200,
    fov_margin_mm: float = 8.0,
    min_dice: float = MIN_DICE,
) -> Registration:
    """Register a follow-up liver mask to the baseline liver mask (rigid, then optionally affine).

    Parameters
    ----------
    baseline_liver, followup_liver : Volume
        Boolean (or 0/1) whole-liver masks, each on its own scan's grid; the baseline may be given prepared
        (:func:`prepare_baseline`, with the same ``work_spacing_mm``) when it serves several follow-ups.
    affine : bool
        Add the affine stage after the rigid one.
    work_spacing_mm : float
        Isotropic grid spacing (mm) of the distance maps the registration runs on.
    iterations : int
        Largest number of optimiser iterations per resolution level of the affine stage.
    fov_margin_mm : float
        Voxels this close to a face of either field of view are left out of the metric (a liver cut by the
        field of view has a false surface there).
    min_dice : float
        Liver-mask Dice after registration below which a warning says the alignment is poor.

    Returns
    -------
    Registration

    Raises
    ------
    InputError
        If a mask is empty.
    """
    import SimpleITK as sitk

    if isinstance(baseline_liver, PreparedBaseline):
        if baseline_liver.work_spacing_mm != work_spacing_mm:
            raise InputError(
                f"the prepared baseline was made for a {baseline_liver.work_spacing_mm} mm work grid, not "
                f"{work_spacing_mm} mm: prepare it with the same work_spacing_mm"
            )
        prepared_base = baseline_liver
    else:
        prepared_base = prepare_baseline(baseline_liver, work_spacing_mm=work_spacing_mm)
    base, fixed = prepared_base.mask, prepared_base.distance_map
    fu = _prepare(followup_liver)
    if fu is None:
        raise InputError(
            f"The follow-up liver mask {followup_liver.source or ''} is empty; registration needs the liver."
        )
    margin_vox = math.ceil(fov_margin_mm / work_spacing_mm)
    moving = _distance_map(sitk.Cast(fu.crop, sitk.sitkFloat32), fu.geometry, work_spacing_mm, crop_pad_mm=40.0)
    # Start: rotation about the baseline centre of mass, translation between the centres of mass.
    angles, translation = fit_rigid(
        fixed,
        moving,
        center_mm=base.centre_mm,
        translation_mm=fu.centre_mm - base.centre_mm,
        margin_vox=margin_vox,
    )
    rigid = sitk.Euler3DTransform()
    rigid.SetCenter(tuple(float(v) for v in base.centre_mm))
    rigid.SetRotation(*(float(a) for a in angles))
    rigid.SetTranslation(tuple(float(v) for v in translation))
    rotation = tuple(math.degrees(a) for a in (rigid.GetAngleX(), rigid.GetAngleY(), rigid.GetAngleZ()))
    final: Any = rigid
    kind = "rigid"
    if affine:
        start = sitk.AffineTransform(3)
        start.SetCenter(rigid.GetCenter())
        start.SetMatrix(rigid.GetMatrix())
        start.SetTranslation(rigid.GetTranslation())
        final = sitk.AffineTransform(
            _run(fixed, moving, start, iterations=iterations, margin_vox=margin_vox).GetNthTransform(0)
        )
        kind = "affine"
    matrix = _homogeneous(final)
    dice_before = _dice(base, fu, np.eye(4), sitk.Transform())
    dice_after = _dice(base, fu, matrix, final)
    warnings = []
    if dice_after < min_dice:
        warnings.append(
            f"poor alignment: liver-mask Dice after {kind} registration is {dice_after:.3f} (before "
            f"{dice_before:.3f}), below {min_dice}; lesion matching may be wrong. Check the liver segmentations "
            "(same organ, whole liver in the field of view), or raise --max-distance."
        )
    return Registration(
        kind=kind,
        matrix=tuple(tuple(float(v) for v in row) for row in matrix),
        rotation_deg=rotation,  # type: ignore[arg-type]
        translation_mm=tuple(float(v) for v in matrix[:3, 3]),  # type: ignore[arg-type]
        dice_before=dice_before,
        dice_after=dice_after,
        warnings=tuple(warnings),
    )
