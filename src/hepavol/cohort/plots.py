"""Figures of the cohort report (matplotlib, Agg backend; PNG for the HTML, SVG beside it).

The figures only draw what :mod:`hepavol.cohort.analysis` computed, plus Kaplan–Meier curves (lifelines
``KaplanMeierFitter``) and numbers at risk. Times on the axes are in months (days / 30.4375).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hepavol._atomic import write_bytes_atomic
from hepavol.cohort.analysis import CohortAnalysis
from hepavol.cohort.derive import DerivedPatient
from hepavol.response.growth import DAYS_PER_MONTH

# Okabe–Ito colour-blind-safe palette.
_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_RESPONSE_COLOURS = {"CR": "#009E73", "PR": "#56B4E9", "SD": "#999999", "PD": "#D55E00"}


@dataclass(frozen=True, slots=True)
class Figure:
    """One written figure: a short name, a caption, and its PNG bytes (the SVG is written beside the PNG)."""

    name: str
    title: str
    caption: str
    png: bytes
    png_path: Path
    svg_path: Path


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 10,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "svg.fonttype": "none",
            "svg.hashsalt": "hepavol",
        }
    )
    return plt


def _save(fig, outdir: Path, name: str, title: str, caption: str) -> Figure:  # type: ignore[no-untyped-def]
    import io

    plt = _pyplot()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=150, bbox_inches="tight", metadata={"Software": None})
    svg = io.BytesIO()
    fig.savefig(svg, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    png_path, svg_path = outdir / f"{name}.png", outdir / f"{name}.svg"
    write_bytes_atomic(png_path, png.getvalue())
    write_bytes_atomic(svg_path, svg.getvalue())
    return Figure(name, title, caption, png.getvalue(), png_path, svg_path)


def _km_panel(ax, at_risk_ax, groups: Sequence[tuple[str, np.ndarray, np.ndarray]], title: str) -> None:  # type: ignore[no-untyped-def]
    """Kaplan–Meier curves (with 95 % log-log bands and censoring ticks) and a numbers-at-risk table."""
    from lifelines import KaplanMeierFitter

    tmax = max((float(t.max()) for _, t, _ in groups if t.size), default=1.0) / DAYS_PER_MONTH
    step = 6 if tmax <= 48 else 12
    ticks = np.arange(0, tmax + 1e-9, step)
    rows = []
    for k, (label, t_days, e) in enumerate(groups):
        colour = _COLOURS[k % len(_COLOURS)]
        if t_days.size == 0:
            rows.append((_short(label), colour, ["0"] * len(ticks)))
            continue
        t = t_days / DAYS_PER_MONTH
        km = KaplanMeierFitter().fit(t, e.astype(bool), label=label)
        sf = km.survival_function_.iloc[:, 0]
        ci = km.confidence_interval_survival_function_
        ax.step(
            sf.index,
            sf.to_numpy(),
            where="post",
            color=colour,
            lw=2,
            label=f"{label} (n={t.size}, {int(e.sum())} events)",
        )
        ax.fill_between(ci.index, ci.iloc[:, 0], ci.iloc[:, 1], step="post", color=colour, alpha=0.12, lw=0)
        cens = t[~e.astype(bool)]
        if cens.size:
            ax.plot(cens, km.survival_function_at_times(cens).to_numpy(), "|", color=colour, ms=8, mew=1.2)
        rows.append((_short(label), colour, [str(int((t >= x).sum())) for x in ticks]))
    ax.set_xlim(0, ticks[-1] + step * 0.25 if ticks.size else 1)
    ax.set_ylim(0, 1.02)
    ax.set_xticks(ticks)
    ax.set_ylabel("Progression-free probability")
    ax.set_xlabel("Months since the early scan (landmark)")
    ax.set_title(title, loc="left")
    ax.grid(alpha=0.3)
    if any(t.size for _, t, _ in groups):
        ax.legend(loc="upper right", frameon=False, fontsize=9)
    else:
        ax.text(0.5, 0.5, "no patients in this analysis", ha="center", va="center", transform=ax.transAxes)
    at_risk_ax.set_xlim(ax.get_xlim())
    at_risk_ax.set_ylim(-0.5, max(len(rows), 1) - 0.5)
    at_risk_ax.axis("off")
    at_risk_ax.text(0, len(rows) - 0.3, "Number at risk", fontsize=9, fontweight="bold", va="bottom")
    for r, (label, colour, counts) in enumerate(rows):
        y = len(rows) - 1 - r
        for x, c in zip(ticks, counts):
            at_risk_ax.text(x, y - 0.2, c, ha="center", va="center", fontsize=9, color=colour)
        at_risk_ax.text(
            -0.07,
            y - 0.2,
            label,
            ha="right",
            va="center",
            fontsize=9,
            color=colour,
            transform=at_risk_ax.get_yaxis_transform(),
        )


def _short(label: str) -> str:
    return label.replace("TGR ", "").replace(" %/month", "")


def _km_figure(
    outdir: Path,
    name: str,
    title: str,
    caption: str,
    panels: list[tuple[str, list[tuple[str, np.ndarray, np.ndarray]]]],
) -> Figure:
    plt = _pyplot()
    ncols = len(panels)
    nrows_risk = max(len(g) for _, g in panels)
    fig = plt.figure(figsize=(6.2 * ncols, 4.6 + 0.28 * nrows_risk))
    gs = fig.add_gridspec(2, ncols, height_ratios=[4.0, 0.45 + 0.28 * nrows_risk], hspace=0.45, wspace=0.35)
    for j, (ptitle, groups) in enumerate(panels):
        ax = fig.add_subplot(gs[0, j])
        risk = fig.add_subplot(gs[1, j])
        _km_panel(ax, risk, groups, ptitle)
    return _save(fig, outdir, name, title, caption)


def _landmark(patients: Sequence[DerivedPatient]) -> list[DerivedPatient]:
    return [p for p in patients if p.landmark]


def _groups_by(
    patients: Sequence[DerivedPatient], key: str, order: Sequence[str]
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    out = []
    for level in order:
        sel = [p for p in patients if getattr(p, key) == level]
        if sel:
            out.append(
                (
                    level,
                    np.array([p.landmark_days for p in sel], dtype=float),
                    np.array([p.pfs_event for p in sel], dtype=bool),
                )
            )
    return out


def _tgr_groups(
    patients: Sequence[DerivedPatient], key: str, cut: float
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    sel = [p for p in patients if getattr(p, key) is not None]
    out = []
    for label, high in ((f"TGR < {cut:g} %/month", False), (f"TGR ≥ {cut:g} %/month", True)):
        g = [p for p in sel if (getattr(p, key) >= cut) == high]
        out.append(
            (
                label,
                np.array([p.landmark_days for p in g], dtype=float),
                np.array([p.pfs_event for p in g], dtype=bool),
            )
        )
    return out


def figure_km_tgr(analysis: CohortAnalysis, patients: Sequence[DerivedPatient], outdir: Path) -> Figure:
    """KM of landmark PFS by TGR group (volumetric and RECIST), with numbers at risk."""
    lm = _landmark(patients)
    cut = analysis.options.tgr_cutoff_percent_per_month
    lv, lr = analysis.logrank_tgr_volume, analysis.logrank_tgr_recist

    def fmt(r) -> str:  # type: ignore[no-untyped-def]
        return "log-rank not estimable" if r.p is None else f"log-rank χ² {r.chisq:.2f}, p {_p(r.p)}"

    return _km_figure(
        outdir,
        "km_tgr",
        "Landmark PFS by early tumour growth rate",
        f"Kaplan–Meier estimates of PFS from the early scan, by TGR at the early scan below or at/above {cut:g} "
        f"%/month (GREPONET cut-off). Left: volumetric TGR ({fmt(lv)}). Right: RECIST TGR from the sum of "
        "diameters ({}). Shaded: 95 % pointwise CI (log-log); ticks: censored.".format(fmt(lr)),
        [
            ("Volumetric TGR", _tgr_groups(lm, "tgr_volume_percent_per_month", cut)),
            ("RECIST TGR (sum of diameters)", _tgr_groups(lm, "tgr_recist_percent_per_month", cut)),
        ],
    )


def figure_km_response(analysis: CohortAnalysis, patients: Sequence[DerivedPatient], outdir: Path) -> Figure:
    """KM of landmark PFS by volumetric and by RECIST target-lesion response category at the early scan."""
    lm = _landmark(patients)
    order = ("CR", "PR", "SD", "PD")
    return _km_figure(
        outdir,
        "km_response",
        "Landmark PFS by response category at the early scan",
        "Kaplan–Meier estimates of PFS from the early scan by volumetric category (left; PR ≤ −65 %, PD ≥ +73 % "
        "of total liver tumour volume) and RECIST 1.1 target-lesion category (right; PR ≤ −30 %, PD ≥ +20 % and "
        "≥ +5 mm). Patients with PD on RECIST at the early scan are mostly outside the landmark set by design.",
        [
            ("Volumetric response", _groups_by(lm, "volumetric_response", order)),
            ("RECIST 1.1 target response", _groups_by(lm, "recist_response", order)),
        ],
    )


def _signed(v: float) -> str:
    text = f"{v:+.3f}"
    return "0.000" if float(text) == 0 else text


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def figure_forest(analysis: CohortAnalysis, outdir: Path) -> Figure:
    """Forest plot of the hazard ratios (per 10 percentage points for the % changes)."""
    plt = _pyplot()
    rows: list[tuple[str, float | None, tuple[float, float] | None, str]] = []
    for label, cox, per in (
        ("Volume change, per +10 pp (landmark PFS)", analysis.cox_volume_change, 10.0),
        ("SLD change, per +10 pp (landmark PFS)", analysis.cox_sld_change, 10.0),
    ):
        v = cox.hr_per(per)
        rows.append((label, v[0] if v else None, v[1] if v else None, f"n={cox.n}, {cox.events} ev."))
    cut = analysis.options.tgr_cutoff_percent_per_month
    for label, lr in (
        (f"Volumetric TGR ≥ {cut:g} vs < {cut:g} %/month", analysis.logrank_tgr_volume),
        (f"RECIST TGR ≥ {cut:g} vs < {cut:g} %/month", analysis.logrank_tgr_recist),
    ):
        rows.append((label, lr.hr, lr.hr_ci95, f"n={lr.n_high}/{lr.n_low}"))
    ttp = analysis.cox_log2_baseline_volume_ttp
    rows.append(
        ("Baseline volume, per doubling (TTP from baseline)", ttp.hr, ttp.ci95, f"n={ttp.n}, {ttp.events} ev.")
    )
    fig, ax = plt.subplots(figsize=(9.5, 0.6 * len(rows) + 1.4))
    ys = np.arange(len(rows))[::-1]
    finite = [v for _, hr, ci, _ in rows if hr is not None and ci is not None for v in (hr, *ci)]
    lo = min([*finite, 0.5]) * 0.8
    hi = max([*finite, 2.0]) * 1.25
    for y, (_label, hr, ci, extra) in zip(ys, rows):
        if hr is not None and ci is not None:
            ax.plot(ci, [y, y], color="#333333", lw=1.6)
            ax.plot(hr, y, "s", color=_COLOURS[0], ms=8)
            txt = f"{hr:.2f} ({ci[0]:.2f}–{ci[1]:.2f})"
        else:
            txt = "not estimable"
        ax.text(1.02, y, f"{txt}   {extra}", transform=ax.get_yaxis_transform(), va="center", fontsize=9)
    ax.axvline(1.0, color="#777777", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ticks = [v for v in (0.1, 0.2, 0.25, 0.5, 1, 2, 4, 8, 16, 32) if lo <= v <= hi]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
    ax.set_yticks(ys, [r[0] for r in rows])
    ax.set_xlabel("Hazard ratio (95 % CI, log scale)")
    ax.set_title("Hazard ratios (univariable Cox, Efron ties)", loc="left")
    ax.grid(axis="x", alpha=0.3, which="both")
    return _save(
        fig,
        outdir,
        "forest",
        "Forest plot of hazard ratios",
        "Univariable Cox models. % changes are shown per +10 percentage points (results.json gives them per 1 pp); "
        "TGR groups at the GREPONET cut-off; baseline volume per doubling, for time to progression from baseline. "
        "Wald 95 % CIs.",
    )


def figure_cindex(analysis: CohortAnalysis, outdir: Path) -> Figure:
    """Harrell's C (bootstrap CI) of the two early changes, their difference, and AUC at 12/24 months."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1.3, 1]})
    items = [("Volume change", analysis.cindex_volume_change), ("SLD change", analysis.cindex_sld_change)]
    d = analysis.cindex_difference
    ys = [2, 1]
    for y, (_label, r) in zip(ys, items):
        if r.c is not None:
            ax1.plot(r.c, y, "o", color=_COLOURS[0], ms=8)
            if r.ci95:
                ax1.plot(r.ci95, [y, y], color="#333333", lw=1.6)
            ax1.text(
                1.02,
                y,
                f"C {r.c:.3f}" + (f" ({r.ci95[0]:.3f}–{r.ci95[1]:.3f})" if r.ci95 else ""),
                transform=ax1.get_yaxis_transform(),
                va="center",
                fontsize=9,
            )
    if d.difference is not None:
        ax1.plot(0.5 + d.difference, 0, "D", color=_COLOURS[1], ms=7)
        if d.ci95:
            ax1.plot([0.5 + d.ci95[0], 0.5 + d.ci95[1]], [0, 0], color=_COLOURS[1], lw=1.6)
        ax1.text(
            1.02,
            0,
            f"Δ {_signed(d.difference)}" + (f" ({_signed(d.ci95[0])} to {_signed(d.ci95[1])})" if d.ci95 else ""),
            transform=ax1.get_yaxis_transform(),
            va="center",
            fontsize=9,
            color=_COLOURS[1],
        )
    ax1.axvline(0.5, color="#777777", ls="--", lw=1)
    ax1.set_yticks([2, 1, 0], ["Volume change", "SLD change", "Difference\n(plotted at 0.5 + Δ)"])
    ax1.set_xlim(0.3, 1.0)
    ax1.set_ylim(-0.6, 2.6)
    ax1.set_xlabel("Harrell's C (bootstrap 95 % CI)")
    ax1.set_title("Discrimination of landmark PFS", loc="left")
    ax1.grid(axis="x", alpha=0.3)
    width = 0.35
    months = analysis.options.auc_months
    x = np.arange(len(months))
    for k, (label, r) in enumerate(items):
        vals = [r.auc_12_months, r.auc_24_months]
        heights = [v if v is not None else 0.0 for v in vals]
        bars = ax2.bar(x + (k - 0.5) * width, heights, width, label=label, color=_COLOURS[k])
        for b, v in zip(bars, vals):
            ax2.text(
                b.get_x() + b.get_width() / 2,
                (v or 0) + 0.01,
                "n/a" if v is None else f"{v:.2f}",
                ha="center",
                va="bottom",
                fontsize=9,
            )
    ax2.axhline(0.5, color="#777777", ls="--", lw=1)
    ax2.set_xticks(x, [f"{m:g} months" for m in months])
    ax2.set_ylim(0, 1.18)
    ax2.set_ylabel("Cumulative/dynamic AUC(t)")
    ax2.set_title("Time-dependent AUC", loc="left")
    ax2.legend(frameon=False, loc="upper center", fontsize=9, ncols=2)
    fig.tight_layout()
    return _save(
        fig,
        outdir,
        "cindex",
        "C-index comparison",
        f"Harrell's C of the early % change as a risk score (higher = worse) for landmark PFS, percentile bootstrap "
        f"95 % CIs ({analysis.options.bootstrap_resamples} paired resamples, seed {analysis.options.seed}); the "
        "difference volume − SLD with its paired bootstrap CI; and IPCW cumulative/dynamic AUC at 12 and 24 "
        "months after the landmark.",
    )


