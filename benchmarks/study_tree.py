"""Benchmark: walking a PACS export with ``hepavol.study.dicom_tree.scan_dicom_tree``.

Writes a synthetic export (``--patients`` patients × 2 studies × 5 series: scout, 5 mm and 2.5 mm portal-venous,
arterial, coronal MPR; 64x64 int16 pixels and an 8 KB private block per file, like a vendor's private header)
and times, each the best of 3 runs with the files in the page cache ("warm"), and once after evicting every
file from the page cache with ``posix_fadvise(DONTNEED)`` ("cold", as after a fresh copy from a PACS; only
meaningful on a real disk, not on tmpfs):

* ``scan_dicom_tree`` with 1, 2 and 4 threads;
* a plain loop of ``pydicom.dcmread(path, stop_before_pixels=True)`` (the full header, no grouping);
* the floor: open every file and read its first 132 bytes.

Run: ``.venv/bin/python benchmarks/study_tree.py [--patients 25] [--keep DIR]``. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _write_export(root: Path, patients: int) -> int:
    import pydicom
    from pydicom.uid import generate_uid

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests._study_tree_helpers import build_pacs_export

    template = root / "_template"
    build_pacs_export(template)  # one realistic layout; copied below with new UIDs per patient
    files = sorted(p for p in template.rglob("*.dcm") if "PAT-001" in p.parts)
    n = 0
    for i in range(patients):
        study_uids: dict[str, str] = {}
        series_uids: dict[str, str] = {}
        for src in files:
            ds = pydicom.dcmread(src)
            ds.PatientID = f"BENCH-{i:05d}"
            ds.StudyInstanceUID = study_uids.setdefault(ds.StudyInstanceUID, generate_uid())
            ds.SeriesInstanceUID = series_uids.setdefault(ds.SeriesInstanceUID, generate_uid())
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.Rows = ds.Columns = 64
            ds.PixelData = np.zeros((64, 64), dtype=np.int16).tobytes()
            block = ds.private_block(0x0029, "BENCH VENDOR", create=True)
            block.add_new(0x10, "OB", os.urandom(8192))
            out = root / f"P{i:05d}" / src.relative_to(template / "PAT-001")
            out.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(out, enforce_file_format=True)
            n += 1
    shutil.rmtree(template)
    return n


def _evict(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _time(run: Callable[[], object], root: Path) -> tuple[float, float]:
    _evict(root)
    t0 = time.perf_counter()
    run()
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(3):
        t0 = time.perf_counter()
        run()
        warm.append(time.perf_counter() - t0)
    return cold, min(warm)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=25)
    parser.add_argument("--keep", type=Path, help="write the export here and keep it")
    args = parser.parse_args(argv)

    import pydicom

    from hepavol.study.dicom_tree import scan_dicom_tree

    root = args.keep or Path(tempfile.mkdtemp(prefix="hepavol-bench-tree-"))
    try:
        n = _write_export(root, args.patients)
        all_files = sorted(p for p in root.rglob("*") if p.is_file())

        def floor() -> None:
            for p in all_files:
                with open(p, "rb") as fh:
                    fh.read(132)

        def full_header() -> None:
            for p in all_files:
                pydicom.dcmread(p, stop_before_pixels=True)

        cases = {
            "scan_dicom_tree, 1 thread": lambda: scan_dicom_tree(root, workers=1),
            "scan_dicom_tree, 2 threads": lambda: scan_dicom_tree(root, workers=2),
            "scan_dicom_tree, 4 threads": lambda: scan_dicom_tree(root, workers=4),
            "pydicom.dcmread(stop_before_pixels) loop": full_header,
            "open + read 132 bytes (floor)": floor,
        }
        scan = scan_dicom_tree(root)
        assert scan.n_studies == 2 * args.patients, scan.n_studies
        print(f"{n} files, {args.patients} patients, {scan.n_studies} studies, {scan.n_series} series; "
              f"{os.cpu_count()} CPUs")  # fmt: skip
        print("| reader | cold s | warm s | warm files/s |")
        print("|---|---:|---:|---:|")
        for name, run in cases.items():
            cold, warm = _time(run, root)
            print(f"| {name} | {cold:.2f} | {warm:.2f} | {n / warm:,.0f} |")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
