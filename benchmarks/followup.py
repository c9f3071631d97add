"""Benchmark: ``hepavol follow-up`` on clinical CT patients against its floor, read + measure every scan.

Two simulated clinical CT patients (``--size full``: 512×512×~120 NIfTI per scan) in one run of this script:
the 4-scan patient of ``hepavol simulate --patients 1 --size full --modality ct --seed 7``, and a 10-scan
patient made of the same files cycled with new dates 120 days apart (the simulator's schedules give 4-7 scans).
Per patient:

- floor: ``read_image`` + ``read_segmentation`` + ``measure_scan`` of every scan (what measuring alone costs);
- hepavol's whole follow-up without the HTML report (``run_followup``, what ``hepavol follow-up`` runs);
- the report alone (``write_report`` on a result kept with ``keep_scans=True``);
- registration per follow-up (``register_to_baseline`` on the liver masks, timed alone).

Targets (issue 20): follow-up ≤ 2× the floor, report ≤ 1 s more per patient, registration ≤ 0.3 s per
follow-up. Wall times, best of ``--repeats`` (2) runs, on whatever else the machine is doing: run it on a
quiet machine. Run: ``.venv/bin/python benchmarks/followup.py`` (simulation takes a few minutes).
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hepavol.followup.pipeline import read_manifest, run_followup
from hepavol.followup.registration import register_to_baseline
from hepavol.followup.report import write_report
from hepavol.io import read_image, read_segmentation
from hepavol.measurement import measure_scan
from hepavol.simulate import simulate_cohort
from hepavol.volume import Volume


def best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def floor(manifest: Path) -> None:
    for row in read_manifest(manifest).rows:
        image = read_image(row.image)
        measure_scan(read_segmentation(row.seg, reference=image.geometry), image)


def livers(manifest: Path) -> list[Volume]:
    out = []
    for row in read_manifest(manifest).rows:
        image = read_image(row.image)
        seg = read_segmentation(row.seg, reference=image.geometry)
        labels = np.asarray(seg.array)
        out.append(seg.with_array((labels == 1) | (labels == 2)))
    return out


def ten_scans(manifest: Path) -> Path:
    """A 10-row manifest cycling through the patient's scans, dated 120 days apart (same files, new dates)."""
    rows = read_manifest(manifest).rows
    start = rows[0].date
    lines = ["date,image,seg"]
    for k in range(10):
        row = rows[k % len(rows)]
        lines.append(f"{start + datetime.timedelta(days=120 * k)},{row.image},{row.seg}")
    out = manifest.with_name("manifest10.csv")
    out.write_text("\n".join(lines) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2, help="runs per measurement, best kept (2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        four = Path(simulate_cohort(1, root / "p4", seed=7, modality="ct", size="full").patients[0].manifest)
        ten = ten_scans(four)
        print(f"simulated the patient in {time.perf_counter() - t0:.0f} s")
        print()
        print(
            "| clinical CT patient | scans | floor: read + measure, s | follow-up, s | follow-up / floor "
            "| report, s | registration s per follow-up |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, manifest in (("seed 7, 4 scans", four), ("same, 10 scans (cycled)", ten)):
            n = len(read_manifest(manifest).rows)
            floor_s = best(lambda m=manifest: floor(m), args.repeats)  # type: ignore[misc]
            follow_s = best(lambda m=manifest: run_followup(m), args.repeats)  # type: ignore[misc]
            kept = run_followup(manifest, keep_scans=True)
            report_s = best(lambda k=kept: write_report(k, root / "report"), args.repeats)  # type: ignore[misc]
            masks = livers(manifest)
            reg_s = [
                best(lambda f=fu, b=masks[0]: register_to_baseline(b, f), args.repeats)  # type: ignore[misc]
                for fu in masks[1:]
            ]
            print(
                f"| {name} | {n} | {floor_s:.1f} | {follow_s:.1f} | {follow_s / floor_s:.2f}× | {report_s:.2f} "
                f"| {np.mean(reg_s):.2f} (max {max(reg_s):.2f}) |"
            )


if __name__ == "__main__":
    main()
