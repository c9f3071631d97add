"""Simulated two-reader tables for the agreement tests (parameter level: no images, ~0.3 s per patient)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hepavol.simulate import sample_patient
from hepavol.simulate.readers import READER_COLUMNS, ReaderModel, reader_rows
from hepavol.simulate.writer import write_csv


def write_reads_table(path: Path, *, patients: int, seed: int, reads: Sequence[ReaderModel]) -> Path:
    """The ``readers.csv`` that ``hepavol simulate --readers`` writes, for ``patients`` virtual patients."""
    rows = []
    for i in range(patients):
        rows += reader_rows(sample_patient(i, seed=seed), reads)
    write_csv(rows, READER_COLUMNS, path)
    return path


def write_rows(path: Path, header: str, rows: Sequence[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path
