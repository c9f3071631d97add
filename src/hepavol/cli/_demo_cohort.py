"""The cohort part of ``hepavol demo``: simulate a VOLUNET-sized cohort, analyse it, write the report."""

from __future__ import annotations

import pathlib
import typing

DEMO_PATIENTS = 80
DEMO_SEED = 2018
DEMO_TRUE_HR_PER_10PCT = 1.3


def run_cohort_demo(out: typing.TextIO, workdir: pathlib.Path) -> pathlib.Path:
    """Simulate a cohort table (80 patients, fixed seed), run ``hepavol cohort`` on it, return the report path.

    Writes ``workdir/cohort_demo.csv`` and ``workdir/cohort_report/`` (results.json, derived.csv, figures,
    report.html, report.pdf) and prints the report path and the headline numbers to ``out``.
    """
    from hepavol.cohort import simulate_table, write_cohort_table
    from hepavol.cohort.pipeline import headline, run_cohort

    workdir.mkdir(parents=True, exist_ok=True)
    table_path = workdir / "cohort_demo.csv"
    write_cohort_table(
        simulate_table(DEMO_PATIENTS, seed=DEMO_SEED, true_hr_per_10pct=DEMO_TRUE_HR_PER_10PCT), table_path
    )
    out.write(
        f"cohort: simulated {DEMO_PATIENTS} patients (seed {DEMO_SEED}; true HR {DEMO_TRUE_HR_PER_10PCT} per +10 "
        f"percentage points of early volume change) -> {table_path}\n"
    )
    run = run_cohort(table_path, workdir / "cohort_report")
    for line in headline(run):
        out.write(f"  {line}\n")
    out.write(f"cohort report: {run.report_html}\n")
    if run.report_pdf is not None:
        out.write(f"cohort report (PDF, {run.pdf_method}): {run.report_pdf}\n")
    return run.report_html
