"""Benchmark: quality and speed of ``hepavol segment`` (lesions and liver).

Quality:
- the six DeepLesion lesions (FLARE 2025 "RECIST to 3D" npz, windowed 0-255) and the HU NIfTI of one of them,
  seeded at each mask's centroid and from its RECIST line (the longest in-plane diameter of the mask on its
  largest slice): Dice and volume error against the mask;
- the same from the RECIST lines with ``--exclude`` clicks where the result leaked into touching tissue (a reader's
  clicks, simulated: ``_segment_helpers.leak_clicks``), one click or one per slice that leaked;
- the liver of the TotalSegmentator example CT and MR (label 5, a model output) with the automatic seed;
- ``hepavol simulate`` phantoms (cohort seed 1, first scan of patients 1, 2, 3 and 12, small grid 2.5 x 2.5 x 5 mm):
  liver and every lesion (seeded at its centroid and from its RECIST line) against the simulator's truth.

Baseline: the one-click region grower users of ITK-based tools would otherwise reach for, SimpleITK's
``ConfidenceConnected`` after ``CurvatureFlow`` smoothing, with the ITK Software Guide's parameters (5 smoothing
iterations of time step 0.125; multiplier 2.5, 5 iterations, initial neighbourhood radius 2) and with the best of
multipliers 1.0 / 1.5 / 2.0 on these cases (tuned on the test cases: favourable to the baseline), seeded at the same
centroids: mean Dice and hepavol's time over the baseline's.

Speed (2 cores shared): one lesion on a 512×512×120 CT-like volume (0.75 × 0.75 × 2.5 mm, a 30 mm and a 100 mm
ellipsoidal lesion in liver-like noise, from a seed and from a RECIST line) and the liver on the example CT resampled
to 512×512×120. The random walk's own solve on the box of unknown pixels against
``skimage.segmentation.random_walker`` on that box and on the whole slice, in the same segmentations (the masks
agree; the ratio is the time of the whole lesion segmentation).

Run: ``.venv/bin/python benchmarks/segment.py [--png DIR]`` (about a minute and a half). ``--png`` writes overlays
of every case (reference red, hepavol green) for checking by eye. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _segment_helpers import (  # noqa: E402
    HU_IMAGE,
    HU_MASK,
    TS_DIR,
    centroid_lps,
    dice,
    leak_clicks,
    load_nifti,
    load_npz,
    npz_cases,
    recist_line_lps,
)
from hepavol.geometry import Geometry  # noqa: E402
from hepavol.segmentation import segment_lesion, segment_liver  # noqa: E402
from hepavol.volume import Volume, resample_like  # noqa: E402


def _timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _overlay(image: Volume, truth: np.ndarray, seg: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    zs = np.where(truth.any(axis=(1, 2)) | seg.any(axis=(1, 2)))[0]
    zs = zs[np.linspace(0, len(zs) - 1, min(len(zs), 8)).astype(int)]
    ys, xs = np.where((truth | seg).any(axis=0))
    pad = 15
    sl = (slice(max(ys.min() - pad, 0), ys.max() + pad), slice(max(xs.min() - pad, 0), xs.max() + pad))
    fig, axs = plt.subplots(1, len(zs), figsize=(3 * len(zs), 3.2))
    for ax, z in zip(np.atleast_1d(axs), zs, strict=False):
        a = np.asarray(image.array[z], dtype=float)[sl]
        ax.imshow(a, cmap="gray", vmin=np.percentile(a, 1), vmax=np.percentile(a, 99))
        for m, c in ((truth, "r"), (seg, "lime")):
            if m[z][sl].any():
                ax.contour(m[z][sl], [0.5], colors=c, linewidths=1)
        ax.set_title(f"slice {z}")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=60)
    plt.close(fig)


def lesion_table(png: Path | None) -> None:
    cases = [(p.stem.removeprefix("CT_Lesion_"), *load_npz(p)) for p in npz_cases()]
    cases.append(("000015_01_01_103-115 (HU)", load_nifti(HU_IMAGE), load_nifti(HU_MASK)))
    print("| lesion | truth mL | seed Dice | seed vol. err. | RECIST Dice | RECIST vol. err. | time s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    stats: dict[str, list[float]] = {"seed": [], "recist": [], "seed_ve": [], "recist_ve": []}
    for name, image, mask in cases:
        truth = np.asarray(mask.array) > 0
        truth_ml = truth.sum() * image.geometry.voxel_volume_mm3 / 1000
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seed_res, t1 = _timed(lambda: segment_lesion(image, seed_lps_mm=centroid_lps(mask)))  # noqa: B023
            rec_res, t2 = _timed(lambda: segment_lesion(image, recist_lps_mm=recist_line_lps(mask)))  # noqa: B023
        row = []
        for key, res in (("seed", seed_res), ("recist", rec_res)):
            d = dice(res.mask, truth)
            ve = res.volume_ml / truth_ml - 1
            if "(HU)" not in name:
                stats[key].append(d)
                stats[key + "_ve"].append(ve)
            row += [f"{d:.3f}", f"{100 * ve:+.0f}%"]
            if png is not None:
                _overlay(image, truth, res.mask, png / f"lesion_{name.split()[0]}_{key}.png")
        print(f"| {name} | {truth_ml:.1f} | " + " | ".join(row) + f" | {max(t1, t2):.2f} |")
    for key in ("seed", "recist"):
        d = np.array(stats[key])
        ve = np.abs(stats[key + "_ve"])
        print(
            f"\n{key} (six npz cases): mean Dice {d.mean():.3f}, min {d.min():.3f}; "
            f"median |volume error| {100 * np.median(ve):.0f}%, max {100 * ve.max():.0f}%, "
            f"{int((ve <= 0.15).sum())} of {len(ve)} within 15%"
        )
    seed, rec = np.array(stats["seed"]), np.array(stats["recist"])
    print("\nissue 8 targets (six npz cases):")
    for what, value, ok in (
        ("seeded mean Dice >= 0.80", f"{seed.mean():.3f}", seed.mean() >= 0.80),
        ("seeded min Dice >= 0.65", f"{seed.min():.3f}", seed.min() >= 0.65),
        ("RECIST mean Dice >= 0.85", f"{rec.mean():.3f}", rec.mean() >= 0.85),
        (
            "RECIST |volume error| <= 15 % for every lesion",
            f"max {100 * np.abs(stats['recist_ve']).max():.0f}%",
            bool(np.all(np.abs(stats["recist_ve"]) <= 0.15)),
        ),
    ):
        print(f"- {what}: {value} ({'met' if ok else 'NOT met'})")


def _confidence_connected(image: Volume, seed_lps: np.ndarray, multiplier: float) -> np.ndarray:
    """SimpleITK's ConfidenceConnected region grower from one seed, as in the ITK Software Guide's example."""
    import SimpleITK as sitk

    smoothed = sitk.CurvatureFlow(
        sitk.Cast(image.to_sitk(), sitk.sitkFloat32), timeStep=0.125, numberOfIterations=5
    )
    k, j, i = (int(v) for v in np.rint(image.geometry.lps_to_index(seed_lps)))
    grown = sitk.ConfidenceConnected(
        smoothed,
        seedList=[(i, j, k)],
        numberOfIterations=5,
        multiplier=multiplier,
        initialNeighborhoodRadius=2,
        replaceValue=1,
    )
    return sitk.GetArrayFromImage(grown).astype(bool)


def baseline_table() -> None:
    """hepavol from one click against SimpleITK's ConfidenceConnected from the same click."""
    from hepavol.simulate import render_scan, sample_patient

    sets: dict[str, list[tuple[Volume, np.ndarray, np.ndarray]]] = {"DeepLesion (6)": [], "simulator (46)": []}
    for p in npz_cases():
        image, mask = load_npz(p)
        sets["DeepLesion (6)"].append((image, np.asarray(mask.array) > 0, centroid_lps(mask)))
    for index in (1, 2, 3, 12):
        rendered = render_scan(sample_patient(index, seed=1), 0, size="small")
        inst = np.asarray(rendered.instances.array)
        for lesion_id in rendered.lesion_voxel_counts():
            truth = inst == lesion_id
            seed = centroid_lps(Volume(truth.astype(np.uint8), rendered.image.geometry))
            sets["simulator (46)"].append((rendered.image, truth, seed))
    multipliers = (2.5, 1.0, 1.5, 2.0)
    print(
        "\n| one click, mean Dice | hepavol | ConfidenceConnected 2.5 (guide) | best of 1.0 / 1.5 / 2.0 | time ratio |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, cases in sets.items():
        ours, base = [], {m: [] for m in multipliers}
        t_ours = t_base = 0.0
        for image, truth, seed in cases:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res, t = _timed(lambda: segment_lesion(image, seed_lps_mm=seed))  # noqa: B023
            ours.append(dice(res.mask, truth))
            t_ours += t
            for m in multipliers:
                grown, t = _timed(lambda: _confidence_connected(image, seed, m))  # noqa: B023
                base[m].append(dice(grown, truth))
                if m == 2.5:
                    t_base += t
        best = max(multipliers[1:], key=lambda m: float(np.mean(base[m])))
        print(
            f"| {name} | {np.mean(ours):.3f} | {np.mean(base[2.5]):.3f} | {np.mean(base[best]):.3f} ({best}) | "
            f"{t_ours / t_base:.2f} |"
        )


def exclude_table() -> None:
    """From the RECIST line, then with --exclude clicks where the result leaked (``leak_clicks``)."""
    print("\n| lesion | RECIST Dice | + one click | + a click per leaked slice (clicks) |")
    print("|---|---:|---:|---:|")
    means: list[list[float]] = [[], [], []]
    for p in npz_cases():
        image, mask = load_npz(p)
        truth = np.asarray(mask.array) > 0
        line = recist_line_lps(mask)
        row = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = segment_lesion(image, recist_lps_mm=line)
            for i, every in enumerate((None, False, True)):
                clicks = [] if every is None else leak_clicks(res.mask, truth, mask, every_slice=every)
                out = segment_lesion(image, recist_lps_mm=line, exclude_lps_mm=clicks) if clicks else res
                means[i].append(dice(out.mask, truth))
                row.append(f"{means[i][-1]:.3f}" + (f" ({len(clicks)})" if every else ""))
        print(f"| {p.stem.removeprefix('CT_Lesion_')} | " + " | ".join(row) + " |")
    print("| mean | " + " | ".join(f"{np.mean(m):.3f}" for m in means) + " |")


def liver_table(png: Path | None) -> None:
    print("\n| liver | reference mL | hepavol mL | Dice | time s |")
    print("|---|---:|---:|---:|---:|")
    for name, img, ref in (("CT", "example_ct_sm", "example_seg"), ("MR", "example_mr_sm", "example_seg_mr")):
        image = load_nifti(TS_DIR / f"{img}.nii.gz")
        truth = np.asarray(load_nifti(TS_DIR / f"{ref}.nii.gz").array) == 5
        res, t = _timed(lambda: segment_liver(image))  # noqa: B023
        ref_ml = truth.sum() * image.geometry.voxel_volume_mm3 / 1000
        print(
            f"| {name} (automatic seed) | {ref_ml:.0f} | {res.volume_ml:.0f} | {dice(res.mask, truth):.3f} | {t:.2f} |"
        )
        if png is not None:
            _overlay(image, truth, res.mask, png / f"liver_{name}.png")


def simulated_table() -> None:
    from hepavol.simulate import render_scan, sample_patient

    print("\n| simulated scan | liver Dice | lesions | seed Dice mean (median) | RECIST Dice mean (median) |")
    print("|---|---:|---:|---:|---:|")
    all_seed: list[float] = []
    all_rec: list[float] = []
    for index in (1, 2, 3, 12):
        patient = sample_patient(index, seed=1)
        rendered = render_scan(patient, 0, size="small")
        labels = np.asarray(rendered.labels.array)
        inst = np.asarray(rendered.instances.array)
        liver = segment_liver(rendered.image)
        seed_d, rec_d = [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for lesion_id in rendered.lesion_voxel_counts():
                truth = inst == lesion_id
                mask = Volume(truth.astype(np.uint8), rendered.image.geometry)
                seed_d.append(dice(segment_lesion(rendered.image, seed_lps_mm=centroid_lps(mask)).mask, truth))
                rec_d.append(dice(segment_lesion(rendered.image, recist_lps_mm=recist_line_lps(mask)).mask, truth))
        all_seed += seed_d
        all_rec += rec_d
        print(
            f"| SIM-{index + 1:03d} ({patient.modality}) | {dice(liver.mask, labels >= 1):.3f} | {len(seed_d)} | "
            f"{np.mean(seed_d):.3f} ({np.median(seed_d):.3f}) | {np.mean(rec_d):.3f} ({np.median(rec_d):.3f}) |"
        )
    print(
        f"\nsimulated lesions (n = {len(all_seed)}): seed mean Dice {np.mean(all_seed):.3f} (median "
        f"{np.median(all_seed):.3f}); RECIST mean {np.mean(all_rec):.3f} (median {np.median(all_rec):.3f}); "
        f"seeded lesions with Dice < 0.5: {int((np.array(all_seed) < 0.5).sum())}"
    )


def _speed_lesion(
    g: Geometry, diameter_mm: float
) -> tuple[Volume, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """A 512x512x120 CT-like volume with one ellipsoidal lesion (semi-axes 1/2, 0.4 and 0.35 x the diameter
    along rows, columns and slices; 60 below the background of 100 +- 12): image, truth, seed (LPS) and its
    RECIST line (LPS: along the rows through the centre, end points on the border)."""
    rng = np.random.default_rng(0)
    arr = rng.normal(100.0, 12.0, g.shape).astype(np.float32)
    zz, yy, xx = np.ogrid[: g.shape[0], : g.shape[1], : g.shape[2]]
    sz, sy, sx = g.spacing_mm
    c = (60, 250, 260)
    a, b, h = 0.5 * diameter_mm, 0.4 * diameter_mm, 0.35 * diameter_mm
    truth = ((zz - c[0]) * sz / h) ** 2 + ((yy - c[1]) * sy / a) ** 2 + ((xx - c[2]) * sx / b) ** 2 <= 1.0
    arr[truth] -= 60.0
    half = int(a / sy)
    seed = g.index_to_lps(np.array(c, dtype=float))
    line = (
        g.index_to_lps(np.array([c[0], c[1] - half, c[2]])),
        g.index_to_lps(np.array([c[0], c[1] + half, c[2]])),
    )
    return Volume(arr, g), truth, seed, line


def speed() -> None:
    print("\n| speed case | shape | time s |")
    print("|---|---|---:|")
    g = Geometry(
        shape=(120, 512, 512),
        spacing_mm=(2.5, 0.75, 0.75),
        origin_lps_mm=(-192.0, -192.0, -150.0),
        direction=((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)),
    )
    for diameter in (30.0, 100.0):
        image, truth, seed, line = _speed_lesion(g, diameter)
        segment_lesion(image, seed_lps_mm=seed)  # warm-up (imports)
        for what, kwargs in (("a seed", {"seed_lps_mm": seed}), ("a RECIST line", {"recist_lps_mm": line})):
            res, t = _timed(lambda: segment_lesion(image, **kwargs))  # type: ignore[arg-type]  # noqa: B023
            print(
                f"| one {diameter:.0f} mm lesion from {what} (Dice {dice(res.mask, truth):.3f}) | 512×512×120 | "
                f"{t:.2f} |"
            )
    ct = load_nifti(TS_DIR / "example_ct_sm.nii.gz")
    cg = ct.geometry
    extent = np.array(cg.shape) * np.array(cg.spacing_mm)
    big_geom = Geometry(
        shape=(120, 512, 512),
        spacing_mm=tuple(extent / np.array([120, 512, 512])),  # type: ignore[arg-type]
        origin_lps_mm=cg.origin_lps_mm,
        direction=cg.direction,
    )
    big = resample_like(ct, big_geom, nearest=False, default_value=-1024)
    res2, t = _timed(lambda: segment_liver(big))
    print(f"| liver, automatic seed (example CT resampled, {res2.volume_ml:.0f} mL) | 512×512×120 | {t:.2f} |")


def random_walk_speed() -> None:
    """Whole lesion segmentations with each random-walk solver swapped in (best of 3 runs each)."""
    from skimage.segmentation import random_walker

    import hepavol.segmentation.lesion as lesion

    own = lesion._walk_probability

    def skimage_box(data: np.ndarray, labels: np.ndarray, *, beta: float, tol: float) -> np.ndarray:
        prob = (labels == 1).astype(np.float64)
        box = lesion._box(labels == 0, 1)
        if box is None:
            return prob
        sub = data[box]  # skimage divides beta by 10 x the std of what it is given: keep the whole slice's
        prob[box] = random_walker(
            sub,
            labels[box],
            beta=beta * float(sub.std()) / float(data.std()),
            mode="cg_j",
            tol=tol,
            return_full_prob=True,
        )[0]
        return prob

    def skimage_slice(data: np.ndarray, labels: np.ndarray, *, beta: float, tol: float) -> np.ndarray:
        return np.asarray(random_walker(data, labels, beta=beta, mode="cg_j", tol=tol, return_full_prob=True)[0])

    g = Geometry(
        shape=(120, 512, 512),
        spacing_mm=(2.5, 0.75, 0.75),
        origin_lps_mm=(-192.0, -192.0, -150.0),
        direction=((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)),
    )
    print(
        "\n| random-walk solver, whole segmentation | 100 mm, seed | 100 mm, line | 150 mm, line | ratio to own |"
    )
    print("|---|---:|---:|---:|---:|")
    cases = []
    for diameter, kind in ((100.0, "seed"), (100.0, "line"), (150.0, "line")):
        image, _, seed, line = _speed_lesion(g, diameter)
        cases.append((image, {"seed_lps_mm": seed} if kind == "seed" else {"recist_lps_mm": line}))
    times: dict[str, list[float]] = {}
    masks: dict[str, list[np.ndarray]] = {}
    try:
        for name, fn in (("own (box)", own), ("skimage (box)", skimage_box), ("skimage (slice)", skimage_slice)):
            lesion._walk_probability = fn  # type: ignore[assignment]
            for image, kwargs in cases:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    best = min(_timed(lambda: segment_lesion(image, **kwargs))[1] for _ in range(3))  # type: ignore[arg-type]  # noqa: B023
                    masks.setdefault(name, []).append(segment_lesion(image, **kwargs).mask)  # type: ignore[arg-type]
                times.setdefault(name, []).append(best)
    finally:
        lesion._walk_probability = own
    for name, ts in times.items():
        agree = min(dice(m, o) for m, o in zip(masks[name], masks["own (box)"]))
        ratio = sum(ts) / sum(times["own (box)"])
        print(
            f"| {name} (Dice with own ≥ {agree:.4f}) | {ts[0]:.2f} s | {ts[1]:.2f} s | {ts[2]:.2f} s | {ratio:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--png", type=Path, help="write overlays (reference red, hepavol green) to this folder")
    args = parser.parse_args()
    if args.png:
        args.png.mkdir(parents=True, exist_ok=True)
    lesion_table(args.png)
    exclude_table()
    baseline_table()
    liver_table(args.png)
    simulated_table()
    speed()
    random_walk_speed()


if __name__ == "__main__":
    main()
