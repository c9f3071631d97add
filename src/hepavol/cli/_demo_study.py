"""The study-workspace part of ``hepavol demo``: a simulated PACS export through import → eligibility → run →
export, with the exported values checked against the simulator's truth."""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path
from typing import TextIO

#: 5 simulated patients (seed 49: 16 scans, CT and MR; one patient with lesions < 10 mm only (the largest 9.1 mm),
#: one with an invasive liver treatment during follow-up).
DEMO_PATIENTS = 5
DEMO_SEED = 49


def run_study_demo(out: TextIO, workdir: Path) -> None:
    """Simulate a small DICOM cohort, build a study workspace from it, run it and export the cohort table."""
    from hepavol.cli._output import format_table
    from hepavol.simulate import simulate_cohort
    from hepavol.study.clinical_import import import_clinical
    from hepavol.study.dicom_import import import_dicom_tree
    from hepavol.study.export import export_tables
    from hepavol.study.runner import run_study
    from hepavol.study.screening import run_eligibility
    from hepavol.study.workspace import init_workspace

    folder = workdir / "study_demo"
    if folder.exists():
        shutil.rmtree(folder)
    pacs = folder / "pacs_export"
    start = time.perf_counter()
    simulate_cohort(DEMO_PATIENTS, pacs, seed=DEMO_SEED, fmt="dicom")
    out.write(
        f"$ hepavol simulate --patients {DEMO_PATIENTS} --seed {DEMO_SEED} --format dicom --out "
        f"{pacs.relative_to(workdir)}   ({time.perf_counter() - start:.0f} s: DICOM series + DICOM SEG per scan)\n"
    )
    ws = init_workspace(folder / "study")
    out.write(f"$ hepavol study init {ws.root.relative_to(workdir.resolve())}\n")
    try:
        summary = import_dicom_tree(ws, pacs)
        out.write(f"$ hepavol study import ...  -> {summary.describe()}\n")
        clinical = import_clinical(ws, pacs / "clinical.csv", treatments_path=pacs / "treatments.csv")
        out.write(f"$ hepavol study import-clinical ...  -> {clinical.describe()}\n")
        eligibility = run_eligibility(ws, workers=2)
        out.write("$ hepavol study eligibility\n" + eligibility.flow_text + "\n")
        start = time.perf_counter()
        run = run_study(ws, workers=2)
        out.write(
            f"$ hepavol study run --workers 2  -> {run.computed} patients analysed in "
            f"{time.perf_counter() - start:.1f} s\n"
        )
        exported = export_tables(ws, folder / "cohort.csv")
        out.write(f"$ hepavol study export cohort.csv  -> {', '.join(f.name for f in exported.files)}\n\n")
        pseudonymiser = ws.pseudonymiser()
    finally:
        ws.close()
    truth = {p["patient_id"]: p for p in json.loads((pacs / "truth.json").read_text())["patients"]}
    by_pseudonym = {pseudonymiser.pseudonym(pid): t for pid, t in truth.items()}
    with open(folder / "cohort.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    table = []
    for row in rows:
        t = by_pseudonym[row["patient_id"]]
        table.append(
            [
                row["patient_id"],
                row["modality"],
                row["baseline_date"],
                f"{float(row['baseline_volume_ml']):.3f}",
                f"{t['scans'][0]['mask_total_tumour_volume_ml']:.3f}",
                row["pfs_event"],
                row["pfs_date"],
                t["progression_date"] or f"{t['scans'][-1]['date']} (censored)",
            ]
        )
    decisions = []
    for pseudonym, decision in eligibility.decisions:
        t = by_pseudonym[pseudonym]
        ours = "eligible" if decision.eligible else ", ".join(r.code for r in decision.reasons)
        theirs = "eligible" if t["eligible"] else ", ".join(t["ineligibility_reasons"])
        decisions.append([pseudonym, ours, theirs])
    out.write("eligibility from the images beside the simulator's truth (from the analytic lesion sizes):\n")
    out.write(format_table(decisions, ["patient", "hepavol", "truth"]) + "\n")
    out.write(
        "(the long axis is measured on the voxel mask's surface mesh, the largest over all directions: a lesion\n"
        " whose true long axis is just under 10 mm can still measure 10 mm or more on coarse grids)\n\n"
    )
    out.write("exported cohort table beside the simulator's truth (pseudonyms only; volumes of the masks):\n")
    headers = ["patient", "mod", "baseline", "TTV_ml", "truth_ml", "PFS_event", "PFS_date", "true_progression"]
    out.write(format_table(table, headers) + "\n")
    out.write(f"cohort table: {folder / 'cohort.csv'}\n")
    out.write(
        "read the demo study in the review app (worklist, scans with their masks, decisions):\n"
        f"    .venv/bin/hepavol study serve --study {folder / 'study'}\n"
        "  then open the URL it prints in a browser on this machine (Ctrl+C stops it)\n"
    )