def figure_waterfall(patients: Sequence[DerivedPatient], outdir: Path) -> Figure:
    """Waterfall of early total-volume change next to the sum-of-diameters change (same patient order)."""
    plt = _pyplot()
    sel = [p for p in patients if p.volume_change_percent is not None]
    sel.sort(key=lambda p: -(p.volume_change_percent or 0.0))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6), sharex=True)
    x = np.arange(len(sel))
    vol = np.array([p.volume_change_percent for p in sel], dtype=float)
    sld = np.array([np.nan if p.sld_change_percent is None else p.sld_change_percent for p in sel], dtype=float)
    ax1.bar(
        x, vol, color=[_RESPONSE_COLOURS.get(p.volumetric_response or "SD", "#999999") for p in sel], width=0.85
    )
    ax1.axhline(73, color=_RESPONSE_COLOURS["PD"], ls="--", lw=1)
    ax1.axhline(-65, color=_RESPONSE_COLOURS["PR"], ls="--", lw=1)
    ax1.set_title("Total liver tumour volume", loc="left")
    ax1.set_ylabel("Change at the early scan (%)")
    ax2.bar(
        x,
        np.nan_to_num(sld),
        color=[_RESPONSE_COLOURS.get(p.recist_response or "SD", "#999999") for p in sel],
        width=0.85,
    )
    ax2.axhline(20, color=_RESPONSE_COLOURS["PD"], ls="--", lw=1)
    ax2.axhline(-30, color=_RESPONSE_COLOURS["PR"], ls="--", lw=1)
    ax2.set_title("Sum of target-lesion diameters (RECIST 1.1)", loc="left")
    for ax in (ax1, ax2):
        ax.axhline(0, color="#333333", lw=0.8)
        ax.set_xticks([])
        ax.set_xlabel(f"Patients (n={len(sel)}), ordered by volume change")
        ax.grid(axis="y", alpha=0.3)
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=k) for k, c in _RESPONSE_COLOURS.items()]
    ax2.legend(handles=handles, frameon=False, loc="upper right", fontsize=9, ncols=4)
    fig.tight_layout()
    return _save(
        fig,
        outdir,
        "waterfall",
        "Waterfall plots of the early change",
        "Each bar is one patient with an early scan, in the same order in both panels (largest volume increase "
        "first). Colours: response category at the early scan. Dashed lines: volumetric thresholds −65 %/+73 % "
        "(left) and RECIST thresholds −30 %/+20 % (right). A patient without a sum of diameters has no bar on the "
        "right.",
    )


