"""Benchmark: ``hepavol study run`` per scan, its scaling with workers, and its overhead over a plain loop.

A simulated DICOM cohort (CT, seed 7; ``--size full`` for clinical 512×512×120 CT grids, default small
160×160×60 grids) is imported into a fresh workspace per configuration; then, in one run of this script:

- the baseline users would otherwise write: ``hepavol follow-up`` (the library call ``run_followup``) on each
  patient's manifest in a plain Python loop, one process, results not stored;
- ``hepavol study run --workers 1`` (same work + database transactions, leases, provenance);
- ``hepavol study run --workers 2`` (process pool; this machine has 2 cores) and, with ``--workers 4``, more;
- ``hepavol study run --scheduler ADDRESS`` on a real ``dask.distributed`` cluster: a ``LocalCluster`` of
  ``--dask-workers`` single-threaded worker processes (2) started before the clock starts, as a site's cluster
  would already be running; its throughput per worker is scans per second divided by the workers.

Peak memory per worker: the kernel's high-water mark of resident memory (``VmHWM`` in ``/proc/PID/status``) of
every process doing the work, polled while it runs (reset for this process before each configuration with
``/proc/self/clear_refs``). It is shown as MB and as a multiple of one scan's image as hepavol holds it in memory
(the first scan's voxel array), both in full and above what an idle worker holds after importing hepavol (its
libraries alone). The issue's target is at most 3 scans.

Printed as a markdown table: wall seconds, seconds per scan, CPU seconds per scan (in one process; a single
follow-up before issue 20 kept about 1.6 cores busy in ITK's multi-threaded registration) and ratios to the plain
loop. The pool gives each worker ``cores / workers`` threads. Run on a quiet machine: ``.venv/bin/python benchmarks/study.py [--size full]``.
The 80-patient clinical cohort of issue 20 takes about 50 min to simulate on this machine: ``--cohort DIR``
simulates it into DIR once and reuses it on later runs (``--patients 80 --size full --cohort DIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


def _kib(pid: int | str, field: str) -> int | None:
    """``field`` (``VmHWM``, ``VmRSS``) of process ``pid`` in KiB, None once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class PeakMemory:
    """Peak resident memory (KiB) of this process and of each of its descendants while the block runs."""

    def __init__(self) -> None:
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()

    def _poll(self) -> None:
        import psutil

        me = psutil.Process()
        while True:
            for proc in [me, *me.children(recursive=True)]:
                peak = _kib(proc.pid, "VmHWM")
                if peak is not None:
                    self.peaks[proc.pid] = max(peak, self.peaks.get(proc.pid, 0))
            if self._stop.wait(0.05):
                return

    @contextmanager
    def watching(self) -> Iterator[PeakMemory]:
        Path("/proc/self/clear_refs").write_text("5")  # reset this process's VmHWM to its current RSS
        thread = threading.Thread(target=self._poll, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()

    def worker_peak_kib(self, *, inline: bool) -> int:
        """The largest peak of a process doing the work: this one when ``inline``, else its descendants."""
        own = os.getpid()
        peaks = [v for pid, v in self.peaks.items() if (pid == own) == inline]
        return max(peaks, default=0)


def idle_worker_kib() -> int:
    """Resident memory of a fresh process that has imported what a worker imports (hepavol and its libraries)."""
    code = (
        "import hepavol.study.runner, hepavol.followup.pipeline, hepavol.io, SimpleITK, numpy, cc3d, sys;"
        "from pathlib import Path;"
        "print([l for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmRSS:')][0].split()[1])"
    )
    return int(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)


def scan_bytes(manifest: Path) -> int:
    """Bytes of the first scan's voxel array as hepavol reads it (``read_image``)."""
    from hepavol.followup.pipeline import read_manifest
    from hepavol.io import read_image

    return int(read_image(read_manifest(manifest).rows[0].image).array.nbytes)


@contextmanager
def local_cluster(n_workers: int) -> Iterator[str]:
    """A ``dask.distributed`` LocalCluster of ``n_workers`` single-threaded worker processes; its address."""
    from distributed import LocalCluster

    one_thread = {
        name: "1"
        for name in (
            "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "MKL_NUM_THREADS",
            "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
        )
    }
    with LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        memory_limit=0,
        env=one_thread,
    ) as cluster:
        yield str(cluster.scheduler_address)


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
    parser.add_argument(
        "--dask-workers", type=int, default=2, help="workers of the dask LocalCluster (2; 0 = no dask run)"
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

        one_scan = scan_bytes(patients[0][1])
        idle = idle_worker_kib() * 1024
        # (configuration, wall s, CPU s or None, peak bytes of a worker, worker count for throughput)
        rows: list[tuple[str, float, float | None, int, int]] = []
        pseudonymiser = find_workspace(study).pseudonymiser()
        with PeakMemory().watching() as memory:
            t0, c0 = time.perf_counter(), _cpu()
            for patient_id, manifest in patients:
                if pseudonymiser.pseudonym(patient_id) in eligible:
                    run_followup(manifest)
            loop = time.perf_counter() - t0
            loop_cpu = _cpu() - c0
        rows.append(("plain loop of run_followup (1 process, nothing stored)", loop, loop_cpu,
                     memory.worker_peak_kib(inline=True) * 1024, 1))  # fmt: skip
        configurations: list[tuple[str, int, str | None]] = [
            (f"hepavol study run --workers {w}", w, None) for w in args.workers
        ]
        if args.dask_workers:
            configurations.append((f"hepavol study run --scheduler (dask LocalCluster, {args.dask_workers} "
                                   "workers × 1 thread)", args.dask_workers, "local"))  # fmt: skip
        for name, workers, scheduler in configurations:
            copy = root / f"study_{len(rows)}"
            shutil.copytree(study, copy)
            ws = find_workspace(copy)
            with local_cluster(workers) if scheduler else _nothing() as address, PeakMemory().watching() as memory:
                t0, c0 = time.perf_counter(), _cpu()
                summary = run_study(ws, workers=1 if scheduler else workers, scheduler=address)
                wall = time.perf_counter() - t0
            ws.close()
            assert summary.computed == len(jobs), summary
            # pool and dask workers are not our waited-for children: their CPU time is not in getrusage
            cpu = _cpu() - c0 if workers == 1 and not scheduler else None
            inline = workers == 1 and not scheduler
            rows.append((name, wall, cpu, memory.worker_peak_kib(inline=inline) * 1024, workers))
        print()
        print(
            f"one scan's image in memory: {one_scan / 2**20:.0f} MB; an idle worker after importing hepavol: "
            f"{idle / 2**20:.0f} MB"
        )
        print()
        print(
            f"| {args.size} CT, {len(jobs)} patients, {n_scans} scans | wall s | wall s per scan | CPU s per scan "
            "| wall vs plain loop | scans/s per worker | peak MB per worker | peak / one scan (above idle) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, wall, cpu, peak, workers in rows:
            cpu_text = "" if cpu is None else f"{cpu / n_scans:.2f}"
            print(
                f"| {name} | {wall:.1f} | {wall / n_scans:.2f} | {cpu_text} | {wall / loop:.2f}× "
                f"| {n_scans / wall / workers:.2f} | {peak / 2**20:.0f} | {peak / one_scan:.1f}× "
                f"({(peak - idle) / one_scan:.1f}×) |"
            )


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    main()
