"""``hepavol measure IMAGE --seg SEG``: lesions, liver volume and tumour burden of one scan."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hepavol.cli._options import add_label_options

HELP = "measure the lesions, the liver and the tumour burden of one scan"
DESCRIPTION = """\
Measure one scan from its segmentation. Lesions are the connected components of the tumour label(s) (or, with
--instances, each label other than 0 and the liver label). For each lesion: volume, RECIST 1.1 long and short
axis (in the acquisition plane), 3D diameter (both between surface-mesh vertices, as IBSI and pyradiomics),
centroid (DICOM LPS, mm), mean/SD of the image values, RECIST measurability. For the scan: liver volume (whole
organ incl. tumours), total tumour volume, tumour burden and its ENETS hepatic tumour load class.

IMAGE is a DICOM series folder or a NIfTI/NRRD/MHA file; SEG a label map (same formats) or a DICOM SEG file.
"""


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    p = subparsers.add_parser(
        "measure",
        parents=parents,
        help=HELP,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("image", metavar="IMAGE", help="DICOM series folder, or .nii/.nii.gz/.nrrd/.mha/.mhd file")
    p.add_argument("--seg", required=True, metavar="SEG", help="label map file or DICOM SEG file")
    add_label_options(p)
    p.add_argument(
        "--series", metavar="UID", help="SeriesInstanceUID to read when the folder holds several series"
    )
    p.add_argument(
        "--allow-gaps", action="store_true", help="resample a DICOM series with missing slices onto a regular grid"
    )
    p.add_argument(
        "--resample-seg",
        action="store_true",
        help="resample a segmentation on another grid onto the image grid (nearest neighbour)",
    )
    p.add_argument("--json", metavar="PATH", help="write the result as JSON to PATH ('-' for standard output)")
    p.add_argument(
        "--csv", metavar="PATH", help="write one row per lesion as CSV to PATH ('-' for standard output)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hepavol.cli._output import write_csv, write_json
    from hepavol.io import read_image, read_segmentation
    from hepavol.measurement import measure_scan, measurements_table, table_columns

    image = read_image(args.image, series_uid=args.series, allow_gaps=args.allow_gaps)
    seg = read_segmentation(args.seg, reference=image.geometry, resample=args.resample_seg)
    result = measure_scan(
        seg,
        image,
        liver_label=args.liver_label,
        tumor_labels=tuple(args.tumor_label or (2,)),
        instances=args.instances,
        connectivity=args.connectivity,
    )
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        write_json(result.to_dict(), args.json)
    if args.csv:
        write_csv(measurements_table(result), table_columns(), args.csv)
    if "-" not in (args.json, args.csv):
        print(format_scan(result.to_dict(), title=f"{args.image}  (seg: {args.seg})"))
    return 0


def format_scan(result: dict[str, Any], *, title: str = "") -> str:
    """A readable summary of a ``hepavol measure`` result (the JSON dict)."""
    from hepavol.cli._output import format_table

    img = result["image"]
    spacing = " x ".join(f"{v:g}" for v in img["spacing_mm"])
    lines = []
    if title:
        lines.append(title)
    lines.append(f"grid {tuple(img['shape'])} (slice, row, column), spacing {spacing} mm")
    liver = result["liver_volume_ml"]
    burden = result["tumor_burden_percent"]
    lines.append(
        f"liver {'-' if liver is None else f'{liver:.1f}'} mL | tumour {result['total_tumor_volume_ml']:.2f} mL | "
        f"{result['lesion_count']} lesion(s) | burden {'-' if burden is None else f'{burden:.2f}'} % "
        f"(class {result['hepatic_tumor_load_class'] or '-'})"
    )
    if result["lesions"]:
        rows = [
            [
                les["lesion_id"],
                les["volume_ml"],
                les["long_axis_mm"],
                les["short_axis_mm"],
                les["max_diameter_3d_mm"],
                les["slice_index"],
                "yes" if les["measurable"] else "no",
                ", ".join(f"{v:.1f}" for v in les["centroid_mm"]),
                les["mean_hu"],
            ]
            for les in result["lesions"]
        ]
        headers = [
            "lesion",
            "volume_ml",
            "long_mm",
            "short_mm",
            "3d_mm",
            "slice",
            "measurable",
            "centroid LPS mm",
            "mean",
        ]
        lines.append(format_table(rows, headers))
    return "\n".join(lines)
