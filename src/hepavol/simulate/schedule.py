"""Scan schedule and patient position: baseline, an early scan at 3-6 months, then every 6-12 months.

The schedule runs to the censoring horizon; the patient module cuts it after the first true RECIST progression.
Between scans the patient lies differently on the table: each scan has a pose (rotation ``R`` and translation
``t``, mm) mapping body coordinates to scanner coordinates, ``p_scanner = R · p_body + t``. Follow-up poses are
translated 20-40 mm from the baseline pose (mostly along the table) and rotated by a few degrees (issue 5).
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hepavol.simulate.config import SimulationConfig

Vec3 = tuple[float, float, float]
Mat3 = tuple[Vec3, Vec3, Vec3]


@dataclass(frozen=True, slots=True, kw_only=True)
class Pose:
    """Rigid map from the body frame to the scanner frame: ``p_scanner = rotation @ p_body + translation_mm``."""

    rotation: Mat3
    translation_mm: Vec3

    @property
    def matrix(self) -> NDArray[np.float64]:
        return np.array(self.rotation, dtype=float)

    def rotation_angle_deg(self) -> float:
        """Angle of the rotation in degrees."""
        c = (float(np.trace(self.matrix)) - 1.0) / 2.0
        return math.degrees(math.acos(max(-1.0, min(1.0, c))))

    def to_scanner(self, points_body_mm: NDArray[np.float64]) -> NDArray[np.float64]:
        """Scanner-frame LPS mm of body-frame points, shape (3,) or (N, 3)."""
        return np.asarray(points_body_mm) @ self.matrix.T + np.array(self.translation_mm)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanEvent:
    """One scan of the schedule: index (0 = baseline), days after baseline, date and pose."""

    index: int
    day: int
    date: datetime.date
    pose: Pose


def _rotation_xyz(rx_deg: float, ry_deg: float, rz_deg: float) -> Mat3:
    rx, ry, rz = (math.radians(v) for v in (rx_deg, ry_deg, rz_deg))
    cx, sx, cy, sy, cz, sz = math.cos(rx), math.sin(rx), math.cos(ry), math.sin(ry), math.cos(rz), math.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    m = mz @ my @ mx
    return tuple(tuple(float(v) for v in row) for row in m)  # type: ignore[return-value]


def sample_scan_days(rng: np.random.Generator, horizon_day: int, config: SimulationConfig) -> list[int]:
    """Days after baseline of all scans up to ``horizon_day`` (baseline 0 always included)."""
    days = [0]
    lo, hi = config.early_scan_days
    day = int(rng.integers(lo, hi + 1))
    while day <= horizon_day:
        days.append(day)
        lo, hi = config.later_interval_days
        day += int(rng.integers(lo, hi + 1))
    return days


def sample_poses(rng: np.random.Generator, n: int, config: SimulationConfig) -> list[Pose]:
    """``n`` poses: a baseline pose near the table centre, then shifts of 20-40 mm and small rotations from it."""
    max_yaw, max_tilt = config.max_rotation_deg
    base_t = np.array([rng.uniform(-8, 8), rng.uniform(-8, 8), rng.uniform(-10, 10)])
    poses = [
        Pose(
            rotation=_rotation_xyz(
                float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1)), float(rng.uniform(-max_yaw, max_yaw) / 2)
            ),
            translation_mm=(float(base_t[0]), float(base_t[1]), float(base_t[2])),
        )
    ]
    lo, hi = config.shift_mm
    for _ in range(1, n):
        direction = np.array([rng.normal(0, 0.35), rng.normal(0, 0.2), rng.normal(0, 1.0)])
        direction /= np.linalg.norm(direction)
        t = base_t + direction * rng.uniform(lo, hi)
        rot = _rotation_xyz(
            float(rng.uniform(-max_tilt, max_tilt)),
            float(rng.uniform(-max_tilt, max_tilt)),
            float(rng.uniform(-max_yaw, max_yaw)),
        )
        poses.append(Pose(rotation=rot, translation_mm=(float(t[0]), float(t[1]), float(t[2]))))
    return poses
