"""Run the whole cohort analysis: table → derived variables → analysis → results.json, figures, report."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hepavol.cohort.analysis import AnalysisOptions, CohortAnalysis, analyse_cohort
from hepavol.cohort.derive import DERIVED_COLUMNS, DerivedPatient, derive
from hepavol.cohort.table import CohortTable, read_cohort_table


@dataclass(frozen=True, slots=True)
class CohortRun:
    """What :func:`run_cohort` wrote, and the analysis itself."""

    analysis: CohortAnalysis
    patients: tuple[DerivedPatient, ...]
    out_dir: Path
    results_json: Path
    derived_csv: Path
    report_html: Path
    report_pdf: Path | None
    pdf_method: str | None  # "chromium", "matplotlib" or None (no PDF asked)
    figures: tuple[Path, ...]


def run_cohort(
    table: CohortTable | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    options: AnalysisOptions | None = None,
    pdf: bool = True,
    use_chromium: bool = True,
    generated: dt.datetime | None = None,
    repeatability_source: dict[str, Any] | None = None,
) -> CohortRun:
    """Analyse a cohort table and write ``results.json``, ``derived.csv``, the figures, ``report.html``/``.pdf``.

    Parameters
    ----------
    table : CohortTable or path
        A validated table, or the path of a cohort CSV (read with :func:`read_cohort_table`).
    out_dir : path
        Output folder (created if needed). Every file is written atomically.
    options : AnalysisOptions, optional
        Analysis settings.
    pdf : bool
        Also write ``report.pdf``.
    use_chromium : bool
        Print the PDF with headless Chromium when it is installed (else matplotlib).
    repeatability_source : dict, optional
        Where ``options.repeatability_cv_percent`` came from (results.json ``head_to_head.repeatability.source``);
        default: given on the command line (``--repeatability-cv``).

    Raises
    ------
    TableError
        If the table cannot be read or is invalid (the message names file, line, column and value).
    """
    from hepavol._atomic import write_text_atomic
    from hepavol.cohort._serialize import csv_text, json_text
    from hepavol.cohort.plots import make_figures
    from hepavol.cohort.report import render_html, write_html, write_pdf

    tab = table if isinstance(table, CohortTable) else read_cohort_table(table)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    patients = derive(tab)
    if options is not None and options.repeatability_cv_percent is not None:
        from hepavol.cohort.uncertainty import with_repeatability

        patients = with_repeatability(patients, options.repeatability_cv_percent)
    analysis = analyse_cohort(patients, options=options)
    from hepavol.cohort.describe import time_points

    source = None
    if options is not None and options.repeatability_cv_percent is not None:
        source = repeatability_source or {"kind": "given", "option": "--repeatability-cv"}
    analysis = dataclasses.replace(analysis, time_points=time_points(tab.patients), repeatability_source=source)
    if tab.warnings:  # from reading the table (dates after today): first in results.json, report and console
        analysis = dataclasses.replace(analysis, warnings=(*tab.warnings, *analysis.warnings))
    # The outputs are one set: written into a staging folder inside OUT, then moved into place together; a
    # failure (full disk, a figure that cannot be drawn) removes the staging folder and leaves OUT as it was.
    stage = Path(tempfile.mkdtemp(prefix=".cohort-staging-", dir=out))
    try:
        write_text_atomic(stage / "results.json", json_text(analysis.results()))
        write_text_atomic(stage / "derived.csv", csv_text([p.to_dict() for p in patients], DERIVED_COLUMNS))
        figures = make_figures(analysis, patients, stage / "figures")
        html_text = render_html(
            analysis, patients, figures, source_name=Path(tab.source).name, generated=generated
        )
        write_html(stage / "report.html", html_text)
        pdf_method = None
        if pdf:
            pdf_method = write_pdf(
                analysis, figures, stage / "report.html", stage / "report.pdf", use_chromium=use_chromium
            )
        staged = sorted(f for f in stage.rglob("*") if f.is_file())
        for staged_file in staged:
            dest = out / staged_file.relative_to(stage)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged_file, dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    paths: list[Path] = []
    for fig in figures:
        paths += [out / fig.png_path.relative_to(stage), out / fig.svg_path.relative_to(stage)]
    return CohortRun(
        analysis=analysis,
        patients=patients,
        out_dir=out,
        results_json=out / "results.json",
        derived_csv=out / "derived.csv",
        report_html=out / "report.html",
        report_pdf=out / "report.pdf" if pdf else None,
        pdf_method=pdf_method,
        figures=tuple(paths),
    )


def headline(run: CohortRun) -> list[str]:
    """A few lines with the headline numbers, for the terminal."""
    a = run.analysis
    lines = [f"landmark set: {a.landmark_n} patients, {a.landmark_events} events"]
    hv = a.cox_volume_change.hr_per(10.0)
    hs = a.cox_sld_change.hr_per(10.0)
    if hv:
        lines.append(
            f"Cox volume change: HR {hv[0]:.2f} per +10 pp (95% CI {hv[1][0]:.2f}-{hv[1][1]:.2f}), p {a.cox_volume_change.p:.2g}"
        )
    if hs:
        lines.append(
            f"Cox SLD change:    HR {hs[0]:.2f} per +10 pp (95% CI {hs[1][0]:.2f}-{hs[1][1]:.2f}), p {a.cox_sld_change.p:.2g}"
        )
    cv, cs, d = a.cindex_volume_change, a.cindex_sld_change, a.cindex_difference
    if cv.c is not None and cs.c is not None and d.difference is not None:
        ci = f" (95% CI {d.ci95[0]:+.3f} to {d.ci95[1]:+.3f})".replace("-0.000", "0.000") if d.ci95 else ""
        lines.append(f"Harrell's C: volume {cv.c:.3f}, SLD {cs.c:.3f}, difference {d.difference:+.3f}{ci}")
    lv = a.logrank_tgr_volume
    if lv.chisq is not None and lv.p is not None:
        lines.append(
            f"log-rank volumetric TGR >= {a.options.tgr_cutoff_percent_per_month:g} %/month: chi2 {lv.chisq:.2f}, p {lv.p:.2g} ({lv.n_high} high)"
        )
    if a.head_to_head is not None:
        for pop in a.head_to_head.populations:
            ranked = sorted(
                (c for c in pop.criteria if c.cindex is not None and c.cindex.c is not None),
                key=lambda c: -(c.cindex.c or 0.0),  # type: ignore[union-attr]
            )
            if not ranked:
                lines.append(f"head to head {pop.population}: {pop.note or 'no criterion estimable'}")
                continue
            best = ranked[0]
            diff = best.cindex_difference_vs_recist
            vs = ""
            if diff is not None and diff.difference is not None:
                ci = f" (95% CI {diff.ci95[0]:+.3f} to {diff.ci95[1]:+.3f})" if diff.ci95 else ""
                vs = f", {diff.difference:+.3f} vs RECIST{ci}"
            lines.append(
                f"head to head {pop.population} ({pop.landmark_n} patients): highest C {best.label} "
                f"{best.cindex.c:.3f}{vs}"  # type: ignore[union-attr]
            )
            partial = [c.criterion for c in pop.criteria if c.note and "not estimable" in c.note]
            if partial:
                lines.append(
                    f"head to head {pop.population}: not estimable in part (note in results.json): {', '.join(partial)}"
                )
    missing = not_estimable(a)
    if missing:
        lines.append(f"not estimable (null in results.json, reason in the warnings): {', '.join(missing)}")
    n_warnings = len(a.warnings) + sum(len(sub.warnings) for sub in a.by_modality)
    lines.append(f"{n_warnings} warning(s); see results.json")
    return lines


def not_estimable(analysis: CohortAnalysis) -> list[str]:
    """The ``results.json`` keys (``CT/…`` for a modality) whose main estimate is null."""
    out = []
    for sub in (analysis, *analysis.by_modality):
        prefix = "" if sub is analysis else f"{sub.label}/"
        res = sub.results()
        for key, value in res.items():
            if not isinstance(value, dict) or key == "by_modality":
                continue
            main = next(
                (value[k] for k in ("coef", "c", "difference", "chisq", "rho", "u") if k in value), "absent"
            )
            if main is None:
                out.append(prefix + key)
            elif "hr_ci95" in value and value.get("hr") is None:
                out.append(f"{prefix}{key} (HR)")
    return out
