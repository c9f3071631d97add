"""Rigid alignment of two distance maps by Levenberg–Marquardt on sampled voxels (used by the registration).

The cost is ITK's mean-squares metric of :mod:`hepavol.followup.registration`: the mean over fixed voxels ``x``
(away from the faces of either image) of ``(D_moving(T x) − D_fixed(x))²`` with trilinear interpolation, for
``T x = R(θ) (x − c) + c + t`` and ``R(θ)`` the rotation of ITK's ``Euler3DTransform`` (angles about L, P, S).
ITK minimises it by regular-step gradient descent (hundreds of metric evaluations); a least-squares problem of six
parameters converges in a few Gauss–Newton steps (Levenberg–Marquardt damping keeps each step safe), on two
levels: both maps smoothed by 2 voxels first, then as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

if TYPE_CHECKING:
    import SimpleITK as sitk

#: Voxels of the fixed map sampled per level (a regular stride over the crop, not random: same result every run).
_MAX_POINTS = 40_000
_LEVEL_SIGMAS_VOX = (2.0, 0.0)
_MAX_ITERATIONS = 60


@dataclass(frozen=True, slots=True)
class _Grid:
    """An image's voxel array (z, y, x) with its LPS frame."""

    array: NDArray[np.float64]
    origin: NDArray[np.float64]
    spacing: NDArray[np.float64]  # (x, y, z)
    direction: NDArray[np.float64]  # columns: the x, y, z index axes in LPS

    @classmethod
    def of(cls, image: sitk.Image) -> _Grid:
        import SimpleITK as sitk

        return cls(
            array=sitk.GetArrayFromImage(image).astype(np.float64),
            origin=np.array(image.GetOrigin(), float),
            spacing=np.array(image.GetSpacing(), float),
            direction=np.array(image.GetDirection(), float).reshape(3, 3),
        )

    def to_index_zyx(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        """Continuous (z, y, x) indices of LPS points (n, 3), as ``ndimage.map_coordinates`` wants them (3, n)."""
        xyz = ((points - self.origin) @ self.direction) / self.spacing
        return np.ascontiguousarray(xyz[:, ::-1].T)


def euler_matrix(angles: NDArray[np.float64]) -> NDArray[np.float64]:
    """The rotation matrix of ITK's Euler3DTransform (ComputeZYX off): ``Rz · Rx · Ry``."""
    ax, ay, az = angles
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return np.asarray(rz @ rx @ ry, dtype=np.float64)


def _derivatives(angles: NDArray[np.float64]) -> list[NDArray[np.float64]]:
    """dR/dθ_k by central differences (exact to ~1e-10 for these smooth functions)."""
    h = 1e-6
    out = []
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        out.append((euler_matrix(angles + e) - euler_matrix(angles - e)) / (2 * h))
    return out


def _inside(index_zyx: NDArray[np.float64], shape: tuple[int, ...], margin: int) -> NDArray[np.bool_]:
    ok = np.ones(index_zyx.shape[1], bool)
    for axis, n in enumerate(shape):
        lo, hi = margin, n - 1 - margin
        if hi < lo:  # an image thinner than twice the margin: keep what lies inside it
            lo, hi = 0, n - 1
        ok &= (index_zyx[axis] >= lo) & (index_zyx[axis] <= hi)
    return ok


def fit_rigid(
    fixed: sitk.Image,
    moving: sitk.Image,
    *,
    center_mm: NDArray[np.float64],
    translation_mm: NDArray[np.float64],
    margin_vox: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Euler angles (rad, about L, P, S) and translation (mm) of the rigid ``T`` minimising the metric.

    ``fixed`` and ``moving`` are float distance maps (SimpleITK images in LPS), ``center_mm`` the centre of
    rotation, ``translation_mm`` the start (rotation starts at 0).
    """
    fix, mov = _Grid.of(fixed), _Grid.of(moving)
    shape_f = fix.array.shape
    # Fixed voxels away from the crop's faces (what ITK's fixed mask keeps), on a regular stride.
    keep = np.zeros(shape_f, bool)
    m = [min(margin_vox, max((n - 1) // 2, 0)) for n in shape_f]
    keep[m[0] : shape_f[0] - m[0], m[1] : shape_f[1] - m[1], m[2] : shape_f[2] - m[2]] = True
    stride = max(int(np.ceil((np.count_nonzero(keep) / _MAX_POINTS) ** (1 / 3))), 1)
    sub = np.zeros(shape_f, bool)
    sub[::stride, ::stride, ::stride] = True
    zyx = np.argwhere(keep & sub).astype(np.float64)
    points = fix.origin + (zyx[:, ::-1] * fix.spacing) @ fix.direction.T
    rel = points - center_mm

    angles = np.zeros(3)
    t = np.asarray(translation_mm, float).copy()
    for sigma in _LEVEL_SIGMAS_VOX:
        level = _Level(fix, mov, zyx, rel, center_mm, margin_vox, sigma)
        angles, t = level.solve(angles, t)
    return angles, t


class _Level:
    """The cost of one resolution level (both maps smoothed by ``sigma`` voxels) and its Jacobian."""

    def __init__(
        self,
        fix: _Grid,
        mov: _Grid,
        zyx: NDArray[np.float64],
        rel: NDArray[np.float64],
        center_mm: NDArray[np.float64],
        margin_vox: int,
        sigma: float,
    ) -> None:
        f_arr = ndimage.gaussian_filter(fix.array, sigma) if sigma else fix.array
        self.m_arr = ndimage.gaussian_filter(mov.array, sigma) if sigma else mov.array
        self.f_val = ndimage.map_coordinates(f_arr, zyx.T, order=1)
        # Gradient of the moving map along its x, y, z index axes (per mm), turned into LPS at each point.
        g_zyx = np.gradient(self.m_arr, *mov.spacing[::-1])
        self.g_xyz = [g_zyx[2], g_zyx[1], g_zyx[0]]
        self.mov, self.rel, self.center_mm, self.margin_vox = mov, rel, center_mm, margin_vox

    def evaluate(
        self, angles: NDArray[np.float64], t: NDArray[np.float64], want_jacobian: bool
    ) -> tuple[float, NDArray[np.float64] | None, NDArray[np.float64] | None]:
        """Mean squared residual, and (when asked) the residuals and their Jacobian (n, 6)."""
        moved = self.rel @ euler_matrix(angles).T + self.center_mm + t
        idx = self.mov.to_index_zyx(moved)
        ok = _inside(idx, self.mov.array.shape, self.margin_vox)
        if not np.any(ok):
            return float("inf"), None, None
        idx = idx[:, ok]
        res = ndimage.map_coordinates(self.m_arr, idx, order=1) - self.f_val[ok]
        cost = float(np.mean(res**2))
        if not want_jacobian:
            return cost, None, None
        g_axes = np.stack([ndimage.map_coordinates(g, idx, order=1) for g in self.g_xyz], axis=1)
        grad = g_axes @ self.mov.direction.T  # (n, 3) LPS gradient
        jac = np.empty((res.size, 6))
        rel = self.rel[ok]
        for k, d_r in enumerate(_derivatives(angles)):
            jac[:, k] = np.einsum("ij,ij->i", grad, rel @ d_r.T)
        jac[:, 3:] = grad
        return cost, res, jac

    def solve(
        self, angles: NDArray[np.float64], t: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Levenberg–Marquardt from ``angles``, ``t`` until the step is below 1e-5 rad and 1e-3 mm."""
        damping = 1e-3
        cost, res, jac = self.evaluate(angles, t, True)
        for _ in range(_MAX_ITERATIONS):
            if res is None or jac is None:
                break
            jtj = jac.T @ jac
            jtr = jac.T @ res
            step_taken = False
            while damping < 1e8:
                step = -np.linalg.solve(jtj + damping * np.diag(np.diag(jtj) + 1e-12), jtr)
                new_cost, _, _ = self.evaluate(angles + step[:3], t + step[3:], False)
                if new_cost < cost:
                    angles, t = angles + step[:3], t + step[3:]
                    damping = max(damping / 3.0, 1e-7)
                    step_taken = True
                    break
                damping *= 4.0
            if not step_taken:
                break
            cost, res, jac = self.evaluate(angles, t, True)
            if np.max(np.abs(step[:3])) < 1e-5 and np.max(np.abs(step[3:])) < 1e-3:
                break
        return angles, t
