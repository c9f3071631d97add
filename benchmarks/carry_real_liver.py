"""Carried-forward lesions on real liver tumours: 3D-IRCADb-01 patients 1 and 7 moved by a known transform (issue 18).

Reads ``../shared/data/ircadb01/patientNN/`` at run time (CC BY-NC-ND 4.0: nothing of it, nor label maps made
from it, is written into the repository; the baseline CT and label map that ``carry_lesions`` reads are written to
a temporary folder, deleted at the end). Loading as ``benchmarks/segment_real_liver.py`` (``benchmarks/_ircadb.py``).

Per patient:

- **baseline**: the CT with the expert masks as hepavol's label map (liver 1 = liver mask and tumours, tumour 2 =
  the union of the tumour masks), accepted; its lesions are the 26-connected components, L1 = largest (as
  ``hepavol.study.carry.lesion_components`` numbers them);
- **follow-up**: the same CT moved by a known rigid motion ``M`` (a SimpleITK ``Euler3DTransform``, baseline point
  -> follow-up point): a rotation of 5-10 degrees about one patient axis (L, P or S, in turn) through the centre of
  the expert liver, then a shift of 10-20 mm in a random direction (``numpy.random.default_rng(seed)``, seeds 0, 1,
  2, ...), resampled on the original grid (CT: linear, -1024 HU outside, rounded to the CT's type; every expert
  mask, each lesion apart: linear, then >= 0.5). Lesion k of the follow-up's truth is the moved baseline lesion k;
- **carried forward**: ``hepavol.study.carry.carry_lesions`` (what ``hepavol study segment`` does for a scan whose
  earlier scan has an accepted segmentation, no seeds on this scan) with the follow-up's liver (a) **expert**: the
  moved expert liver, (b) **auto**: hepavol's automatic liver of the follow-up (``segment_liver`` with the
  parameters of ``study segment``, ``hepavol.study.segmenting.PARAMETERS``).

With ``--lesion-change-mm D`` the lesions also change between the scans: the baseline's lesions are the expert
masks eroded by D mm (D > 0: every lesion grew by D mm; D < 0: dilated within the liver, every lesion shrank),
the follow-up's truth stays the moved expert masks (a change whose lesions would touch, vanish or change their
size order is skipped). Without it the follow-up is the baseline moved: a method that keeps the earlier shape
scores well without following any change.

Reported per tumour >= 0.5 mL (means over tumours >= 1 mL): Dice of the carried lesion L<k> against the moved
expert lesion k; Dice of the mapped earlier shape alone (the registration's prior, before the intensity rule);
volume error (%); proposed as disappeared; identity (the carried L<k> overlaps the moved lesion k more than any
other moved lesion). Per scan: the registration's error (mean distance between where ``M`` and where hepavol's
registration put the baseline tumour centroids, mm), the liver's Dice (auto against the moved expert liver), and
time (the automatic liver; the carrying, reading the baseline files and registering included).

Run::

    .venv/bin/python benchmarks/carry_real_liver.py [--data ../shared/data/ircadb01] [--transforms 3]
        [--livers expert auto] [--patients patient01 patient07] [--lesion-change-mm D]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hepavol.followup.registration as registration_module
from _ircadb import data_folder, load_patient
from hepavol.io import write_image
from hepavol.study import carry
from hepavol.study.segmenting import PARAMETERS
from hepavol.volume import Volume

AXES = ("L", "P", "S")
MIN_ML = 1.0
REPORT_ML = 0.5


def dice(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    return float(2 * (a & b).sum() / max(int(a.sum() + b.sum()), 1))


def changed(mask: NDArray[np.bool_], grown_mm: float, spacing: Any) -> NDArray[np.bool_]:
    """The baseline lesion of a follow-up lesion ``mask`` that grew by ``grown_mm`` (the mask eroded by it; a
    negative value: dilated, a lesion that shrank). Distances between voxel centres, through the EDT."""
    from scipy import ndimage

    if grown_mm == 0:
        return mask
    sampling = tuple(float(v) for v in spacing)
    if grown_mm > 0:
        return np.asarray(ndimage.distance_transform_edt(mask, sampling=sampling) > grown_mm)
    return np.asarray(ndimage.distance_transform_edt(~mask, sampling=sampling) <= -grown_mm)


def make_motion(centre_lps: NDArray[np.float64], seed: int) -> tuple[Any, dict[str, Any]]:
    """The known rigid motion (baseline point -> follow-up point) of seed ``seed`` and its parameters."""
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    axis = seed % 3
    angle = float(rng.uniform(5.0, 10.0)) * float(rng.choice([-1.0, 1.0]))
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    shift = float(rng.uniform(10.0, 20.0)) * direction
    angles = [0.0, 0.0, 0.0]
    angles[axis] = math.radians(angle)
    motion = sitk.Euler3DTransform()
    motion.SetCenter(tuple(float(v) for v in centre_lps))
    motion.SetRotation(*angles)
    motion.SetTranslation(tuple(float(v) for v in shift))
    params = {
        "seed": seed,
        "axis": AXES[axis],
        "angle_deg": angle,
        "shift_mm": [float(v) for v in shift],
        "shift_norm_mm": float(np.linalg.norm(shift)),
        "centre_lps_mm": [float(v) for v in centre_lps],
    }
    return motion, params


def move(volume: Volume, motion: Any, *, default: float = 0.0) -> NDArray[np.float32]:
    """``volume`` moved by ``motion`` on its own grid (linear interpolation), as float32."""
    import SimpleITK as sitk

    moving = Volume(np.asarray(volume.array, dtype=np.float32), volume.geometry).to_sitk()
    out = sitk.Resample(moving, moving, motion.GetInverse(), sitk.sitkLinear, default, sitk.sitkFloat32)
    return np.asarray(sitk.GetArrayFromImage(out))


def move_mask(mask: NDArray[np.bool_], geometry: Any, motion: Any) -> NDArray[np.bool_]:
    return move(Volume(mask.astype(np.float32), geometry), motion) >= 0.5


def motion_point(motion: Any, points: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.array([motion.TransformPoint(tuple(float(v) for v in p)) for p in points])


def run_scan(
    followup: Volume,
    liver: NDArray[np.bool_],
    prior: dict[str, Any],
    truth: list[NDArray[np.bool_]],
    lesions: list[NDArray[np.bool_]],
    baseline_geometry: Any,
    motion: Any,
) -> dict[str, Any]:
    """carry_lesions on one follow-up; per lesion and per scan figures against the moved truth."""
    captured: list[Any] = []
    original = registration_module.register_to_baseline

    def recording(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        captured.append(result)
        return result

    registration_module.register_to_baseline = recording  # type: ignore[assignment]
    try:
        t0 = time.perf_counter()
        carried, gone, masks, warns = carry.carry_lesions(
            followup, liver, [prior], [], {**PARAMETERS, "liver_label": 1, "tumor_label": 2}
        )
        seconds = time.perf_counter() - t0
    finally:
        registration_module.register_to_baseline = original  # type: ignore[assignment]
    registration = captured[0] if captured else None
    g = followup.geometry
    voxel_ml = g.voxel_volume_mm3 / 1000.0
    centroids = np.array([baseline_geometry.index_to_lps(np.argwhere(m).mean(axis=0)) for m in lesions])
    big = [k for k, m in enumerate(lesions) if float(m.sum()) * baseline_geometry.voxel_volume_mm3 / 1e3 >= 0.5]
    reg_error = float("nan")
    mapped: list[NDArray[np.bool_]] = []
    if registration is not None:
        true_pts = motion_point(motion, centroids[big])
        reg_pts = registration.to_followup(centroids[big])
        reg_error = float(np.linalg.norm(true_pts - reg_pts, axis=1).mean())
        mapped = carry._map_masks(lesions, baseline_geometry, followup, registration)
    by_id: dict[str, tuple[dict[str, Any], NDArray[np.bool_] | None]] = {}
    it = iter(masks)
    for c in carried:
        by_id[c["lesion_id"]] = (c, next(it) if "matched_seed" not in c else None)
    gone_ids = {d["lesion_id"]: d for d in gone}
    rows = []
    for k, true_k in enumerate(truth):
        ml = float(true_k.sum()) * voxel_ml
        if ml < REPORT_ML:
            continue
        lid = f"L{k + 1}"
        c, mask = by_id.get(lid, ({}, None))
        row: dict[str, Any] = {"lesion": lid, "ml": ml, "disappeared": lid in gone_ids}
        row["mapped_dice"] = dice(mapped[k], true_k) if mapped else float("nan")
        if mask is None:
            row.update(dice=0.0, err=-100.0, identity=False, contrast=gone_ids.get(lid, c).get("contrast_sigma"))
        else:
            overlaps = [int((mask & t).sum()) for t in truth]
            row["dice"] = dice(mask, true_k)
            row["err"] = 100.0 * (float(mask.sum()) * voxel_ml - ml) / ml
            row["identity"] = bool(overlaps[k] > 0 and int(np.argmax(overlaps)) == k)
            row["contrast"] = c.get("contrast_sigma")
        rows.append(row)
    return {
        "rows": rows,
        "seconds": seconds,
        "reg_error_mm": reg_error,
        "liver_dice_after": getattr(registration, "dice_after", float("nan")),
        "warnings": warns,
    }


def main(argv: list[str] | None = None) -> int:
    import SimpleITK as sitk

    from hepavol.segmentation import segment_liver

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="default: ../shared/data/ircadb01")
    ap.add_argument("--patients", nargs="*", default=["patient01", "patient07"])
    ap.add_argument("--transforms", type=int, default=3, help="known motions per patient (seeds 0, 1, ...)")
    ap.add_argument(
        "--lesion-change-mm",
        type=float,
        default=0.0,
        help="the follow-up's lesions are this much larger (mm, < 0: smaller) than the baseline's: the baseline's "
        "are the expert masks eroded (dilated) by it (0)",
    )
    ap.add_argument("--livers", nargs="*", default=["expert", "auto"], choices=["expert", "auto"])
    args = ap.parse_args(argv)
    data = data_folder(args.data)
    warnings.simplefilter("ignore")
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)
    results: list[dict[str, Any]] = []
    for name in args.patients:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            image, liver, _tumours = load_patient(data / name, tmp)
            g = image.geometry
            union = np.logical_or.reduce(_tumours)
            expert_lesions = carry.lesion_components(union)  # L1 = largest, as carry numbers them
            lesions = [changed(m, args.lesion_change_mm, g.spacing_mm) & liver for m in expert_lesions]
            renumbered = carry.lesion_components(np.logical_or.reduce(lesions))
            if len(renumbered) != len(lesions) or any((a != b).any() for a, b in zip(renumbered, lesions)):
                print(f"{name}: the changed baseline lesions touch, vanish or change order; skipped", flush=True)
                continue
            labels = np.zeros(g.shape, dtype=np.uint8)
            labels[liver] = 1
            labels[np.logical_or.reduce(lesions)] = 2
            prior = {
                "date": "2020-01-01",
                "image": str(write_image(image, tmp / "baseline_ct.nii")),
                "series_uid": None,
                "seg": str(write_image(Volume(labels, g), tmp / "baseline_labels.nii")),
                "liver_label": 1,
                "tumor_labels": [2],
            }
            centre = g.index_to_lps(np.argwhere(liver).mean(axis=0))
            ct_dtype = np.asarray(image.array).dtype
            for seed in range(args.transforms):
                motion, params = make_motion(centre, seed)
                print(
                    f"{name} motion {seed}: rotation {params['angle_deg']:+.2f} deg about the {params['axis']} axis "
                    f"through the liver centre {np.round(params['centre_lps_mm'], 1).tolist()} mm (LPS), then shift "
                    f"{np.round(params['shift_mm'], 2).tolist()} mm ({params['shift_norm_mm']:.2f} mm)",
                    flush=True,
                )
                moved = move(image, motion, default=-1024.0)
                followup = Volume(np.rint(moved).astype(ct_dtype), g, source=f"{name} moved {seed}")
                truth = [move_mask(m, g, motion) for m in expert_lesions]
                true_liver = move_mask(liver, g, motion)
                for mode in args.livers:
                    liver_s = 0.0
                    liver_dice = 1.0
                    if mode == "expert":
                        fu_liver = true_liver
                    else:
                        lp = PARAMETERS["liver"]
                        t0 = time.perf_counter()
                        try:
                            auto = segment_liver(
                                followup,
                                band_k=lp["band_k"],
                                erosion_mm=lp["erosion_mm"],
                                working_spacing_mm=lp["working_spacing_mm"],
                            )
                        except Exception as exc:  # reported, the expert liver's results stand
                            print(f"  auto liver failed: {exc}", flush=True)
                            continue
                        liver_s = time.perf_counter() - t0
                        fu_liver = np.asarray(auto.mask)
                        liver_dice = dice(fu_liver, true_liver)
                    res = run_scan(followup, fu_liver, prior, truth, lesions, g, motion)
                    res.update(patient=name, motion=params, liver=mode, liver_s=liver_s, liver_dice=liver_dice)
                    results.append(res)
                    print(
                        f"  liver {mode}: liver Dice {liver_dice:.3f} ({liver_s:.1f} s), registration error "
                        f"{res['reg_error_mm']:.2f} mm (liver Dice after {res['liver_dice_after']:.3f}), carry "
                        f"{res['seconds']:.1f} s",
                        flush=True,
                    )
                    for r in res["rows"]:
                        print(
                            f"    {r['lesion']:>4} {r['ml']:7.2f} mL: Dice {r['dice']:.3f} (mapped prior "
                            f"{r['mapped_dice']:.3f}), vol err {r['err']:+.1f}%, disappeared {r['disappeared']}, "
                            f"identity {r['identity']}, contrast {r['contrast']} sigma",
                            flush=True,
                        )
                    for w in res["warnings"]:
                        print(f"    warning: {w}", flush=True)
    print_tables(results, args.livers)
    return 0


def print_tables(results: list[dict[str, Any]], livers: list[str]) -> None:
    """Markdown tables: per tumour, per scan, and the means over tumours >= 1 mL for each liver."""
    print("\nPer tumour (>= 0.5 mL): Dice of the carried lesion against the moved expert mask\n")
    print(
        "| patient | motion | liver | lesion | mL | Dice | Dice of the mapped prior | vol err % | disappeared | "
        "identity |"
    )
    print("|---" * 10 + "|")
    for res in results:
        for r in res["rows"]:
            print(
                f"| {res['patient']} | {res['motion']['seed']} | {res['liver']} | {r['lesion']} | {r['ml']:.2f} | "
                f"{r['dice']:.3f} | {r['mapped_dice']:.3f} | {r['err']:+.1f} | {'yes' if r['disappeared'] else 'no'} "
                f"| {'yes' if r['identity'] else 'NO'} |"
            )
    print("\nPer scan\n")
    print(
        "| patient | motion (rotation, shift) | liver | liver Dice | registration error mm | s liver | s carry | "
        "s per scan |"
    )
    print("|---" * 8 + "|")
    for res in results:
        m = res["motion"]
        print(
            f"| {res['patient']} | {m['angle_deg']:+.1f} deg about {m['axis']}, {m['shift_norm_mm']:.1f} mm | "
            f"{res['liver']} | {res['liver_dice']:.3f} | {res['reg_error_mm']:.2f} | {res['liver_s']:.1f} | "
            f"{res['seconds']:.1f} | {res['liver_s'] + res['seconds']:.1f} |"
        )
    print("\nMeans over tumours >= 1 mL (all motions)\n")
    print(
        "| liver | tumours | mean Dice | median Dice | min Dice | mean Dice of the mapped prior | mean abs vol err % | "
        "disappeared | identity | mean registration error mm | mean s per scan |"
    )
    print("|---" * 11 + "|")
    for mode in livers:
        scans = [res for res in results if res["liver"] == mode]
        rows = [r for res in scans for r in res["rows"] if r["ml"] >= MIN_ML]
        if not rows:
            continue
        d = [r["dice"] for r in rows]
        print(
            f"| {mode} | {len(rows)} | {np.mean(d):.3f} | {np.median(d):.3f} | {min(d):.3f} | "
            f"{np.mean([r['mapped_dice'] for r in rows]):.3f} | {np.mean([abs(r['err']) for r in rows]):.1f} | "
            f"{sum(r['disappeared'] for r in rows)} | {sum(r['identity'] for r in rows)}/{len(rows)} | "
            f"{np.mean([s['reg_error_mm'] for s in scans]):.2f} | "
            f"{np.mean([s['liver_s'] + s['seconds'] for s in scans]):.1f} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
