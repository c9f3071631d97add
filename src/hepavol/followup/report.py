"""HTML report of a follow-up (one self-contained file, PNGs embedded): curves, spider plot, target crops.

The report only shows numbers computed by :mod:`hepavol.followup.pipeline`; it computes none of its own except
the per-lesion percent changes of the spider plot (volume vs the lesion's first measurement).
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from hepavol._atomic import write_text_atomic
from hepavol.followup._crop_image import LONG_AXIS_RGB, SHORT_AXIS_RGB, crop_picture
from hepavol.followup.pipeline import NON_TARGET_PD_PERCENT, FollowUpResult, LesionTrackResult

__all__ = ["render_report", "write_report"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1300px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f2f2f2}
td.l,th.l{text-align:left;white-space:nowrap}.PD{color:#b00;font-weight:bold}.PR,.CR{color:#060;font-weight:bold}
.warn{color:#a50}.grid{display:flex;flex-wrap:wrap;gap:8px}.grid figure{margin:0;text-align:center;font-size:12px}
.note{font-size:12px;color:#555}
"""


def _png(fig: Any, *, tight: bool = True) -> str:
    """The figure as a PNG data URL; ``tight=False`` keeps the figure's own layout (one draw instead of two)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(src: str, alt: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img src="{src}" alt="{html.escape(alt)}"{w}>'


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _resp(value: str | None) -> str:
    if value is None:
        return "<td>–</td>"
    return f'<td class="{html.escape(value)}">{html.escape(value)}</td>'


def _curves(result: FollowUpResult) -> str:
    import matplotlib.pyplot as plt

    dates = [tp.date for tp in result.timepoints]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    ttv = [tp.total_tumor_volume_ml for tp in result.timepoints]
    axes[0].plot(dates, ttv, "o-", color="#b03030")
    axes[0].set_title("Total tumour volume")
    axes[0].set_ylabel("mL")
    sod = [tp.sum_of_diameters_mm for tp in result.timepoints]
    axes[1].plot(dates, [np.nan if v is None else v for v in sod], "o-", color="#3050b0")
    if sod[0] is not None:
        axes[1].axhline(0.7 * sod[0], ls="--", color="#060", lw=1, label="PR threshold (-30 % vs baseline)")
        axes[1].legend(fontsize=8, loc="best")
    axes[1].set_title("RECIST sum of diameters (targets)")
    axes[1].set_ylabel("mm")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        for tp in result.timepoints:
            if tp.overall_response == "PD":
                ax.axvline(tp.date, color="#b00", alpha=0.25, lw=6)
    fig.tight_layout()
    return _png(fig, tight=False)


def _spider(result: FollowUpResult) -> str:
    import matplotlib.pyplot as plt

    base = result.timepoints[0].date
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for lesion in result.lesions:
        pts = lesion.points
        if not pts or pts[0].volume_ml <= 0:
            continue
        days = [(p.date - base).days for p in pts]
        change = [100.0 * (p.volume_ml / pts[0].volume_ml - 1.0) for p in pts]
        style = "-" if lesion.first_index == 0 else "--"
        lw = 2.4 if lesion.target else 1.2
        ax.plot(days, change, style, marker="o", lw=lw, label=f"{lesion.lesion_id} ({lesion.status})")
    ax.axhline(0, color="k", lw=0.8)
    ax.axhline(-65, color="#060", ls=":", lw=1)
    ax.axhline(73, color="#b00", ls=":", lw=1)
    ax.set_xlabel("days since baseline")
    ax.set_ylabel("volume change vs first measurement (%)")
    ax.set_title("Per-lesion volume change (thick: targets; dashed: new lesions)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def _crop(result: FollowUpResult, lesion: LesionTrackResult, t: int) -> tuple[str, str]:
    """Axial crop of target ``lesion`` on scan ``t`` (lesion outline, long and short axes) as a PNG data URL, and
    its caption (HTML)."""
    from matplotlib.image import imsave

    scan = result.scans[t]
    tp = result.timepoints[t]
    track = result.tracking.track(lesion.lesion_id)
    geometry = scan.image.geometry
    by_key = {m.lesion_id: m for m in scan.measurement.lesions}
    parts = [by_key[k] for k in track.keys[t]]
    if parts:
        main = max(parts, key=lambda p: p.volume_ml)
        z = main.slice_index
        ends = geometry.lps_to_index(np.array(main.long_axis_endpoints_mm))
        centre = ends.mean(axis=0)[1:]
        half_mm = max(main.long_axis_mm, 10.0) * 0.5 + 15.0
        caption = f"{tp.date.isoformat()}<br>LD {lesion_ld(lesion, t)} mm, SA {main.short_axis_mm:.1f} mm"
    else:
        ref = next((p.centroid_mm for p in reversed(lesion.points[: t + 1]) if p.centroid_mm is not None), None)
        ref = ref or lesion.points[0].centroid_mm
        index = geometry.lps_to_index(tp.registration.to_followup(np.array(ref, dtype=float)))
        z = int(np.clip(round(float(index[0])), 0, geometry.shape[0] - 1))
        centre = index[1:]
        half_mm = 25.0
        parts_text = "merged" if track.merged_into[t] else "not seen"
        caption = f"{tp.date.isoformat()}<br>{parts_text} (expected position)"
    sy, sx = geometry.spacing_mm[1], geometry.spacing_mm[2]
    r0 = int(max(round(centre[0] - half_mm / sy), 0))
    r1 = int(min(round(centre[0] + half_mm / sy) + 1, geometry.shape[1]))
    c0 = int(max(round(centre[1] - half_mm / sx), 0))
    c1 = int(min(round(centre[1] + half_mm / sx) + 1, geometry.shape[2]))
    image = np.asarray(scan.image.array[z, r0:r1, c0:c1], dtype=float)
    mask = np.isin(scan.lesion_map.array[z, r0:r1, c0:c1], [int(k[1:]) for k in track.keys[t]])
    axes = [
        (geometry.lps_to_index(np.array(seg))[:, 1:], colour)
        for part in parts
        if part.slice_index == z
        for seg, colour in (
            (part.long_axis_endpoints_mm, LONG_AXIS_RGB),
            (part.short_axis_endpoints_mm, SHORT_AXIS_RGB),
        )
    ]
    d = np.array(geometry.direction)
    picture = crop_picture(
        image,
        mask,
        origin_index=(r0, c0),
        spacing_mm=(sy, sx),
        flip_rows=bool(d[1, 1] < 0),  # anterior up
        flip_columns=bool(d[0, 2] < 0),  # the patient's right on the viewer's left
        axes=axes,
    )
    buf = io.BytesIO()
    imsave(buf, picture, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), caption


def lesion_ld(lesion: LesionTrackResult, t: int) -> str:
    """The lesion's long axis on scan ``t`` (sum over fragments) as text, ``–`` before it was seen."""
    index = t - lesion.first_index
    return f"{lesion.points[index].long_axis_mm:.1f}" if 0 <= index < len(lesion.points) else "–"