def figure_correlations(analysis: CohortAnalysis, patients: Sequence[DerivedPatient], outdir: Path) -> Figure:
    """Scatter plots of the four Spearman correlations and the Mann–Whitney comparison."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(14, 8.4))
    panels = [
        (analysis.spearman_baseline_volume_vs_cga, "Baseline tumour volume (mL)", "CgA (µg/L)", True, True),
        (analysis.spearman_lesion_count_vs_cga, "Number of liver lesions", "CgA (µg/L)", False, True),
        (analysis.spearman_tgr_volume_vs_ki67, "Volumetric TGR (%/month)", "Ki-67 (%)", False, False),
        (analysis.spearman_tgr_recist_vs_ki67, "RECIST TGR (%/month)", "Ki-67 (%)", False, False),
    ]
    for ax, (r, xl, yl, logx, logy) in zip(axes.flat, panels):
        xs = np.array([np.nan if getattr(p, r.x) is None else float(getattr(p, r.x)) for p in patients])
        ys = np.array([np.nan if getattr(p, r.y) is None else float(getattr(p, r.y)) for p in patients])
        ok = np.isfinite(xs) & np.isfinite(ys)
        if logx:
            ok &= xs > 0
        if logy:
            ok &= ys > 0
        ax.scatter(xs[ok], ys[ok], s=22, alpha=0.75, color=_COLOURS[0], edgecolor="white", lw=0.5)
        if logx and ok.any():
            ax.set_xscale("log")
        if logy and ok.any():
            ax.set_yscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        if r.rho is not None:
            ci = f" ({r.ci95[0]:.2f} to {r.ci95[1]:.2f})" if r.ci95 else ""
            ax.set_title(f"ρ = {r.rho:.2f}{ci}, p {_p(r.p)}, n = {r.n}", loc="left", fontsize=10)
        else:
            ax.set_title(f"not estimable (n = {r.n})", loc="left", fontsize=10)
        ax.grid(alpha=0.3)
    ax = axes.flat[4]
    mw = analysis.mannwhitney_baseline_volume_by_extra_abdominal
    groups = [
        [p.baseline_volume_ml for p in patients if p.extra_abdominal is False and p.baseline_volume_ml > 0],
        [p.baseline_volume_ml for p in patients if p.extra_abdominal is True and p.baseline_volume_ml > 0],
    ]
    rng = np.random.default_rng(0)
    for k, g in enumerate(groups):
        if g:
            ax.boxplot([g], positions=[k], widths=0.5, showfliers=False, medianprops={"color": _COLOURS[1]})
            ax.scatter(k + rng.uniform(-0.15, 0.15, len(g)), g, s=16, alpha=0.7, color=_COLOURS[0])
    if groups[0] or groups[1]:
        ax.set_yscale("log")
    ax.set_xticks([0, 1], [f"No extra-abdominal\n(n={len(groups[0])})", f"Extra-abdominal\n(n={len(groups[1])})"])
    ax.set_ylabel("Baseline tumour volume (mL)")
    ax.set_title(
        "Mann–Whitney " + (f"U = {mw.u:g}, p {_p(mw.p)}" if mw.u is not None else "not estimable"),
        loc="left",
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    axes.flat[5].axis("off")
    fig.tight_layout()
    return _save(
        fig,
        outdir,
        "correlations",
        "Secondary endpoints: correlations and group comparison",
        "Spearman's ρ with Fisher-z 95 % CI (" + analysis.spearman_baseline_volume_vs_cga.ci_method + "). Volume "
        "and CgA on log axes (ranks are unchanged). Bottom middle: baseline volume by extra-abdominal disease, "
        "Mann–Whitney U of the extra-abdominal group, normal approximation with continuity correction.",
    )


def _h2h_rows(analysis: CohortAnalysis) -> list[tuple[str, str, Any]]:
    """(population, criterion label, CriterionResult) for every population with a landmark set."""
    h = analysis.head_to_head
    if h is None:
        return []
    return [(pop.population, c.label, c) for pop in h.populations for c in pop.criteria]


def _log_axis(ax, lo: float, hi: float) -> None:  # type: ignore[no-untyped-def]
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ticks = [v for v in (0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64) if lo <= v <= hi]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(ticks, [f"{v:g}" for v in ticks])


def figure_h2h_forest(analysis: CohortAnalysis, outdir: Path) -> Figure:
    """Head to head: hazard ratio of the high-risk side of each criterion's cut-off, per population."""
    plt = _pyplot()
    rows = _h2h_rows(analysis)
    fig, ax = plt.subplots(figsize=(10, 0.34 * max(len(rows), 1) + 1.4))
    ys = np.arange(len(rows))[::-1]
    finite = [
        v for _p, _l, c in rows if c.cox_cutoff is not None and c.cox_cutoff.ci95 is not None
        for v in (c.cox_cutoff.hr, *c.cox_cutoff.ci95)
    ]  # fmt: skip
    lo, hi = min([*finite, 0.5]) * 0.8, max([*finite, 2.0]) * 1.25
    pops = sorted({p for p, _l, _c in rows})
    for y, (pop, _label, c) in zip(ys, rows):
        colour = _COLOURS[pops.index(pop) % len(_COLOURS)]
        cox = c.cox_cutoff
        if cox is not None and cox.hr is not None and cox.ci95 is not None:
            ax.plot(cox.ci95, [y, y], color="#333333", lw=1.4)
            ax.plot(cox.hr, y, "s", color=colour, ms=6)
            txt = f"{cox.hr:.2f} ({cox.ci95[0]:.2f}–{cox.ci95[1]:.2f})  n={c.n_high}/{c.n_low}"
        elif c.n and (c.n_high == 0 or c.n_low == 0):
            txt = f"not estimable: all {c.n} on one side of the cut-off"
        else:
            txt = "not estimable"
        ax.text(1.02, y, txt, transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    ax.axvline(1.0, color="#777777", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    _log_axis(ax, lo, hi)
    ax.set_yticks(ys, [f"{p}: {label} ({c.cutoff})" for p, label, c in rows], fontsize=8)
    ax.set_xlabel("Hazard ratio, high-risk side of the cut-off vs the other (95 % CI, log scale)")
    ax.set_title("Every early criterion head to head: landmark PFS (univariable Cox, Efron ties)", loc="left")
    ax.grid(axis="x", alpha=0.3, which="both")
    return _save(
        fig,
        outdir,
        "h2h_forest",
        "Head to head: hazard ratios at each criterion's cut-off",
        "Univariable Cox models of PFS from the early scan on the high-risk side of each criterion's pre-specified "
        "cut-off; CT and MR separately (pooled only with --pool-modalities). n = high / low. Wald 95 % CIs.",
    )


def figure_h2h_cindex(analysis: CohortAnalysis, outdir: Path) -> Figure:
    """Head to head: Harrell's C of every criterion with its bootstrap CI, per population."""
    plt = _pyplot()
    rows = _h2h_rows(analysis)
    fig, ax = plt.subplots(figsize=(10, 0.34 * max(len(rows), 1) + 1.4))
    ys = np.arange(len(rows))[::-1]
    pops = sorted({p for p, _l, _c in rows})
    for y, (pop, _label, c) in zip(ys, rows):
        colour = _COLOURS[pops.index(pop) % len(_COLOURS)]
        ci = c.cindex
        if ci is not None and ci.c is not None:
            if ci.ci95 is not None:
                ax.plot(ci.ci95, [y, y], color="#333333", lw=1.4)
            ax.plot(ci.c, y, "o", color=colour, ms=6)
            d = c.cindex_difference_vs_recist
            diff = ""
            if d is not None and d.difference is not None:
                diff = f"  Δ vs RECIST {d.difference:+.3f}"
                if d.ci95 is not None:
                    diff += f" ({d.ci95[0]:+.3f} to {d.ci95[1]:+.3f})"
            txt = f"{ci.c:.3f}{diff}"
        else:
            txt = "not estimable"
        ax.text(1.02, y, txt, transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    ax.axvline(0.5, color="#777777", ls="--", lw=1)
    ax.set_xlim(0.3, 1.0)
    ax.set_yticks(ys, [f"{p}: {label}" for p, label, _c in rows], fontsize=8)
    ax.set_xlabel("Harrell's C (bootstrap 95 % CI); 0.5 = no discrimination")
    ax.set_title("Every early criterion head to head: discrimination of landmark PFS", loc="left")
    ax.grid(axis="x", alpha=0.3)
    return _save(
        fig,
        outdir,
        "h2h_cindex",
        "Head to head: Harrell's C of every criterion",
        "Harrell's C of each criterion's score (higher = riskier) with its bootstrap 95 % CI; Δ vs RECIST is "
        "C(criterion) − C(RECIST 1.1 category) on the patients with both, with its paired bootstrap 95 % CI.",
    )


def make_figures(analysis: CohortAnalysis, patients: Sequence[DerivedPatient], outdir: Path) -> list[Figure]:
    """Write every figure of the report into ``outdir`` (PNG + SVG) and return them in report order."""
    outdir.mkdir(parents=True, exist_ok=True)
    return [
        figure_km_tgr(analysis, patients, outdir),
        figure_km_response(analysis, patients, outdir),
        figure_forest(analysis, outdir),
        figure_cindex(analysis, outdir),
        figure_waterfall(patients, outdir),
        figure_correlations(analysis, patients, outdir),
        *(
            [figure_h2h_forest(analysis, outdir), figure_h2h_cindex(analysis, outdir)]
            if analysis.head_to_head is not None
            else []
        ),
    ]
