"""Accuracy (not speed) of hepavol's diameters: voxelised ellipsoids and the simulator's truth, two conventions.

- *mesh*: hepavol ``measure_scan`` (surface-mesh vertices, IBSI / pyradiomics; hepavol since 0.1.0).
- *corner*: the voxel-corner convention hepavol used before (largest distance between corners of the voxel
  boxes), recomputed here by brute force over the convex hull of the corners.

Part 1 draws ellipsoids (semi-axes 4-25 mm, the two others 0.6-1 × the first) and spheres at random sub-voxel
offsets and uniformly random 3D rotations, voxelises them (voxel centre inside) and compares the RECIST long
and short axes with the analytic axes of the ellipse cut by the slice plane nearest to the centre, and the 3D
diameter with 2 × the largest semi-axis. Part 2 renders patients of the simulator (``size="small"``: 2.5 ×
2.5 mm pixels, 5 mm slices) and compares the axes measured on the lesion instance map with the truth
(``LesionTruth.long_axis_mm``: the largest axial section, analytic), and counts lesions truly below 10 mm that
the measurement makes RECIST-measurable.

Run: ``.venv/bin/python benchmarks/measure_accuracy.py [--draws 200] [--patients 20]`` (about a minute).
Prints markdown tables: mean ± SD (min, max) of measured − true, in mm.
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hepavol.geometry import Geometry, identity_direction
from hepavol.measurement import RECIST_MIN_LONG_AXIS_MM, measure_scan
from hepavol.volume import Volume

Spacing = tuple[float, float, float]


def corner_diameters(mask: NDArray[np.bool_], spacing: Spacing) -> tuple[float, float]:
    """Long axis (largest over slices) and 3D diameter between voxel-box corners, mm (brute force)."""
    corners_2d = np.array([[a, b] for a in (-0.5, 0.5) for b in (-0.5, 0.5)])
    corners_3d = np.array([[a, b, c] for a in (-0.5, 0.5) for b in (-0.5, 0.5) for c in (-0.5, 0.5)])
    long_axis = 0.0
    for z in np.flatnonzero(mask.any(axis=(1, 2))):
        idx = np.argwhere(mask[z]).astype(float)
        long_axis = max(long_axis, _diameter(((idx[:, None] + corners_2d) * spacing[1:]).reshape(-1, 2)))
    idx = np.argwhere(mask).astype(float)
    return long_axis, _diameter(((idx[:, None] + corners_3d) * spacing).reshape(-1, 3))


def _diameter(points: NDArray[np.float64]) -> float:
    from scipy.spatial import ConvexHull, QhullError
    from scipy.spatial.distance import pdist

    with contextlib.suppress(QhullError, ValueError):  # a flat point set: all points
        points = points[ConvexHull(points).vertices]
    return float(pdist(points).max())


def random_rotation(rng: np.random.Generator) -> NDArray[np.float64]:
    """A uniformly distributed 3D rotation (QR of a Gaussian matrix with the sign fix)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q @ np.diag(np.sign(np.diag(r)))


def ellipsoid_errors(n: int, *, sphere: bool, spacing: Spacing, seed: int) -> dict[str, list[float]]:
    """Measured − analytic (mm) for ``n`` random voxelised ellipsoids (or spheres), both conventions."""
    rng = np.random.default_rng(seed)
    sz, sy, sx = spacing
    out: dict[str, list[float]] = {
        k: [] for k in ("long mesh", "long corner", "short mesh", "3d mesh", "3d corner")
    }
    for _ in range(n):
        a = rng.uniform(4.0, 25.0)
        semi = np.array([a, a, a]) if sphere else a * np.array([1.0, rng.uniform(0.6, 1), rng.uniform(0.6, 1)])
        rot = random_rotation(rng)
        shape_matrix = rot @ np.diag(1.0 / semi**2) @ rot.T  # (x = column, y = row, z = slice), mm
        shape = tuple(math.ceil(2 * (semi.max() + 3 * s) / s) + 2 for s in spacing)
        centre = np.array(shape, dtype=float) / 2 - 1 + rng.uniform(0, 1, 3)
        zz, yy, xx = np.indices(shape)
        pts = np.stack([(xx - centre[2]) * sx, (yy - centre[1]) * sy, (zz - centre[0]) * sz], axis=-1)
        inside = np.einsum("...i,ij,...j->...", pts, shape_matrix, pts) <= 1.0
        g = Geometry(shape=shape, spacing_mm=spacing, origin_lps_mm=(0, 0, 0), direction=identity_direction())
        (lesion,) = measure_scan(Volume(inside.astype(np.uint8) * 2, g)).lesions
        # Section by the slice plane nearest to the centre: (p − p0)ᵀ A_pp (p − p0) ≤ 1 − dz² / (A⁻¹)_zz.
        dz = (np.arange(shape[0]) - centre[0]) * sz
        scale2 = 1.0 - dz[np.argmin(np.abs(dz))] ** 2 / np.linalg.inv(shape_matrix)[2, 2]
        lam = np.linalg.eigvalsh(shape_matrix[:2, :2])
        true_long, true_short = 2 * math.sqrt(scale2 / lam[0]), 2 * math.sqrt(scale2 / lam[1])
        corner_long, corner_3d = corner_diameters(inside, spacing)
        out["long mesh"].append(lesion.long_axis_mm - true_long)
        out["long corner"].append(corner_long - true_long)
        out["short mesh"].append(lesion.short_axis_mm - true_short)
        out["3d mesh"].append(lesion.max_diameter_3d_mm - 2 * semi.max())
        out["3d corner"].append(corner_3d - 2 * semi.max())
    return out