def render_report(result: FollowUpResult) -> str:
    """The report as one HTML string (needs a result computed with ``keep_scans=True`` for the crops)."""
    import matplotlib

    matplotlib.use("Agg")
    who = html.escape(result.patient_id or "(no patient id)")
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>hepavol follow-up {who}</title>"]
    out.append(f"<style>{_CSS}</style></head><body>")
    out.append(f"<h1>Follow-up of liver metastases: {who}</h1>")
    base = result.timepoints[0]
    out.append(
        f"<p>{len(result.timepoints)} scans from {base.date.isoformat()} to {result.timepoints[-1].date.isoformat()}. "
        f"RECIST 1.1 targets: <b>{html.escape(', '.join(result.targets) or 'none')}</b>. Best overall response "
        f"<b>{html.escape(result.best_overall_response)}</b>; progression date "
        f"<b>{result.progression_date.isoformat() if result.progression_date else 'none'}</b>.</p>"
    )
    out.append("<h2>Per scan</h2><table><tr>")
    headers = [
        "date",
        "TTV mL",
        "Δ baseline %",
        "Δ nadir %",
        "volumetric",
        "sum mm",
        "target",
        "non-target",
        "new",
        "RECIST",
        "TGR RECIST %/mo",
        "TGR vol %/mo",
        "load %",
        "lesions",
        "gone",
        "liver Dice",
    ]
    out.append("".join(f"<th>{h}</th>" for h in headers) + "</tr>")
    for tp in result.timepoints:
        out.append(
            "<tr>"
            f"<td class='l'>{tp.date.isoformat()}</td><td>{_fmt(tp.total_tumor_volume_ml, 2)}</td>"
            f"<td>{_fmt(tp.volume_change_from_baseline_percent)}</td><td>{_fmt(tp.volume_change_from_nadir_percent)}</td>"
            f"{_resp(tp.volumetric_response)}<td>{_fmt(tp.sum_of_diameters_mm)}</td>{_resp(tp.target_response)}"
            f"{_resp(tp.non_target_response)}<td>{_fmt(', '.join(tp.new_lesion_ids) or None)}</td>"
            f"{_resp(tp.overall_response)}<td>{_fmt(tp.tgr_recist_percent_per_month)}</td>"
            f"<td>{_fmt(tp.tgr_volume_percent_per_month)}</td><td>{_fmt(tp.hepatic_tumor_load_class)}</td>"
            f"<td>{tp.lesion_count}</td><td>{_fmt(', '.join(tp.gone_lesion_ids) or None)}</td>"
            f"<td>{tp.registration.dice_after:.3f}</td></tr>"
        )
    out.append("</table>")
    out.append(f"<p>{_img(_curves(result), 'total tumour volume and sum of diameters over time')}</p>")
    out.append("<h2>Lesions</h2>")
    out.append(f"<p>{_img(_spider(result), 'spider plot of per-lesion volume change')}</p>")
    out.append("<table><tr><th class='l'>lesion</th><th>target</th><th class='l'>status</th>")
    out += [f"<th>{tp.date.isoformat()}<br>mL / LD mm</th>" for tp in result.timepoints]
    out.append("<th class='l'>TrackingUID</th></tr>")
    for lesion in result.lesions:
        cells = ["<td>·</td>"] * lesion.first_index
        cells += [f"<td>{p.volume_ml:.2f} / {p.long_axis_mm:.1f}</td>" for p in lesion.points]
        out.append(
            f"<tr><td class='l'>{lesion.lesion_id}</td><td>{'yes' if lesion.target else ''}</td>"
            f"<td class='l'>{html.escape(lesion.status)}</td>{''.join(cells)}"
            f"<td class='l'>{html.escape(lesion.tracking_uid)}</td></tr>"
        )
    out.append("</table>")
    if result.scans and result.scans[0].image.array.size > 1:  # images kept (keep_scans=True)
        out.append("<h2>Target lesions</h2>")
        out.append(
            "<p class='note'>Axial slice of the long axis on each scan (scan's own frame, radiological display). "
            "Cyan: lesion outline; red: long axis; yellow: short axis.</p>"
        )
        for lesion in result.lesions:
            if not lesion.target:
                continue
            out.append(f"<h3>{lesion.lesion_id}</h3><div class='grid'>")
            for t in range(lesion.first_index, len(result.timepoints)):
                alt = f"{lesion.lesion_id} on {result.timepoints[t].date.isoformat()}"
                src, caption = _crop(result, lesion, t)
                out.append(f"<figure>{_img(src, alt, 240)}<figcaption>{caption}</figcaption></figure>")
            out.append("</div>")
    out.append("<h2>Registration to baseline</h2><table><tr><th class='l'>date</th><th>kind</th>")
    out.append(
        "<th>rotation ° (L, P, S)</th><th>translation mm (L, P, S)</th><th>Dice before</th><th>after</th></tr>"
    )
    for tp in result.timepoints:
        r = tp.registration
        rot = ", ".join(f"{v:.1f}" for v in r.rotation_deg)
        tr = ", ".join(f"{v:.1f}" for v in r.translation_mm)
        out.append(
            f"<tr><td class='l'>{tp.date.isoformat()}</td><td>{r.kind}</td><td>{rot}</td><td>{tr}</td>"
            f"<td>{r.dice_before:.3f}</td><td>{r.dice_after:.3f}</td></tr>"
        )
    out.append("</table>")
    if result.warnings:
        out.append("<h2>Warnings</h2><ul>")
        out += [f"<li class='warn'>{html.escape(w)}</li>" for w in result.warnings]
        out.append("</ul>")
    out.append(
        "<h2>Method</h2><p class='note'>Lesions are matched between consecutive scans after rigid registration "
        "of each follow-up to baseline on the liver masks (Hungarian assignment on centroid distance and overlap); "
        "centroids are in the baseline scan's LPS frame. Targets: the 2 largest measurable liver lesions at "
        "baseline (long axis ≥ 10 mm and ≥ 2 slice thicknesses) unless chosen by the user; diameters rounded to "
        "0.1 mm; fragments' long axes add up; merged lesions are measured once. Non-targets (one entry, multiple "
        f"liver metastases): absent when their total volume is 0, unequivocal progression when it rises ≥ "
        f"{NON_TARGET_PD_PERCENT} % above its nadir (hepavol's rule, EORTC's volume equivalent of +20 % in "
        "diameter). Every lesion absent at baseline is an unequivocal new lesion. Volumetric response: PR ≤ −65 % "
        "vs baseline, PD ≥ +73 % vs nadir or new lesions. TGR after Ferté et al. 2014.</p>"
    )
    out.append("</body></html>\n")
    return "".join(out)


def write_report(result: FollowUpResult, folder: str | os.PathLike[str]) -> Path:
    """Write ``report.html`` into ``folder`` (created if needed), atomically; return its path."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    path = target / "report.html"
    write_text_atomic(path, render_report(result))
    return path
