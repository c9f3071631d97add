"""``hepavol simulate``: write a virtual NET liver-metastasis cohort with known ground truth."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO


class _ProgressBar:
    """A one-line progress bar on standard error (redrawn in place on a terminal, one line per patient else)."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.start = time.perf_counter()
        self.tty = bool(getattr(stream, "isatty", lambda: False)())

    def __call__(self, done: int, total: int, result: Any) -> None:
        filled = int(self.width * done / total)
        elapsed = time.perf_counter() - self.start
        eta = elapsed / done * (total - done)
        line = (
            f"simulate [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} patients "
            f"({result.patient.patient_id}, {len(result.patient.scans)} scans) "
            f"elapsed {elapsed:.0f} s, left ~{eta:.0f} s"
        )
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done == total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "simulate",
        parents=parents,
        help="write a virtual NET liver-metastasis cohort with ground truth",
        description=(
            "Simulate patients with small-intestinal NET liver metastases scanned repeatedly (CT or T2-like MR): "
            "per scan an image, a label map (liver 1, tumour 2) and a lesion instance map; per patient a "
            "manifest.csv (the 'hepavol follow-up' format); for the cohort clinical.csv and truth.json (true "
            "volumes and axes, true RECIST 1.1 assessment and PFS, true tumour-volume curve)."
        ),
    )
    p.add_argument("--patients", type=int, required=True, metavar="N", help="number of patients")
    p.add_argument("--out", required=True, metavar="DIR", help="new or empty output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same cohort (0)")
    p.add_argument("--format", choices=("nifti", "dicom"), default="nifti", help="image format (nifti)")
    p.add_argument(
        "--size",
        choices=("small", "full"),
        default="small",
        help="small: 160x160x60 at 2.5x2.5x5 mm (seconds per patient); full: clinical resolution (small)",
    )
    p.add_argument(
        "--modality", choices=("ct", "mr", "mixed"), default="mixed", help="follow-up modality per patient (mixed)"
    )
    p.add_argument(
        "--readers",
        type=int,
        metavar="N",
        help="also write readers.csv: the lesion measurements of N=2 simulated readers (A, B) with known "
        "boundary noise and missed small lesions, in the 'hepavol agreement' format",
    )
    p.add_argument(
        "--repeat-read",
        action="store_true",
        help="with --readers: add a second read of reader A (A#2) for intra-reader agreement",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hepavol.errors import InputError
    from hepavol.simulate import simulate_cohort
    from hepavol.simulate.readers import default_reads

    if args.repeat_read and args.readers is None:
        raise InputError("--repeat-read needs --readers 2")
    reads = () if args.readers is None else default_reads(args.readers, repeat=args.repeat_read)
    progress = None if args.quiet else _ProgressBar(args.patients)
    cohort = simulate_cohort(
        args.patients,
        args.out,
        seed=args.seed,
        modality=args.modality,
        size=args.size,
        fmt=args.format,
        progress=progress,
        reads=reads,
    )
    n_scans = sum(len(p.patient.scans) for p in cohort.patients)
    events = sum(1 for p in cohort.patients if p.patient.truth.pfs_event)
    eligible = sum(1 for p in cohort.patients if p.patient.clinical.eligible)
    print(
        f"wrote {len(cohort.patients)} patients ({n_scans} scans, {eligible} eligible, {events} with true RECIST "
        f"progression) to {cohort.folder}\n"
        f"  clinical: {cohort.clinical_csv}\n  treatments: {cohort.treatments_csv}\n  truth:    {cohort.truth_json}\n"
        f"  true values as a cohort table (hepavol cohort): {cohort.truth_cohort_csv}"
    )
    if cohort.readers_csv is not None:
        names = ", ".join(r.name for r in reads)
        print(f"  reads of {names} (hepavol agreement): {cohort.readers_csv}")
    return 0
