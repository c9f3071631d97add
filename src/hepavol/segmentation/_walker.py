"""A random walker with an intensity prior on a box of the image (Grady, "Multilabel random walker image
segmentation using prior models", CVPR 2005), solved by conjugate gradients; used by the lesion editing session.

The unknown ``x`` (probability of lesion) minimises ``sum_ij w_ij (x_i - x_j)^2 + lam sum_i (x_i - p_i)^2`` with
``x = 1`` on the lesion seeds and ``x = 0`` on the background seeds, where ``w_ij`` are 6-neighbour edge weights
from intensity differences and ``p`` is the prior probability of lesion from the intensity models. The linear
system ``(L_UU + lam I) x_U = lam p_U - L_US x_S`` is symmetric positive definite.
"""

from __future__ import annotations

import contextlib

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from scipy.sparse import linalg as splinalg

LAST_ITERATIONS = 0
_BLAS: list[object] = []


def _one_blas_thread() -> contextlib.AbstractContextManager[object]:
    """BLAS on one thread for the solve: its vector products are short, and OpenBLAS's threads waiting for
    each other made a 300 000-element dot product 24x slower (8.6 ms against 0.36 ms) on 2 shared cores."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn (scikit-survival)
        return contextlib.nullcontext()
    if not _BLAS:
        _BLAS.append(ThreadpoolController())
    controller = _BLAS[0]
    assert isinstance(controller, ThreadpoolController)
    return controller.limit(limits=1, user_api="blas")


def block_mean(arr: NDArray[np.floating], factors: tuple[int, int, int]) -> NDArray[np.float64]:
    """Mean over blocks of ``factors`` voxels (the last partial block is the mean of what is there)."""
    a = np.asarray(arr, dtype=np.float64)
    if factors == (1, 1, 1):
        return a
    pads = [(0, (-n) % f) for n, f in zip(a.shape, factors, strict=True)]
    ones = np.pad(np.ones(a.shape), pads)
    a = np.pad(a, pads)
    shape = []
    for n, f in zip(a.shape, factors, strict=True):
        shape += [n // f, f]
    s = a.reshape(shape).sum(axis=(1, 3, 5))
    c = ones.reshape(shape).sum(axis=(1, 3, 5))
    return np.asarray(s / np.maximum(c, 1.0), dtype=np.float64)


def block_any(mask: NDArray[np.bool_], factors: tuple[int, int, int]) -> NDArray[np.bool_]:
    """True where any voxel of the block is True."""
    if factors == (1, 1, 1):
        return np.asarray(mask, dtype=bool)
    return np.asarray(block_mean(mask.astype(np.float64), factors) > 0, dtype=bool)


def upsample(x: NDArray[np.float64], factors: tuple[int, int, int], shape: tuple[int, ...]) -> NDArray[np.float64]:
    """Linear interpolation of block values back onto the fine grid (block centres at the blocks' middles)."""
    if factors == (1, 1, 1):
        return x
    from scipy import ndimage

    out = ndimage.zoom(x, factors, order=1, grid_mode=True, mode="nearest")
    return np.asarray(out[: shape[0], : shape[1], : shape[2]], dtype=np.float64)


def random_walk(
    image: NDArray[np.float64],
    fg: NDArray[np.bool_],
    bg: NDArray[np.bool_],
    prior: NDArray[np.float64],
    *,
    spacing_mm: tuple[float, float, float],
    contrast: float,
    beta: float,
    prior_weight: float,
    x0: NDArray[np.float64] | None = None,
    rtol: float = 1e-3,
    barrier: NDArray[np.bool_] | None = None,
) -> NDArray[np.float64]:
    """Lesion probability on the box: the random walker with ``prior`` (see the module docstring).

    ``contrast`` is the intensity step of a lesion edge (image units): an edge across a difference ``d`` has
    weight ``exp(-beta (d / contrast)^2)`` divided by the squared edge length relative to the shortest.
    Background seeds win where both seeds are set. Edges into a ``barrier`` voxel (e.g. outside the liver's
    margin) carry no weight: the walk neither leaks into it nor is pulled to 0 by it, so the barrier's edge is
    not taken as an edge of the lesion (it only clips it).
    """
    shape = image.shape
    n = int(np.prod(shape))
    index = np.arange(n).reshape(shape)
    h0 = min(spacing_mm)
    rows: list[NDArray[np.int64]] = []
    cols: list[NDArray[np.int64]] = []
    vals: list[NDArray[np.float64]] = []
    for axis in range(3):
        if shape[axis] < 2:
            continue
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis] = slice(0, -1)
        hi[axis] = slice(1, None)
        d = (image[tuple(hi)] - image[tuple(lo)]) / max(contrast, 1e-6)
        w = np.exp(-beta * d * d) * (h0 / spacing_mm[axis]) ** 2 + 1e-6
        if barrier is not None:
            w = np.where(barrier[tuple(hi)] | barrier[tuple(lo)], 1e-6, w)
        rows.append(index[tuple(lo)].ravel())
        cols.append(index[tuple(hi)].ravel())
        vals.append(w.ravel())
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    v = np.concatenate(vals)
    w_mat = sparse.coo_matrix((np.concatenate([v, v]), (np.concatenate([r, c]), np.concatenate([c, r]))), (n, n))
    w_csr = w_mat.tocsr()
    degree = np.asarray(w_csr.sum(axis=1)).ravel()
    seeds = (fg | bg).ravel()
    xs = np.where(bg.ravel(), 0.0, 1.0)
    unknown = ~seeds
    x = xs.copy()
    if not unknown.any():
        return x.reshape(shape)
    u = np.flatnonzero(unknown)
    s = np.flatnonzero(seeds)
    p = prior.ravel()
    a = (sparse.diags(degree[u] + prior_weight) - w_csr[u][:, u]).tocsr()
    rhs = prior_weight * p[u]
    if s.size:
        rhs = rhs + w_csr[u][:, s] @ xs[s]
    m_inv = sparse.diags(1.0 / (degree[u] + prior_weight))
    start = p[u] if x0 is None else x0.ravel()[u]
    counter = [0]

    def count(_: object) -> None:
        counter[0] += 1

    with _one_blas_thread():
        sol, _ = splinalg.cg(a, rhs, x0=start, rtol=rtol, maxiter=400, M=m_inv, callback=count)
    global LAST_ITERATIONS
    LAST_ITERATIONS = counter[0]
    x[u] = np.clip(sol, 0.0, 1.0)
    return x.reshape(shape)
