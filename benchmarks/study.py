"""Benchmark: ``hepavol study run`` per scan, its scaling with workers, and its overhead over a plain loop.

A simulated DICOM cohort (CT, seed 7; ``--size full`` for clinical 512×512×120 CT grids, default small
160×160×60 grids) is imported into a fresh workspace per configuration; then, in one run of this script:

- the baseline users would otherwise write: ``hepavol follow-up`` (the library call ``run_followup``) on each
  patient's manifest in a plain Python loop, one process, results not stored;
- ``hepavol study run --workers 1`` (same work + database transactions, leases, provenance);
- ``hepavol study run --workers 2`` (process pool; this machine has 2 cores) and, with ``--workers 4``, more.

Printed as a markdown table: wall seconds, seconds per scan, CPU seconds per scan (in one process; a single
follow-up before issue 20 kept about 1.6 cores busy in ITK's multi-threaded registration) and ratios to the plain
loop. The pool gives each worker ``cores / workers`` threads. Run on a quiet machine: ``.venv/bin/python benchmarks/study.py [--size full]``.
The 80-patient clinical cohort of issue 20 takes about 50 min to simulate on this machine: ``--cohort DIR``
simulates it into DIR once and reuses it on later runs (``--patients 80 --size full --cohort DIR``).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

from hepavol.followup.pipeline import run_followup
from hepavol.simulate import simulate_cohort
from hepavol.study.clinical_import import import_clinical
from hepavol.study.dicom_import import import_dicom_tree
from hepavol.study.runner import run_study
from hepavol.study.screening import run_eligibility
from hepavol.study.workspace import init_workspace


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the pool's workers once shut down)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def prepared(cohort: Path, folder: Path) -> Path:
    ws = init_workspace(folder)
    try:
        import_dicom_tree(ws, cohort)
        import_clinical(ws, cohort / "clinical.csv", treatments_path=cohort / "treatments.csv")
        run_eligibility(ws)
    finally:
        ws.close()
    return folder


def simulated(folder: Path, n_patients: int, size: str) -> list[tuple[str, Path]]:
    """(patient id, manifest) of the simulated CT cohort in ``folder``, simulated first unless already there
    (a finished cohort has its truth.json; it must have been made with the same patients and size)."""
    truth = folder / "truth.json"
    if not truth.exists():
        t0 = time.perf_counter()
        simulate_cohort(n_patients, folder, seed=7, modality="ct", size=size, fmt="dicom")
        print(f"simulated {n_patients} patients ({size}) in {time.perf_counter() - t0:.0f} s")
    record = json.loads(truth.read_text())
    made = record["generator"]
    if (made.get("patients"), made.get("size")) != (n_patients, size):
        raise SystemExit(
            f"{folder} holds a cohort of {made.get('patients')} patients ({made.get('size')}), "
            f"not {n_patients} ({size}): give another --cohort folder"
        )
    return [(p["patient_id"], folder / p["manifest"]) for p in record["patients"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=6, help="patients (6)")
    parser.add_argument("--size", choices=["small", "full"], default="small")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time (1 2)")
    parser.add_argument(
        "--cohort", type=Path, help="keep the simulated cohort in this folder and reuse it when already there"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = args.cohort or root / "cohort"
        patients = simulated(folder, args.patients, args.size)
        study = prepared(folder, root / "study0")
        from hepavol.study.runner import plan_run
        from hepavol.study.workspace import find_workspace

        ws = find_workspace(study)
        jobs, _ = plan_run(ws)
        ws.close()
        n_scans = sum(len(j.scans) for j in jobs)
        eligible = {j.pseudonym for j in jobs}
        print(f"{len(jobs)} eligible patients, {n_scans} scans")

        rows = []
        t0, c0 = time.perf_counter(), _cpu()
        pseudonymiser = find_workspace(study).pseudonymiser()
        for patient_id, manifest in patients:
            if pseudonymiser.pseudonym(patient_id) in eligible:
                run_followup(manifest)
        loop = time.perf_counter() - t0
        rows.append(("plain loop of run_followup (1 process, nothing stored)", loop, _cpu() - c0))
        for workers in args.workers:
            copy = root / f"study_w{workers}"
            shutil.copytree(study, copy)
            ws = find_workspace(copy)
            t0, c0 = time.perf_counter(), _cpu()
            summary = run_study(ws, workers=workers)
            wall = time.perf_counter() - t0
            ws.close()
            assert summary.computed == len(jobs), summary
            cpu = _cpu() - c0 if workers == 1 else None  # pool workers are the forkserver's children, not ours
            rows.append((f"hepavol study run --workers {workers}", wall, cpu))
        print()
        print(
            f"| {args.size} CT, {len(jobs)} patients, {n_scans} scans | wall s | wall s per scan | CPU s per scan "
            "| wall vs plain loop |"
        )
        print("|---|---:|---:|---:|---:|")
        for name, wall, cpu in rows:
            cpu_text = "" if cpu is None else f"{cpu / n_scans:.2f}"
            print(f"| {name} | {wall:.1f} | {wall / n_scans:.2f} | {cpu_text} | {wall / loop:.2f}× |")


if __name__ == "__main__":
    main()
