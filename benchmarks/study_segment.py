"""Benchmark: ``hepavol study segment`` on a simulated cohort against the simulator's truth.

A simulated CT cohort (``hepavol simulate --format dicom``, seed and size as given) is imported twice:

- **seeds**: every scan's DICOM SEG removed, and a DICOM SR TID 1500 (highdicom) with the truth's RECIST line of
  every lesion (the long axis of its true mask) added to each study: the liver and every lesion are proposed
  from the lines;
- **carried forward**: every SEG removed except the baseline's (the expert mask, accepted), no SR: the baseline's
  lesions are carried to every follow-up through the registration.

Reported on lesions of at least 1 mL (true mask): Dice of each proposed lesion against its true mask (the proposal's
26-connected component that covers most of it), **tracking identity** (carried lesion ``L<k>`` of the baseline lands
on the true lesion that was ``L<k>`` at baseline, and on no other), lesions proposed as disappeared although
present, new lesions (not at baseline) found among the listed candidates (a candidate's centre on the lesion), the
candidates on no true lesion per scan, the liver's Dice, and the time per scan.
Run: ``.venv/bin/python benchmarks/study_segment.py [--patients 6] [--seed 0] [--size small]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests._segment_seed_helpers import truth_lines, write_recist_sr

from hepavol.io import read_image, read_segmentation
from hepavol.simulate import simulate_cohort
from hepavol.study.dicom_import import import_dicom_tree
from hepavol.study.models import ImagingStudy, Patient, Segmentation
from hepavol.study.segmenting import segment_study
from hepavol.study.workspace import Workspace, init_workspace

STRUCTURE = np.ones((3, 3, 3), dtype=bool)
MIN_ML = 1.0


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def _tree(cohort: Path, truth: list[dict[str, Any]], out: Path, *, seeds: bool) -> Path:
    for patient in truth:
        for i, scan in enumerate(patient["scans"]):
            src = cohort / patient["patient_id"]
            study = Path(scan["image"]).parent
            dst = out / patient["patient_id"]
            shutil.copytree(src / scan["image"], dst / scan["image"])
            if seeds:
                write_recist_sr(
                    dst / scan["image"], truth_lines(src / scan["instances"]), dst / study / "sr" / "SR.dcm"
                )
            elif i == 0:
                shutil.copytree(src / study / "seg", dst / study / "seg")
    return out


def _proposals(ws: Workspace) -> dict[tuple[str, str], Segmentation]:
    from sqlalchemy import select

    out = {}
    with ws.db.transaction() as session:
        for original, seg, day in session.execute(
            select(Patient.pseudonym, Segmentation, ImagingStudy.study_date)
            .join(ImagingStudy, ImagingStudy.patient_id == Patient.id)
            .join(ImagingStudy.series)
            .join(Segmentation)
            .where(Segmentation.state == "proposed", Segmentation.active)
        ):
            out[(original, day.isoformat())] = seg
        session.expunge_all()
    return out


def _component_at(components: np.ndarray, true: np.ndarray) -> np.ndarray:
    hits = np.bincount(components[true], minlength=2)
    hits[0] = 0
    k = int(np.argmax(hits))
    return components == k if k else np.zeros_like(true)


def run(cohort: Path, truth: list[dict[str, Any]], work: Path, *, seeds: bool) -> dict[str, Any]:
    tree = _tree(cohort, truth, work / "tree", seeds=seeds)
    ws = init_workspace(work / "study")
    import_dicom_tree(ws, tree, workers=1)
    if not seeds:  # the baseline SEG is in the tree: imported as accepted
        pass
    t0 = time.perf_counter()
    summary = segment_study(ws)
    seconds = time.perf_counter() - t0
    pseudonym = {p["patient_id"]: str(ws.pseudonymiser().pseudonym(p["patient_id"])) for p in truth}
    proposals = _proposals(ws)
    ws.close()
    dices: list[float] = []
    liver: list[float] = []
    identity = [0, 0]
    false_gone = 0
    new_lesions = 0
    new_found = 0
    false_candidates = 0
    worst: list[tuple[float, str, str, str, str | None, float, float]] = []
    for patient in truth:
        folder = cohort / patient["patient_id"]
        base = patient["scans"][0]
        base_inst = np.asarray(read_image(folder / base["instances"]).array)
        ids = [int(v) for v in np.unique(base_inst) if v]
        by_size = sorted(ids, key=lambda v: -int((base_inst == v).sum()))  # L1 = largest true lesion at baseline
        for i, scan in enumerate(patient["scans"]):
            if not seeds and i == 0:
                continue
            seg = proposals.get((pseudonym[patient["patient_id"]], scan["date"]))
            if seg is None:
                continue
            proposal = read_image(seg.path)
            labels = np.asarray(proposal.array)
            true_labels = np.asarray(read_segmentation(folder / scan["seg"], reference=proposal.geometry).array)
            liver.append(_dice(labels > 0, true_labels > 0))
            inst = np.asarray(read_image(folder / scan["instances"]).array)
            voxel_ml = proposal.geometry.voxel_volume_mm3 / 1000.0
            components, _n = ndimage.label(labels == 2, structure=STRUCTURE)
            provenance = seg.provenance or {}
            carried = {c["lesion_id"]: c for c in provenance.get("carried_forward", [])}
            near = ndimage.binary_dilation(inst > 0, structure=STRUCTURE)
            hits = set()
            for cand in provenance.get("candidates", []):
                idx = tuple(
                    int(np.rint(v)) for v in proposal.geometry.lps_to_index(np.asarray(cand["centre_lps_mm"]))
                )
                inside = all(0 <= i < n for i, n in zip(idx, inst.shape))
                if inside and near[idx]:
                    region = ndimage.binary_dilation(inst == inst[idx], structure=STRUCTURE) if inst[idx] else near
                    hits.update(int(v) for v in np.unique(inst[region & (inst > 0)]))
                else:
                    false_candidates += 1
            gone = {g["lesion_id"] for g in provenance.get("disappeared", [])}
            for v in (int(v) for v in np.unique(inst) if v):
                true = inst == v
                if true.sum() * voxel_ml < MIN_ML:
                    continue
                if not seeds:
                    if v not in ids:
                        new_lesions += 1
                        new_found += int(v in hits)
                        continue
                    lid = f"L{by_size.index(v) + 1}"
                    if lid in gone:
                        false_gone += 1
                        continue
                    if lid not in carried:
                        continue
                    found = _component_at(components, true)
                    others = {int(u) for u in np.unique(inst[found])} - {0}
                    identity[0] += int(others == {v})
                    identity[1] += 1
                    dices.append(_dice(true, found))
                    kind = next(
                        (les.get("appearance") for les in patient["lesions"] if les["lesion_id"] == v), None
                    )
                    worst.append((dices[-1], patient["patient_id"], scan["date"], lid, kind,
                                  float(true.sum() * voxel_ml), float(found.sum() * voxel_ml)))  # fmt: skip
                else:
                    dices.append(_dice(true, _component_at(components, true)))
    scans = sum(len(p["scans"]) - (0 if seeds else 1) for p in truth)
    return {
        "scans": scans,
        "proposed": summary.proposed,
        "lesions": len(dices),
        "dice_median": statistics.median(dices) if dices else float("nan"),
        "dice_mean": statistics.mean(dices) if dices else float("nan"),
        "dice_min": min(dices) if dices else float("nan"),
        "dice_ge_090": sum(d >= 0.9 for d in dices) / max(len(dices), 1),
        "liver_dice_median": statistics.median(liver) if liver else float("nan"),
        "identity": identity,
        "false_disappeared": false_gone,
        "new_lesions": new_lesions,
        "new_found": new_found,
        "false_candidates_per_scan": false_candidates / max(summary.proposed, 1),
        "seconds_per_scan": seconds / max(summary.proposed, 1),
        "refused": len(summary.refused_seeds),
        "failed": summary.failed,
        "refused_reasons": summary.refused_seeds,
        "worst": sorted(worst),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=["small", "full"], default="small")
    parser.add_argument("--cohort", metavar="DIR", help="use this simulated cohort (made by an earlier --keep)")
    parser.add_argument("--keep", metavar="DIR", help="copy the simulated cohort here")
    parser.add_argument(
        "--worst", type=int, default=0, metavar="N", help="list the N carried lesions of lowest Dice (to stderr)"
    )
    args = parser.parse_args()
    import json

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cohort = Path(args.cohort) if args.cohort else root / "cohort"
        if not args.cohort:
            simulate_cohort(args.patients, cohort, seed=args.seed, modality="ct", size=args.size, fmt="dicom")
        truth = json.loads((cohort / "truth.json").read_text())["patients"]
        rows = []
        if args.keep:
            shutil.copytree(cohort, Path(args.keep), dirs_exist_ok=True)
        for name, seeds in (("lesions from SR RECIST lines", True), ("carried forward from the baseline", False)):
            r = run(cohort, truth, root / name.split()[0], seeds=seeds)
            for pseudonym, error in r["failed"]:
                print(f"failed: {pseudonym}: {error}", file=sys.stderr)
            for pseudonym, day, reason in r["refused_reasons"]:
                print(f"seed refused: {pseudonym} {day}: {reason}", file=sys.stderr)
            for dice, patient_id, day, lid, kind, true_ml, found_ml in r["worst"][: args.worst]:
                print(
                    f"carried {patient_id} {day} {lid} ({kind}): Dice {dice:.3f}, true {true_ml:.2f} mL, "
                    f"proposed {found_ml:.2f} mL",
                    file=sys.stderr,
                )
            ident = f"{r['identity'][0]}/{r['identity'][1]}" if not seeds else "-"
            rows.append(
                f"| {name} | {r['proposed']}/{r['scans']} | {r['lesions']} | {r['dice_mean']:.3f} | {r['dice_median']:.3f} | "
                f"{r['dice_min']:.3f} | {100 * r['dice_ge_090']:.0f} % | {ident} | "
                f"{r['false_disappeared'] if not seeds else '-'} | "
                f"{str(r['new_found']) + '/' + str(r['new_lesions']) if not seeds else '-'} | "
                f"{r['false_candidates_per_scan']:.1f} | "
                f"{r['liver_dice_median']:.3f} | {r['seconds_per_scan']:.2f} |"
            )
    print(
        f"simulated CT cohort: {args.patients} patients, seed {args.seed}, size {args.size}; lesions >= {MIN_ML} mL"
    )
    print(
        "| proposals | scans | lesions | Dice mean | Dice median | Dice min | Dice >= 0.90 | identity | wrongly "
        "disappeared | new lesions among candidates | false candidates per scan | liver Dice | s per scan |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
