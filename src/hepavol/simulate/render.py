"""Render one scan of a virtual patient: image, label map (liver 1, tumour 2) and lesion instance map.

Voxel centres of the scan grid (scanner frame) are mapped to the body frame through the scan's pose, tissues are
painted there (:func:`hepavol.simulate.anatomy.paint_tissues`), lesions are rasterised from their analytic
ellipsoids, and intensities come from modality tables: CT portal-venous HU, or T2-weighted-like MR signal
(liver dark, metastases and fluid bright, vessels as flow voids, fat bright). A Gaussian blur stands for the
partial-volume averaging over a voxel plus the scanner's point-spread function, then correlated noise is added
(Gaussian for CT, Rician for MR, with a smooth receive-coil bias field).

The label and instance maps are the voxelised truth: a voxel belongs to a lesion when its centre lies inside
the ellipsoid, to the liver when its centre lies inside the liver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from hepavol.geometry import Geometry, identity_direction
from hepavol.simulate.anatomy import Tissue, paint_tissues
from hepavol.simulate.config import DEFAULT_CONFIG, GridSpec, SimulationConfig, grid_for
from hepavol.simulate.lesions import LesionSpec, calcification_mask, rasterise
from hepavol.simulate.patient import VirtualPatient, patient_rng
from hepavol.simulate.schedule import ScanEvent
from hepavol.volume import Volume

LIVER_LABEL = 1
TUMOUR_LABEL = 2

#: CT portal-venous attenuation per tissue, HU (liver and its vessels are set per patient).
CT_HU: dict[Tissue, float] = {
    Tissue.AIR: -1000.0,
    Tissue.SUBCUTANEOUS_FAT: -105.0,
    Tissue.MUSCLE: 55.0,
    Tissue.VISCERAL_FAT: -95.0,
    Tissue.BOWEL: 35.0,
    Tissue.GAS: -950.0,
    Tissue.LUNG: -860.0,
    Tissue.HEART: 130.0,
    Tissue.KIDNEY: 175.0,
    Tissue.SPLEEN: 115.0,
    Tissue.STOMACH_WALL: 70.0,
    Tissue.STOMACH_FLUID: 10.0,
    Tissue.AORTA: 160.0,
    Tissue.IVC: 140.0,
    Tissue.BONE_CORTEX: 750.0,
    Tissue.BONE_MARROW: 220.0,
    Tissue.DISC: 90.0,
    Tissue.CSF: 10.0,
}

#: T2-weighted-like MR signal per tissue (arbitrary units, liver about 300).
MR_T2: dict[Tissue, float] = {
    Tissue.AIR: 0.0,
    Tissue.SUBCUTANEOUS_FAT: 620.0,
    Tissue.MUSCLE: 150.0,
    Tissue.VISCERAL_FAT: 580.0,
    Tissue.BOWEL: 420.0,
    Tissue.GAS: 0.0,
    Tissue.LUNG: 25.0,
    Tissue.HEART: 90.0,
    Tissue.KIDNEY: 620.0,
    Tissue.SPLEEN: 540.0,
    Tissue.STOMACH_WALL: 260.0,
    Tissue.STOMACH_FLUID: 1400.0,
    Tissue.AORTA: 40.0,
    Tissue.IVC: 60.0,
    Tissue.BONE_CORTEX: 20.0,
    Tissue.BONE_MARROW: 380.0,
    Tissue.DISC: 550.0,
    Tissue.CSF: 1500.0,
}

#: Standard deviation of the point-spread function, mm (in-plane, along the slice axis) (design choice).
PSF_SIGMA_MM = (1.0, 0.7, 0.7)


@dataclass(frozen=True, eq=False, slots=True)
class RenderedScan:
    """Image, label map (0 background, 1 liver, 2 tumour) and instance map (lesion id per voxel) of one scan."""

    image: Volume
    labels: Volume
    instances: Volume

    def lesion_voxel_counts(self) -> dict[int, int]:
        """Number of voxels of each lesion id present in the instance map."""
        arr = self.instances.array
        ids, counts = np.unique(arr[arr > 0], return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts)}


def scan_geometry(grid: GridSpec) -> Geometry:
    """The scan grid centred on the scanner origin, axial (slice +S, row +P, column +L)."""
    shape = grid.shape
    spacing = grid.spacing_mm
    origin = tuple(-(shape[k] - 1) / 2.0 * spacing[k] for k in (2, 1, 0))  # (x, y, z) from (column, row, slice)
    return Geometry(shape=shape, spacing_mm=spacing, origin_lps_mm=origin, direction=identity_direction())  # type: ignore[arg-type]


def _body_points(
    geometry: Geometry, scan: ScanEvent, k0: int, k1: int, rows: slice = slice(None), cols: slice = slice(None)
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """Body-frame coordinates (x, y, z mm) of voxel centres of slices k0:k1 (and optional row/column ranges)."""
    _nz, ny, nx = geometry.shape
    dz, dy, dx = geometry.spacing_mm
    ox, oy, oz = geometry.origin_lps_mm
    zs = (oz + dz * np.arange(k0, k1, dtype=np.float64)).astype(np.float32)
    ys = (oy + dy * np.arange(ny, dtype=np.float64)[rows]).astype(np.float32)
    xs = (ox + dx * np.arange(nx, dtype=np.float64)[cols]).astype(np.float32)
    t = np.array(scan.pose.translation_mm, dtype=np.float32)
    r = scan.pose.matrix.astype(np.float32)
    zz = (zs - t[2])[:, None, None]
    yy = (ys - t[1])[None, :, None]
    xx = (xs - t[0])[None, None, :]
    # p_body = Rᵀ (p_scanner − t): component i = Σ_j R[j, i] (p − t)_j
    px, py, pz = ((xx * r[0, i] + yy * r[1, i] + zz * r[2, i]).astype(np.float32) for i in range(3))
    return px, py, pz


def _texture_waves(rng: np.random.Generator, n: int = 8) -> list[tuple[float, float, float, float]]:
    waves = []
    for _ in range(n):
        d = rng.normal(size=3)
        d = d / np.linalg.norm(d) * (2 * np.pi / rng.uniform(6.0, 18.0))
        waves.append((float(d[0]), float(d[1]), float(d[2]), float(rng.uniform(0, 2 * np.pi))))
    return waves


def _texture(
    waves: list[tuple[float, float, float, float]],
    x: NDArray[np.float32],
    y: NDArray[np.float32],
    z: NDArray[np.float32],
) -> NDArray[np.float32]:
    """A smooth random field of unit standard deviation (sum of cosines in the body frame)."""
    field = np.zeros(x.shape, dtype=np.float32)
    for kx, ky, kz, phase in waves:
        field += np.cos(kx * x + ky * y + kz * z + phase).astype(np.float32)
    return field * np.float32(np.sqrt(2.0 / len(waves)))


def _lesion_values(spec: LesionSpec, rho: NDArray[np.float32], modality: str, liver: float) -> NDArray[np.float32]:
    """Intensity inside a lesion as a function of the normalised radius ``rho`` (≤ 1)."""
    c0, c1, c2 = spec.contrast
    out = np.empty(rho.shape, dtype=np.float32)
    if modality == "CT":
        kind = spec.appearance
        if kind == "hyper":
            out[:] = liver + 20.0 + 30.0 * c0
        elif kind == "rim":
            out[:] = liver - 30.0 - 25.0 * c0
            out[rho > 0.72] = liver + 35.0 + 35.0 * c1
        elif kind == "necrotic":
            out[:] = liver - 15.0 - 20.0 * c0
            out[rho < 0.55] = 15.0 + 15.0 * c1
        else:  # hypo, calcified
            out[:] = liver - 25.0 - 30.0 * c0
    else:
        core = liver * (1.8 + 1.5 * c2)
        out[:] = core
        if spec.appearance == "rim":
            out[rho > 0.72] = liver * (1.2 + 0.3 * c1)
        elif spec.appearance == "necrotic":
            out[rho < 0.55] = 1300.0 + 200.0 * c1
    return out


def _voxel_box(
    geometry: Geometry, centre_lps: NDArray[np.float64], radius_mm: float
) -> tuple[slice, slice, slice] | None:
    lo = np.floor(geometry.lps_to_index(centre_lps - radius_mm)).astype(int) - 1
    hi = np.ceil(geometry.lps_to_index(centre_lps + radius_mm)).astype(int) + 2
    lo_i = np.minimum(lo, hi)
    hi_i = np.maximum(lo, hi)
    box = []
    for k in range(3):
        a = max(int(lo_i[k]), 0)
        b = min(int(hi_i[k]), geometry.shape[k])
        if a >= b:
            return None
        box.append(slice(a, b))
    return box[0], box[1], box[2]


def render_scan(
    patient: VirtualPatient,
    scan_index: int,
    *,
    size: str = "small",
    config: SimulationConfig = DEFAULT_CONFIG,
    chunk_slices: int = 12,
) -> RenderedScan:
    """Render scan ``scan_index`` of ``patient`` on the ``size`` grid of its modality.

    Returns the image (CT: int16 HU; MR: int16 signal), the label map (uint8: 1 liver, 2 tumour) and the
    instance map (uint16: lesion id, 0 elsewhere), all on the same grid (DICOM LPS mm).
    """
    scan = patient.scans[scan_index]
    grid = grid_for(size, patient.modality)
    geometry = scan_geometry(grid)
    nz = geometry.shape[0]
    ct = patient.modality == "CT"
    table = CT_HU if ct else MR_T2
    lut = np.zeros(len(Tissue), dtype=np.float32)
    for tissue, value in table.items():
        lut[int(tissue)] = value
    lut[int(Tissue.LIVER)] = patient.liver_intensity
    lut[int(Tissue.LIVER_VESSEL)] = patient.liver_intensity + 65.0 if ct else 70.0

    # fine tissue texture that moves with the patient (its own random stream: parameters are unaffected)
    waves = _texture_waves(patient_rng(patient.seed, patient.index, 2))
    texture_amp = np.float32(5.0 if ct else 0.04 * patient.liver_intensity)
    image = np.empty(geometry.shape, dtype=np.float32)
    liver = np.empty(geometry.shape, dtype=bool)
    bias = None if ct else np.empty(geometry.shape, dtype=np.float32)
    for k0 in range(0, nz, chunk_slices):
        k1 = min(nz, k0 + chunk_slices)
        x, y, z = _body_points(geometry, scan, k0, k1)
        tissues, liver_chunk = paint_tissues(patient.anatomy, x, y, z)
        image[k0:k1] = lut[tissues]
        soft = (tissues != Tissue.AIR) & (tissues != Tissue.GAS) & (tissues != Tissue.LUNG)
        image[k0:k1] += np.where(soft, _texture(waves, x, y, z) * texture_amp, np.float32(0.0))
        liver[k0:k1] = liver_chunk
        if bias is not None:  # receive-coil bias: brighter near the body surface, smooth along z
            r2 = (x / 170.0) ** 2 + (y / 130.0) ** 2
            bias[k0:k1] = 0.85 + 0.3 * np.clip(r2, 0, 1.2) + 0.05 * np.cos(z / 60.0)

    instances = np.zeros(geometry.shape, dtype=np.uint16)
    for spec in patient.lesions:
        if not spec.present(scan.day):
            continue
        semi = spec.semi_axes_mm(scan.day)
        centre = scan.pose.to_scanner(np.array(spec.centre_mm))
        box = _voxel_box(geometry, centre, float(semi.max()))
        if box is None:
            continue
        pts = _body_points(geometry, scan, box[0].start, box[0].stop, box[1], box[2])
        inside, rho = rasterise(spec, scan.day, pts)
        sub_inst = instances[box]
        sub_inst[inside] = spec.lesion_id
        values = _lesion_values(spec, rho, patient.modality, patient.liver_intensity)
        sub_img = image[box]
        sub_img[inside] = values[inside]
        if spec.appearance == "calcified":
            calc = inside & calcification_mask(spec, scan.day, pts)
            c1 = spec.contrast[1]
            sub_img[calc] = (350.0 + 500.0 * c1) if ct else 40.0
    if bias is not None:
        image *= bias

    rng = patient_rng(patient.seed, patient.index, 1, scan_index)
    spacing = np.array(geometry.spacing_mm)
    sigma_vox = np.sqrt(0.29**2 + (np.array(PSF_SIGMA_MM) / spacing) ** 2)
    image = ndimage.gaussian_filter(image, sigma=sigma_vox, mode="nearest")
    noise = rng.standard_normal(size=geometry.shape, dtype=np.float32)
    noise = ndimage.gaussian_filter(noise, sigma=(0.0, 0.6, 0.6))
    noise *= np.float32(1.0 / max(float(noise.std()), 1e-6))
    if ct:
        image += noise * np.float32(config.ct_noise_sd_hu.get(size, 10.0))
        out = np.clip(np.rint(image), -1024, 3071).astype(np.int16)
    else:
        sd = np.float32(14.0)
        noise2 = rng.standard_normal(size=geometry.shape, dtype=np.float32) * sd
        image = np.sqrt((image + noise * sd) ** 2 + noise2**2)
        out = np.clip(np.rint(image), 0, 4095).astype(np.int16)

    labels = np.zeros(geometry.shape, dtype=np.uint8)
    labels[liver] = LIVER_LABEL
    labels[instances > 0] = TUMOUR_LABEL
    meta = {"modality": patient.modality, "patient_id": patient.patient_id, "study_date": scan.date.isoformat()}
    src = f"{patient.patient_id} scan {scan_index} ({scan.date.isoformat()})"
    return RenderedScan(
        image=Volume(out, geometry, src, dict(meta)),
        labels=Volume(labels, geometry, src, dict(meta)),
        instances=Volume(instances, geometry, src, dict(meta)),
    )


def liver_window(image: NDArray[np.generic], modality: str) -> tuple[float, float]:
    """Display window (low, high) for an axial slice: CT abdomen window (W 400, L 50) or MR percentiles."""
    if modality == "CT":
        return (-150.0, 250.0)
    arr = np.asarray(image, dtype=float)
    return (0.0, float(np.percentile(arr[arr > 0], 99.5)) if np.any(arr > 0) else 1.0)
