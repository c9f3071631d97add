"""The cohort report: one self-contained HTML file (figures embedded as base64 PNG) and a PDF of it.

The report only formats what :mod:`hepavol.cohort.analysis` computed. The PDF is printed from the HTML by headless
Chromium when a ``chromium`` (or ``chromium-browser``/``google-chrome``) executable is on the PATH; otherwise a
PDF of the same tables and figures is written with matplotlib's ``PdfPages``. :func:`write_pdf` says which.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hepavol._atomic import write_text_atomic
from hepavol._version import __version__
from hepavol.cohort.analysis import CohortAnalysis
from hepavol.cohort.derive import DerivedPatient
from hepavol.cohort.describe import baseline_characteristics
from hepavol.cohort.plots import Figure
from hepavol.cohort.stats import CoxResult, SpearmanResult

_CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 14px; color: #222; max-width: 1180px;
       margin: 24px auto; padding: 0 24px; line-height: 1.45; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 19px; border-bottom: 2px solid #0072B2;
     padding-bottom: 3px; margin-top: 34px; } h3 { font-size: 16px; margin-top: 22px; }
.meta { color: #555; font-size: 12.5px; }
table { border-collapse: collapse; margin: 10px 0 14px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef3f8; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.nw { white-space: nowrap; }
figure { margin: 16px 0 22px; page-break-inside: avoid; break-inside: avoid; }
figure img { max-width: 100%; border: 1px solid #e3e3e3; }
figcaption { font-size: 12.5px; color: #444; margin-top: 4px; }
.summary { background: #f4f8fb; border-left: 4px solid #0072B2; padding: 10px 16px; }
.na { color: #7a3300; font-size: 12.5px; margin: -6px 0 12px; }
.warn { background: #fff6e5; border-left: 4px solid #E69F00; padding: 8px 16px; }
.flow { display: flex; flex-direction: column; align-items: flex-start; gap: 0; margin: 8px 0 16px; }
.flowrow { display: flex; align-items: center; gap: 18px; }
.box { border: 2px solid #0072B2; border-radius: 6px; padding: 6px 12px; min-width: 300px; background: #fff; }
.excl { border: 1px dashed #D55E00; border-radius: 6px; padding: 6px 12px; font-size: 12.5px; color: #7a3300; }
.arrow { margin-left: 150px; color: #0072B2; font-size: 20px; line-height: 1.1; }
code { font-size: 12.5px; }
@page { size: A4; margin: 12mm; }
@media print { body { margin: 0 auto; max-width: none; padding: 0; font-size: 11.5px; }
  table { font-size: 10.5px; max-width: 100%; } h2 { page-break-after: avoid; break-after: avoid; }
  tr, .flow, .summary { break-inside: avoid; } }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _f(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    if p < 0.0001:
        return f"{p:.1e}"
    return f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def _ci(ci: Sequence[float] | None, digits: int = 3) -> str:
    if not ci:
        return "–"
    return f"{_f(ci[0], digits)} to {_f(ci[1], digits)}"


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, numeric_from: int = 1, nowrap: bool = True
) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for j, c in enumerate(row):
            cls = (' class="num nw"' if nowrap else ' class="num"') if j >= numeric_from else ""
            cells.append(f"<td{cls}>{_e(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cox_rows(items: Sequence[tuple[str, CoxResult, float, str]]) -> list[list[str]]:
    rows = []
    for label, r, per, per_label in items:
        scaled = r.hr_per(per)
        rows.append(
            [
                label,
                f"{r.n} / {r.events}",
                _f(r.coef, 5),
                _f(r.se, 5),
                _f(r.hr, 4),
                _ci(r.ci95, 4),
                f"{scaled[0]:.3f} ({scaled[1][0]:.3f} to {scaled[1][1]:.3f}) {per_label}" if scaled else "–",
                _p(r.p),
                _p(r.ph_p),
            ]
        )
    return rows


_COX_HEADERS = [
    "Model",
    "n / events",
    "coef",
    "SE",
    "HR",
    "95 % CI",
    "HR (95 % CI) rescaled",
    "p (Wald)",
    "PH test p",
]


def _not_estimable(items: Sequence[tuple[str, Any]]) -> str:
    """One line per result of a table that could not be estimated in full (its note says why); "" if none."""
    lines = [
        f"<b>{_e(label)}</b>: {_e(r.note)}"
        for label, r in items
        if r.note and ("not estimable" in r.note or "not computed" in r.note)
    ]
    if not lines:
        return ""
    return "<p class='na'>Not estimable (shown as –):<br>" + "<br>".join(lines) + "</p>"


def _cox_na(items: Sequence[tuple[str, CoxResult, float, str]]) -> str:
    return _not_estimable([(label, r) for label, r, _, _ in items])


def _flow_html(a: CohortAnalysis) -> str:
    f = a.flow
    mods = ", ".join(f"{k} {v}" for k, v in f.by_modality.items())
    excl = []
    if f.no_early_scan:
        excl.append(f"{f.no_early_scan} without an early scan")
    if f.event_before_landmark:
        excl.append(f"{f.event_before_landmark} with progression or death on/before the early scan")
    if f.censored_before_landmark:
        excl.append(f"{f.censored_before_landmark} censored on/before the early scan")
    if f.volume_change_undefined:
        excl.append(f"{f.volume_change_undefined} with a baseline volume of 0")
    excl_html = "<br>".join(_e(x) for x in excl) or "none excluded"
    fu = (
        f"median follow-up after the landmark {f.median_landmark_follow_up_days / 30.4375:.1f} months (reverse KM)"
        if f.median_landmark_follow_up_days
        else "median follow-up not estimable"
    )
    return f"""
