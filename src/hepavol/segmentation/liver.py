"""Whole-liver segmentation (parenchyma plus the tumours inside it) by classical image analysis; CT and MR.

Method:

1. Resample finer images to 2.5 mm voxels; smooth the image (Gaussian, 1.5 mm) and find the body (largest component above an Otsu threshold).
2. Intensity model: with a seed, the mode of the smoothed intensities of the most homogeneous voxels within 25 mm of it; without one, the mode of the
   smoothed intensities of homogeneous body voxels in the patient's right half (LPS -x), where the liver is the
   largest soft-tissue organ.
3. Voxels within ``k`` spreads of that centre are eroded (to cut the thin bridges to the spleen, kidney, heart and
   muscles of similar intensity), the component containing the seed (or the largest one in the right half) is
   kept and dilated back inside the band (reconstruction).
4. Holes are filled slice by slice (tumours, vessels inside the liver are part of the organ, the denominator of
   the hepatic tumour load), a closing smooths the surface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from hepavol.errors import InputError
from hepavol.geometry import Geometry
from hepavol.segmentation.lesion import point_to_index
from hepavol.volume import Volume, resample_like

if TYPE_CHECKING:
    import SimpleITK as sitk


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class LiverSegmentation:
    """Result of :func:`segment_liver`.

    Attributes
    ----------
    mask : ndarray of bool, shape (slices, rows, columns)
        The liver on the image grid (read-only), tumours included.
    volume_ml : float
        Volume of the mask in millilitres.
    seed_index : tuple of int
        (slice, row, column) voxel used as the seed (given or found automatically).
    automatic_seed : bool
        True when the seed was found automatically.
    intensity_center : float
        Robust centre of the liver intensities (image units).
    intensity_spread : float
        Robust spread of the liver intensities (image units).
    warnings : tuple of str
        Messages for the user.
    """

    mask: NDArray[np.bool_]
    volume_ml: float
    seed_index: tuple[int, int, int]
    automatic_seed: bool
    intensity_center: float
    intensity_spread: float
    warnings: tuple[str, ...] = field(default=())


def _ball(radius_mm: float, spacing: Sequence[float]) -> NDArray[np.bool_]:
    r = [max(int(radius_mm // s), 0) for s in spacing]
    zz, yy, xx = np.mgrid[-r[0] : r[0] + 1, -r[1] : r[1] + 1, -r[2] : r[2] + 1]
    d2 = (zz * spacing[0]) ** 2 + (yy * spacing[1]) ** 2 + (xx * spacing[2]) ** 2
    return np.asarray(d2 <= radius_mm**2 + 1e-9)


def _otsu(values: NDArray[np.floating]) -> float:
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(values))


REFIT_SCALE = 1.0
REFIT_ITERATIONS = 2

#: Number of intensity classes (histogram peaks of homogeneous right-half voxels) tried as the liver.
N_CANDIDATES = 4


def _mode(values: NDArray[np.floating]) -> float:
    """Peak of the smoothed histogram (128 bins) of ``values``."""
    return _peak(values)[0]


def _peak(values: NDArray[np.floating]) -> tuple[float, float]:
    """(centre, sigma) of the main peak of the histogram of ``values``: its mode and its full width at half
    maximum / 2.355 (the sigma of a Gaussian peak), so other tissues in the sample do not widen it."""
    lo, hi = np.percentile(values, [0.5, 99.5])
    if hi <= lo:
        return float(lo), 0.0
    hist, edges = np.histogram(values, bins=128, range=(float(lo), float(hi)))
    smooth_hist = ndimage.gaussian_filter1d(hist.astype(float), 1.5)
    peak = int(np.argmax(smooth_hist))
    half = smooth_hist[peak] / 2.0
    left = peak
    while left > 0 and smooth_hist[left - 1] >= half:
        left -= 1
    right = peak
    while right < len(smooth_hist) - 1 and smooth_hist[right + 1] >= half:
        right += 1
    width = (right - left + 1) * (edges[1] - edges[0])
    return float(0.5 * (edges[peak] + edges[peak + 1])), float(width / 2.355)


def segment_liver(
    image: Volume,
    *,
    seed_lps_mm: ArrayLike | None = None,
    band_k: float = 2.5,
    erosion_mm: float = 8.0,
    working_spacing_mm: float = 2.5,
) -> LiverSegmentation:
    """Segment the whole liver (tumours included) in a CT or MR volume.

    Parameters
    ----------
    image : Volume
        Abdominal CT (HU) or MR volume.
    seed_lps_mm : (3,) array, optional
        A point in the liver parenchyma (LPS mm); found automatically when omitted.
    band_k : float
        Half-width of the liver intensity band in robust spreads.
    erosion_mm : float
        Radius (mm) of the erosion that separates the liver from touching organs of similar intensity.
    working_spacing_mm : float
        Finer images are resampled (linear) to at least this spacing for the segmentation, and the mask is
        resampled back (linear interpolation of the mask, threshold 0.5): a liver does not need sub-mm voxels.

    Returns
    -------
    LiverSegmentation

    Raises
    ------
    InputError
        If the seed is outside the image or in air, or no liver candidate is found.
    """
    if seed_lps_mm is not None:
        point_to_index(image, seed_lps_mm, what="liver seed")  # outside the image: error on the user's grid
    work = _working_grid(image.geometry, working_spacing_mm)
    if work is None:
        return _segment_liver_grid(image, seed_lps_mm, band_k=band_k, erosion_mm=erosion_mm)
    import SimpleITK as sitk

    small = Volume.from_sitk(
        sitk.Resample(
            sitk.Cast(image.to_sitk(), sitk.sitkFloat32),
            _sitk_reference(work),
            sitk.Transform(),
            sitk.sitkLinear,
            float(np.min(image.array)),
        ),
        source=image.source,
    )
    res = _segment_liver_grid(small, seed_lps_mm, band_k=band_k, erosion_mm=erosion_mm)
    back = resample_like(Volume(res.mask.astype(np.float32), work), image.geometry, nearest=False)
    mask = np.asarray(back.array) >= 0.5
    mask.flags.writeable = False
    seed_index = np.rint(image.geometry.lps_to_index(work.index_to_lps(np.array(res.seed_index)))).astype(int)
    seed_index = np.clip(seed_index, 0, np.array(image.geometry.shape) - 1)
    return LiverSegmentation(
        mask=mask,
        volume_ml=float(mask.sum()) * image.geometry.voxel_volume_mm3 / 1000.0,
        seed_index=(int(seed_index[0]), int(seed_index[1]), int(seed_index[2])),
        automatic_seed=res.automatic_seed,
        intensity_center=res.intensity_center,
        intensity_spread=res.intensity_spread,
        warnings=res.warnings,
    )


def _working_grid(geometry: Geometry, spacing_mm: float) -> Geometry | None:
    """A coarser grid (same origin and direction, spacing at least ``spacing_mm``), or None if not needed."""
    sp = np.array(geometry.spacing_mm)
    new_sp = np.maximum(sp, spacing_mm)
    if np.all(new_sp <= sp * 1.25):
        return None
    shape = np.floor((np.array(geometry.shape) - 1) * sp / new_sp).astype(int) + 1
    return Geometry(
        shape=(int(shape[0]), int(shape[1]), int(shape[2])),
        spacing_mm=(float(new_sp[0]), float(new_sp[1]), float(new_sp[2])),
        origin_lps_mm=geometry.origin_lps_mm,
        direction=geometry.direction,
    )


def _sitk_reference(geometry: Geometry) -> sitk.Image:
    import SimpleITK as sitk

    ref = sitk.Image(*reversed(geometry.shape), sitk.sitkUInt8)
    ref.SetSpacing(tuple(reversed(geometry.spacing_mm)))
    ref.SetOrigin(geometry.origin_lps_mm)
    ref.SetDirection(tuple(geometry.direction_matrix[:, ::-1].reshape(-1)))
    return ref


def _peaks(values: NDArray[np.floating], *, n: int) -> list[tuple[float, float]]:
    """Up to ``n`` (centre, sigma) of the highest local maxima of the smoothed histogram of ``values``."""
    lo, hi = np.percentile(values, [0.5, 99.5])
    if hi <= lo:
        return [(float(lo), 0.0)]
    hist, edges = np.histogram(values, bins=128, range=(float(lo), float(hi)))
    smooth_hist = ndimage.gaussian_filter1d(hist.astype(float), 1.5)
    maxima = [
        i
        for i in range(len(smooth_hist))
        if smooth_hist[i] > 0
        and (i == 0 or smooth_hist[i] >= smooth_hist[i - 1])
        and (i == len(smooth_hist) - 1 or smooth_hist[i] > smooth_hist[i + 1])
    ]
    maxima.sort(key=lambda i: -smooth_hist[i])
    out = []
    for i in maxima[:n]:
        sub = values[(values >= edges[max(i - 20, 0)]) & (values <= edges[min(i + 21, 128)])]
        out.append(_peak(sub))
    return out


def _segment_liver_grid(
    image: Volume, seed_lps_mm: ArrayLike | None, *, band_k: float, erosion_mm: float
) -> LiverSegmentation:
    g = image.geometry
    spacing = g.spacing_mm
    raw = np.asarray(image.array, dtype=np.float32)
    smooth = np.asarray(ndimage.gaussian_filter(raw, sigma=[max(1.5 / s, 0.3) for s in spacing]), dtype=np.float32)
    thr = _otsu(smooth[:: max(1, raw.shape[0] // 32), ::2, ::2].ravel())
    body_lab, n = ndimage.label(smooth > thr)
    if n == 0:
        raise InputError(f"No body was found in {image.source or 'the image'}: it looks empty.")
    sizes = ndimage.sum_labels(np.ones_like(body_lab), body_lab, index=np.arange(1, n + 1))
    body = body_lab == (int(np.argmax(sizes)) + 1)
    for z in range(body.shape[0]):
        body[z] = ndimage.binary_fill_holes(body[z])
    warnings: list[str] = []
    local_sd = np.sqrt(
        np.maximum(ndimage.uniform_filter(raw * raw, size=3) - ndimage.uniform_filter(raw, size=3) ** 2, 0.0)
    )
    floor = 1e-6 * (float(raw.max()) - float(raw.min())) + 1e-6
    # automatic model: the liver is the largest homogeneous soft-tissue organ of the patient's right half (LPS -x)
    xs = g.index_to_lps(np.argwhere(body)[:: max(1, int(body.sum()) // 200000)])[:, 0]
    mid_x = float(np.median(xs))
    zz, yy, xx = np.meshgrid(
        np.arange(raw.shape[0]), np.arange(raw.shape[1]), np.arange(raw.shape[2]), indexing="ij", sparse=True
    )
    x_lps = (
        g.origin_lps_mm[0]
        + g.direction_matrix[0, 0] * spacing[0] * zz
        + g.direction_matrix[0, 1] * spacing[1] * yy
        + g.direction_matrix[0, 2] * spacing[2] * xx
    )
    right = body & (x_lps < mid_x)
    inner = np.asarray(ndimage.binary_erosion(body, _ball(15.0, (1e9, spacing[1], spacing[2]))))
    candidates = right & inner
    homog = candidates & (local_sd <= np.percentile(local_sd[candidates], 40)) if candidates.any() else candidates
    erosion = _ball(erosion_mm, spacing)
    seed: NDArray[np.int64] | None = None
    seed_peak = (0.0, 0.0)
    if seed_lps_mm is not None:
        seed = point_to_index(image, seed_lps_mm, what="liver seed")
        if not body[tuple(seed)]:
            raise InputError(
                f"The liver seed {np.round(np.asarray(seed_lps_mm, dtype=float), 1).tolist()} mm (voxel "
                f"{seed.tolist()}) is outside the body (air or background, intensity "
                f"{float(raw[tuple(seed)]):.0f}); click inside the liver."
            )
        ball = np.zeros(raw.shape, dtype=bool)
        ball[tuple(seed)] = True
        ball = np.asarray(ndimage.binary_dilation(ball, _ball(25.0, spacing))) & body
        near = ball & (local_sd <= np.percentile(local_sd[ball], 40))
        seed_peak = _peak(smooth[near])
    elif int(homog.sum()) < 100:
        raise InputError(
            f"No liver candidate was found automatically in {image.source or 'the image'}; give a seed point "
            "in the liver (--seed X,Y,Z)."
        )
    # air-like classes (lungs, bowel gas) are not candidates: centre in the lowest quarter between the air
    # outside the body and the median of the body
    outside = ~body
    air = float(np.median(smooth[outside])) if outside.any() else float(smooth.min())
    dark_limit = air + 0.25 * (float(np.median(smooth[body])) - air)
    peaks = [pk for pk in _peaks(smooth[homog], n=N_CANDIDATES) if pk[0] > dark_limit] if homog.any() else []
    if seed is not None:
        # the classes that contain the intensity at the seed, and the seed's own peak
        peaks = [pk for pk in peaks if abs(pk[0] - seed_peak[0]) <= band_k * max(pk[1], floor)] + [seed_peak]
    # each candidate intensity class: band, erosion (cuts bridges to touching organs), components; the liver is
    # the largest core lying mostly (>= 60 %) in the patient's right half; with a seed, the core at the seed
    best: tuple[float, float, float, NDArray[np.bool_], NDArray[np.bool_]] | None = None
    for center_c, width in peaks:
        spread_c = max(width, floor)
        band_c = (np.abs(smooth - center_c) <= band_k * spread_c) & body
        core = np.asarray(ndimage.binary_erosion(band_c, erosion, border_value=1))
        lab, n = ndimage.label(core)
        if n == 0:
            continue
        if seed is not None:
            keep = int(lab[tuple(seed)])
            dist_mm = 0.0
            if keep == 0:
                dist, (iz, iy, ix) = ndimage.distance_transform_edt(
                    lab == 0, sampling=spacing, return_indices=True
                )
                keep = int(lab[iz[tuple(seed)], iy[tuple(seed)], ix[tuple(seed)]])
                dist_mm = float(dist[tuple(seed)])
            # the largest core within reach of the seed (a click on a vessel or a tumour inside the liver still
            # gives the liver), else the nearest one
            reach = np.zeros(raw.shape, dtype=bool)
            reach[tuple(seed)] = True
            reach = np.asarray(ndimage.binary_dilation(reach, _ball(erosion_mm + 10.0, spacing)))
            ids = np.unique(lab[reach & (lab > 0)])
            if ids.size:
                sizes_all = ndimage.sum_labels(np.ones_like(reach), lab, index=ids)
                keep = int(ids[int(np.argmax(sizes_all))])
                score = float(np.max(sizes_all))
            else:
                score = -dist_mm
        else:
            idx = np.arange(1, n + 1)
            vol_r = ndimage.sum_labels(right, lab, index=idx)
            vol_all = ndimage.sum_labels(np.ones_like(right), lab, index=idx)
            ok = vol_r >= 0.6 * vol_all
            if not ok.any():
                continue
            vol_r = np.where(ok, vol_r, 0.0)
            keep = int(np.argmax(vol_r)) + 1
            score = float(vol_r[keep - 1])
        if best is None or score > best[0]:
            best = (score, center_c, spread_c, lab == keep, band_c)
    if best is None:
        raise InputError(
            f"No liver-like region survives a {erosion_mm:.0f} mm erosion in {image.source or 'the image'}; give a "
            "seed in the liver (--seed X,Y,Z) or check that the image covers the upper abdomen."
        )
    score, center, spread, comp, band = best
    if seed is not None and -score > erosion_mm + 2 * max(spacing):
        warnings.append(f"the seed is {-score:.0f} mm from the nearest liver-like core; the nearest one was used")
    # refit the intensity model on the liver core found (its texture and enhancement), then redo the core
    for _ in range(REFIT_ITERATIONS):
        core_vals = raw[comp]
        center = float(np.median(core_vals))
        spread = max(float(np.median(np.abs(core_vals - center))) * 1.4826 * REFIT_SCALE, spread)
        band = (np.abs(smooth - center) <= band_k * spread) & body
        lab, _ = ndimage.label(np.asarray(ndimage.binary_erosion(band, erosion, border_value=1)))
        overlap = np.bincount(lab[comp], minlength=int(lab.max()) + 1)
        overlap[0] = 0
        if overlap.max() > 0:
            comp = lab == int(np.argmax(overlap))
    automatic = seed is None
    if seed is None:
        inside = np.argwhere(comp)
        seed = inside[len(inside) // 2]
    liver = np.asarray(ndimage.binary_dilation(comp, _ball(erosion_mm + max(spacing), spacing))) & band
    liver |= comp
    lab2, _ = ndimage.label(liver)
    liver = lab2 == lab2[tuple(np.argwhere(comp)[0])]
    ball4 = _ball(4.0, spacing)
    pad = ball4.shape[0] // 2 + 1
    padded = np.pad(liver, ((pad, pad), (0, 0), (0, 0)), mode="edge")
    liver = np.asarray(ndimage.binary_closing(padded, ball4))[pad:-pad]
    for z in range(liver.shape[0]):
        liver[z] = ndimage.binary_fill_holes(liver[z])
    liver &= body
    liver.flags.writeable = False
    return LiverSegmentation(
        mask=liver,
        volume_ml=float(liver.sum()) * g.voxel_volume_mm3 / 1000.0,
        seed_index=tuple(int(v) for v in seed),  # type: ignore[arg-type]
        automatic_seed=automatic,
        intensity_center=center,
        intensity_spread=spread,
        warnings=tuple(warnings),
    )
