"""Make the README figure of a simulated CT patient (docs/images/simulated_ct.png) and its MR twin.

Run: ``.venv/bin/python scripts/make_simulated_figure.py`` (about a minute: full-resolution rendering).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from hepavol.simulate import render_scan, sample_patient
from hepavol.simulate.render import liver_window

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def _slice_of_largest_target(patient, scan_index: int, rendered) -> int:
    st = patient.truth.scans[scan_index]
    target = max(
        (lt for lt in st.lesions if lt.role == "target"), key=lambda lt: lt.true_volume_ml, default=st.lesions[0]
    )
    idx = rendered.image.geometry.lps_to_index(np.array(target.centre_lps_mm))
    return round(float(idx[0]))


def figure(modality: str, index: int, seed: int, path: Path) -> None:
    patient = sample_patient(index, seed=seed, modality=modality)
    last = len(patient.scans) - 1
    panels = []
    for i in (0, last):
        r = render_scan(patient, i, size="full")
        panels.append((i, r, _slice_of_largest_target(patient, i, r)))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), facecolor="black")
    lo, hi = liver_window(panels[0][1].image.array, patient.modality)
    for ax, (i, r, k), overlay in zip(axes, [panels[0], panels[0], panels[1]], (False, True, True)):
        body = np.argwhere(r.labels.array.any(axis=0) | (r.image.array[k] > (lo + hi) / 4))
        (r0, c0), (r1, c1) = body.min(axis=0), body.max(axis=0)
        crop = (slice(max(r0 - 15, 0), r1 + 15), slice(max(c0 - 15, 0), c1 + 15))
        img = r.image.array[k][crop]
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        if overlay:
            lab = r.labels.array[k][crop]
            ax.contour(lab > 0, levels=[0.5], colors="#4fc3f7", linewidths=0.8)
            ax.contour(lab == 2, levels=[0.5], colors="#ff5252", linewidths=0.9)
        st = patient.truth.scans[i]
        label = "baseline" if i == 0 else f"day {st.day}: {st.overall_response}"
        ax.set_title(
            f"{patient.patient_id} {patient.modality} {st.date.isoformat()} ({label})\n"
            f"true tumour volume {st.total_tumour_volume_ml:.1f} mL, {len(st.lesions)} lesions",
            color="white",
            fontsize=10,
        )
        ax.axis("off")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=80, facecolor="black")
    plt.close(fig)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    figure("ct", 10, 7, OUT / "simulated_ct.png")
    figure("mr", 10, 7, OUT / "simulated_mr.png")
