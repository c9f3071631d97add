"""``hepavol pacs echo|find|pull|push``: talk to a PACS by DICOMweb (--url) or DIMSE (--host/--port)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

HELP = "search a PACS, pull series from it and push DICOM SEG/SR back (DICOMweb or DIMSE)"
DESCRIPTION = """\
Talk to a PACS by DICOMweb (--url http://HOST:PORT/dicom-web) or DIMSE (--host HOST --port PORT --called-aet
PACS_AET [--aet OUR_AET]).

  hepavol pacs echo   CONNECTION
  hepavol pacs find   CONNECTION --patient-id ID [--study-date YYYYMMDD[-YYYYMMDD]]   studies of a patient
  hepavol pacs find   CONNECTION --study UID                                          series of a study
  hepavol pacs pull   CONNECTION --study UID [--series UID] --out DIR [--method get|move --move-port N]
  hepavol pacs push   CONNECTION FILE...

A pulled series lands in a temporary folder that is renamed to DIR only when complete; without --series every
series of the study goes to DIR/<SeriesInstanceUID>. --workers 1 asks for a series in one request: one
streamed WADO-RS series retrieve (the DICOMweb default: the fastest, 7-15x one request per instance), or one
C-GET/C-MOVE of the series. --workers N > 1 retrieves in parallel: DICOMweb N WADO-RS requests of single
instances at a time (for servers that cannot stream a series); DIMSE N associations, each asking for lists of
instances (C-FIND at IMAGE level first; the DIMSE default is 4, about 3x faster than one C-GET over a 10 ms
round trip and as fast on loopback; use --workers 1 if the PACS limits associations). See benchmarks/pacs.py.
C-MOVE needs the PACS to know our AE title with this machine's address and --move-port. A DICOMweb password is
read from the environment variable HEPAVOL_DICOMWEB_PASSWORD (never from the command line).
"""

PASSWORD_ENV = "HEPAVOL_DICOMWEB_PASSWORD"


def _connection(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("connection")
    g.add_argument("--url", metavar="URL", help="DICOMweb service root, e.g. http://pacs:8042/dicom-web")
    g.add_argument("--host", metavar="HOST", help="DIMSE: PACS host name or address")
    g.add_argument("--port", type=int, metavar="PORT", help="DIMSE: PACS DICOM port")
    g.add_argument("--aet", default="HEPAVOL", metavar="AET", help="DIMSE: our AE title (default HEPAVOL)")
    g.add_argument("--called-aet", default="ANY-SCP", metavar="AET", help="DIMSE: the PACS AE title")
    g.add_argument("--user", metavar="NAME", help=f"DICOMweb: user name (password in ${PASSWORD_ENV})")
    g.add_argument("--timeout", type=float, default=30.0, metavar="S", help="network timeout, seconds (30)")


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    p = subparsers.add_parser(
        "pacs",
        parents=parents,
        help=HELP,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="pacs_command", metavar="{echo,find,pull,push}", required=True)
    pe = sub.add_parser("echo", help="check the connection (C-ECHO or a QIDO-RS query)")
    _connection(pe)
    pf = sub.add_parser("find", help="studies of a patient, or series of a study")
    _connection(pf)
    pf.add_argument("--patient-id", metavar="ID", help="PatientID to search")
    pf.add_argument("--study-date", metavar="DATE", help="StudyDate YYYYMMDD or range YYYYMMDD-YYYYMMDD")
    pf.add_argument("--study", metavar="UID", help="list the series of this study")
    pf.add_argument("--json", metavar="PATH", help="write the result as JSON ('-' for standard output)")
    pp = sub.add_parser("pull", help="retrieve a series (or all series of a study) into a new folder")
    _connection(pp)
    pp.add_argument("--study", required=True, metavar="UID", help="StudyInstanceUID")
    pp.add_argument("--series", metavar="UID", help="SeriesInstanceUID (default: every series of the study)")
    pp.add_argument("--out", required=True, metavar="DIR", help="new folder to create")
    pp.add_argument("--method", choices=("get", "move"), default="get", help="DIMSE: C-GET (default) or C-MOVE")
    pp.add_argument("--move-port", type=int, default=11113, metavar="N", help="DIMSE C-MOVE: our storage SCP port")
    pp.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="parallel requests (DICOMweb, default 1: the whole series in one streamed request) or associations "
        "(DIMSE, default 4); 1 = the whole series in one request",
    )
    pp.add_argument("--no-progress", action="store_true", help="no progress bar")
    pu = sub.add_parser("push", help="store DICOM files (e.g. SEG and SR) on the PACS")
    _connection(pu)
    pu.add_argument("files", nargs="+", metavar="FILE", help="DICOM files")
    for sp in (pe, pf, pp, pu):
        sp.set_defaults(func=run)
    p.set_defaults(func=lambda args: p.error("choose echo, find, pull or push"))


def _client(args: argparse.Namespace) -> Any:
    from hepavol.pacs import connect

    client = connect(
        url=args.url,
        host=args.host,
        port=args.port,
        aet=args.aet,
        called_aet=args.called_aet,
        username=args.user,
        password=os.environ.get(PASSWORD_ENV),
        timeout_s=args.timeout,
    )
    workers = getattr(args, "workers", None)
    if workers is not None:
        if workers < 1:
            from hepavol.pacs import PacsError

            raise PacsError(f"--workers must be at least 1, but it is {workers}.")
        client.workers = workers
    return client


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hepavol.cli._output import format_table, write_json
    from hepavol.pacs import PacsError

    client = _client(args)
    cmd = args.pacs_command
    if cmd == "echo":
        client.echo()
        print(f"{client.describe()}: answers")
        return 0
    if cmd == "find":
        if args.study:
            series = client.find_series(args.study)
            if args.json:
                write_json([s.to_dict() for s in series], args.json)
            if args.json != "-":
                rows = [
                    [
                        s.series_number,
                        s.modality,
                        s.number_of_instances,
                        s.series_description,
                        s.series_instance_uid,
                    ]
                    for s in series
                ]
                print(format_table(rows, ["number", "modality", "instances", "description", "series UID"]))
            return 0
        if not (args.patient_id or args.study_date):
            raise PacsError(
                "Give --patient-id and/or --study-date to search studies, or --study UID to list series."
            )
        studies = client.find_studies(patient_id=args.patient_id, study_date=args.study_date)
        if args.json:
            write_json([s.to_dict() for s in studies], args.json)
        if args.json != "-":
            rows = [
                [
                    s.study_date,
                    "/".join(s.modalities),
                    s.number_of_series,
                    s.study_description,
                    s.study_instance_uid,
                ]
                for s in studies
            ]
            print(format_table(rows, ["date", "modalities", "series", "description", "study UID"]))
        return 0
    if cmd == "pull":
        progress = not args.no_progress and sys.stderr.isatty()
        extra: dict[str, Any] = {}
        if not args.url:
            extra = {"method": args.method, "move_port": args.move_port}
        if args.series:
            files = client.pull_series(args.study, args.series, args.out, progress=progress, **extra)
            print(f"pulled {len(files)} instance(s) into {args.out}")
            return 0
        series = client.find_series(args.study)
        if not series:
            raise PacsError(f"{client.describe()} has no series in study {args.study}.")
        out = Path(args.out)
        if out.exists():
            raise PacsError(f"'{out}' already exists; pull into a new folder.")
        total = 0
        for s in series:
            files = client.pull_series(
                args.study, s.series_instance_uid, out / s.series_instance_uid, progress=progress, **extra
            )
            total += len(files)
        print(f"pulled {len(series)} series ({total} instance(s)) into {out}")
        return 0
    n = client.push(args.files)
    print(f"stored {n} file(s) on {client.describe()}")
    return 0
