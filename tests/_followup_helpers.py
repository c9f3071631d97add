"""A longitudinal phantom patient with known truth, for the follow-up tests.

The patient lives in a *body frame* (mm). At each scan the body is placed in the scanner by a pose
``x_scanner = R · x_body + t`` (rotation about the liver centre at the origin) and rasterised on a fixed scanner
grid, so the registration must undo the pose. Lesions are balls whose radius at each scan is given.
"""

from __future__ import annotations

import csv
import datetime
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from hepavol.geometry import Geometry, identity_direction
from hepavol.io import write_image
from hepavol.volume import Volume

GRID = Geometry(
    shape=(40, 112, 112),
    spacing_mm=(5.0, 2.5, 2.5),
    origin_lps_mm=(-138.75, -138.75, -97.5),
    direction=identity_direction(),
)


def rotation(deg_x: float, deg_y: float, deg_z: float) -> NDArray[np.float64]:
    """R = Rz · Ry · Rx, angles in degrees about the L, P and S axes."""
    ax, ay, az = (math.radians(a) for a in (deg_x, deg_y, deg_z))
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class Pose:
    angles_deg: tuple[float, float, float]
    translation_mm: tuple[float, float, float]

    @property
    def matrix(self) -> NDArray[np.float64]:
        m = np.eye(4)
        m[:3, :3] = rotation(*self.angles_deg)
        m[:3, 3] = self.translation_mm
        return m


@dataclass(frozen=True)
class PhantomLesion:
    name: str
    centre_mm: tuple[float, float, float]
    radii_mm: tuple[float, ...]  # one per scan; 0 = absent


#: The scenario of ``test_followup_pipeline`` (radii in mm; LD = 2 r). See that module for the hand computation.
DATES = (
    datetime.date(2024, 1, 1),
    datetime.date(2024, 3, 1),
    datetime.date(2024, 5, 1),
    datetime.date(2024, 7, 1),
)
POSES = (
    Pose((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    Pose((2.0, -1.5, 3.0), (25.0, -20.0, 10.0)),
    Pose((-2.0, 2.0, -3.0), (-30.0, 15.0, -10.0)),
    Pose((1.0, 1.0, 4.0), (35.0, 25.0, 15.0)),
)
LESIONS = (
    PhantomLesion("A", (30.0, 0.0, 0.0), (15.0, 8.0, 8.0, 9.0)),  # target, shrinks then regrows
    PhantomLesion("B", (-30.0, 20.0, 10.0), (10.0, 6.0, 6.0, 7.0)),  # target
    PhantomLesion("C", (-35.0, -15.0, -20.0), (7.0, 4.0, 0.0, 0.0)),  # non-target that vanishes
    PhantomLesion("D", (-8.0, 30.0, 20.0), (5.0, 5.0, 5.0, 9.0)),  # non-target; merges with E at the last scan
    PhantomLesion("E", (8.0, 30.0, 20.0), (4.5, 4.5, 4.5, 9.0)),  # non-target
    PhantomLesion("F", (35.0, -30.0, -15.0), (0.0, 0.0, 5.0, 6.0)),  # new at the third scan
)


def _liver_body(points: NDArray[np.float64]) -> NDArray[np.bool_]:
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    main = (x / 70) ** 2 + (y / 55) ** 2 + (z / 45) ** 2 <= 1
    lobe = ((x + 40) / 45) ** 2 + ((y - 10) / 40) ** 2 + ((z + 15) / 30) ** 2 <= 1
    return main | lobe


@functools.lru_cache(maxsize=8)
def render(
    t: int, *, lesions: tuple[PhantomLesion, ...] = LESIONS, poses: tuple[Pose, ...] = POSES
) -> tuple[Volume, Volume, Volume]:
    """Image, label map (liver 1, tumour 2) and truth instance map (lesion index + 1) of scan ``t``."""
    idx = np.stack(np.indices(GRID.shape), axis=-1).reshape(-1, 3).astype(float)
    scanner = GRID.index_to_lps(idx)
    m = poses[t].matrix
    body = (scanner - m[:3, 3]) @ m[:3, :3]  # R^T (x - t)
    liver = _liver_body(body)
    instances = np.zeros(len(body), np.int16)
    for k, lesion in enumerate(lesions):
        r = lesion.radii_mm[t]
        if r > 0:
            inside = np.sum((body - np.array(lesion.centre_mm)) ** 2, axis=1) <= r * r
            instances[inside] = k + 1
    shape = GRID.shape
    labels = np.where(instances > 0, 2, np.where(liver, 1, 0)).astype(np.uint8).reshape(shape)
    rng = np.random.default_rng(t)
    image = np.where(instances > 0, 60.0, np.where(liver, 110.0, 0.0)).reshape(shape)
    image = (image + rng.normal(0, 5, shape)).astype(np.int16)
    return Volume(image, GRID), Volume(labels, GRID), Volume(instances.reshape(shape), GRID)


def write_patient(
    folder: Path,
    *,
    patient_id: str | None = "PHANTOM-1",
    scans: int = len(DATES),
    lesions: tuple[PhantomLesion, ...] = LESIONS,
    poses: tuple[Pose, ...] = POSES,
) -> Path:
    """Write the phantom's scans as NIfTI and a manifest; return the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for t in range(scans):
        image, labels, _ = render(t, lesions=lesions, poses=poses)
        day = DATES[t].strftime("%Y%m%d")
        write_image(image, folder / day / "image.nii.gz")
        write_image(labels, folder / day / "seg.nii.gz")
        row = {"date": DATES[t].isoformat(), "image": f"{day}/image.nii.gz", "seg": f"{day}/seg.nii.gz"}
        if patient_id:
            row["patient_id"] = patient_id
        rows.append(row)
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest
