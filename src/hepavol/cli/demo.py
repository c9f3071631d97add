"""``hepavol demo``: the main job on bundled data, end to end, printed as a user would see it."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import TextIO

HELP = "run hepavol on the bundled real cases (and the simulated study, as it grows)"
DESCRIPTION = """\
Measure the real public cases that ship with hepavol (TotalSegmentator CT and MR, a JPEG 2000 CT DICOM series,
the dcmqi liver DICOM SEG, a DeepLesion lesion), assess a small RECIST read table, and run the later parts of the
study pipeline that are present. Files are written under --out (default ./demo-output).
"""

#: (title, image, segmentation, options) relative to the data folder; sources in tests/data/README.md.
REAL_CASES: list[tuple[str, str, str, dict[str, object]]] = [
    (
        "TotalSegmentator example CT (NIfTI, RAS, 3 mm): liver = label 5",
        "totalsegmentator/example_ct_sm.nii.gz",
        "totalsegmentator/example_seg.nii.gz",
        {"liver_label": 5, "tumor_labels": (250,)},
    ),
    (
        "TotalSegmentator example MR (NIfTI, LPS, 3 mm): liver = label 5",
        "totalsegmentator/example_mr_sm.nii.gz",
        "totalsegmentator/example_seg_mr.nii.gz",
        {"liver_label": 5, "tumor_labels": (250,)},
    ),
    (
        "TotalSegmentator CT DICOM series (JPEG 2000 lossless, 20 slices) with its liver label map",
        "totalsegmentator/example_ct_dicom",
        "totalsegmentator/example_seg_dicom.nii.gz",
        {"liver_label": 5, "tumor_labels": (250,)},
    ),
    (
        "dcmqi liver CT (3 DICOM slices) with its liver DICOM SEG",
        "dcmqi/data/segmentations/ct-3slice",
        "dcmqi/data/segmentations/liver.dcm",
        {},
    ),
    (
        "DeepLesion lesion 000015_01_01 (CT in HU, P,L,I orientation) with its lesion mask",
        "deeplesion_flare25_recist/000015_01_01_103-115_ct_hu.nii.gz",
        "deeplesion_flare25_recist/000015_01_01_103-115_lesion_mask_from_npz.nii.gz",
        {"liver_label": 99, "tumor_labels": (1,)},
    ),
]

#: Later parts of the demo, each an optional module with ``run_<name>_demo(out, workdir)``.
SECTIONS = [
    ("RECIST 1.1 on a small bundled read table", "hepavol.cli._demo_recist", "run_recist_demo"),
    ("Longitudinal follow-up of one simulated patient", "hepavol.cli._demo_followup", "run_followup_demo"),
    ("A study workspace: simulated PACS export to cohort table", "hepavol.cli._demo_study", "run_study_demo"),
    ("Cohort analysis (simulated study)", "hepavol.cli._demo_cohort", "run_cohort_demo"),
]


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    p = subparsers.add_parser(
        "demo",
        parents=parents,
        help=HELP,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data", metavar="DIR", help="folder of the real test cases (default: the repository's tests/data)"
    )
    p.add_argument(
        "--out", metavar="DIR", default="demo-output", help="where files are written (default ./demo-output)"
    )
    p.set_defaults(func=run)


def default_data_dir() -> Path | None:
    """The repository's ``tests/data`` when hepavol runs from a checkout (``make demo``)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "tests" / "data"
        if (candidate / "README.md").is_file() and (candidate / "totalsegmentator").is_dir():
            return candidate
    return None


def run(args: argparse.Namespace) -> int:
    import sys

    from hepavol.errors import InputError

    data = Path(args.data) if args.data else default_data_dir()
    if data is None or not data.is_dir():
        raise InputError(
            f"The demo data folder {str(data) if data else '(tests/data of a hepavol checkout)'} was not found. "
            "Run the demo from a clone of the repository (make demo) or pass --data DIR with the real cases."
        )
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_demo(sys.stdout, data, out_dir)
    return 0


def run_demo(out: TextIO, data: Path, workdir: Path) -> None:
    """Print every part of the demo to ``out``; files go to ``workdir``."""
    from hepavol._version import __version__

    print(f"hepavol {__version__} demo: volumetric follow-up of liver metastases\n", file=out)
    print("1. Measuring real public cases (hepavol measure)", file=out)
    print("=" * 60, file=out)
    measure_real_cases(out, data)
    number = 1
    for title, module_name, function in SECTIONS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        number += 1
        print(f"\n{number}. {title}", file=out)
        print("=" * 60, file=out)
        section = getattr(module, function)
        if _takes_workdir(section):
            section(out, workdir)
        else:
            section(out)
    print(f"\nDemo finished. Files are in {workdir.resolve()}", file=out)


def _takes_workdir(fn: object) -> bool:
    import inspect

    return len(inspect.signature(fn).parameters) >= 2  # type: ignore[arg-type]


def measure_real_cases(out: TextIO, data: Path) -> None:
    """Measure each bundled real case and print its table (the JSON of ``hepavol measure`` as a table)."""
    from hepavol.cli.measure import format_scan
    from hepavol.io import read_image, read_segmentation
    from hepavol.measurement import measure_scan

    for title, image_rel, seg_rel, options in REAL_CASES:
        image = read_image(data / image_rel)
        seg = read_segmentation(data / seg_rel, reference=image.geometry)
        result = measure_scan(seg, image, **options)  # type: ignore[arg-type]
        print(f"\n{title}", file=out)
        print(f"$ hepavol measure {image_rel} --seg {seg_rel}{_options_text(options)}", file=out)
        print(format_scan(result.to_dict()), file=out)
        for warning in result.warnings:
            if "No voxel has the tumour label" not in warning:
                print(f"  warning: {warning}", file=out)


def _options_text(options: dict[str, object]) -> str:
    text = ""
    if "liver_label" in options:
        text += f" --liver-label {options['liver_label']}"
    for label in options.get("tumor_labels", ()):  # type: ignore[attr-defined]
        text += f" --tumor-label {label}"
    return text
