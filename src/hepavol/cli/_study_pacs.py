"""The ``--pacs`` options of ``hepavol study import`` (pull the studies of a patient list from a PACS)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from hepavol.cli.pacs import PASSWORD_ENV

if TYPE_CHECKING:
    from hepavol.study.workspace import Workspace


def add_pacs_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--pacs``, ``--patients`` and the options of a pull to ``study import``."""
    g = parser.add_argument_group(
        "pulling from a PACS (instead of DICOM_ROOT)",
        "hepavol study import --pacs http://pacs:8042/dicom-web --patients patients.csv (DICOMweb), or "
        "--pacs ORTHANC@pacs:4242 (DIMSE: the PACS's AE title, host and port). patients.csv has a column "
        "patient_id and optional study_date_from, study_date_to (YYYY-MM-DD) and modality (CT, MR). The files go to "
        "STUDY/dicom/<pseudonym>/<StudyInstanceUID>/ and are imported as with DICOM_ROOT; studies already there "
        "are not pulled again.",
    )
    g.add_argument("--pacs", metavar="URL_OR_AE", help="DICOMweb URL, or AET@HOST:PORT for DIMSE")
    g.add_argument(
        "--patients", metavar="CSV", help="patient list: patient_id[,study_date_from,study_date_to,modality]"
    )
    g.add_argument(
        "--date-from", metavar="YYYY-MM-DD", help="only studies from this date (rows without their own)"
    )
    g.add_argument("--date-to", metavar="YYYY-MM-DD", help="only studies up to this date (rows without their own)")
    g.add_argument("--modality", choices=["CT", "MR", "ct", "mr"], help="only CT or MR (rows without their own)")
    g.add_argument(
        "--all-series",
        action="store_true",
        help="pull every CT/MR series (default: only the series the selection rules choose, and DICOM SEG)",
    )
    g.add_argument("--aet", default="HEPAVOL", metavar="AET", help="DIMSE: our AE title (default HEPAVOL)")
    g.add_argument("--method", choices=("get", "move"), default="get", help="DIMSE: C-GET (default) or C-MOVE")
    g.add_argument("--move-port", type=int, default=11113, metavar="N", help="DIMSE C-MOVE: our storage SCP port")
    g.add_argument("--pacs-user", metavar="NAME", help=f"DICOMweb: user name (password in ${PASSWORD_ENV})")
    g.add_argument("--timeout", type=float, default=30.0, metavar="S", help="PACS network timeout, seconds (30)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def wants_pacs(args: argparse.Namespace) -> bool:
    """True for ``--pacs``, False for DICOM_ROOT; InputError unless exactly one is given (and --patients with --pacs)."""
    from hepavol.errors import InputError

    if args.pacs and args.root:
        raise InputError(
            f"give either DICOM_ROOT ({args.root!r}) or --pacs, not both: 'hepavol study import DICOM_ROOT' imports a "
            "folder, 'hepavol study import --pacs URL_OR_AE --patients PATIENTS.csv' pulls from a PACS."
        )
    if not args.pacs and not args.root:
        raise InputError(
            "give a DICOM_ROOT folder to import, or --pacs URL_OR_AE --patients PATIENTS.csv to pull the studies of "
            "a patient list from a PACS."
        )
    if args.pacs and not args.patients:
        raise InputError(
            "--pacs needs --patients PATIENTS.csv: a CSV with a column patient_id (the PACS PatientID)."
        )
    if args.patients and not args.pacs:
        raise InputError(
            "--patients is the patient list of --pacs; give --pacs URL_OR_AE too, or DICOM_ROOT alone."
        )
    return bool(args.pacs)


def run_pacs_import(args: argparse.Namespace, ws: Workspace) -> int:
    """Pull and import (:func:`hepavol.study.pacs_import.import_from_pacs`), print warnings and the summary."""
    from hepavol.study.pacs_import import connect_pacs, import_from_pacs, read_patient_list

    try:
        requests = read_patient_list(
            args.patients, date_from=args.date_from, date_to=args.date_to, modality=args.modality
        )
        client = connect_pacs(
            args.pacs,
            aet=args.aet,
            timeout_s=args.timeout,
            username=args.pacs_user,
            password=os.environ.get(PASSWORD_ENV),
        )
        summary = import_from_pacs(
            ws,
            client,
            requests,
            all_series=args.all_series,
            method=args.method,
            move_port=args.move_port,
            workers=args.workers,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
    finally:
        ws.close()
    for warning in [*summary.warnings, *summary.imported.warnings]:
        print(f"warning: {warning}", file=sys.stderr)
    print(summary.describe())
    return 0
