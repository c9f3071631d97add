"""Benchmark: time to simulate one virtual patient with ``hepavol simulate``, per size, format and modality.

Each configuration simulates the first ``N`` patients of seed 21 (about 4.8 scans per patient) into a temporary
folder and reports CPU and wall seconds per patient and per scan (rendering, writing, truth, measurement of
the instance maps). Wall time exceeds CPU time when the machine is shared.

Run: ``.venv/bin/python benchmarks/simulate.py [--full]`` (small grid only: about a minute; with ``--full`` a few
minutes more). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from hepavol.simulate import simulate_patient


def run(size: str, fmt: str, modality: str, n: int) -> tuple[float, float, int]:
    """CPU and wall seconds for ``n`` patients and their number of scans."""
    cpu = wall = 0.0
    scans = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            t0, c0 = time.perf_counter(), time.process_time()
            result = simulate_patient(i, tmp, seed=21, size=size, fmt=fmt, modality=modality)
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
            scans += len(result.patient.scans)
    return cpu, wall, scans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="also time the full-resolution grids")
    parser.add_argument("--patients", type=int, default=6, help="patients per small configuration (6)")
    args = parser.parse_args()
    configs = [("small", fmt, mod, args.patients) for fmt in ("nifti", "dicom") for mod in ("ct", "mr")]
    if args.full:
        configs += [("full", "nifti", "ct", 2), ("full", "dicom", "ct", 2), ("full", "nifti", "mr", 2)]
    print("| size | format | modality | patients | scans | CPU s/patient | wall s/patient | CPU s/scan |")
    print("|---|---|---|---|---|---|---|---|")
    for size, fmt, mod, n in configs:
        cpu, wall, scans = run(size, fmt, mod, n)
        print(
            f"| {size} | {fmt} | {mod} | {n} | {scans} | {cpu / n:.1f} | {wall / n:.1f} | {cpu / scans:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