def simulator_errors(patients: int, seed: int) -> tuple[dict[str, list[float]], list[tuple[float, float, float]]]:
    """Measured − true axes (mm) of every lesion on every scan of ``patients`` simulated patients."""
    from hepavol.simulate import render_scan, sample_patient

    out: dict[str, list[float]] = {
        k: [] for k in ("long mesh", "long corner", "short mesh", "3d mesh", "3d corner")
    }
    longs: list[tuple[float, float, float]] = []  # (true, mesh, corner)
    for index in range(patients):
        patient = sample_patient(index, seed=seed)
        for i in range(len(patient.scans)):
            instances = render_scan(patient, i, size="small").instances
            ids = np.asarray(instances.array)
            spacing: Spacing = instances.geometry.spacing_mm
            scan = measure_scan(instances, liver_label=int(ids.max()) + 1, instances=True)
            measured = {lesion.label: lesion for lesion in scan.lesions}
            for truth in patient.truth.scans[i].lesions:
                if truth.lesion_id not in measured:
                    continue
                lesion = measured[truth.lesion_id]
                corner_long, corner_3d = corner_diameters(_crop(ids == truth.lesion_id), spacing)
                out["long mesh"].append(lesion.long_axis_mm - truth.long_axis_mm)
                out["long corner"].append(corner_long - truth.long_axis_mm)
                out["short mesh"].append(lesion.short_axis_mm - truth.short_axis_mm)
                out["3d mesh"].append(lesion.max_diameter_3d_mm - truth.max_diameter_3d_mm)
                out["3d corner"].append(corner_3d - truth.max_diameter_3d_mm)
                longs.append((truth.long_axis_mm, lesion.long_axis_mm, corner_long))
    return out, longs


def _crop(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    from scipy import ndimage

    (box,) = ndimage.find_objects(mask.astype(np.uint8))
    return mask[box]


def _summary(values: Sequence[float]) -> str:
    v = np.asarray(values)
    return f"{v.mean():+.2f} ± {v.std(ddof=1):.2f} ({v.min():+.2f}, {v.max():+.2f})"


def _table(rows: list[tuple[str, dict[str, list[float]]]]) -> None:
    keys = ("long mesh", "long corner", "short mesh", "3d mesh", "3d corner")
    print("| case | n | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for name, errors in rows:
        n = len(errors["long mesh"])
        print(f"| {name} | {n} | " + " | ".join(_summary(errors[k]) for k in keys) + " |")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=200, help="random ellipsoids (and spheres) per spacing")
    parser.add_argument("--patients", type=int, default=20, help="simulated patients (small grid)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rows: list[tuple[str, dict[str, Any]]] = []
    for spacing in ((2.5, 2.5, 2.5), (5.0, 2.5, 2.5)):
        for sphere in (False, True):
            name = f"{'spheres' if sphere else 'ellipsoids'} {spacing[1]} mm pixels, {spacing[0]} mm slices"
            rows.append((name, ellipsoid_errors(args.draws, sphere=sphere, spacing=spacing, seed=args.seed)))
    sim, longs = simulator_errors(args.patients, args.seed)
    rows.append((f"simulator, {args.patients} patients, all scans (2.5 mm pixels, 5 mm slices)", sim))
    print("Measured − true diameter, mm: mean ± SD (min, max)\n")
    _table(rows)
    truth = np.array(longs)
    small = truth[:, 0] < RECIST_MIN_LONG_AXIS_MM
    print(
        f"\nSimulator lesions truly < {RECIST_MIN_LONG_AXIS_MM:g} mm: {int(small.sum())} of {len(truth)}; "
        f"measured >= {RECIST_MIN_LONG_AXIS_MM:g} mm: mesh {int((truth[small, 1] >= 10).sum())}, "
        f"corner {int((truth[small, 2] >= 10).sum())}; truly >= 10 mm measured < 10 mm: "
        f"mesh {int((truth[~small, 1] < 10).sum())}, corner {int((truth[~small, 2] < 10).sum())}."
    )


if __name__ == "__main__":
    main()
