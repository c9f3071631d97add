"""Benchmark: the whole per-scan measurement against the tools users would otherwise use.

Phantom: a 512×512×300 label map (1.25 × 0.75 × 0.75 mm) with a liver and 100 ellipsoidal lesions of 5–60 mm
(lognormal sizes), and the same with the liver filling the whole field of view. Each tool runs in its own
process on the same ``.npy`` file, so the peak memory it needs above its input is measured cleanly
(Linux VmHWM reset after loading and warm-up, vs the current RSS then).

- hepavol ``measure_scan``: components + every lesion figure (volume, long/short axis, 3D diameter, centroid).
- cc3d ``connected_components`` alone (the floor: labelling only).
- SimpleITK ``ConnectedComponent`` + ``LabelShapeStatisticsImageFilter`` with Feret diameter on.
- pyradiomics shape features (if installed: ``pip install numpy setuptools wheel versioneer`` then
  ``pip install pyradiomics --no-build-isolation``), timed on a few lesions and reported per lesion.

Run: ``.venv/bin/python benchmarks/measure.py`` (about a minute). Prints a markdown table of times, ratios and
peak memory from one run (best of 3 repeats per tool).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

TOOL_CODE = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, {here!r})
tool, path, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
labels = np.load(path)
spacing = (1.25, 0.75, 0.75)

def rss_mb():
    # Peak resident memory since the last reset (VmHWM); writing 5 to clear_refs resets it (Linux).
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def reset_peak():
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")

def current_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

def run_hepavol():
    from hepavol.geometry import Geometry, identity_direction
    from hepavol.measurement import measure_scan
    from hepavol.volume import Volume
    g = Geometry(shape=labels.shape, spacing_mm=spacing, origin_lps_mm=(0, 0, 0), direction=identity_direction())
    vol = Volume(labels, g)
    return lambda: measure_scan(vol).lesion_count

def run_cc3d():
    import cc3d
    return lambda: int(cc3d.connected_components(labels == 2, connectivity=26).max())

def run_sitk():
    import SimpleITK as sitk
    img = sitk.GetImageFromArray(labels)
    img.SetSpacing(spacing[::-1])
    def f():
        cc = sitk.ConnectedComponent(img == 2, True)
        shape = sitk.LabelShapeStatisticsImageFilter()
        shape.ComputeFeretDiameterOn()
        shape.Execute(cc)
        return shape.GetNumberOfLabels()
    return f

def run_pyradiomics():
    import logging
    import SimpleITK as sitk
    import cc3d
    from radiomics import shape, featureextractor  # noqa: F401
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    from radiomics.featureextractor import RadiomicsFeatureExtractor
    extractor = RadiomicsFeatureExtractor()
    extractor.disableAllFeatures()
    extractor.enableFeatureClassByName("shape")
    cc = cc3d.connected_components(labels == 2, connectivity=26)
    img = sitk.GetImageFromArray(np.zeros(labels.shape, np.int16))
    img.SetSpacing(spacing[::-1])
    mask = sitk.GetImageFromArray(cc.astype(np.uint16))
    mask.CopyInformation(img)
    def f():
        n = 2
        for k in range(1, n + 1):
            extractor.execute(img, mask, label=k)
        return n
    return f

setup = {{"hepavol": run_hepavol, "cc3d": run_cc3d, "sitk": run_sitk, "pyradiomics": run_pyradiomics}}[tool]
fn = setup()
fn()  # warm-up (imports, caches)
reset_peak()
base = current_mb()
times, result = [], None
for _ in range(repeats):
    t = time.perf_counter(); result = fn(); times.append(time.perf_counter() - t)
print(json.dumps({{"seconds": min(times), "result": result, "peak_above_input_mb": rss_mb() - base}}))
"""


def run_tool(tool: str, path: Path, repeats: int) -> dict[str, float]:
    code = TOOL_CODE.format(here=str(HERE))
    out = subprocess.run(
        [sys.executable, "-c", code, tool, str(path), str(repeats)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}  # type: ignore[dict-item]
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    sys.path.insert(0, str(HERE))
    import numpy as np

    from _phantom import benchmark_phantom

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case, fill in (("liver in abdomen", False), ("liver fills FOV", True)):
            vol, _ = benchmark_phantom(n_lesions=100, seed=0, liver_fills_fov=fill)
            path = Path(tmp) / "labels.npy"
            np.save(path, np.asarray(vol.array))
            res = {tool: run_tool(tool, path, 3) for tool in ("hepavol", "cc3d", "sitk")}
            if case == "liver in abdomen":
                res["pyradiomics"] = run_tool("pyradiomics", path, 1)
            rows.append((case, res))
    print("| case | tool | lesions | time (s) | ratio to cc3d | hepavol speed-up | peak above input (MB) |")
    print("|---|---|---|---|---|---|---|")
    for case, res in rows:
        cc = res["cc3d"].get("seconds")
        ours = res["hepavol"].get("seconds")
        for tool, r in res.items():
            if "error" in r:
                print(f"| {case} | {tool} | - | not run: {r['error']} | | | |")
                continue
            seconds = r["seconds"]
            label = tool
            if tool == "pyradiomics":
                per_lesion = seconds / r["result"]
                label = "pyradiomics (per lesion × 100)"
                seconds = per_lesion * 100
            ratio = f"{seconds / cc:.2f}" if cc else "-"
            speed = f"{seconds / ours:.1f}×" if ours and tool != "hepavol" else "1×"
            print(
                f"| {case} | {label} | {r['result']} | {seconds:.3f} | {ratio} | {speed} | "
                f"{r['peak_above_input_mb']:.0f} |"
            )
    print(
        f"\n(one run, {time.strftime('%Y-%m-%d')}, best of 3 repeats; pyradiomics timed on 2 lesions after a warm-up lesion)"
    )


if __name__ == "__main__":
    main()