<div class="flow">
  <div class="box"><b>{f.total}</b> patients in the cohort table ({_e(mods)})</div>
  <div class="flowrow"><div class="arrow">&darr;</div><div class="excl">Excluded from the landmark set:<br>{excl_html}</div></div>
  <div class="box"><b>{f.landmark_n}</b> patients in the landmark set (alive and progression-free at their early
    scan), <b>{f.landmark_events}</b> PFS events; {_e(fu)}</div>
  <div class="arrow">&darr;</div>
  <div class="box"><b>{f.landmark_sld_available}</b> with a sum of diameters at both scans (SLD models and the
    paired C-index comparison)</div>
</div>"""


def _figure_html(fig: Figure) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    return (
        f'<figure id="fig-{_e(fig.name)}"><img alt="{_e(fig.title)}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{_e(fig.title)}.</b> {_e(fig.caption)} (Files: {_e(fig.png_path.name)}, "
        f"{_e(fig.svg_path.name)}.)</figcaption></figure>"
    )


def _cindex_items(a: CohortAnalysis) -> list[tuple[str, Any]]:
    return [
        ("Harrell's C, volume change", a.cindex_volume_change),
        ("Harrell's C, SLD change", a.cindex_sld_change),
        ("C difference (volume − SLD)", a.cindex_difference),
    ]


def _logrank_items(a: CohortAnalysis) -> list[tuple[str, Any]]:
    return [("Log-rank, volumetric TGR", a.logrank_tgr_volume), ("Log-rank, RECIST TGR", a.logrank_tgr_recist)]


def _cindex_rows(a: CohortAnalysis) -> list[list[str]]:
    rows = []
    for label, r in (("Volume change", a.cindex_volume_change), ("SLD change", a.cindex_sld_change)):
        rows.append(
            [
                label,
                str(r.n),
                str(r.comparable_pairs),
                _f(r.c),
                _ci(r.ci95),
                _f(r.auc_12_months),
                _f(r.auc_24_months),
            ]
        )
    d = a.cindex_difference
    rows.append(["Difference (volume − SLD)", str(d.n), "", _f(d.difference), _ci(d.ci95), "", ""])
    return rows


def _logrank_rows(a: CohortAnalysis) -> list[list[str]]:
    rows = []
    for label, r in (("Volumetric TGR", a.logrank_tgr_volume), ("RECIST TGR", a.logrank_tgr_recist)):
        rows.append(
            [
                label,
                f"{r.n_high} / {r.events_high}",
                f"{r.n_low} / {r.events_low}",
                _f(r.chisq, 3),
                _p(r.p),
                f"{_f(r.hr, 2)} ({_ci(r.hr_ci95, 2)})",
            ]
        )
    return rows


def _spearman_rows(rs: Sequence[tuple[str, SpearmanResult]]) -> list[list[str]]:
    return [[label, str(r.n), _f(r.rho), _ci(r.ci95), _p(r.p)] for label, r in rs]


def _spearmans(a: CohortAnalysis) -> list[tuple[str, SpearmanResult]]:
    return [
        ("Baseline volume vs CgA", a.spearman_baseline_volume_vs_cga),
        ("Number of lesions vs CgA", a.spearman_lesion_count_vs_cga),
        ("Volumetric TGR vs Ki-67", a.spearman_tgr_volume_vs_ki67),
        ("RECIST TGR vs Ki-67", a.spearman_tgr_recist_vs_ki67),
    ]


def _modality_section(a: CohortAnalysis) -> str:
    if not a.by_modality:
        return ""
    parts = [
        "<h2>7. Analyses by modality</h2><p>The protocol keeps the CT and MRI cohorts separate ('combined "
        "evaluation being not reliable'). The same analyses on each modality:</p>"
    ]
    for sub in a.by_modality:
        parts.append(f"<h3>{_e(sub.label)}: {sub.flow.total} patients, landmark set {sub.landmark_n} "
                     f"({sub.landmark_events} events)</h3>")  # fmt: skip
        cox_items = [
            ("Volume change, landmark PFS", sub.cox_volume_change, 10.0, "per 10 pp"),
            ("SLD change, landmark PFS", sub.cox_sld_change, 10.0, "per 10 pp"),
            ("log2 baseline volume, TTP", sub.cox_log2_baseline_volume_ttp, 1.0, "per doubling"),
        ]
        parts.append(_table(_COX_HEADERS, _cox_rows(cox_items)))
        parts.append(_cox_na(cox_items))
        parts.append(
            _table(["Score", "n", "pairs", "Harrell's C", "95 % CI", "AUC 12 mo", "AUC 24 mo"], _cindex_rows(sub))
        )
        parts.append(_not_estimable(_cindex_items(sub)))
        parts.append(
            _table(
                ["TGR ≥ cut-off", "high n / events", "low n / events", "χ²", "p", "HR (95 % CI)"],
                _logrank_rows(sub),
            )
        )
        parts.append(_not_estimable(_logrank_items(sub)))
        parts.append(_table(["Correlation", "n", "ρ", "95 % CI", "p"], _spearman_rows(_spearmans(sub))))
        parts.append(_not_estimable(_spearmans(sub)))
        mw = sub.mannwhitney_baseline_volume_by_extra_abdominal
        parts.append(
            f"<p>Baseline volume by extra-abdominal disease: U = {_f(mw.u, 1)}, p = {_p(mw.p)} "
            f"(n = {mw.n_first} / {mw.n_second}).</p>"
        )
        parts.append(_not_estimable([("Mann–Whitney", mw)]))
    return "\n".join(parts)


def _methods(a: CohortAnalysis) -> str:
    o = a.options
    return f"""
