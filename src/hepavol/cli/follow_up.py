"""``hepavol follow-up MANIFEST``: one patient's scans through time (registration, tracking, RECIST, volumetry)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from hepavol.cli._options import add_label_options

if TYPE_CHECKING:
    from hepavol.followup.pipeline import FollowUpResult

HELP = "follow one patient's liver lesions through time: RECIST 1.1 and volumetry per scan"
DESCRIPTION = """\
Measure every scan of one patient, register each follow-up to the baseline on the liver masks (rigid, optionally
affine), track each lesion through time (new, disappeared, merged, split lesions), choose the RECIST 1.1 targets
(the 2 largest measurable liver lesions at baseline, or --targets), and assess every scan: RECIST response, total
tumour volume and volumetric response, tumour growth rates, hepatic tumour load.

MANIFEST is a CSV file with the columns date,image,seg (optional patient_id), one row per scan in date order,
baseline first; paths are relative to the manifest. Dates are YYYY-MM-DD.

JSON (--json): patient_id, targets, registration (per scan: transform from baseline to that scan, liver Dice
before/after), lesions (lesion_id, tracking_uid, status, target, measurements from the first scan showing the
lesion: date, volume_ml, long_axis_mm, short_axis_mm, centroid_mm), timepoints (baseline first; its responses are
null). Every centroid_mm is in the BASELINE scan's LPS frame (mm), after registration; it is null when the lesion
has no voxel on that scan (volume and axes are then 0). Lesion status: present, new (absent at baseline), split
(in fragments), disappeared, merged (joined another lesion, measured as one with it).

Non-target lesions (all baseline lesions other than the targets, one entry) are absent when their total volume is
0 and in unequivocal progression when it rises by 73 % or more above its nadir (hepavol's rule: EORTC's volume
equivalent of a 20 % diameter increase). Every lesion absent at baseline counts as an unequivocal new lesion.
"""


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    p = subparsers.add_parser(
        "follow-up",
        parents=parents,
        help=HELP,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("manifest", metavar="MANIFEST", help="CSV with columns date,image,seg[,patient_id]")
    p.add_argument("--json", metavar="PATH", help="write the result as JSON to PATH ('-' for standard output)")
    p.add_argument("--report", metavar="DIR", help="write an HTML report (report.html) into DIR")
    p.add_argument("--targets", metavar="ID,ID", help="baseline lesion ids to use as RECIST targets (e.g. L1,L3)")
    add_label_options(p, lesion_options=False)
    p.add_argument("--affine", action="store_true", help="add an affine stage to the rigid registration")
    p.add_argument(
        "--max-distance",
        type=float,
        default=20.0,
        metavar="MM",
        help="largest centroid distance after registration for two non-overlapping lesions to match (20)",
    )
    p.add_argument(
        "--resample-seg",
        action="store_true",
        help="resample segmentations that are not on their image's grid (nearest neighbour)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hepavol.cli._output import write_json
    from hepavol.followup.pipeline import run_followup

    targets = None if args.targets is None else [t for t in args.targets.split(",") if t.strip()]
    result = run_followup(
        args.manifest,
        targets=targets,
        liver_label=args.liver_label,
        tumor_labels=tuple(args.tumor_label or (2,)),
        affine=args.affine,
        resample_seg=args.resample_seg,
        max_distance_mm=args.max_distance,
        keep_scans=bool(args.report),
    )
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        write_json(result.to_dict(), args.json)
    report = None
    if args.report:
        from hepavol.followup.report import write_report

        report = write_report(result, args.report)
    if args.json != "-":
        print(format_followup(result))
        if report is not None:
            print(f"report: {report}")
    return 0


def format_followup(result: FollowUpResult) -> str:
    """A readable per-scan table of a follow-up result."""
    from hepavol.cli._output import format_table

    rows = []
    for tp in result.timepoints:
        rows.append(
            [
                tp.date.isoformat(),
                tp.total_tumor_volume_ml,
                tp.volume_change_from_baseline_percent,
                tp.volumetric_response or "-",
                tp.sum_of_diameters_mm,
                tp.target_response or "-",
                tp.non_target_response or "-",
                ",".join(tp.new_lesion_ids) or "-",
                tp.overall_response or "-",
                tp.tgr_volume_percent_per_month,
                tp.lesion_count,
                f"{tp.registration.dice_after:.3f}",
            ]
        )
    headers = [
        "date",
        "TTV_ml",
        "dTTV_%",
        "vol_resp",
        "sum_mm",
        "target",
        "non_target",
        "new",
        "RECIST",
        "TGR_vol_%/mo",
        "lesions",
        "liver_dice",
    ]
    lines = [
        f"patient {result.patient_id or '(no id)'}: targets {', '.join(result.targets) or 'none'}",
        format_table(rows, headers),
        f"best overall response {result.best_overall_response}; progression date "
        f"{result.progression_date.isoformat() if result.progression_date else 'none'}",
    ]
    events = [
        f"{result.timepoints[e.timepoint_index].date.isoformat()} {e.lesion_id} {e.kind}"
        + (f" into {e.other_lesion_id}" if e.other_lesion_id else "")
        for e in result.tracking.events
    ]
    if events:
        lines.append("lesion events: " + "; ".join(events))
    return "\n".join(lines)
