"""``hepavol cohort COHORT.csv --out DIR``: the study's endpoints from a cohort table, with a report."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "cohort",
        parents=parents,
        help="analyse a cohort table: landmark PFS, Cox, C-index, TGR log-rank, correlations; HTML/PDF report",
        description=(
            "Analyse a cohort table (one row per patient, the columns of 'hepavol study export': patient_id, "
            "modality, baseline_date, early_date, baseline_volume_ml, early_volume_ml, baseline_sld_mm, "
            "early_sld_mm, lesion_count, liver_volume_ml, pfs_event, pfs_date, ki67_percent, cga_ug_l, "
            "extra_abdominal, grade; optionally baseline_target_volume_ml, early_target_volume_ml, "
            "baseline_three_largest_diameter_sum_mm, early_three_largest_diameter_sum_mm). Every early criterion "
            "is compared head to head on CT and MR separately (results.json 'head_to_head'). "
            "Writes DIR/results.json, DIR/derived.csv, DIR/figures/*.png|svg, "
            "DIR/report.html and DIR/report.pdf. Dates ISO YYYY-MM-DD; volumes mL; diameters mm."
        ),
    )
    p.add_argument(
        "table", metavar="COHORT.csv", help="cohort table (CSV: UTF-8 or Windows-1252; separator , ; or tab)"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="B",
        help="bootstrap resamples for the C-index CIs (default 1000)",
    )
    p.add_argument("--seed", type=int, default=20181, help="seed of the bootstrap (default 20181)")
    p.add_argument(
        "--tgr-cutoff",
        type=float,
        default=0.8,
        metavar="PCT_PER_MONTH",
        help="TGR cut-off in %%/month for the log-rank tests (default 0.8, GREPONET)",
    )
    p.add_argument(
        "--spearman-se",
        choices=("bonett-wright", "fisher", "fieller"),
        default="bonett-wright",
        help="standard error of the Fisher-z CI of Spearman's rho (default bonett-wright)",
    )
    p.add_argument(
        "--pool-modalities",
        action="store_true",
        help="head to head: also analyse CT and MR pooled (default: CT and MR separately, as the registry)",
    )
    rep = p.add_mutually_exclusive_group()
    rep.add_argument(
        "--repeatability-cv",
        type=float,
        default=None,
        metavar="PCT",
        help="within-patient coefficient of variation of a volume measurement in %%: gives every patient's "
        "volume change and TGR a 95 %% interval and repeats the cut-off analyses without the patients whose "
        "change is below the smallest detectable change",
    )
    rep.add_argument(
        "--repeatability-from",
        default=None,
        metavar="AGREEMENT_DIR/results.json",
        help="as --repeatability-cv, with the within-patient CV of total_tumor_volume_ml from a 'hepavol agreement' "
        "results.json (the source and the reader agreement are recorded in results.json and the report); default: "
        "TABLE's <stem>_agreement.json when it exists (hepavol study export writes it for a study with a second "
        "reader)",
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
    from hepavol.cohort.analysis import AnalysisOptions
    from hepavol.cohort.pipeline import headline, run_cohort
    from hepavol.errors import InputError

    if args.bootstrap < 0:
        raise InputError(f"--bootstrap must be 0 or more, but it is {args.bootstrap}")
    if args.repeatability_cv is not None and not 0 < args.repeatability_cv < 100:
        raise InputError(
            f"--repeatability-cv must be a percentage between 0 and 100 (e.g. 5 for 5 %), but it is "
            f"{args.repeatability_cv:g}"
        )
    from hepavol.cohort.uncertainty import agreement_beside, repeatability_from_agreement

    cv, source = args.repeatability_cv, None
    beside = agreement_beside(args.table)
    if args.repeatability_from is not None:
        cv, source = repeatability_from_agreement(args.repeatability_from)
    elif cv is None and beside.is_file():  # written by hepavol study export when the study has a second reader
        try:
            cv, source = repeatability_from_agreement(beside, option="the reader agreement beside the table")
        except InputError as exc:
            print(f"not used: {exc}", file=sys.stderr)
        else:
            print(
                f"repeatability: within-patient CV {cv:.2f} % of the total tumour volume from the reader agreement "
                f"{beside} beside the table (--repeatability-cv or --repeatability-from choose another)"
            )
    options = AnalysisOptions(
        pool_modalities=args.pool_modalities,
        repeatability_cv_percent=cv,
        tgr_cutoff_percent_per_month=args.tgr_cutoff,
        bootstrap_resamples=args.bootstrap,
        seed=args.seed,
        spearman_se=args.spearman_se,
    )
    result = run_cohort(
        args.table,
        args.out,
        options=options,
        pdf=not args.no_pdf,
        use_chromium=args.pdf_engine == "auto",
        repeatability_source=source,
    )
    analysis = result.analysis
    for warning in (*analysis.warnings, *(w for sub in analysis.by_modality for w in sub.warnings)):
        print(f"warning: {warning}", file=sys.stderr)
    for line in headline(result):
        print(line)
    print(f"results: {result.results_json}")
    print(f"report:  {result.report_html}")
    if result.report_pdf is not None:
        print(f"pdf:     {result.report_pdf} (rendered with {result.pdf_method})")
    return 0
