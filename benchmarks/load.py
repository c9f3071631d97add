"""Benchmark: loading a 300-slice 512x512 uncompressed int16 CT series.

Compares ``hepavol.io.read_image`` with SimpleITK's ``ImageSeriesReader`` (GDCM, including the
``GetGDCMSeriesFileNames`` sort) and the raw-bytes floor (open and read every file, nothing else). Each reader runs
in its own subprocess: the time is the best of 3 warm runs (the files were just written, so they are in the page
cache), the peak memory is the growth of the process's maximum resident set size (``ru_maxrss``) over the
baseline after imports. Target (issue 2): faster than SimpleITK, peak memory <= 2x the volume (int16 stays int16).

Run: ``.venv/bin/python benchmarks/load.py [--slices 300] [--keep DIR]``. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_CHILD = r"""
import json, os, resource, sys, time
import numpy as np
which, folder = sys.argv[1], sys.argv[2]
if which == "hepavol":
    from hepavol.io import read_image
    def run():
        v = read_image(folder)
        return v.array.dtype.name, v.array.shape
elif which == "simpleitk":
    import SimpleITK as sitk
    def run():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
        img = reader.Execute()
        arr = sitk.GetArrayViewFromImage(img)
        return arr.dtype.name, arr.shape
else:
    names = sorted(os.listdir(folder))
    def run():
        total = 0
        for name in names:
            with open(os.path.join(folder, name), "rb") as fh:
                total += len(fh.read())
        return "bytes", (total,)
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
base = hwm()
times = []
for _ in range(3):
    t0 = time.perf_counter()
    dtype, shape = run()
    times.append(time.perf_counter() - t0)
peak = hwm()
print(json.dumps({"best_s": min(times), "times_s": times, "peak_mb": (peak - base) / 1024, "dtype": dtype,
                  "shape": list(shape)}))
"""


def _make_series(folder: Path, n_slices: int) -> int:
    from hepavol.geometry import Geometry
    from hepavol.io import write_dicom_series
    from hepavol.volume import Volume

    rng = np.random.default_rng(0)
    shape = (n_slices, 512, 512)
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    body = ((yy - 256) ** 2 / 200**2 + (xx - 256) ** 2 / 230**2) <= 1
    array = np.where(body, 40, -1000).astype(np.int16) + (zz % 7).astype(np.int16)
    array = array + rng.integers(-20, 20, size=shape, dtype=np.int16)
    geometry = Geometry(
        shape=shape,
        spacing_mm=(1.0, 0.78125, 0.78125),
        origin_lps_mm=(-200.0, -200.0, -150.0),
        direction=((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)),
    )
    write_dicom_series(Volume(array, geometry), folder, series_description="benchmark phantom")
    return int(array.nbytes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--keep", type=Path, help="write the series here and keep it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep if args.keep else Path(tmp) / "series"
        t0 = time.perf_counter()
        volume_bytes = _make_series(folder, args.slices) if not folder.exists() else args.slices * 512 * 512 * 2
        print(
            f"series: {args.slices} slices 512x512 int16 in {folder} (written in {time.perf_counter() - t0:.1f} s)"
        )
        results = {}
        for which in ("raw bytes", "hepavol", "simpleitk"):
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, which.split()[0], str(folder)],
                capture_output=True,
                text=True,
                check=True,
            )
            results[which] = json.loads(out.stdout.strip().splitlines()[-1])
    volume_mb = volume_bytes / 2**20
    ref = results["hepavol"]["best_s"]
    print()
    print("| reader | best of 3 (s) | x hepavol time | peak memory (MB) | x volume size | dtype |")
    print("|---|---|---|---|---|---|")
    for which, r in results.items():
        print(
            f"| {which} | {r['best_s']:.3f} | {r['best_s'] / ref:.2f} | {r['peak_mb']:.0f} | "
            f"{r['peak_mb'] / volume_mb:.2f} | {r['dtype']} |"
        )
    print(
        f"\nvolume size: {volume_mb:.0f} MB; runs (s): "
        + json.dumps({k: [round(t, 3) for t in v["times_s"]] for k, v in results.items()})
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
