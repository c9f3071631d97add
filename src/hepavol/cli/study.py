"""``hepavol study ...``: the study workspace (database of patients, scans, lesions and clinical data)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hepavol.study.workspace import Workspace

HELP = "a study workspace: import scans and clinical data, check eligibility, run in batch, export the cohort"
DESCRIPTION = """\
A study workspace holds a whole cohort in one database (SQLite in the workspace by default, PostgreSQL with --db or
HEPAVOL_DB): patients under pseudonyms (keyed hash; the key and the mapping never leave the workspace), their
scans, the series chosen for measurement and why, segmentations, every measurement with its provenance, tracked
lesions, RECIST 1.1 and volumetric assessments, clinical variables, eligibility decisions and an append-only
audit trail.

Typical use:
  hepavol study init mystudy && cd mystudy
  hepavol study import /data/pacs-export            # DICOM tree: patients, studies, series, DICOM SEG
  hepavol study import --pacs http://pacs/dicom-web --patients patients.csv   # or pull them from the PACS
  hepavol study import-scans cohort/*/manifest.csv  # or NIfTI/NRRD/MHA scans listed in manifests
  hepavol study import-clinical clinical.csv --treatments treatments.csv
  hepavol study segment --workers 2                 # no masks yet: hepavol proposes them (liver, seeds)
  hepavol study eligibility                         # NCT03689231's criteria, flow table
  hepavol study run --workers 2                     # measure, track, assess (resumable)
  hepavol study export cohort.csv                   # + cohort_lesions.csv, cohort_timepoints.csv
The commands act on the workspace in the current folder (or a parent), or on --study DIR.
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", metavar="DIR", help="the study workspace (default: the current folder or a parent)")
    p.add_argument(
        "--db",
        metavar="URL",
        help="database URL (sqlite:///PATH or postgresql://USER@HOST/DB); default: HEPAVOL_DB, then study.toml",
    )


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("study", parents=parents, help=HELP, description=DESCRIPTION, formatter_class=raw)
    sub = p.add_subparsers(dest="study_command", metavar="COMMAND", required=True)

    s = sub.add_parser(
        "init",
        parents=parents,
        help="create a study workspace (database and pseudonymisation key)",
        description="Create a study workspace in the new or empty folder DIR: study.toml (settings), "
        "pseudonym.key (mode 0600) and the database (hepavol.db, or the PostgreSQL database --db names).",
    )
    s.add_argument("dir", metavar="DIR", help="new or empty folder")
    s.add_argument("--db", metavar="URL", help="PostgreSQL database URL (default: SQLite hepavol.db in DIR)")
    s.set_defaults(func=run_init)

    s = sub.add_parser(
        "import",
        parents=parents,
        help="import a DICOM folder tree (a PACS export): patients, studies, series, DICOM SEG",
        description="Walk DICOM_ROOT, group the files into patients, studies and series, choose the series to "
        "measure in each study (rules in study.toml [series_selection]; the choice and its reason are recorded) "
        "and import the DICOM SEG objects that reference them. Patient names and ids are replaced by pseudonyms.",
    )
    s.add_argument("root", metavar="DICOM_ROOT", nargs="?", help="folder tree with DICOM files (or --pacs)")
    s.add_argument("--workers", type=int, default=4, metavar="N", help="threads reading headers (4)")
    _common(s)
    from hepavol.cli._study_pacs import add_pacs_options

    add_pacs_options(s)
    s.set_defaults(func=run_import)

    s = sub.add_parser(
        "import-scans",
        parents=parents,
        help="import scans listed in manifests (NIfTI/NRRD/MHA files or DICOM folders)",
        description="Import the scans of one or more manifests: CSV with columns date,image[,seg][,patient_id]"
        "[,modality][,series_uid], paths relative to the manifest (the manifest of hepavol follow-up and of "
        "hepavol simulate). Re-importing the same files adds nothing.",
    )
    s.add_argument("manifests", nargs="+", metavar="MANIFEST")
    s.add_argument("--patient", metavar="ID", help="patient id when the manifest has no patient_id column")
    s.add_argument("--modality", choices=["CT", "MR", "ct", "mr"], help="modality of non-DICOM images")
    _common(s)
    s.set_defaults(func=run_import_scans)

    s = sub.add_parser(
        "import-seg",
        parents=parents,
        help="attach segmentations (label maps or DICOM SEG) to imported scans",
        description="Attach segmentations to scans already in the study: a CSV table patient_id,date,seg (paths "
        "relative to it), or one file with --patient and --date. The new segmentation becomes the one measured.",
    )
    s.add_argument(
        "source", metavar="TABLE_OR_SEG", help="CSV table patient_id,date,seg, or one segmentation file"
    )
    s.add_argument("--patient", metavar="ID", help="patient id (original id, as in the import) for one file")
    s.add_argument("--date", metavar="YYYY-MM-DD", help="scan date for one file")
    s.add_argument(
        "--from-hepavol-segment", action="store_true", help="record the masks as made by hepavol segment"
    )
    s.add_argument(
        "--reader",
        metavar="NAME",
        help="import the masks as reader NAME's read (their segmentation versions, as a blinded read in the review "
        "app; A#2 for reader A's repeated read): the study's own read and study run are unchanged",
    )
    _common(s)
    s.set_defaults(func=run_import_seg)

    s = sub.add_parser(
        "import-clinical",
        parents=parents,
        help="import clinical variables (Ki-67, grade, CgA, extra-abdominal disease, treatments)",
        description="Import the clinical variables of the patients (one row per patient, original patient_id "
        "as in the imaging import) and their dated treatments. Values are validated (units, ranges) with an error "
        "per row.",
    )
    s.add_argument("clinical", metavar="CLINICAL_CSV")
    s.add_argument("--treatments", metavar="CSV", help="treatments: patient_id,treatment,start_date,end_date")
    _common(s)
    s.set_defaults(func=run_import_clinical)

    s = sub.add_parser(
        "eligibility",
        parents=parents,
        help="apply NCT03689231's eligibility criteria; print the flow table",
        description="Measure every patient's baseline scan (cached) and apply the study's criteria: "
        "well-differentiated small-intestinal NET; at least one measurable (>= 10 mm) liver metastasis at baseline; "
        "no invasive liver treatment or systemic therapy other than somatostatin analogues during follow-up; a "
        "baseline and an early scan 3-6 months later. Stores each decision and prints the flow table.",
    )
    s.add_argument("--workers", type=int, default=1, metavar="N", help="processes measuring baselines (1)")
    s.add_argument("--json", metavar="PATH", help="write the decisions and the flow table as JSON ('-' = stdout)")
    _common(s)
    s.set_defaults(func=run_eligibility)

    s = sub.add_parser(
        "run",
        parents=parents,
        help="measure, track and assess every eligible patient (resumable, parallel)",
        description="Run the follow-up of every eligible patient whose inputs changed or were never analysed: "
        "measure every scan, register, track lesions, assess RECIST 1.1 and volumetric response, TGR. Each patient "
        "is stored in one transaction; a failure is recorded and the others go on; a stopped run resumes. Each "
        "named reader's read (their own segmentation versions: import-seg --reader, blinded reads) is analysed and "
        "stored the same way, for study agreement and study export --reader.",
    )
    s.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes on this machine (1)")
    s.add_argument(
        "--scheduler", metavar="ADDRESS", help="run on a Dask distributed cluster (e.g. tcp://10.0.0.5:8786)"
    )
    s.add_argument("--patient", action="append", metavar="PSEUDONYM", help="only these patients (repeatable)")
    s.add_argument("--force", action="store_true", help="recompute patients whose inputs have not changed")
    s.add_argument(
        "--accept-proposed",
        action="store_true",
        help="also measure scans whose segmentation is only proposed by hepavol study segment (not yet accepted "
        "by a reader); the run says how many, and each analysis records it",
    )
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    _common(s)
    s.set_defaults(func=run_run)

    s = sub.add_parser(
        "import-seeds",
        parents=parents,
        help="import lesion seeds (RECIST lines or points) for study segment from a CSV",
        description="Import the RECIST lines a site already has, for hepavol study segment: a CSV with "
        "patient_id,date (the original id and the scan's date) and either x1,y1,z1,x2,y2,z2 (the line's two ends in "
        "the scan's DICOM patient frame, LPS mm) or slice1,row1,column1,slice2,row2,column2 (0-based voxel indices "
        "of the scan's measured series); leave the second point empty for a seed point; optional lesion_id (rows "
        "with the same id on a scan are one lesion). DICOM SR TID 1500 linear measurements in a DICOM tree are "
        "picked up by hepavol study import.",
    )
    s.add_argument("table", metavar="SEEDS_CSV")
    _common(s)
    s.set_defaults(func=run_import_seeds)

    s = sub.add_parser(
        "segment",
        parents=parents,
        help="propose a segmentation for every scan without an accepted one (liver, lesions from seeds, carried "
        "forward)",
        description="For every imported scan without an accepted segmentation: the liver automatically (as "
        "hepavol segment liver), a lesion from each seed (RECIST lines from DICOM SR or study import-seeds), and "
        "every lesion accepted on an earlier scan of the patient carried forward through the registration. Each "
        "result is stored as a proposed segmentation with its method, parameters and seeds, until a reader accepts "
        "it (study review --accept-segmentation, or the review app). Resumable like study run: a stopped run "
        "resumes; scans whose inputs have not changed are skipped.",
    )
    s.add_argument("--patients", nargs="+", metavar="P-...", help="only these patients (pseudonyms)")
    s.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes on this machine (1)")
    s.add_argument(
        "--scheduler", metavar="ADDRESS", help="run on a Dask distributed cluster (e.g. tcp://10.0.0.5:8786)"
    )
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    _common(s)
    s.set_defaults(func=run_segment)

    s = sub.add_parser(
        "review",
        parents=parents,
        help="record a reviewer's decision: RECIST targets by hand, include or exclude a patient",
        description="Record a reviewer's decision on a patient (by pseudonym), with a reason: the RECIST target "
        "lesions chosen by hand (baseline lesion ids, L1 = largest; 'auto' = automatic choice), or including or "
        "excluding the patient whatever the criteria say ('auto' removes the override), or RECIST calls a reader "
        "makes (non-target progression, equivocal new lesions), or lesion matches relinked by hand. Decisions "
        "are kept as history with who and when; the next 'study run' recomputes what they change. Without a decision option, "
        "prints the patient's review history.",
    )
    s.add_argument("patient", metavar="PSEUDONYM", help="the patient's pseudonym (P-...)")
    s.add_argument("--targets", metavar="L1,L3|auto", help="target lesions chosen by hand, or 'auto'")
    group = s.add_mutually_exclusive_group()
    group.add_argument("--include", dest="eligibility", action="store_const", const="include")
    group.add_argument("--exclude", dest="eligibility", action="store_const", const="exclude")
    group.add_argument(
        "--auto-eligibility", dest="eligibility", action="store_const", const="auto", help="remove an override"
    )
    signing = s.add_mutually_exclusive_group()
    signing.add_argument(
        "--sign-off",
        dest="sign_off",
        action="store_const",
        const="signed",
        help="sign off the patient's read: its segmentations and targets are locked until reopened",
    )
    signing.add_argument(
        "--reopen", dest="sign_off", action="store_const", const="reopened", help="reopen a signed-off read"
    )
    s.add_argument(
        "--non-target",
        metavar="DATE=CALL",
        action="append",
        default=[],
        help="the reader's RECIST call on the liver's non-target disease at a follow-up scan: present, absent or "
        "progression (unequivocal), replacing hepavol's volume rule that day; CALL auto removes it (repeatable)",
    )
    s.add_argument(
        "--new-lesion",
        metavar="L6=CALL",
        action="append",
        default=[],
        help="a new lesion (first seen after baseline) called equivocal (PD only once confirmed) or unequivocal "
        "(the default); CALL auto removes the call (repeatable)",
    )
    s.add_argument(
        "--link",
        metavar="DATE:LESION=TRACK",
        action="append",
        default=[],
        help="relink a lesion of a follow-up scan by hand: DATE:L2=L3 (the scan's lesion L2 is track L3; two "
        "lesions on one track are its fragments), DATE:L2=new, DATE:L4=L4+L5 (tracks L4 and L5 merged into it, "
        "measured on L4), DATE:none=L3 (track L3 has no lesion that day); LESION=auto removes a link (repeatable)",
    )
    s.add_argument(
        "--second-reader",
        metavar="NAME",
        help="with --targets: the targets of NAME's blinded second read (lesion ids of NAME's own baseline "
        "segmentation), kept apart from the study's targets and never used by study run",
    )
    s.add_argument(
        "--accept-segmentation",
        metavar="DATE|all",
        help="accept the segmentation hepavol study segment proposed for the scan of DATE (or of every scan): it "
        "becomes an accepted segmentation, measured by study run",
    )
    s.add_argument(
        "--reason", metavar="TEXT", help="why (required with a decision, optional to sign off or to accept)"
    )
    _common(s)
    s.set_defaults(func=run_review)

    s = sub.add_parser(
        "serve",
        parents=parents,
        help="the review app: a local web server for reading the study in a browser",
        description="Start the review app on this study and print its URL (with a random access token). It binds "
        "to 127.0.0.1 unless --host says otherwise; the browser gets pseudonyms, scan dates, pixels and "
        "measurements only. Stop it with Ctrl+C.",
    )
    s.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    s.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port)")
    s.add_argument("--reader", metavar="NAME", help="the reader's name on every change (default: user@host)")
    s.add_argument(
        "--blinded",
        action="store_true",
        help="a blinded second read: start from the imported segmentations, save your own versions (never "
        "measured by study run), see nothing of the study's read; needs --reader",
    )
    _common(s)
    s.set_defaults(func=run_serve)

    s = sub.add_parser(
        "status",
        parents=parents,
        help="what the study holds and what is left to do",
        description="Counts per stage, patients not ready and failures, under pseudonyms. With --paths: the files "
        "behind the labels that messages, failures and the audit log show (<P-x DATE image>), for the owner of "
        "the study on this console only: paths may hold patient names, so they are never stored or exported.",
    )
    s.add_argument(
        "--paths",
        nargs="*",
        metavar="PSEUDONYM",
        help="list label -> file for these patients (all when none is given) instead of the counts",
    )
    _common(s)
    s.set_defaults(func=run_status)

    s = sub.add_parser(
        "export",
        parents=parents,
        help="export the cohort table (and per-lesion, per-time-point tables) as CSV or Parquet",
        description="Write the per-patient cohort table (the input of hepavol cohort) to PATH, and the per-lesion "
        "and per-time-point tables beside it (PATH_lesions, PATH_timepoints) unless --lesions/--timepoints name "
        "them. .csv or .parquet by suffix. Patients appear under their pseudonyms only. When the study has a "
        "second reader, the agreement of the exported read with theirs is written beside the tables as "
        "PATH_agreement.json (the results.json of hepavol study agreement), which hepavol cohort PATH uses for the "
        "measurement uncertainty and its reader-agreement section.",
    )
    s.add_argument("path", metavar="COHORT_CSV", help="cohort table (.csv or .parquet)")
    s.add_argument("--lesions", metavar="PATH", help="per-lesion table (.csv or .parquet)")
    s.add_argument("--timepoints", metavar="PATH", help="per-time-point table (.csv or .parquet)")
    s.add_argument(
        "--reader",
        metavar="NAME",
        help="export reader NAME's read, measured on their segmentation versions (default: [readers] "
        "primary_reader in study.toml; 'study' is the study's own read as study run stores it)",
    )
    s.add_argument(
        "--agreement-with",
        metavar="NAME",
        help="write PATH_agreement.json of the exported read against reader NAME's (default: the study's one other "
        "reader; none with one reader only)",
    )
    _common(s)
    s.set_defaults(func=run_export)

    s = sub.add_parser(
        "agreement",
        parents=parents,
        help="inter- or intra-reader agreement of the study's reads (as hepavol agreement)",
        description="Measure two reads of the study on each reader's own segmentation versions (the study's own "
        "read is 'study'; readers from the blinded review app or study import-seg --reader NAME) with study run's "
        "measurement, write the paired-measurement table DIR/reads.csv and run hepavol agreement's analysis on it: "
        "DIR/results.json, DIR/pairs.csv, DIR/categories.csv, DIR/figures/, DIR/report.html and DIR/report.pdf.",
    )
    s.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    s.add_argument(
        "--readers",
        metavar="A,B",
        help="the two reads to compare (default: the primary reader and the study's one other reader)",
    )
    s.add_argument("--repeat", metavar="A", help="intra-reader agreement: compare reads A and A#2")
    s.add_argument("--no-pdf", action="store_true", help="do not write report.pdf")
    s.add_argument(
        "--pdf-engine",
        choices=("auto", "matplotlib"),
        default="auto",
        help="auto: headless Chromium when installed, else matplotlib; matplotlib: never start Chromium",
    )
    _common(s)
    s.set_defaults(func=run_agreement)

    s = sub.add_parser("audit", parents=parents, help="print the audit trail (who did what, when)")
    s.add_argument("--last", type=int, default=50, metavar="N", help="the last N entries (50)")
    _common(s)
    s.set_defaults(func=run_audit)


def _workspace(args: argparse.Namespace) -> Workspace:
    from hepavol.study.workspace import find_workspace

    ws = find_workspace(args.study, db_url=args.db)
    for note in ws.notes:
        print(f"warning: {note}", file=sys.stderr)
    return ws


def run_init(args: argparse.Namespace) -> int:
    from hepavol.study.workspace import init_workspace

    ws = init_workspace(args.dir, db_url=args.db)
    for note in ws.notes:
        print(f"warning: {note}", file=sys.stderr)
    print(f"study created in {ws.root} (database {ws.db.display_url})")
    print(f"keep {ws.key_path.name} safe: it makes the pseudonyms; never share it")
    ws.close()
    return 0


def run_import(args: argparse.Namespace) -> int:
    from hepavol.cli._study_pacs import run_pacs_import, wants_pacs
    from hepavol.study.dicom_import import import_dicom_tree

    if wants_pacs(args):  # exactly one of DICOM_ROOT and --pacs
        return run_pacs_import(args, _workspace(args))
    ws = _workspace(args)
    try:
        summary = import_dicom_tree(ws, args.root, workers=args.workers, progress=sys.stderr.isatty())
    finally:
        ws.close()
    for warning in summary.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"imported: {summary.describe()}")
    return 0


def run_import_scans(args: argparse.Namespace) -> int:
    from hepavol.study.importer import import_scans

    ws = _workspace(args)
    try:
        summary = import_scans(ws, args.manifests, patient_id=args.patient, modality=args.modality)
    finally:
        ws.close()
    for warning in summary.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"imported: {summary.describe()}")
    return 0


def run_import_seg(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hepavol.study.importer import import_segmentations

    ws = _workspace(args)
    source = "hepavol-segment" if args.from_hepavol_segment else None
    try:
        if Path(args.source).suffix.lower() == ".csv":
            summary = import_segmentations(ws, args.source, source=source, reader=args.reader)
        else:
            summary = import_segmentations(
                ws, seg=args.source, patient_id=args.patient, date=args.date, source=source, reader=args.reader
            )
    finally:
        ws.close()
    whose = "" if args.reader is None else f" (reader {args.reader.strip()}'s read)"
    print(f"imported{whose}: {summary.describe()}")
    return 0


def run_import_clinical(args: argparse.Namespace) -> int:
    from hepavol.study.clinical_import import import_clinical

    ws = _workspace(args)
    try:
        result = import_clinical(ws, args.clinical, treatments_path=args.treatments)
    finally:
        ws.close()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(result.describe())
    return 0


def run_eligibility(args: argparse.Namespace) -> int:
    from hepavol.cli._output import write_json
    from hepavol.study.screening import run_eligibility as screen

    ws = _workspace(args)
    try:
        result = screen(ws, workers=args.workers)
    finally:
        ws.close()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        write_json(result.to_dict(), args.json)
    if args.json != "-":
        print(result.flow_text)
    return 0


def run_run(args: argparse.Namespace) -> int:
    from hepavol.pacs._progress import Progress
    from hepavol.study.runner import plan_run, run_study

    ws = _workspace(args)
    bar: Progress | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = Progress(total, "study run", enabled=not args.no_progress and sys.stderr.isatty())
        bar.advance()

    try:
        jobs, planned = plan_run(ws, patients=args.patient, force=args.force, accept_proposed=args.accept_proposed)
        readers = f", {planned.readers_planned} named reader analyses" if planned.readers else ""
        print(f"{len(jobs) - planned.readers_planned} patient(s) to analyse{readers}", file=sys.stderr)
        if jobs:
            proposed = (
                f"{planned.scans_proposed} on segmentations proposed by hepavol study segment (--accept-proposed)"
                if args.accept_proposed
                else "none on proposed segmentations (give --accept-proposed to measure those)"
            )
            print(f"segmentations: {planned.scans_accepted} scan(s) on accepted segmentations, {proposed}")
        summary = run_study(
            ws,
            workers=args.workers,
            scheduler=args.scheduler,
            patients=args.patient,
            force=args.force,
            accept_proposed=args.accept_proposed,
            progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
        ws.close()
    for pseudonym, reason in summary.not_ready:
        print(f"not ready: {pseudonym}: {reason}", file=sys.stderr)
    for pseudonym, error in summary.failed:
        print(f"failed: {pseudonym}: {error}", file=sys.stderr)
    print(
        f"eligible {summary.eligible}: analysed now {summary.computed}, already up to date {summary.up_to_date}, "
        f"done by another run {summary.elsewhere}, failed {len(summary.failed)}, not ready {len(summary.not_ready)}"
    )
    if summary.readers:
        print(
            f"reader analyses ({', '.join(summary.readers)}): computed now {summary.readers_computed}, already up to "
            f"date {summary.readers_up_to_date}"
        )
    return 1 if summary.failed else 0


def run_import_seeds(args: argparse.Namespace) -> int:
    from hepavol.study.seeds import import_seed_table

    ws = _workspace(args)
    try:
        summary = import_seed_table(ws, args.table)
    finally:
        ws.close()
    print(f"imported: {summary.describe()}")
    return 0


def run_segment(args: argparse.Namespace) -> int:
    from hepavol.pacs._progress import Progress
    from hepavol.study.segmenting import plan_segment, segment_study

    ws = _workspace(args)
    bar: Progress | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = Progress(total, "study segment", enabled=not args.no_progress and sys.stderr.isatty())
        bar.advance()

    try:
        jobs, _ = plan_segment(ws, patients=args.patients)
        print(f"{sum(len(j.scans) for j in jobs)} scan(s) of {len(jobs)} patient(s) to segment", file=sys.stderr)
        summary = segment_study(
            ws, patients=args.patients, workers=args.workers, scheduler=args.scheduler, progress=progress
        )
    finally:
        if bar is not None:
            bar.close()
        ws.close()
    for pseudonym, day, reason in summary.refused_seeds:
        print(f"seed refused: {pseudonym} {day}: {reason}", file=sys.stderr)
    for pseudonym, error in summary.failed:
        print(f"failed: {pseudonym}: {error}", file=sys.stderr)
    print(
        f"scans: {summary.proposed} proposed now, {summary.up_to_date} already proposed on the same inputs, "
        f"{summary.accepted} with an accepted segmentation (left alone), {len(summary.failed)} failed; lesions: "
        f"{summary.lesions_from_seeds} from seeds, {summary.lesions_carried_forward} carried forward, "
        f"{summary.disappeared} proposed as disappeared, {summary.candidates} candidate(s) listed for the reader; "
        f"{len(summary.refused_seeds)} seed(s) refused"
    )
    if summary.proposed:
        print("accept them after review: hepavol study review PSEUDONYM --accept-segmentation DATE|all (or in the "
              "review app), or measure them as they are: hepavol study run --accept-proposed")  # fmt: skip
    return 1 if summary.failed else 0


def run_review(args: argparse.Namespace) -> int:
    from hepavol.cli._output import format_table
    from hepavol.study.review import record_review, review_history

    ws = _workspace(args)
    try:
        if args.second_reader is not None:
            return _second_read_targets(ws, args)
        if args.accept_segmentation is not None:
            from hepavol.study.proposals import accept_segmentation

            for done in accept_segmentation(ws, args.patient, args.accept_segmentation, reason=args.reason):
                print(f"{args.patient}: segmentation of {done.date} accepted")
        decisions = (args.targets, args.eligibility, args.sign_off)
        if any(v is not None for v in decisions) or args.non_target or args.new_lesion or args.link:
            rows = record_review(
                ws,
                args.patient,
                targets=args.targets,
                eligibility=args.eligibility,
                sign_off=args.sign_off,
                non_target=args.non_target,
                new_lesions=args.new_lesion,
                links=args.link,
                reason=args.reason,
            )
            for row in rows:
                print(f"{args.patient}: {row.field} {row.old_value} -> {row.new_value} (by {row.reviewer})")
        history = review_history(ws, args.patient)
    finally:
        ws.close()
    table = [[h["at"][:19], h["reviewer"], h["field"], h["old"], h["new"], h["reason"]] for h in history]
    print(format_table(table, ["time (UTC)", "reviewer", "field", "old", "new", "reason"]))
    return 0


def _second_read_targets(ws: Any, args: argparse.Namespace) -> int:
    from hepavol.study.second_reads import record_second_read_targets, second_read_targets

    others = (args.eligibility, args.sign_off, *args.non_target, *args.new_lesion, *args.link)
    if args.targets is None or any(v is not None for v in others):
        from hepavol.errors import InputError

        raise InputError(
            "--second-reader goes with --targets only (a blinded reader's own targets): e.g. --second-reader "
            "'Dr B' --targets L1,L3 --reason TEXT."
        )
    row = record_second_read_targets(ws, args.patient, args.targets, reader=args.second_reader, reason=args.reason)
    print(f"{args.patient}: {row.field} {row.old_value} -> {row.new_value} (by {row.reviewer})")
    chosen = second_read_targets(ws, args.patient, args.second_reader)
    print(
        f"{args.second_reader}'s targets on the baseline {chosen.baseline_date}: {', '.join(chosen.targets) or 'none'}"
        f" ({'chosen by hand' if chosen.chosen_by_hand else 'automatic'}), sum of diameters "
        f"{chosen.sum_of_diameters_mm:.1f} mm"
    )
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from hepavol.app.serve import serve

    ws = _workspace(args)
    try:
        serve(ws, host=args.host, port=args.port, reader=args.reader, blinded=args.blinded)
    finally:
        ws.close()
    return 0


def run_status(args: argparse.Namespace) -> int:
    from hepavol.cli._output import format_table
    from hepavol.study.status import path_labels, study_status

    ws = _workspace(args)
    try:
        if args.paths is None:
            print(study_status(ws))
            return 0
        rows = path_labels(ws, args.paths or None)
    finally:
        ws.close()
    print(format_table([list(r) for r in rows], ["label", "file"]) if rows else "no files imported")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from hepavol.study.export import export_tables

    ws = _workspace(args)
    try:
        summary = export_tables(
            ws,
            args.path,
            lesions=args.lesions,
            timepoints=args.timepoints,
            reader=args.reader,
            agreement_with=args.agreement_with,
        )
    finally:
        ws.close()
    for pseudonym, reason in summary.left_out:
        print(f"left out: {pseudonym}: {reason}", file=sys.stderr)
    for note in summary.notes:
        print(note, file=sys.stderr)
    print(f"exported {summary.patients} patient(s): " + ", ".join(str(f) for f in summary.files))
    if summary.agreement is not None and summary.agreement_readers is not None:
        first, second = summary.agreement_readers
        print(
            f"reader agreement of {first} and {second} (as hepavol study agreement --readers {first},{second}): "
            f"{summary.agreement}; hepavol cohort {args.path} uses it"
        )
    else:
        print(f"no reader agreement written: {summary.no_agreement}")
    return 0


def run_agreement(args: argparse.Namespace) -> int:
    from hepavol.agreement.pipeline import headline
    from hepavol.study.readers import study_agreement

    ws = _workspace(args)
    readers = None if args.readers is None else args.readers.split(",")
    try:
        done = study_agreement(
            ws,
            args.out,
            readers=readers,
            repeat=args.repeat,
            pdf=not args.no_pdf,
            use_chromium=args.pdf_engine == "auto",
        )
    finally:
        ws.close()
    for reader, pseudonym, reason in done.left_out:
        print(f"left out of {reader}'s read: {pseudonym}: {reason}", file=sys.stderr)
    for note in done.notes:
        print(note, file=sys.stderr)
    for line in headline(done.run):
        print(line)
    print(f"reads:   {done.reads_csv}")
    print(f"results: {done.run.results_json}")
    print(f"report:  {done.run.report_html}")
    if done.run.report_pdf is not None:
        print(f"pdf:     {done.run.report_pdf} (rendered with {done.run.pdf_method})")
    return 0


def run_audit(args: argparse.Namespace) -> int:
    from hepavol.cli._output import format_table
    from hepavol.study.audit import entries

    ws = _workspace(args)
    try:
        with ws.db.transaction() as session:
            rows: list[list[Any]] = [
                [e.at.strftime("%Y-%m-%d %H:%M:%S"), e.actor, e.action, e.entity_key or "", _short(e.details)]
                for e in entries(session, limit=args.last)
            ]
    finally:
        ws.close()
    print(format_table(rows, ["time (UTC)", "who", "action", "patient/key", "details"]))
    return 0


def _short(details: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in details.items())
    return text if len(text) <= 80 else text[:77] + "..."