<h2>8. Methods</h2>
<p><b>Variables.</b> Early change = 100·(early/baseline − 1) of the total liver tumour volume and of the sum of
target-lesion diameters (SLD). Tumour growth rate (TGR, Ferté et al., Clin Cancer Res 2014): 100·(exp(ln(V<sub>t</sub>/V<sub>0</sub>)/t) − 1)
%/month for volumes and 100·(exp(3·ln(D<sub>t</sub>/D<sub>0</sub>)/t) − 1) for diameters, t in months = days/30.4375.
Response categories at the early scan: RECIST 1.1 target-lesion rules (PR ≤ −30 %; PD ≥ +20 % and ≥ +5 mm;
Eisenhauer et al. 2009) and volumetric thresholds −65 %/+73 % (sphere equivalents). Hepatic tumour load =
baseline tumour volume / whole-liver volume, ENETS classes ≤10, 11–25, 26–50, &gt;50 %.</p>
<p><b>Primary endpoint: landmark analysis.</b> To avoid guarantee-time bias (Anderson et al., JCO 1983;
Giobbie-Hurder et al., JCO 2013) the analysis starts at each patient's early scan: the landmark set holds the
patients whose PFS date is after their early scan; time = days from the early scan to progression/death (event)
or to the last adequate scan (censored). Kaplan–Meier estimates with log-log pointwise 95 % CIs (lifelines);
two-group log-rank tests (lifelines <code>logrank_test</code>, as R <code>survdiff</code>) between TGR ≥
{o.tgr_cutoff_percent_per_month:g} and &lt; {o.tgr_cutoff_percent_per_month:g} %/month, the pre-specified GREPONET
cut-off (Lamarca et al., The Oncologist 2019). Univariable Cox proportional-hazards models with Efron ties
(lifelines <code>CoxPHFitter</code>, Newton–Raphson to 1e-10, as R <code>coxph</code>), Wald 95 % CIs and p values;
the % changes enter linearly, coefficients per 1 percentage point (HR per 10 pp shown for readability).
Proportional hazards were checked by the Schoenfeld-residual (Grambsch–Therneau) score test with the
Kaplan–Meier time transform, computed as R survival ≥ 3.0 <code>cox.zph(fit, transform="km")</code> (α =
{o.ph_alpha:g}).</p>
<p><b>Discrimination.</b> Harrell's C with the early % change as the risk score (higher = worse; pairs comparable
when the shorter time is an event; tied scores count ½; as scikit-survival <code>concordance_index_censored</code>
and R <code>concordance</code>). 95 % CIs by the percentile bootstrap and the difference C(volume) − C(SLD) by a
paired percentile bootstrap ({o.bootstrap_resamples} resamples of patients, NumPy seed {o.seed}), on the landmark
patients with both changes. Time-dependent cumulative/dynamic AUC with inverse-probability-of-censoring weights
(Uno 2007; scikit-survival <code>cumulative_dynamic_auc</code>) at {o.auc_months[0]:g} and {o.auc_months[1]:g}
months after the landmark.</p>
<p><b>Secondary endpoints.</b> Time to progression from the baseline scan (all patients) by univariable Cox on
log2(baseline tumour volume) (HR per doubling). Spearman rank correlations (scipy <code>spearmanr</code>; p from
the t approximation as R <code>cor.test(method="spearman", exact=FALSE)</code>) with Fisher-z 95 % CIs,
{_e(a.spearman_baseline_volume_vs_cga.ci_method)}. Baseline volume by extra-abdominal disease: two-sided
Mann–Whitney U test (scipy <code>mannwhitneyu</code>, normal approximation with continuity and tie correction,
as R <code>wilcox.test(exact=FALSE)</code>); U is that of the extra-abdominal group; rank-biserial effect
2U/(n<sub>1</sub>n<sub>2</sub>) − 1. No adjustment for multiplicity across the secondary endpoints.</p>
<p><b>Checks.</b> Events per variable below {o.min_events_per_variable:g} (Peduzzi et al., J Clin Epidemiol 1995)
and proportional-hazards violations are listed under Warnings. The statistics were verified against R
(survival 3.5) and published examples in hepavol's test suite.</p>
"""


_LIMITATIONS = """
<h2>9. Limitations a reviewer will raise</h2>
<ul>
<li><b>Incorporation bias.</b> PFS is defined by RECIST, so the RECIST (SLD) change is part of the outcome it
predicts. The landmark analysis removes progression <i>at</i> the early scan, but later RECIST progression is still
measured on the same target lesions, which favours SLD over volume. An independently read PFS or overall survival
is the sensitivity endpoint that removes it.</li>
<li><b>Events per variable.</b> With {events} landmark events, at most {max_params} parameter(s) can be estimated
reliably (≈10 events per parameter, Peduzzi 1995); all models here are univariable and unadjusted (no grade/Ki-67,
hepatic load or treatment adjustment).</li>
<li><b>Landmark selection.</b> Patients who progressed or were censored before their early scan are excluded; the
results apply to patients progression-free at 3–6 months. The early scan date varies between patients.</li>
<li><b>Categories.</b> Response categories use target-lesion/total-volume change only; non-target and new-lesion
information is not in the cohort table. No consensus volumetric threshold exists (−65 %/+73 % are sphere
equivalents of RECIST, not validated for NET liver metastases).</li>
<li><b>Measurement error.</b> Reader variability of volumetry and RECIST is not modelled; TGR has modest
inter-reader agreement in NET (Lin's CCC 0.52, Dromain et al. 2021).</li>
<li><b>Modalities.</b> CT and MRI volumes are not interchangeable; pooled results are shown next to per-modality
results but the protocol analyses them separately.</li>
<li><b>CgA.</b> Chromogranin A is raised by proton-pump inhibitors, renal impairment and atrophic gastritis, and
assays differ; rank correlation is used, but confounding remains.</li>
<li><b>Multiplicity.</b> Several secondary tests without correction; p values are descriptive.</li>
<li><b>Interval censoring.</b> Progression is only known to lie between two scans; the scan date is used.</li>
</ul>
"""


def _h2h_section(a: CohortAnalysis, figs: dict[str, Figure]) -> str:
    """The head-to-head section: one table per population, the two figures, repeatability and GREPONET."""
    h = a.head_to_head
    if h is None:
        return ""
    out = [
        "<h2>Head to head: every early criterion</h2>",
        "<p>Landmark set (PFS from the early scan). Each criterion's score (higher = riskier) gives the Cox HR per "
        "unit and Harrell's C; its pre-specified cut-off gives the HR of the high-risk side and the Kaplan–Meier "
        "proportion progressing by 12 months on each side. Δ C is against the RECIST 1.1 category on the same "
        f"patients (paired bootstrap, {h.resamples} resamples, seed {h.seed}). CT and MR are analysed separately"
        + (" and pooled (--pool-modalities)." if h.pooled else "; pooled only with --pool-modalities.")
        + "</p>",
    ]
    headers = ["Criterion", "cut-off (high risk)", "n / events", "HR per unit (95 % CI)", "HR at cut-off (95 % CI)",
               "C (95 % CI)", "Δ C vs RECIST (95 % CI)", "AUC 12 mo", "progressing by 12 mo: high / low"]  # fmt: skip
    for pop in h.populations:
        out.append(
            f"<h3>{_e(pop.population)}: {pop.landmark_n} landmark patients, {pop.landmark_events} events</h3>"
        )
        if not pop.criteria:
            out.append(f"<p class='na'>{_e(pop.note or 'not estimable')}</p>")
            continue
        rows, notes = [], []
        for c in pop.criteria:
            per = c.cox.hr_per(c.hr_units) if c.cox is not None else None
            hr = (
                f"{per[0]:.2f} ({per[1][0]:.2f}–{per[1][1]:.2f}) per {c.hr_units:g} {_unit_name(c.unit)}"
                if per
                else "–"
            )
            cut = c.cox_cutoff
            hr_cut = f"{_f(cut.hr, 2)} ({_ci(cut.ci95, 2)})" if cut is not None and cut.hr is not None else "–"
            ci = c.cindex
            cc = f"{_f(ci.c)} ({_ci(ci.ci95)})" if ci is not None and ci.c is not None else "–"
            d = c.cindex_difference_vs_recist
            dc = (
                "reference"
                if c.criterion == "recist_category"
                else (f"{_f(d.difference)} ({_ci(d.ci95)})" if d is not None and d.difference is not None else "–")
            )
            prog = c.progression_12_months
            shown = []
            for k in ("high", "low"):
                value = prog[k].proportion if k in prog else None
                shown.append("–" if value is None else f"{100 * value:.0f} %")
            pr = " / ".join(shown)
            rows.append([c.label, c.cutoff, f"{c.n} / {c.events}", hr, hr_cut, cc, dc, _f(c.auc_12_months), pr])
            if c.note:
                notes.append(f"{c.label}: {c.note}")
        out.append(_table(headers, rows))
        if notes:
            out.append("<p class='na'>" + "<br>".join(_e(n) for n in notes) + "</p>")
    for name in ("h2h_forest", "h2h_cindex"):
        if name in figs:
            out.append(_figure_html(figs[name]))
    rep = h.extra.get("repeatability")
    if rep:
        out.append(
            f"<h3>Measurement uncertainty (within-patient CV {rep['cv_percent']:g} %)</h3><p>Repeatability "
            f"coefficient of a volume ratio 1.96·√2·σ = {rep['rc_log']:.3f} on the log scale: an early volume "
            f"change between {rep['sdc_decrease_percent']:.1f} % and +{rep['sdc_increase_percent']:.1f} % is "
            "below the smallest detectable change. Each patient's 95 % intervals of volume change and volumetric "
            "TGR are in derived.csv.</p>" + _repeatability_source_html(a.repeatability_source)
        )
        rrows = []
        for pop, e in rep["populations"].items():
            for key, r in e["without_below_sdc"].items():
                cox = r["cox_cutoff"] or {}
                rrows.append([pop, key, f"{e['volume_change_below_sdc'] if key != 'target_volume_change_percent' else e['target_volume_change_below_sdc']} of {e['landmark_n']}",
                              f"{r['n']} / {r['events']}", f"{_f(cox.get('hr'), 2)} ({_ci(cox.get('ci95'), 2)})",
                              r["note"] or ""])  # fmt: skip
        out.append(_table(["Population", "criterion", "below the SDC", "n / events without them",
                           "HR at cut-off without them", "note"], rrows))  # fmt: skip
        out.append(reader_agreement_html(a.repeatability_source))
    gp = h.extra.get("greponet")
    if gp:
        out.append(_greponet_html(gp))
    return "\n".join(out)


def _h2h_shows_repeatability(a: CohortAnalysis) -> bool:
    """Whether the head-to-head section has the measurement-uncertainty part (and the reader agreement in it)."""
    return a.head_to_head is not None and bool(a.head_to_head.extra.get("repeatability"))


def _repeatability_source_html(source: dict[str, Any] | None) -> str:
    if not source:
        return ""
    if source.get("kind") == "agreement":
        readers = source.get("readers") or {}
        who = f" (readers {readers.get('first')} and {readers.get('second')})" if readers else ""
        return (
            f"<p>CV source: the {_e(source.get('design') or 'reader')} agreement analysis "
            f"{_e(Path(str(source['file'])).name)}{_e(who)}, wCV of the total tumour volume over "
            f"{_e(source.get('n'))} scans.</p>"
        )
    return "<p>CV source: given with --repeatability-cv.</p>"


#: The rows of the cohort report's reader-agreement table: results.json key → label.
AGREEMENT_LABELS = {
    "total_tumor_volume_ml": "Total tumour volume (per scan)",
    "sum_of_diameters_mm": "Sum of target diameters (per scan)",
    "volume_change_percent": "Early volume change (per patient)",
    "sld_change_percent": "Early change of the sum of diameters (per patient)",
}
_CATEGORY_LABELS = {"recist_response": "RECIST 1.1 response", "volumetric_response": "Volumetric response"}


def _estimate(e: dict[str, Any] | None, digits: int, *, ci: bool = True) -> str:
    if not e or e.get("value") is None:
        return "–"
    return f"{_f(e['value'], digits)} ({_ci(e.get('ci95'), digits)})" if ci else _f(e["value"], digits)


def _on_scale(values: Sequence[Any], scale: str | None, unit: str | None) -> str:
    """A difference (and its limits) as the agreement analysis gives it: ``bias (low to high) unit``, on the log
    scale (ln ratio, 3 decimals) or in the quantity's unit (2 decimals)."""
    if not values or values[0] is None:
        return "–"
    digits, shown = (3, "ln") if scale == "log" else (2, unit or "")
    text = _f(values[0], digits)
    if len(values) == 3 and values[1] is not None and values[2] is not None:
        text += f" ({_f(values[1], digits)} to {_f(values[2], digits)})"
    return f"{text} {shown}".rstrip()


def reader_agreement_html(source: dict[str, Any] | None) -> str:
    """The "Reader agreement" subsection from a repeatability source that carries an agreement summary
    (:func:`hepavol.cohort.uncertainty.agreement_summary`); "" for any other source."""
    summary = source.get("agreement") if source else None
    if source is None or not isinstance(summary, dict):
        return ""
    readers = source.get("readers") or {}
    who = f"{readers.get('first')} and {readers.get('second')}" if readers else "two reads"
    design = str(source.get("design") or "reader")
    out = [
        f"<h3>Reader agreement</h3><p>{_e(design[:1].upper() + design[1:])} agreement of {_e(who)} "
        f"({_e(Path(str(source.get('file'))).name)}, as hepavol agreement computes it). Bland–Altman "
        "differences are second − first; on the log scale (ln ratio) for volumes.</p>"
    ]
    rows, notes = [], []
    for key, label in AGREEMENT_LABELS.items():
        q = summary["quantities"].get(key)
        if not q:
            continue
        ba = q.get("bland_altman") or {}
        scale, unit = ba.get("scale") or q.get("scale"), q.get("unit")
        loa = ba.get("loa95") or (None, None)
        bias = _on_scale([ba.get("bias"), *loa], scale, unit)
        wcv = q.get("wcv") or {}
        rc = q.get("repeatability_coefficient") or {}
        rc_text = _on_scale([rc.get("value")], "log" if rc.get("unit") == "log" else "linear", rc.get("unit"))
        rows.append([label, q.get("n"), _estimate(q.get("icc_2_1"), 3), _estimate(q.get("icc_3_1"), 3, ci=False),
                     bias, "–" if wcv.get("value") is None else f"{_f(wcv['value'], 1)} %", rc_text])  # fmt: skip
        for name in ("icc_2_1", "wcv"):
            reason = (q.get(name) or {}).get("reason")
            if reason:
                notes.append(f"{label}, {'ICC' if name == 'icc_2_1' else 'wCV'}: {reason}")
    out.append(
        _table(["Quantity", "n", "ICC(2,1) [95 % CI]", "ICC(3,1)", "BA bias (95 % LoA)", "wCV", "RC"], rows)
    )
    krows = []
    for key, label in _CATEGORY_LABELS.items():
        c = summary["categories"].get(key)
        if not c:
            continue
        krows.append([label, c.get("n"), _f(c.get("observed_agreement"), 3), _estimate(c.get("kappa"), 3),
                      _estimate(c.get("weighted_kappa"), 3)])  # fmt: skip
        reason = (c.get("kappa") or {}).get("reason")
        if reason:
            notes.append(f"{label}, κ: {reason}")
    if krows:
        out.append(_table(["Response per follow-up time point", "n", "observed agreement", "Cohen's κ (95 % CI)",
                           "weighted κ (95 % CI)"], krows))  # fmt: skip
    changes = summary.get("progression_date_changes") or {}
    lines = []
    for key, label in (("recist", "RECIST 1.1"), ("volumetric", "volumetric")):
        c = changes.get(key)
        if c and c.get("n"):
            share = c.get("share")
            lines.append(f"the {label} progression date changes with the reader in {c.get('count')} of {c.get('n')} "
                         f"patients ({'–' if share is None else _f(100 * share, 1)} %)")  # fmt: skip
    sdc = (summary.get("smallest_detectable_change") or {}).get("total_tumor_volume")
    if isinstance(sdc, dict) and sdc.get("smallest_detectable_increase_percent") is not None:
        down, up = sdc["smallest_detectable_decrease_percent"], sdc["smallest_detectable_increase_percent"]
        pr, pd = sdc.get("volumetric_pr_threshold_percent"), sdc.get("volumetric_pd_threshold_percent")
        beyond = {True: "beyond it", False: "within it", None: "–"}
        lines.append(
            f"the smallest detectable change of the total tumour volume is {_f(down, 1)} % / +{_f(up, 1)} %: the "
            f"volumetric PR threshold {_f(pr, 0)} % lies {beyond[sdc.get('pr_threshold_beyond_sdc')]}, the PD "
            f"threshold +{_f(pd, 0)} % {beyond[sdc.get('pd_threshold_beyond_sdc')]}"
        )
    if lines:
        text = "; ".join(lines)
        out.append("<p>" + _e(text[:1].upper() + text[1:]) + ".</p>")
    if notes:
        out.append("<p class='na'>Not estimable (shown as –):<br>" + "<br>".join(_e(n) for n in notes) + "</p>")
    return "\n".join(out)


def _unit_name(unit: str) -> str:
    """'per 1 pp' → 'pp', 'per class' → 'class' (the report prints 'per 10 pp')."""
    return unit.removeprefix("per 1 ").removeprefix("per ")


def _greponet_html(gp: dict[str, Any]) -> str:
    rows = []
    for pop, g in gp["populations"].items():
        roc = g.get("roc") or {}
        youden = g.get("youden") or {}
        rows.append([
            pop, f"{g['n']} ({g['progressed']} progressed)",
            f"{_f(roc.get('auc'))} ({_ci(roc.get('ci95'))})",
            f"{_f(youden.get('cutoff'), 2)} ({_ci(youden.get('ci95'), 2)})",
            _f(youden.get("sensitivity"), 2), _f(youden.get("specificity"), 2), g.get("note") or "",
        ])  # fmt: skip
    return (
        "<h3>GREPONET replication (Lamarca et al., Oncologist 2019)</h3><p>Diameter TGR at 3 ± 1 months (early "
        "scans 61–121 days after baseline), ROC for progression within 12 months of baseline (patients censored "
        "earlier are left out), AUC with DeLong 95 % CI, and the cut-off maximising Youden's index with a "
        "bootstrap 95 % CI, next to the published 0.8 %/month (AUC 0.74).</p>"
        + _table(
            [
                "Population",
                "n",
                "AUC (DeLong 95 % CI)",
                "Youden cut-off %/month (bootstrap 95 % CI)",
                "sensitivity",
                "specificity",
                "note",
            ],
            rows,
        )
    )


def render_html(
    analysis: CohortAnalysis,
    patients: Sequence[DerivedPatient],
    figures: Sequence[Figure],
    *,
    source_name: str = "",
    generated: dt.datetime | None = None,
) -> str:
    """The report as one HTML document (figures embedded)."""
    a = analysis
    when = (generated or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    figs = {f.name: f for f in figures}
    cv, cs, d = a.cindex_volume_change, a.cindex_sld_change, a.cindex_difference
    hv = a.cox_volume_change.hr_per(10.0)
    summary_items = [
        f"Landmark set: {a.landmark_n} patients, {a.landmark_events} PFS events.",
        (
            f"Early volume change: HR {hv[0]:.2f} per +10 pp (95 % CI {hv[1][0]:.2f}–{hv[1][1]:.2f}), "
            f"p {_p(a.cox_volume_change.p)}."
            if hv
            else "Early volume change: Cox model not estimable."
        ),
        f"Harrell's C: volume {_f(cv.c)} vs SLD {_f(cs.c)}; difference {_f(d.difference)} "
        f"(paired bootstrap 95 % CI {_ci(d.ci95)}).",
        f"Log-rank, volumetric TGR ≥ {a.options.tgr_cutoff_percent_per_month:g} %/month: χ² "
        f"{_f(a.logrank_tgr_volume.chisq, 2)}, p {_p(a.logrank_tgr_volume.p)}.",
    ]
    headers, rows = baseline_characteristics(patients)
    warn_html = (
        "<div class='warn'><ul>" + "".join(f"<li>{_e(w)}</li>" for w in a.warnings) + "</ul></div>"
        if a.warnings
        else "<p>No warnings.</p>"
    )
    for sub in a.by_modality:
        if sub.warnings:
            warn_html += (
                f"<h3>{_e(sub.label)}</h3><div class='warn'><ul>"
                + "".join(f"<li>{_e(w)}</li>" for w in sub.warnings)
                + "</ul></div>"
            )
    mw = a.mannwhitney_baseline_volume_by_extra_abdominal
    primary = [
        ("Volume change (per 1 pp)", a.cox_volume_change, 10.0, "per 10 pp"),
        ("SLD change (per 1 pp)", a.cox_sld_change, 10.0, "per 10 pp"),
    ]
    ttp = [("log2 baseline volume", a.cox_log2_baseline_volume_ttp, 1.0, "per doubling")]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>hepavol cohort report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Early volumetric vs RECIST 1.1 change and progression-free survival</h1>",
        f"<p class='meta'>Cohort table: {_e(source_name)} · generated {when} by hepavol {_e(__version__)} · "
        "all numbers are also in results.json; per-patient derived variables in derived.csv (by input line)</p>",
        "<div class='summary'><b>Summary</b><ul>"
        + "".join(f"<li>{_e(s)}</li>" for s in summary_items)
        + "</ul></div>",
        "<h2>1. Patient flow</h2>",
        _flow_html(a),
        "<h2>2. Baseline characteristics</h2><p>Median [IQR] with the number of patients with a value, or count (%).</p>",
        _table(["Characteristic", *headers], [[label, *cells] for label, cells in rows], nowrap=False),
        _time_points_html(a.time_points),
        "<h2>3. Primary endpoint: early change and landmark PFS</h2>",
        _table(_COX_HEADERS, _cox_rows(primary)),
        _cox_na(primary),
        _figure_html(figs["forest"]) if "forest" in figs else "",
        "<h3>Discrimination</h3>",
        _table(
            [
                "Score",
                "n",
                "comparable pairs",
                "Harrell's C",
                "95 % CI (bootstrap)",
                "AUC 12 months",
                "AUC 24 months",
            ],
            _cindex_rows(a),
        ),
        _not_estimable(_cindex_items(a)),
        _figure_html(figs["cindex"]) if "cindex" in figs else "",
        f"<h3>TGR groups (cut-off {a.options.tgr_cutoff_percent_per_month:g} %/month)</h3>",
        _table(
            [
                "TGR ≥ cut-off",
                "high n / events",
                "low n / events",
                "log-rank χ²",
                "p",
                "Cox HR high vs low (95 % CI)",
            ],
            _logrank_rows(a),
        ),
        _not_estimable(_logrank_items(a)),
        _figure_html(figs["km_tgr"]) if "km_tgr" in figs else "",
        "<h3>Response categories at the early scan</h3>",
        _figure_html(figs["km_response"]) if "km_response" in figs else "",
        "<h2>4. Early change per patient</h2>",
        _figure_html(figs["waterfall"]) if "waterfall" in figs else "",
        "<h2>5. Secondary endpoints</h2>",
        "<h3>Baseline tumour volume and time to progression (from baseline, all patients)</h3>",
        _table(_COX_HEADERS, _cox_rows(ttp)),
        _cox_na(ttp),
        "<h3>Correlations</h3>",
        _table(["Correlation (Spearman)", "n", "ρ", "95 % CI", "p"], _spearman_rows(_spearmans(a))),
        f"<p>Baseline volume, extra-abdominal disease vs none: median {_f(mw.median_first, 1)} vs "
        f"{_f(mw.median_second, 1)} mL (n = {mw.n_first} / {mw.n_second}); Mann–Whitney U = {_f(mw.u, 1)}, "
        f"p = {_p(mw.p)}; rank-biserial r = {_f(mw.rank_biserial, 2)}.</p>",
        _not_estimable([*_spearmans(a), ("Mann–Whitney", mw)]),
        _figure_html(figs["correlations"]) if "correlations" in figs else "",
        _h2h_section(a, figs),
        "" if _h2h_shows_repeatability(a) else reader_agreement_html(a.repeatability_source),
        "<h2>6. Warnings</h2>",
        warn_html,
        _modality_section(a),
        _methods(a),
        _LIMITATIONS.format(events=a.landmark_events, max_params=a.landmark_events // 10),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


_TIME_POINT_LABELS = {"baseline": "Baseline", "early": "Early (3-6 months)"}


def _quartiles_text(q: dict[str, Any], digits: int = 1) -> str:
    if not q or q.get("median") is None:
        return "–"
    return f"{q['median']:.{digits}f} [{q['q1']:.{digits}f}–{q['q3']:.{digits}f}], n={q['n']}"


def time_point_rows(tp: dict[str, Any]) -> list[tuple[str, list[list[str]]]]:
    """Per population, the rows of the time-point table (one per time point with at least one scan)."""
    out = []
    for population, points in tp["populations"].items():
        rows = []
        for point, d in points.items():
            if not d["n"]:
                continue
            label = _TIME_POINT_LABELS.get(point, f"{point.removeprefix('month')} months")
            recist = "; ".join(f"{k}: {v}" for k, v in d["recist_response"].items()) or "–"
            rows.append(
                [
                    label,
                    str(d["n"]),
                    _quartiles_text(d["days_from_baseline"], 0),
                    _quartiles_text(d["volume_ml"]),
                    _quartiles_text(d["target_volume_ml"]),
                    _quartiles_text(d["lesion_count"], 0),
                    recist,
                ]
            )
        out.append((population, rows))
    return out


def _time_points_html(tp: dict[str, Any] | None) -> str:
    if tp is None:
        return ""
    headers = [
        "Time point",
        "patients",
        "days from baseline",
        "total tumour volume, mL",
        "target-lesion volume, mL",
        "liver lesions",
        "RECIST 1.1 (overall)",
    ]
    parts = [
        f"<h3>Time points of the registry</h3><p>Median [IQR], n = patients with a value; {_e(tp['rule'])}.</p>"
    ]
    for population, rows in time_point_rows(tp):
        parts.append(f"<h4>{_e(population)}</h4>" + _table(headers, rows, nowrap=False))
    return "".join(parts)


def write_pdf(
    analysis: CohortAnalysis,
    figures: Sequence[Figure],
    html_path: Path,
    pdf_path: Path,
    *,
    use_chromium: bool = True,
    timeout_s: float = 120.0,
) -> str:
    """Write the PDF of the report; returns how: ``"chromium"`` or ``"matplotlib"`` (no Chromium found or it failed:
    the report's text and figures, :mod:`hepavol.report_pdf`)."""
    from hepavol.report_pdf import write_report_pdf

    return write_report_pdf(html_path, pdf_path, figures, title="hepavol cohort report", use_chromium=use_chromium,
                            timeout_s=timeout_s)  # fmt: skip


def write_html(path: Path, text: str) -> None:
    """Write the HTML report atomically."""
    write_text_atomic(path, text)
