"""Bland–Altman figures and the agreement report (one self-contained HTML file and a PDF of it).

The report only formats what :mod:`hepavol.agreement.analysis` computed, in the style of the cohort report
(:mod:`hepavol.cohort.report`, whose CSS, table helper and Chromium printing it reuses). Patient ids appear
only in warnings (and in ``pairs.csv`` and ``categories.csv`` beside it), never in the tables or figures.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hepavol._atomic import write_text_atomic
from hepavol._version import __version__
from hepavol.agreement.analysis import AgreementAnalysis, ContinuousAgreement
from hepavol.cohort.plots import Figure, _pyplot, _save
from hepavol.cohort.report import _CSS, _e, _f, _figure_html, _table

__all__ = ["make_figures", "render_html", "render_section", "write_pdf"]


def _panel(ax: Any, qa: ContinuousAgreement, first: str, second: str) -> None:
    q = qa.quantity
    ba = qa.bland_altman
    ax.set_title(f"{q.label} ({q.level}, n = {qa.n})", loc="left", fontsize=10)
    if qa.n == 0 or ba.bias is None or ba.loa95 is None:
        ax.text(0.5, 0.5, ba.reason or "no pairs", ha="center", va="center", transform=ax.transAxes, wrap=True)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    a, b = qa.first, qa.second
    if q.log:
        x = np.exp((np.log(a) + np.log(b)) / 2.0)
        y = np.log(b) - np.log(a)
        ax.set_xscale("log")
        ax.set_xlabel(f"geometric mean of the two reads ({q.unit})")
        ax.set_ylabel(f"ln({second} / {first})")
        secondary = ax.secondary_yaxis("right", functions=(np.expm1, np.log1p))
        secondary.set_ylabel("ratio − 1")
    else:
        x = (a + b) / 2.0
        y = b - a
        ax.set_xlabel(f"mean of the two reads ({q.unit})")
        ax.set_ylabel(f"{second} − {first} ({q.unit})")
    ax.scatter(x, y, s=12, alpha=0.55, color="#0072B2", edgecolors="none")
    ax.axhline(0.0, color="#999999", lw=0.8)
    ax.axhline(ba.bias, color="#D55E00", lw=1.6, label=f"bias {ba.bias:.3g}")
    for k, v in enumerate(ba.loa95):
        ax.axhline(v, color="#D55E00", lw=1.1, ls="--", label="95 % limits of agreement" if k == 0 else None)
    for ci in (ba.lower_loa_ci95, ba.upper_loa_ci95):
        if ci is not None:
            ax.axhspan(ci[0], ci[1], color="#D55E00", alpha=0.08, lw=0)
    if ba.bias_ci95 is not None:
        ax.axhspan(ba.bias_ci95[0], ba.bias_ci95[1], color="#D55E00", alpha=0.15, lw=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", frameon=False, fontsize=8)


def make_figures(analysis: AgreementAnalysis, outdir: Path) -> list[Figure]:
    """The Bland–Altman figure (one panel per quantity), as PNG and SVG in ``outdir``."""
    plt = _pyplot()
    outdir.mkdir(parents=True, exist_ok=True)
    items = list(analysis.quantities.values())
    fig, axes = plt.subplots(3, 2, figsize=(11.5, 12.5))
    for ax, qa in zip(axes.ravel(), items):
        _panel(ax, qa, analysis.first, analysis.second)
    fig.tight_layout()
    caption = (
        f"Bland–Altman plots of {analysis.second} − {analysis.first}. Volumes on the log scale (difference of "
        "the natural logs against the geometric mean; the right axis shows the ratio − 1); diameters and percent "
        "changes on the linear scale. Solid: bias; dashed: bias ± 1.96 SD; shaded: 95 % CIs of the bias and of "
        "the limits (Bland & Altman 1999)."
    )
    return [_save(fig, outdir, "bland_altman", "Bland–Altman plots", caption)]


def _est(e: dict[str, Any], digits: int = 3) -> str:
    if e.get("value") is None:
        return "– (" + str(e.get("reason", "not estimable")) + ")"
    ci = e.get("ci95")
    text = _f(e["value"], digits)
    return text + (f" ({_f(ci[0], digits)} to {_f(ci[1], digits)})" if ci else "")


def _continuous_rows(analysis: AgreementAnalysis) -> list[list[str]]:
    rows = []
    for qa in analysis.quantities.values():
        d = qa.to_dict()
        ba = d["bland_altman"]
        assert isinstance(ba, dict)
        q = qa.quantity
        if ba.get("bias") is None:
            ba_text = "–"
        elif q.log:
            pc = ba["percent"]
            ba_text = f"{pc['bias']:+.1f} % ({pc['loa95'][0]:+.1f} to {pc['loa95'][1]:+.1f} %)"
        else:
            ba_text = f"{ba['bias']:+.2f} ({ba['loa95'][0]:+.2f} to {ba['loa95'][1]:+.2f}) {q.unit}"
        wcv = d["wcv"]
        rc = d["repeatability_coefficient"]
        assert isinstance(wcv, dict)
        assert isinstance(rc, dict)
        if rc.get("value") is None:
            rc_text = "–"
        elif q.log:
            rc_text = f"{rc['value']:.3f} log ({rc['percent'][0]:+.1f} / {rc['percent'][1]:+.1f} %)"
        else:
            rc_text = f"{rc['value']:.2f} {q.unit}"
        rows.append(
            [
                f"{q.label} [{q.unit}, {'log' if q.log else 'linear'}]",
                q.level,
                str(qa.n),
                _est(d["icc_2_1"]),  # type: ignore[arg-type]
                _est(d["icc_3_1"]),  # type: ignore[arg-type]
                ba_text,
                "–" if wcv.get("value") is None else f"{wcv['value']:.1f} %",
                rc_text,
            ]
        )
    return rows


def _kappa_html(title: str, d: dict[str, Any]) -> str:
    cats = d["categories"]
    rows = [[c, *[str(v) for v in row]] for c, row in zip(cats, d["table"])]
    excl = d.get("excluded") or {}
    excl_text = "; ".join(f"{v} {k}" for k, v in excl.items()) or "none"
    oa = d.get("observed_agreement")
    return (
        f"<h3>{_e(title)}</h3><p>n = {d['n']} follow-up time points; observed agreement "
        f"{'–' if oa is None else f'{100 * oa:.1f} %'}; Cohen's κ {_e(_est(d['kappa']))}; weighted κ "
        f"(quadratic) {_e(_est(d['weighted_kappa']))}. Left out: {_e(excl_text)}.</p>"
        + _table(["first \\ second", *cats], rows)
    )


def _methods(a: AgreementAnalysis) -> str:
    lo, hi = a.early_window_days
    return f"""
