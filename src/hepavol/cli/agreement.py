"""``hepavol agreement TABLE.csv --out DIR``: inter- or intra-reader agreement of volumetry and RECIST 1.1."""

from __future__ import annotations

import argparse


def _window(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FIRST,LAST days such as 91,183, got {text!r}") from None
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"expected 0 < FIRST <= LAST, got {text!r}")
    return lo, hi


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "agreement",
        parents=parents,
        help="reader agreement of lesion/total volumes, sums of diameters, early changes and responses",
        description=(
            "Agreement of two readers (or one reader twice) from a table of paired measurements made elsewhere: "
            "patient_id,date,reader,lesion_id,volume_ml,long_axis_mm[,target] (one row per reader, scan and "
            "lesion; target yes/no marks the lesions of the sum of diameters, all baseline lesions when the column "
            "is absent; a repeated read of reader A is named A#2). Per lesion, per scan and per patient: ICC(2,1), "
            "ICC(3,1), Bland-Altman (log scale for volumes), wCV, repeatability coefficient; RECIST 1.1 and "
            "volumetric response per time point with Cohen's kappa; progression-date changes; the smallest "
            "detectable change of the total tumour volume. Writes DIR/results.json, DIR/pairs.csv, "
            "DIR/figures/bland_altman.png|svg, DIR/report.html and DIR/report.pdf."
        ),
    )
    p.add_argument("table", metavar="TABLE.csv", help="paired-measurement table (CSV, UTF-8)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    p.add_argument("--readers", metavar="A,B", help="the two readers to compare (needed when the table has more)")
    p.add_argument("--repeat", metavar="A", help="intra-reader agreement: compare reads A and A#2")
    p.add_argument(
        "--early-window",
        type=_window,
        default=None,
        metavar="FIRST,LAST",
        help="days after baseline of the early scan, both inclusive (default 91,183: the study's 3-6 months)",
    )
    p.add_argument("--no-pdf", action="store_true", help="do not write report.pdf")
    p.add_argument(
        "--pdf-engine",
        choices=("auto", "matplotlib"),
        default="auto",
        help="auto: headless Chromium when installed, else matplotlib; matplotlib: never start Chromium",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hepavol.agreement.analysis import select_reads
    from hepavol.agreement.pipeline import headline, run_agreement
    from hepavol.agreement.reads import read_agreement_table
    from hepavol.study.eligibility import EARLY_WINDOW_DAYS

    reads = read_agreement_table(args.table)
    readers = None if args.readers is None else [r.strip() for r in args.readers.split(",")]
    first, second = select_reads(reads, readers=readers, repeat=args.repeat, source=args.table)
    result = run_agreement(
        first,
        second,
        args.out,
        early_window_days=args.early_window or EARLY_WINDOW_DAYS,
        pdf=not args.no_pdf,
        use_chromium=args.pdf_engine == "auto",
        source_name=Path(args.table).name,
    )
    for line in headline(result):
        print(line)
    print(f"results: {result.results_json}")
    print(f"report:  {result.report_html}")
    if result.report_pdf is not None:
        print(f"pdf:     {result.report_pdf} (rendered with {result.pdf_method})")
    return 0
