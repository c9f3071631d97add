"""The follow-up part of ``hepavol demo``: one simulated patient through time, with its report."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TextIO

#: The demo patient: simulated CT patient index 3 of seed 1 (5 scans; a new lesion at the last scan).
DEMO_PATIENT_INDEX = 3
DEMO_SEED = 1


def run_followup_demo(out: TextIO, workdir: Path) -> None:
    """Simulate one patient's CT follow-up, run ``hepavol follow-up`` on it, print the table and the report path.

    The simulator's truth (true RECIST response per scan) is printed beside hepavol's result for comparison.
    """
    from hepavol.cli.follow_up import format_followup
    from hepavol.followup.pipeline import run_followup
    from hepavol.followup.report import write_report
    from hepavol.simulate import simulate_patient

    folder = workdir / "followup"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    patient = simulate_patient(DEMO_PATIENT_INDEX, folder / "scans", seed=DEMO_SEED, modality="ct")
    manifest = Path(patient.truth["manifest"])
    if not manifest.is_absolute():
        manifest = folder / "scans" / manifest
    rel = manifest.relative_to(workdir) if manifest.is_relative_to(workdir) else manifest
    out.write(
        f"A simulated patient ({patient.truth['patient_id']}, CT, {len(patient.truth['scans'])} scans; "
        "the patient lies differently at every scan)\n"
    )
    out.write(f"$ hepavol follow-up {rel} --report {folder.name}/report\n\n")
    result = run_followup(manifest, keep_scans=True)
    report = write_report(result, folder / "report")
    out.write(format_followup(result) + "\n")
    truth = [scan.get("overall_response") or "-" for scan in patient.truth["scans"]]
    out.write(f"simulator truth (RECIST per scan): {' '.join(truth)}\n")
    for warning in result.warnings:
        out.write(f"  warning: {warning}\n")
    out.write(f"report: {report}\n")
