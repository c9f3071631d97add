"""``hepavol recist``: RECIST 1.1 assessment of a read table (one row per lesion per assessment)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hepavol.response.recist import PatientAssessment

CSV_COLUMNS = (
    "patient_id",
    "baseline_date",
    "baseline_sum_mm",
    "best_overall_response",
    "progression_date",
    "date",
    "sum_of_diameters_mm",
    "change_from_baseline_percent",
    "change_from_nadir_percent",
    "change_from_nadir_mm",
    "target_response",
    "non_target_response",
    "new_lesions",
    "overall_response",
    "warnings",
)

DESCRIPTION = """\
RECIST 1.1 assessment (Eisenhauer et al., EJC 2009, with the EORTC clarifications) of a CSV read table with
columns patient_id,date,lesion_id,organ,category,diameter_mm,status: one row per lesion per assessment.
date YYYY-MM-DD; organ free text (lymph_node marks nodes, measured by short axis); category target,
non_target or new; diameter_mm for targets only (0 = disappeared; empty + status too_small = 5 mm; empty +
empty status = not evaluated); status: targets empty or too_small, non_target present/absent/progression,
new present (unequivocal) or equivocal. Baseline is each patient's earliest date. Prints a table by default.
"""


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "recist",
        parents=parents,
        help="RECIST 1.1 time-point and best overall response from a read table (CSV)",
        description=DESCRIPTION,
    )
    p.add_argument("table", metavar="TABLE.csv", help="read table, one row per lesion per assessment")
    p.add_argument("--json", metavar="PATH", help="write the assessment as JSON to PATH ('-' for standard output)")
    p.add_argument("--csv", metavar="PATH", help="write one row per time point as CSV to PATH ('-' for stdout)")
    p.add_argument(
        "--confirm",
        action="store_true",
        help="require confirmation of CR/PR at least 28 days later (RECIST 1.1 Table 3; non-randomised trials "
        "with response as primary endpoint)",
    )
    p.add_argument(
        "--sd-min-days",
        type=int,
        default=42,
        metavar="N",
        help="minimum days from baseline for SD to count as best overall response (default 42)",
    )
    p.set_defaults(func=run)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:+.{digits}f}" if digits == 2 else f"{value:.{digits}f}"
    return str(value)


def format_recist_table(results: Sequence[PatientAssessment]) -> str:
    """A readable text table of RECIST assessments: one block per patient, one line per time point."""
    from hepavol.cli._output import format_table

    headers = [
        "date",
        "SoD mm",
        "vs base %",
        "vs nadir %",
        "vs nadir mm",
        "target",
        "non-target",
        "new",
        "overall",
    ]
    blocks = []
    for r in results:
        d = r.to_dict()
        head = (
            f"patient {r.patient_id}: baseline {d['baseline_date']}, SoD {_fmt(d['baseline_sum_mm'])} mm, "
            f"best overall response {d['best_overall_response']}, progression {d['progression_date'] or '-'}"
        )
        rows = []
        for tp in d["timepoints"]:
            mm = tp["change_from_nadir_mm"]
            rows.append(
                [
                    tp["date"],
                    _fmt(tp["sum_of_diameters_mm"]),
                    _fmt(tp["change_from_baseline_percent"], 2),
                    _fmt(tp["change_from_nadir_percent"], 2),
                    "-" if mm is None else f"{mm:+.1f}",
                    tp["target_response"],
                    tp["non_target_response"],
                    tp["new_lesions"],
                    tp["overall_response"],
                ]
            )
        lines = [head]
        if rows:
            lines.append(format_table(rows, headers))
        else:
            lines.append("(no follow-up assessment)")
        for tp in r.timepoints:
            lines.extend(f"  note {tp.date.isoformat()}: {note}" for note in tp.notes)
        lines.extend(f"  warning: {w}" for w in r.warnings)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def csv_rows(results: Sequence[PatientAssessment]) -> list[dict[str, Any]]:
    """One row per time point (patients without follow-up get one row with empty time-point fields)."""
    rows: list[dict[str, Any]] = []
    for r in results:
        d = r.to_dict()
        patient = {k: d[k] for k in CSV_COLUMNS[:5]}
        patient["warnings"] = "; ".join(d["warnings"])
        if not d["timepoints"]:
            rows.append(patient)
        rows.extend({**patient, **tp} for tp in d["timepoints"])
    return rows


def run(args: argparse.Namespace) -> int:
    import sys

    from hepavol.cli._output import write_csv, write_json
    from hepavol.errors import InputError
    from hepavol.response.table import assess_table, read_recist_table

    if args.sd_min_days < 0:
        raise InputError(f"--sd-min-days must be 0 or more, got {args.sd_min_days}")
    if args.json == "-" and args.csv == "-":
        raise InputError("--json - and --csv - both write to standard output; send one of them to a file")
    results = assess_table(read_recist_table(args.table), confirm=args.confirm, sd_min_days=args.sd_min_days)
    if args.json:
        write_json({"patients": [r.to_dict() for r in results]}, args.json)
    if args.csv:
        write_csv(csv_rows(results), CSV_COLUMNS, args.csv)
    if "-" not in (args.json, args.csv):
        sys.stdout.write(format_recist_table(results))
    return 0
