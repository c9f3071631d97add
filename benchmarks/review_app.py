"""Benchmark: the review app in a real browser on a clinical-size CT (512×512×300), against the issue's targets.

One run of this script builds a workspace with one scan (the benchmark phantom of ``_phantom.py`` as a CT: liver
100 HU, lesions 40 HU, noise SD 10 HU; one lesion left out of the label map so that a click can add it), starts
``hepavol study serve``, drives Debian's headless Chromium through Playwright and prints, as a markdown table:

- first image: from the click on the patient in the worklist to the first slice drawn with its overlay, and the
  CPU time the server spent on it (user + system, from ``/proc``: less dependent on other jobs than the wall time);
- scrolling: 100 consecutive slices, each fetched (pixels and overlay), windowed, blended and drawn, in
  slices per second; beside it the floor, the same 200 requests fetched without drawing (the browser's and the
  server's share);
- a new lesion by one click, then an exclude and an include correction, each until the updated overlay is drawn.

Targets (issue 17): scrolling >= 20 slices/s, first image < 1 s, a correction visible < 1.5 s.
Run on a quiet machine: ``.venv/bin/python benchmarks/review_app.py``.
"""

from __future__ import annotations

import csv
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _phantom import benchmark_phantom
from hepavol.io import write_image
from hepavol.study.importer import import_scans
from hepavol.study.workspace import init_workspace

CHROMIUM = "/usr/bin/chromium"


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far, from /proc/PID/stat."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _workspace(folder: Path) -> tuple[Path, dict[str, list[float]]]:
    labels, lesions = benchmark_phantom(n_lesions=20, seed=5)
    arr = np.asarray(labels.array)
    rng = np.random.default_rng(1)
    image = np.where(arr == 1, 100.0, np.where(arr == 2, 40.0, -100.0)) + rng.normal(0, 10.0, arr.shape)
    missing = max(lesions, key=lambda les: min(les["semi_axes_mm"]))  # the roundest large lesion: left out
    centre = np.rint(missing["centre"]).astype(int)
    from hepavol.measurement import connected_components

    components = connected_components(arr == 2)
    value = components[tuple(centre)]
    seg = arr.copy()
    if value:
        seg[components == value] = 1
    write_image(labels.with_array(image.astype(np.int16)), folder / "ct.nii.gz")
    write_image(labels.with_array(seg), folder / "seg.nii.gz")
    manifest = folder / "scans.csv"
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patient_id", "date", "image", "seg", "modality"])
        w.writerow(["BENCH-1", "2020-01-02", str(folder / "ct.nii.gz"), str(folder / "seg.nii.gz"), "CT"])
    ws = init_workspace(folder / "study")
    try:
        import_scans(ws, [manifest])
    finally:
        ws.close()
    return folder / "study", missing


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        study, missing = _workspace(folder)
        print(f"workspace with a 512×512×300 CT: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        proc = subprocess.Popen(
            [sys.executable, "-m", "hepavol", "study", "serve", "--study", str(study), "--port", "0"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        url = next(m[1] for line in proc.stdout if (m := re.search(r"(http://\S+\?token=\S+)", line)))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1400, "height": 820})
                page.goto(url)
                page.wait_for_selector("#worklist tbody tr")
                t, cpu = time.perf_counter(), _cpu_s(proc.pid)
                page.click("#worklist tbody tr")
                page.wait_for_function("window.hepavol.draws > 0", timeout=120_000)
                first_s = time.perf_counter() - t
                first_cpu_s = _cpu_s(proc.pid) - cpu
                n = int(page.evaluate("window.hepavol.meta.shape[0]"))
                scroll_s = page.evaluate(
                    """async () => { const t = performance.now();
                       for (let k = 100; k < 200; k++) await setSlice(k);
                       return (performance.now() - t) / 1000; }"""
                )
                floor_s = page.evaluate(
                    """async () => { const url = scanUrl(); const t = performance.now();
                       for (let k = 0; k < 100; k++) { await (await fetch(`${url}/slices/${k}`)).arrayBuffer();
                         await (await fetch(`${url}/overlay/${k}`)).arrayBuffer(); }
                       return (performance.now() - t) / 1000; }"""
                )
                # a new lesion by one click at the left-out lesion's centre, then corrections
                centre = missing["centre"]
                display = page.evaluate("fetch(scanUrl()).then(r => r.json()).then(m => m.shape)")
                assert display[0] == n
                k, r, c = (float(v) for v in centre)  # identity direction: display = stored
                times = {}
                for tool, point in (
                    ("seed", (k, r, c)),
                    ("exclude", (k, r, c + missing["semi_axes_mm"][2] / 0.75 * 0.8)),
                    ("include", (k, r, c + missing["semi_axes_mm"][2] / 0.75 * 0.8)),
                ):
                    done = int(page.evaluate("Number(document.body.dataset.editDone) || 0"))
                    t = time.perf_counter()
                    page.evaluate(f"sendEdit({{action: '{tool}', point: [{point[0]}, {point[1]}, {point[2]}]}})")
                    page.wait_for_function(f"Number(document.body.dataset.editDone) > {done}", timeout=120_000)
                    times[tool] = time.perf_counter() - t
                    message = page.inner_text("#message")
                    if message:
                        print(f"{tool}: {message}", file=sys.stderr)
                browser.close()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    rate = 100 / scroll_s
    floor_rate = 100 / floor_s
    print("| review app, 512×512×300 CT | measured | target |")
    print("|---|---|---|")
    print(f"| first image (click to drawn) | {first_s:.2f} s | < 1 s |")
    print(f"| server CPU for the first image | {first_cpu_s:.2f} s | |")
    print(f"| scrolling, each slice fetched and drawn | {rate:.0f} slices/s | >= 20 slices/s |")
    print(f"| fetching only (floor) | {floor_rate:.0f} slices/s ({rate / floor_rate:.2f}× of it when drawing) | |")
    for tool, s in times.items():
        what = "new lesion by a click" if tool == "seed" else f"{tool} correction"
        print(f"| {what}, until drawn | {s:.2f} s | < 1.5 s |")


if __name__ == "__main__":
    main()