<h2>Methods</h2>
<p><b>Pairs.</b> Only scans (patient, date) read by both reads enter. Per lesion: lesions with the same id found by
both reads on a scan. Per scan: total tumour volume (all lesions, new ones included) and the sum of the long axes
of the target lesions (the reader's own targets at baseline; a target missing on a scan leaves the sum undefined).
Per patient: early change = 100·(early/baseline − 1), baseline = earliest scan, early scan = the first scan {lo}–{hi}
days after it (the study's 3–6-month window). Differences are {_e(a.second)} − {_e(a.first)}.</p>
<p><b>Continuous agreement.</b> Volumes are analysed on the natural-log scale (error proportional to size; Bartlett
&amp; Frost 2008), diameters and percent changes on the linear scale. ICC(2,1) (two-way random effects, absolute
agreement) and ICC(3,1) (two-way mixed, consistency) from the two-way ANOVA with F-based 95 % CIs (Shrout &amp;
Fleiss 1979; McGraw &amp; Wong 1996; as R <code>psych::ICC</code>). Bland–Altman bias and 95 % limits of agreement
(bias ± 1.96 SD), t-based CI of the bias and approximate CIs of the limits (Bland &amp; Altman 1999). Within-subject
SD s<sub>w</sub> = √(mean within-pair variance) (a systematic difference between the reads counts as error);
repeatability coefficient RC = 1.96·√2·s<sub>w</sub> = 2.77·s<sub>w</sub>; within-subject CV √(exp(s<sub>w</sub>²) − 1)
on the log scale, root mean square of per-pair CVs on the linear scale (undefined for changes that can be ≤ 0).
On the log scale the RC is the smallest detectable change in percent, 100·(exp(±RC) − 1).</p>
<p><b>Categories.</b> Per follow-up time point, RECIST 1.1 overall response (<code>hepavol.response.recist</code>;
lesions first seen after baseline are new lesions) and volumetric response (−65 %/+73 %, new lesions PD) from each
read alone. Cohen's κ and quadratic-weighted κ over CR &lt; PR &lt; SD &lt; PD with the large-sample variances of
Fleiss, Cohen &amp; Everitt (1969) and normal 95 % CIs; NE and non-target-only categories are left out. The share of
patients whose progression date changes with the read has an exact (Clopper–Pearson) 95 % CI.</p>
<p><b>Limitations.</b> Per-lesion and per-scan pairs from one patient are correlated but treated as independent,
so their CIs are too narrow; the per-patient quantities are independent. The ICC depends on the spread of the
cohort as much as on the measurement error; the limits of agreement and the RC do not.</p>
"""


def render_html(
    analysis: AgreementAnalysis,
    figures: Sequence[Figure],
    *,
    source_name: str = "",
    generated: dt.datetime | None = None,
) -> str:
    """The report as one HTML document (figures embedded)."""
    a = analysis
    when = (generated or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>hepavol reader agreement report</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Reader agreement: volumetry and RECIST 1.1 ({_e(a.design)})</h1>",
        f"<p class='meta'>Reads: {_e(a.first)} (first) and {_e(a.second)} (second) · source {_e(source_name)} · "
        f"generated {when} by hepavol {_e(__version__)} · all numbers are also in results.json; pairs in "
        "pairs.csv</p>",
    ]
    return "\n".join([*head, _body(a, figures), "</body></html>"])


def render_section(analysis: AgreementAnalysis, figures: Sequence[Figure]) -> str:
    """The report's content as a section for another report (the cohort report when a second reader exists):
    headings one level down (h3...), no document head; the host supplies the CSS (the cohort report's)."""
    body = _body(analysis, figures)
    for level in (4, 3, 2):
        body = body.replace(f"<h{level}>", f"<h{level + 1}>").replace(f"</h{level}>", f"</h{level + 1}>")
    return f"<h2>Reader agreement ({_e(analysis.design)}: {_e(analysis.first)} and {_e(analysis.second)})</h2>\n{body}"


def _body(analysis: AgreementAnalysis, figures: Sequence[Figure]) -> str:
    a = analysis
    res = a.results()
    sdc = a.smallest_detectable_change["total_tumor_volume"]
    assert isinstance(sdc, dict)
    ttv = a.quantities["total_tumor_volume_ml"]
    sld = a.quantities["sum_of_diameters_mm"]
    summary = [
        f"{a.design.capitalize()} agreement of {a.first} and {a.second}: {a.counts['patients']} patients, "
        f"{a.counts['scans_read_by_both']} scans read by both.",
        f"Total tumour volume: ICC(2,1) {_est(ttv.icc.icc_2_1.to_dict())}; wCV "
        f"{'–' if ttv.within.wcv_percent is None else f'{ttv.within.wcv_percent:.1f} %'}.",
        f"Sum of diameters: ICC(2,1) {_est(sld.icc.icc_2_1.to_dict())}; wCV "
        f"{'–' if sld.within.wcv_percent is None else f'{sld.within.wcv_percent:.1f} %'}.",
    ]
    down, up = sdc.get("smallest_detectable_decrease_percent"), sdc.get("smallest_detectable_increase_percent")
    if isinstance(down, float) and isinstance(up, float):
        summary.append(
            f"Smallest detectable change of the total tumour volume: {down:+.1f} % / {up:+.1f} % (volumetric "
            f"thresholds −65 % / +73 % are {'beyond' if sdc.get('pr_threshold_beyond_sdc') else 'within'} / "
            f"{'beyond' if sdc.get('pd_threshold_beyond_sdc') else 'within'} it)."
        )
    else:
        summary.append(f"Smallest detectable change not estimable: {sdc.get('reason')}.")
    pr = a.progression_recist
    if pr.share is not None and pr.ci95 is not None:
        summary.append(
            f"RECIST progression date differs between the reads in {pr.count} of {pr.n} patients "
            f"({100 * pr.share:.0f} %, 95 % CI {100 * pr.ci95[0]:.0f}–{100 * pr.ci95[1]:.0f} %)."
        )
    det = a.detection
    pv = a.progression_volumetric
    prog_rows = [
        [label, str(p.count), str(p.n), "–" if p.share is None else f"{100 * p.share:.1f} %",
         "–" if p.ci95 is None else f"{100 * p.ci95[0]:.1f} to {100 * p.ci95[1]:.1f} %"]
        for label, p in (("RECIST 1.1", pr), ("Volumetric", pv))
    ]  # fmt: skip
    sld_sdc = a.smallest_detectable_change["sum_of_diameters"]
    assert isinstance(sld_sdc, dict)
    warn_html = (
        "<div class='warn'><ul>" + "".join(f"<li>{_e(w)}</li>" for w in a.warnings) + "</ul></div>"
        if a.warnings
        else "<p>No warnings.</p>"
    )
    excluded = [
        [qa.quantity.label, "; ".join(f"{v} {k}" for k, v in qa.excluded.items()) or "none"]
        for qa in a.quantities.values()
    ]
    rc_mm = sld_sdc.get("repeatability_coefficient_mm")
    rc_pct = sld_sdc.get("repeatability_coefficient_percent_of_mean")
    parts = [
        "<div class='summary'><b>Summary</b><ul>" + "".join(f"<li>{_e(s)}</li>" for s in summary) + "</ul></div>",
        "<h2>1. Continuous measurements</h2><p>ICC with 95 % CI; Bland–Altman bias (95 % limits of agreement) of "
        f"{_e(a.second)} − {_e(a.first)}, as percent on the log scale; within-subject CV; repeatability "
        "coefficient.</p>",
        _table(
            ["Quantity", "level", "n", "ICC(2,1)", "ICC(3,1)", "Bland–Altman bias (LoA)", "wCV", "RC"],
            _continuous_rows(a),
            numeric_from=2,
            nowrap=False,
        ),
        _table(["Quantity", "pairs left out"], excluded, numeric_from=9),
        *(_figure_html(f) for f in figures),
        "<h2>2. Lesion detection</h2>",
        f"<p>Lesions on a scan found by both reads: {det['found_by_both']}; by {_e(a.first)} only: "
        f"{det['found_by_first_only']}; by {_e(a.second)} only: {det['found_by_second_only']}; positive agreement "
        f"{_e(_f(det['positive_agreement'] if isinstance(det['positive_agreement'], float) else None))}.</p>",
        "<h2>3. Response categories per follow-up time point</h2>",
        _kappa_html("RECIST 1.1 overall response", res["recist_response"]),  # type: ignore[arg-type]
        _kappa_html("Volumetric response (−65 % / +73 %)", res["volumetric_response"]),  # type: ignore[arg-type]
        "<h3>Progression date</h3>",
        _table(["Criteria", "date changes", "patients", "share", "95 % CI (exact)"], prog_rows),
        "<h2>4. Smallest detectable change</h2>",
        "<p>Total tumour volume: "
        + (
            f"RC {sdc['repeatability_coefficient_log']:.3f} on the log scale, i.e. a change between "
            f"{down:+.1f} % and {up:+.1f} % is within the measurement error of the reads. The volumetric thresholds "
            f"−65 % (PR) and +73 % (PD) {'lie beyond' if sdc.get('pr_threshold_beyond_sdc') else 'do NOT lie beyond'}"
            f" / {'lie beyond' if sdc.get('pd_threshold_beyond_sdc') else 'do NOT lie beyond'} it."
            if isinstance(down, float) and isinstance(up, float)
            else _e(str(sdc.get("reason")))
        )
        + "</p><p>Sum of diameters: "
        + (
            f"RC {rc_mm:.1f} mm ({rc_pct:.1f} % of the mean sum); RECIST's PD needs +5 mm and +20 %, PR −30 %: "
            f"the 5 mm criterion is {'beyond' if sld_sdc.get('pd_threshold_mm_beyond_sdc') else 'within'} the "
            "measurement error of the reads."
            if isinstance(rc_mm, float) and isinstance(rc_pct, float)
            else _e(str(sld_sdc.get("reason")))
        )
        + "</p>",
        "<h2>5. Warnings</h2>",
        warn_html,
        _methods(a),
    ]
    return "\n".join(p for p in parts if p)


def write_pdf(
    analysis: AgreementAnalysis,
    figures: Sequence[Figure],
    html_path: Path,
    pdf_path: Path,
    *,
    use_chromium: bool = True,
    timeout_s: float = 120.0,
) -> str:
    """Write the PDF of the report: ``"chromium"`` (printed from the HTML) or ``"matplotlib"`` (fallback: the
    report's text and figures, :mod:`hepavol.report_pdf`)."""
    from hepavol.report_pdf import write_report_pdf

    title = "hepavol reader agreement report"
    return write_report_pdf(
        html_path, pdf_path, figures, title=title, use_chromium=use_chromium, timeout_s=timeout_s
    )


def write_html(path: Path, text: str) -> None:
    """Write the HTML report atomically."""
    write_text_atomic(path, text)
