"""Run the agreement analysis of two reads and write ``results.json``, ``pairs.csv`` (the paired values of every
continuous quantity), ``categories.csv`` (both reads' response per follow-up time point), the Bland–Altman
figure and the HTML/PDF report.

:func:`run_agreement` takes the two :class:`~hepavol.agreement.reads.ReaderReads` to compare, so that any source
of reads (the ``hepavol agreement`` table today, each reader's segmentations in a study workspace later) goes
through the same analysis and output.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from hepavol.agreement.analysis import AgreementAnalysis, analyse_agreement
from hepavol.agreement.reads import ReaderReads
from hepavol.study.eligibility import EARLY_WINDOW_DAYS

PAIRS_COLUMNS = ("quantity", "level", "unit", "pair", "first", "second")
CATEGORY_COLUMNS = ("criteria", "patient_id", "date", "first", "second")


@dataclass(frozen=True, slots=True)
class AgreementRun:
    """What :func:`run_agreement` wrote, and the analysis itself."""

    analysis: AgreementAnalysis
    out_dir: Path
    results_json: Path
    pairs_csv: Path
    categories_csv: Path
    report_html: Path
    report_pdf: Path | None
    pdf_method: str | None
    figures: tuple[Path, ...]


def run_agreement(
    first: ReaderReads,
    second: ReaderReads,
    out_dir: str | os.PathLike[str],
    *,
    early_window_days: tuple[int, int] = EARLY_WINDOW_DAYS,
    pdf: bool = True,
    use_chromium: bool = True,
    source_name: str = "",
    generated: dt.datetime | None = None,
) -> AgreementRun:
    """Analyse the agreement of ``first`` and ``second`` and write every output atomically into ``out_dir``.

    Raises
    ------
    InputError
        The reads have no scan in common.
    """
    from hepavol._atomic import write_text_atomic
    from hepavol.agreement.report import make_figures, render_html, write_html, write_pdf
    from hepavol.cohort._serialize import csv_text, json_text

    analysis = analyse_agreement(first, second, early_window_days=early_window_days)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_json = out / "results.json"
    write_text_atomic(results_json, json_text(analysis.results()))
    rows = [
        {"quantity": qa.quantity.key, "level": qa.quantity.level, "unit": qa.quantity.unit, "pair": label,
         "first": float(x), "second": float(y)}
        for qa in analysis.quantities.values()
        for label, x, y in zip(qa.labels, qa.first, qa.second)
    ]  # fmt: skip
    pairs_csv = out / "pairs.csv"
    write_text_atomic(pairs_csv, csv_text(rows, PAIRS_COLUMNS))
    categories_csv = out / "categories.csv"
    write_text_atomic(categories_csv, csv_text(analysis.category_rows(), CATEGORY_COLUMNS))
    figures = make_figures(analysis, out / "figures")
    report_html = out / "report.html"
    write_html(report_html, render_html(analysis, figures, source_name=source_name, generated=generated))
    report_pdf = pdf_method = None
    if pdf:
        report_pdf = out / "report.pdf"
        pdf_method = write_pdf(analysis, figures, report_html, report_pdf, use_chromium=use_chromium)
    paths: list[Path] = []
    for f in figures:
        paths += [f.png_path, f.svg_path]
    return AgreementRun(
        analysis=analysis,
        out_dir=out,
        results_json=results_json,
        pairs_csv=pairs_csv,
        categories_csv=categories_csv,
        report_html=report_html,
        report_pdf=report_pdf,
        pdf_method=pdf_method,
        figures=tuple(paths),
    )


def headline(run: AgreementRun) -> list[str]:
    """A few lines for the terminal."""
    a = run.analysis
    lines = [
        f"{a.design} agreement of {a.first} and {a.second}: {a.counts['patients']} patients, "
        f"{a.counts['scans_read_by_both']} scans read by both"
    ]
    for qa in a.quantities.values():
        e = qa.icc.icc_2_1
        icc_text = "ICC(2,1) –" if e.value is None else f"ICC(2,1) {e.value:.3f}"
        wcv = qa.within.wcv_percent
        lines.append(
            f"  {qa.quantity.key:24s} n {qa.n:5d}  {icc_text}  wCV {'–' if wcv is None else f'{wcv:.1f} %'}"
        )
    sdc = a.smallest_detectable_change["total_tumor_volume"]
    assert isinstance(sdc, dict)
    down, up = sdc.get("smallest_detectable_decrease_percent"), sdc.get("smallest_detectable_increase_percent")
    if isinstance(down, float) and isinstance(up, float):
        lines.append(f"smallest detectable change of the total tumour volume: {down:+.1f} % / {up:+.1f} %")
    k = a.recist_response.kappa.kappa
    if k.value is not None:
        lines.append(f"RECIST response per time point: kappa {k.value:.3f} (n {a.recist_response.kappa.n})")
    p = a.progression_recist
    if p.share is not None:
        lines.append(f"RECIST progression date differs in {p.count} of {p.n} patients")
    lines.append(f"{len(a.warnings)} warning(s); see results.json")
    return lines
