"""Lesion segmentation (hepavol.segmentation.lesion): analytic phantoms, the six DeepLesion cases, bad input.

Real cases: NIH DeepLesion lesions as prepared for the FLARE 2025 "RECIST to 3D" task (Yan et al., J Med Imaging
2018; MedSAM2 repositories, Apache-2.0), see tests/data/README.md. The reference is each case's 3D mask.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _segment_helpers import (
    HU_IMAGE,
    HU_MASK,
    centroid_lps,
    dice,
    leak_clicks,
    load_nifti,
    load_npz,
    npz_cases,
    recist_line_lps,
)
from hepavol.errors import InputError
from hepavol.geometry import Geometry
from hepavol.segmentation import compose_label_map, segment_lesion
from hepavol.volume import Volume

# Geometry of the phantoms: 1 x 0.8 x 0.8 mm voxels, direction not the identity (axes permuted and flipped),
# so that every LPS <-> index conversion is exercised.
PHANTOM_DIRECTION = ((0.0, 0.0, -1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))


def _phantom(
    *, radius_mm: float = 12.0, lesion: float = 40.0, background: float = 110.0, noise: float = 12.0, seed: int = 0
) -> tuple[Volume, np.ndarray, np.ndarray]:
    """A sphere of known intensity in noise; returns (image, analytic truth mask, centre in LPS mm)."""
    return _layered_phantom(
        radius_mm=radius_mm,
        core_fraction=0.0,
        core=lesion,
        wall=lesion,
        background=background,
        noise=noise,
        seed=seed,
    )


@pytest.mark.parametrize(
    ("lesion", "background"),
    [(40.0, 110.0), (180.0, 60.0)],  # hypo- and hyper-attenuating lesion in liver-like background (HU)
)
def test_sphere_phantom_from_seed(lesion: float, background: float) -> None:
    """Dice against the analytic sphere (r = 12 mm: 4/3 pi r^3 = 7.238 mL) from a seed 3 mm off centre."""
    image, truth, center = _phantom(lesion=lesion, background=background)
    result = segment_lesion(image, seed_lps_mm=center + np.array([2.0, -2.0, 1.0]))
    assert dice(result.mask, truth) >= 0.90
    assert result.volume_ml == pytest.approx(4 / 3 * np.pi * 12.0**3 / 1000, rel=0.15)
    assert not result.leaked


def _layered_phantom(
    *, radius_mm: float, core_fraction: float, core: float, wall: float, background: float, noise: float, seed: int
) -> tuple[Volume, np.ndarray, np.ndarray]:
    """A target lesion: a sphere whose centre (``core_fraction`` of its radius) differs from its wall, in noise."""
    g = Geometry(
        shape=(50, 80, 80),
        spacing_mm=(1.5, 0.8, 0.8),
        origin_lps_mm=(10.0, -20.0, 30.0),
        direction=PHANTOM_DIRECTION,
    )
    lps = g.index_to_lps(np.indices(g.shape).reshape(3, -1).T)
    center = g.index_to_lps(np.array([25.3, 39.6, 40.2]))
    dist = np.linalg.norm(lps - center, axis=1).reshape(g.shape)
    truth = dist <= radius_mm
    arr = np.where(dist <= core_fraction * radius_mm, core, np.where(truth, wall, background))
    arr = arr + np.random.default_rng(seed).normal(0.0, noise, g.shape)
    return Volume(arr.astype(np.float32), g), truth, center


@pytest.mark.parametrize(
    ("core_fraction", "core", "wall", "background", "noise"),
    [
        (0.55, 1400.0, 750.0, 300.0, 25.0),  # MR, T2-like: necrotic centre brighter than the solid wall
        (0.72, 50.0, 150.0, 100.0, 10.0),  # CT: hypodense centre, enhancing rim (the liver's intensity between)
        (0.55, 20.0, 75.0, 105.0, 10.0),  # CT: fluid centre, hypodense wall
    ],
)
def test_target_lesion_from_a_click_in_its_centre(
    core_fraction: float, core: float, wall: float, background: float, noise: float
) -> None:
    """A click in the centre of a target lesion gives the whole lesion, wall included, not only its centre.

    Reference: the analytic sphere (r = 12 mm, 7.238 mL). Before the layer step (``_grow_layers``) the MR case
    gave the centre only (Dice 0.29 on the simulator's lesion of this kind).
    """
    image, truth, center = _layered_phantom(
        radius_mm=12.0,
        core_fraction=core_fraction,
        core=core,
        wall=wall,
        background=background,
        noise=noise,
        seed=3,
    )
    result = segment_lesion(image, seed_lps_mm=center)
    assert dice(result.mask, truth) >= 0.90
    assert result.volume_ml == pytest.approx(4 / 3 * np.pi * 12.0**3 / 1000, rel=0.15)


def test_small_lesion_on_coarse_pixels_from_seed() -> None:
    """A 12 mm hypodense lesion on 2.5 x 2.5 x 5 mm voxels (the simulator's small grid): the 6 mm intensity disk
    around the seed is half liver, so the seed's sample must shrink to the lesion (a disk half in the liver passed
    the old test and the result leaked into the liver: Dice 0.004 on a simulator lesion of 0.6 mL)."""
    g = Geometry(
        shape=(24, 48, 48), spacing_mm=(5.0, 2.5, 2.5), origin_lps_mm=(0.0, 0.0, 0.0), direction=PHANTOM_DIRECTION
    )
    lps = g.index_to_lps(np.indices(g.shape).reshape(3, -1).T)
    center = g.index_to_lps(np.array([12.0, 24.0, 24.0]))
    truth = (np.linalg.norm(lps - center, axis=1) <= 6.0).reshape(g.shape)
    arr = np.where(truth, 75.0, 108.0) + np.random.default_rng(1).normal(0.0, 9.0, g.shape)
    result = segment_lesion(Volume(arr.astype(np.float32), g), seed_lps_mm=center)
    assert not result.leaked
    assert dice(result.mask, truth) >= 0.80


def test_sphere_phantom_windowed_uint8() -> None:
    """The intensity model is estimated at the seed, so a windowed 0-255 image works like HU."""
    image, truth, center = _phantom()
    arr = np.clip((np.asarray(image.array) + 160.0) / 400.0 * 255.0, 0, 255).astype(np.uint8)
    result = segment_lesion(Volume(arr, image.geometry), seed_lps_mm=center)
    assert dice(result.mask, truth) >= 0.90


def test_sphere_phantom_from_recist_line() -> None:
    """A RECIST line across the sphere's equator (24 mm) gives the sphere."""
    image, truth, center = _phantom()
    g = image.geometry
    c_idx = g.lps_to_index(center)
    z = round(c_idx[0])
    half_px = 12.0 / g.spacing_mm[1]
    a = g.index_to_lps(np.array([z, c_idx[1] - half_px, c_idx[2]]))
    b = g.index_to_lps(np.array([z, c_idx[1] + half_px, c_idx[2]]))
    result = segment_lesion(image, recist_lps_mm=(a, b))
    assert dice(result.mask, truth) >= 0.90


def test_coupled_contour_is_the_optimum() -> None:
    """The dynamic programme finds the cheapest contour: compared with brute force over every assignment of radius
    bins to 8 rays (ends fixed on rays 0 and 4, at most one bin change between neighbouring rays, wrap-around
    included, opposite radii summing to at most max_sum), on random costs with forbidden (infinite) cells."""
    import itertools

    from hepavol.segmentation.lesion import _coupled_contour

    rng = np.random.default_rng(5)
    for trial in range(6):
        cost = rng.normal(size=(8, 6))
        cost[rng.random(cost.shape) < 0.15] = np.inf
        cost[:, 0] = np.inf
        cost[[0, 4], 2] = 0.0
        max_sum = 5 if trial % 2 else 4
        best = np.inf
        for free in itertools.product(range(6), repeat=6):
            r = np.array([2, *free[:3], 2, *free[3:]])
            if np.any(np.abs(np.diff(np.append(r, r[0]))) > 1) or np.any(r[:4] + r[4:] > max_sum):
                continue
            best = min(best, float(cost[np.arange(8), r].sum()))
        bins = _coupled_contour(cost, 2, max_sum)
        assert bins[0] == bins[4] == 2
        assert np.all(np.abs(np.diff(np.append(bins, bins[0]))) <= 1)
        assert np.all(bins[:4] + bins[4:] <= max_sum)
        assert float(cost[np.arange(8), bins].sum()) == pytest.approx(best)


def test_elongated_lesion_beside_vessel_from_recist_line() -> None:
    """An ellipsoid (semi-axes 14 x 8 mm in the slice, 8 mm along it) touching a contrast-filled vessel: from the
    RECIST line along its long axis the key slice and the volume follow the analytic ellipsoid."""
    g = Geometry(
        shape=(40, 80, 80), spacing_mm=(1.5, 0.8, 0.8), origin_lps_mm=(0.0, 0.0, 0.0), direction=PHANTOM_DIRECTION
    )
    z, r, c = np.indices(g.shape).astype(float)
    zc, rc, cc = 20.0, 40.0, 40.0
    ell = ((z - zc) * 1.5 / 8.0) ** 2 + ((r - rc) * 0.8 / 8.0) ** 2 + ((c - cc) * 0.8 / 14.0) ** 2 <= 1.0
    vessel = ((r - rc - 12.0 / 0.8) * 0.8) ** 2 + ((c - cc) * 0.8) ** 2 <= 4.0**2  # radius 4 mm, touching
    arr = np.where(ell, 40.0, np.where(vessel, 200.0, 110.0)) + np.random.default_rng(3).normal(0, 12.0, g.shape)
    a = g.index_to_lps(np.array([zc, rc, cc - 14.0 / 0.8]))
    b = g.index_to_lps(np.array([zc, rc, cc + 14.0 / 0.8]))
    result = segment_lesion(Volume(arr, g), recist_lps_mm=(a, b))
    assert dice(result.mask[20], ell[20]) >= 0.92
    assert dice(result.mask, ell) >= 0.85
    assert not (result.mask & vessel & ~ell).any()


def test_two_touching_spheres_are_split_by_exclude() -> None:
    """Two touching spheres of the same intensity: --exclude on the second keeps the first one alone."""
    image, truth, center = _phantom(radius_mm=9.0)
    g = image.geometry
    other = center + g.direction_matrix[:, 2] * 18.0  # touching neighbour 18 mm away along the columns
    lps = g.index_to_lps(np.indices(g.shape).reshape(3, -1).T)
    truth2 = (np.linalg.norm(lps - other, axis=1) <= 9.0).reshape(g.shape)
    arr = np.asarray(image.array).copy()
    arr[truth2] = 40.0 + np.random.default_rng(1).normal(0, 12.0, int(truth2.sum()))
    result = segment_lesion(Volume(arr, g), seed_lps_mm=center, exclude_lps_mm=[other])
    assert dice(result.mask, truth) >= 0.85
    assert (result.mask & truth2).sum() <= 0.05 * truth2.sum()


def test_seed_in_vessel_warns_and_stays_bounded() -> None:
    """A bright tube along the slice axis (a vessel): a leak warning and a bounded result, not the whole tube."""
    g = Geometry(
        shape=(120, 64, 64), spacing_mm=(1.0, 0.8, 0.8), origin_lps_mm=(0.0, 0.0, 0.0), direction=PHANTOM_DIRECTION
    )
    _, rr, cc = np.indices(g.shape)
    tube = (rr - 32) ** 2 + (cc - 32) ** 2 <= (6.0 / 0.8) ** 2  # radius 6 mm, 120 mm long
    rng = np.random.default_rng(2)
    arr = np.where(tube, 200.0, 60.0) + rng.normal(0, 10.0, g.shape)
    result = segment_lesion(Volume(arr, g), seed_lps_mm=g.index_to_lps(np.array([60, 32, 32])))
    assert result.leaked
    assert any("leaked along the slice axis" in w for w in result.warnings)
    tube_ml = tube.sum() * g.voxel_volume_mm3 / 1000
    assert result.volume_ml < 0.4 * tube_ml


def test_seed_in_large_homogeneous_region_warns() -> None:
    """A seed in a large organ-like region: no boundary within the search radius, cut back and flagged."""
    image, _, center = _phantom(radius_mm=60.0, noise=5.0)
    result = segment_lesion(image, seed_lps_mm=center, max_diameter_mm=60.0)
    assert result.leaked
    assert any("no lesion boundary" in w for w in result.warnings)


def test_seed_outside_image() -> None:
    image, _, _ = _phantom()
    with pytest.raises(InputError, match=r"seed .* lies outside the image .*--index"):
        segment_lesion(image, seed_lps_mm=(500.0, 0.0, 0.0))


def test_seed_in_air_on_hu_image() -> None:
    image = load_nifti(HU_IMAGE)
    corner = image.geometry.index_to_lps(np.array([6, 5, 5]))
    with pytest.raises(InputError, match=r"in air \(intensity -1024 HU"):
        segment_lesion(image, seed_lps_mm=corner)


def test_seed_in_background_on_windowed_image() -> None:
    image, _ = load_npz(npz_cases()[1])
    with pytest.raises(InputError, match="in the background"):
        segment_lesion(image, seed_lps_mm=image.geometry.index_to_lps(np.array([6, 2, 2])))


def test_recist_line_on_two_slices() -> None:
    image, _, center = _phantom()
    g = image.geometry
    a = center
    b = center + g.direction_matrix[:, 0] * 3 * g.spacing_mm[0]
    with pytest.raises(InputError, match="same slice"):
        segment_lesion(image, recist_lps_mm=(a, b))


def test_no_seed() -> None:
    image, _, _ = _phantom()
    with pytest.raises(InputError, match="needs a seed point or a RECIST line"):
        segment_lesion(image)


def test_compose_keeps_instances_and_liver() -> None:
    liver = np.zeros((1, 1, 5), bool)
    liver[0, 0, :4] = True
    lesion = np.zeros((1, 1, 5), bool)
    lesion[0, 0, 1:3] = True
    out = compose_label_map((1, 1, 5), liver=liver, lesions=[lesion, lesion])
    assert out.tolist() == [[[1, 2, 2, 1, 0]]]


# ------------------------------------------------------------------------------------------------ real cases
def _real_cases() -> list[tuple[str, Volume, Volume]]:
    cases = [(p.name, *load_npz(p)) for p in npz_cases()]
    return cases


@pytest.fixture(scope="module")
def real_results() -> dict[str, list[tuple[str, float, float]]]:
    """(case, Dice, relative volume error) per case, seeded at the mask centroid and from the RECIST line."""
    out: dict[str, list[tuple[str, float, float]]] = {"seed": [], "recist": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, image, mask in _real_cases():
            truth = np.asarray(mask.array) > 0
            for mode in ("seed", "recist"):
                if mode == "seed":
                    res = segment_lesion(image, seed_lps_mm=centroid_lps(mask))
                else:
                    res = segment_lesion(image, recist_lps_mm=recist_line_lps(mask))
                out[mode].append((name, dice(res.mask, truth), res.mask.sum() / truth.sum() - 1.0))
    return out


def test_real_cases_regression_floor(real_results: dict[str, list[tuple[str, float, float]]]) -> None:
    """Measured quality must not drop below what this version reaches (benchmarks/segment.py prints the table).

    Floors (measured: seeded mean 0.822, min 0.745; RECIST mean 0.826, min 0.743) minus a margin.
    """
    seed = np.array([d for _, d, _ in real_results["seed"]])
    recist = np.array([d for _, d, _ in real_results["recist"]])
    assert seed.mean() >= 0.81
    assert seed.min() >= 0.72
    assert recist.mean() >= 0.815
    assert recist.min() >= 0.72


def test_real_cases_seeded_none_below_issue_target(
    real_results: dict[str, list[tuple[str, float, float]]],
) -> None:
    """Issue 8: seeded at each mask's centroid, no lesion below Dice 0.65 (measured min 0.745)."""
    assert min(d for _, d, _ in real_results["seed"]) >= 0.65


def test_real_cases_seeded_mean_issue_target(real_results: dict[str, list[tuple[str, float, float]]]) -> None:
    """Issue 8: seeded at each mask's centroid, mean Dice >= 0.80.

    Measured 0.822 (0.810 before the seed slice was re-modelled on its interior; 0.801 before the propagation
    kept the border on the ellipsoid prior's shape instead of
    eroding each slice by a quarter of its radius). The slice-opening fraction was not tuned here (it is the seed
    slice's existing 0.15); choosing it by leave-one-out among 0.15/0.25/0.35 gave 0.795 before that change.
    """
    assert np.mean([d for _, d, _ in real_results["seed"]]) >= 0.80


@pytest.mark.xfail(strict=True, reason="issue 8 target not reached yet: RECIST mean Dice 0.826 measured")
def test_real_cases_recist_issue_target(real_results: dict[str, list[tuple[str, float, float]]]) -> None:
    """Issue 8: from the RECIST lines (longest in-plane diameter on the largest slice) mean Dice >= 0.85."""
    d = np.array([d for _, d, _ in real_results["recist"]])
    assert d.mean() >= 0.85


@pytest.mark.xfail(
    strict=True,
    reason="issue 8 target not reached yet: RECIST volume errors -18% to +63% measured (2 of 6 within 15%)",
)
def test_real_cases_volume_issue_target(real_results: dict[str, list[tuple[str, float, float]]]) -> None:
    """Issue 8: lesion volume error <= 15% (from the RECIST lines)."""
    assert all(abs(v) <= 0.15 for _, _, v in real_results["recist"])


@pytest.mark.parametrize("every_slice", [False, True], ids=["one click", "a click per leaked slice"])
def test_real_cases_exclude_clicks_in_leaked_tissue(every_slice: bool) -> None:
    """From the RECIST line, then again with --exclude points where a reader sees the result leak into touching
    tissue (tests/_segment_helpers.leak_clicks: the deepest false-positive point of the slice that leaked most, or
    of every slice that leaked). Reference: the DeepLesion masks.

    Measured, per case 000001 / 000002 / 000009 / 000010 / 081 / 103 (000001 gets no click):
    - RECIST alone: 0.889 / 0.743 / 0.912 / 0.860 / 0.759 / 0.795, mean 0.826.
    - one click: 0.889 / 0.757 / 0.897 / 0.861 / 0.770 / 0.797, mean 0.828.
    - a click per leaked slice (0 / 11 / 2 / 10 / 9 / 13): 0.889 / 0.812 / 0.899 / 0.814 / 0.830 / 0.843, mean 0.848.
    The earlier rule (every click drops the voxels closer to it than to the key slice's centroid, on all slices)
    cut into the lesions: one click 0.889 / 0.752 / 0.831 / 0.792 / 0.808 / 0.757, mean 0.805; a click per slice
    mean 0.627.
    """
    before, after = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _, image, mask in _real_cases():
            truth = np.asarray(mask.array) > 0
            line = recist_line_lps(mask)
            res = segment_lesion(image, recist_lps_mm=line)
            clicks = leak_clicks(res.mask, truth, mask, every_slice=every_slice)
            clicked = segment_lesion(image, recist_lps_mm=line, exclude_lps_mm=clicks) if clicks else res
            before.append(dice(res.mask, truth))
            after.append(dice(clicked.mask, truth))
    assert sum(a != b for a, b in zip(after, before)) == 5
    if every_slice:
        assert np.mean(after) >= 0.84
        assert min(after) >= 0.80
    else:  # one click never costs much, and helps on average
        assert min(a - b for a, b in zip(after, before)) >= -0.02
        assert np.mean(after) >= np.mean(before)


def test_hu_case_matches_windowed_case() -> None:
    """The HU NIfTI and the windowed npz of lesion 000015_01_01_103-115 give similar masks (same lesion)."""
    hu = load_nifti(HU_IMAGE)
    mask = load_nifti(HU_MASK)
    line = recist_line_lps(mask)
    truth = np.asarray(mask.array) > 0
    res_hu = segment_lesion(hu, recist_lps_mm=line)
    win_image, win_mask = load_npz(next(p for p in npz_cases() if "103-115" in p.name))
    res_win = segment_lesion(win_image, recist_lps_mm=recist_line_lps(win_mask))
    assert dice(res_hu.mask, truth) >= 0.60
    assert dice(res_hu.mask, res_win.mask) >= 0.80
