"""A small simulated study, imported, screened and run, for the review app's tests."""

from __future__ import annotations

from pathlib import Path

N_PATIENTS = 3
SEED = 49  # the demo's seed: CT and MR patients


def build_study(folder: Path, *, db_url: str | None = None) -> Path:
    """Simulate ``N_PATIENTS`` DICOM patients and run the study path on them; the workspace folder."""
    from hepavol.simulate import simulate_cohort
    from hepavol.study.clinical_import import import_clinical
    from hepavol.study.dicom_import import import_dicom_tree
    from hepavol.study.runner import run_study
    from hepavol.study.screening import run_eligibility
    from hepavol.study.workspace import init_workspace

    pacs = folder / "pacs_export"
    simulate_cohort(N_PATIENTS, pacs, seed=SEED, fmt="dicom")
    ws = init_workspace(folder / "study", db_url=db_url)
    try:
        import_dicom_tree(ws, pacs)
        import_clinical(ws, pacs / "clinical.csv", treatments_path=pacs / "treatments.csv")
        run_eligibility(ws, workers=1)
        run_study(ws, workers=1)
    finally:
        ws.close()
    return folder / "study"
