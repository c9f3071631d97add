"""``hepavol export seg|sr SOURCE --seg SEG --out FILE.dcm`` and ``export sr --manifest``: DICOM SEG and SR."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hepavol.cli._options import add_label_options

HELP = "write a segmentation as DICOM SEG, or its measurements as a DICOM SR (TID 1500)"
DESCRIPTION = """\
Export results as DICOM objects that PACS and viewers (OHIF, 3D Slicer) show.

  hepavol export seg SOURCE --seg SEG --out seg.dcm
      Binary DICOM Segmentation on the SOURCE series: one segment for the liver (liver label only) and one per
      lesion (L1, L2, ... from the largest, each with a TrackingUID), coded with SNOMED CT.
  hepavol export sr SOURCE --seg SEG --out sr.dcm [--seg-out seg.dcm]
      Comprehensive 3D SR, TID 1500: per lesion a volumetric group (volume in mm3, referencing its SEG segment)
      and a planar group (RECIST long and short axes as polylines on the source slice); per timepoint the total
      tumour volume and the sum of long axes; optionally the RECIST and volumetric responses.
      SEG is a DICOM SEG on SOURCE (then referenced as it is), or a label map (then a SEG is built and written
      to --seg-out, which is required so that the SR's references resolve).
  hepavol export sr --manifest MANIFEST --out DIR
      Run the follow-up of MANIFEST (as 'hepavol follow-up': CSV date,image,seg, images DICOM series folders)
      and write per scan DIR/<date>_SEG.dcm (liver + one segment per tracked lesion on that scan) and
      DIR/<date>_SR.dcm (TID 1500 referencing it; time point baseline, FU1, FU2, ...; RECIST sum of target
      diameters, target, non-target and overall responses; total tumour volume and volumetric response). Each
      lesion keeps its follow-up id (TrackingID L1, L2, ...) and TrackingUID on every scan. A lesion in
      fragments is one segment (one planar group per fragment); a lesion merged into another is part of that
      lesion's segment; disappeared and merged lesions are not in that scan's SEG and SR.

SOURCE is the DICOM series folder the segmentation was drawn on (single-frame CT or MR). A SOURCE without
FrameOfReferenceUID (legacy exports) gets a frame of reference derived from its study and series UIDs, with a
warning, recorded in the SEG (ImageComments); --no-derive-frame-of-reference refuses such a series instead.
"""


def _common(p: argparse.ArgumentParser, *, manifest: bool = False) -> None:
    if manifest:
        p.add_argument(
            "source", nargs="?", metavar="SOURCE", help="DICOM series folder the segmentation was made on"
        )
        p.add_argument("--seg", metavar="SEG", help="label map file or DICOM SEG file")
        p.add_argument(
            "--out", required=True, metavar="FILE", help="output DICOM file (with --manifest: output folder)"
        )
    else:
        p.add_argument("source", metavar="SOURCE", help="DICOM series folder the segmentation was made on")
        p.add_argument("--seg", required=True, metavar="SEG", help="label map file or DICOM SEG file")
        p.add_argument("--out", required=True, metavar="FILE", help="output DICOM file (written atomically)")
    add_label_options(p)
    p.add_argument("--series", metavar="UID", help="SeriesInstanceUID when the folder holds several series")
    p.add_argument(
        "--resample-seg", action="store_true", help="resample a label map on another grid (nearest neighbour)"
    )
    p.add_argument(
        "--no-derive-frame-of-reference",
        dest="derive_frame_of_reference",
        action="store_false",
        help="refuse a source series without FrameOfReferenceUID (0020,0052) instead of writing the SEG/SR "
        "with a frame of reference derived from its study and series UIDs (the default, with a warning)",
    )
    p.add_argument(
        "--deidentify",
        nargs="?",
        const="",
        metavar="PSEUDONYM",
        help="de-identify the SEG/SR for sharing (PS3.15 Basic Profile, UIDs and dates kept): PatientName and "
        "PatientID become PSEUDONYM, or without it the patient's pseudonym in the study (--study DIR or the "
        "study of the current folder); by default the objects copy the source's patient attributes for the PACS",
    )
    p.add_argument("--study", metavar="DIR", help="with --deidentify: the study whose pseudonym to use")


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    p = subparsers.add_parser(
        "export",
        parents=parents,
        help=HELP,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="export_kind", metavar="{seg,sr}", required=True)
    ps = sub.add_parser("seg", help="write a DICOM SEG", description="Write a binary DICOM Segmentation.")
    _common(ps)
    ps.set_defaults(func=run)
    pr = sub.add_parser(
        "sr",
        help="write a TID 1500 SR (one scan, or every scan of a follow-up with --manifest)",
        description="Write a TID 1500 measurement report; with --manifest one SEG and one SR per scan.",
    )
    _common(pr, manifest=True)
    pr.add_argument(
        "--manifest", metavar="MANIFEST", help="follow-up manifest (CSV date,image,seg); --out is then a folder"
    )
    pr.add_argument("--targets", metavar="ID,ID", help="with --manifest: baseline lesion ids to use as targets")
    pr.add_argument("--affine", action="store_true", help="with --manifest: affine stage in the registration")
    pr.add_argument(
        "--max-distance",
        type=float,
        default=20.0,
        metavar="MM",
        help="with --manifest: largest centroid distance for two non-overlapping lesions to match (20)",
    )
    pr.add_argument("--seg-out", metavar="FILE", help="where to write the SEG built from a label-map --seg")
    pr.add_argument("--time-point", metavar="ID", help="time point id (TID 1502), e.g. baseline, FU1")
    pr.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=None, help="time point type")
    pr.add_argument("--recist-response", choices=("CR", "PR", "SD", "PD"), help="RECIST 1.1 target response")
    pr.add_argument("--volumetric-response", choices=("CR", "PR", "SD", "PD"), help="volumetric response")
    pr.set_defaults(func=run)
    p.set_defaults(func=lambda args: p.error("choose 'seg' or 'sr'"))


def _run_manifest(args: argparse.Namespace) -> int:
    from hepavol.cli._output import format_table
    from hepavol.errors import InputError
    from hepavol.io.followup_dicom import write_followup_dicom

    single = {
        "SOURCE": args.source,
        "--seg": args.seg,
        "--seg-out": args.seg_out,
        "--time-point": args.time_point,
        "--baseline/--no-baseline": args.baseline,
        "--recist-response": args.recist_response,
        "--volumetric-response": args.volumetric_response,
        "--series": args.series,
        "--instances": args.instances or None,
    }
    given = [name for name, value in single.items() if value is not None]
    if given:
        raise InputError(
            f"--manifest exports every scan of a follow-up and takes no {', '.join(given)}: the images and "
            "segmentations come from the manifest, time points and responses from the follow-up. Give either "
            "SOURCE --seg SEG (one scan) or --manifest MANIFEST."
        )
    targets = None if args.targets is None else [t for t in args.targets.split(",") if t.strip()]
    pseudonym = None
    if args.deidentify is not None:
        from hepavol.followup import read_manifest

        first = read_manifest(args.manifest).rows[0].image
        pseudonym = _pseudonym(args, first)
    done = write_followup_dicom(
        args.manifest,
        args.out,
        targets=targets,
        liver_label=args.liver_label,
        tumor_labels=tuple(args.tumor_label or (2,)),
        affine=args.affine,
        resample_seg=args.resample_seg,
        max_distance_mm=args.max_distance,
        derive_frame_of_reference=args.derive_frame_of_reference,
        deidentify=pseudonym,
    )
    for warning in done.result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    rows = [
        [
            t.date.isoformat(),
            t.time_point_id,
            t.seg.path.name if t.seg.path else "-",
            t.sr_path.name,
            len(t.lesions),
            t.timepoint.total_tumor_volume_ml,
            t.timepoint.sum_of_diameters_mm,
            t.timepoint.overall_response or "-",
            t.timepoint.volumetric_response or "-",
        ]
        for t in done.timepoints
    ]
    headers = ["date", "time_point", "SEG", "SR", "lesions", "TTV_ml", "sum_mm", "RECIST", "vol_resp"]
    print(f"wrote {2 * len(rows)} DICOM file(s) to {args.out}")
    print(format_table(rows, headers))
    return 0


def _pseudonym(args: argparse.Namespace, source: Path) -> str:
    """The pseudonym for --deidentify: as given, else the study's for the PatientID of the source series."""
    from hepavol.errors import InputError

    if args.deidentify:
        return str(args.deidentify)
    import pydicom

    from hepavol.study.workspace import find_workspace

    files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
    patient_id = ""
    for f in files:
        try:
            patient_id = str(pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["PatientID"]).PatientID)
            break
        except Exception:  # not a DICOM file: try the next
            continue
    if not patient_id:
        raise InputError(
            f"--deidentify without a pseudonym takes the study's pseudonym of the source's PatientID, but "
            f"'{source}' has no PatientID. Give one: --deidentify P-xxxx."
        )
    ws = find_workspace(args.study)
    try:
        return str(ws.pseudonymiser().pseudonym(patient_id))
    finally:
        ws.close()


def run(args: argparse.Namespace) -> int:
    from hepavol.errors import InputError

    if getattr(args, "manifest", None):
        return _run_manifest(args)
    if args.export_kind == "sr" and (args.source is None or args.seg is None):
        raise InputError("export sr needs SOURCE and --seg SEG (one scan), or --manifest MANIFEST (a follow-up).")
    from hepavol.io import read_dicom_series, read_segmentation
    from hepavol.io.dicom_series import is_dicom_file, read_dicom_file_header
    from hepavol.io.seg_write import write_dicom_seg

    image = read_dicom_series(args.source, series_uid=args.series)
    seg_path = Path(args.seg)
    header = read_dicom_file_header(seg_path) if seg_path.is_file() and is_dicom_file(seg_path) else None
    is_seg = header is not None and header.sop_class_uid == "1.2.840.10008.5.1.4.1.1.66.4"
    options = {
        "liver_label": args.liver_label,
        "tumor_labels": tuple(args.tumor_label or (2,)),
        "instances": args.instances,
        "connectivity": args.connectivity,
        "derive_frame_of_reference": args.derive_frame_of_reference,
        "deidentify": None if args.deidentify is None else _pseudonym(args, Path(args.source)),
    }
    if args.export_kind == "seg":
        labels = read_segmentation(seg_path, reference=image.geometry, resample=args.resample_seg)
        done = write_dicom_seg(image, labels, args.out, **options)
        lesions = sum(1 for s in done.segments if s.kind == "lesion")
        print(f"wrote {args.out}: DICOM SEG with {len(done.segments)} segment(s) ({lesions} lesion(s))")
        return 0

    from hepavol.io.sr_write import TimePoint, write_dicom_sr

    if not is_seg:
        if not args.seg_out:
            raise InputError(
                f"--seg '{seg_path}' is a label map: the SR references the segments of a DICOM SEG, so pass "
                "--seg-out FILE.dcm to write that SEG too (or export it first with 'hepavol export seg')."
            )
        labels = read_segmentation(seg_path, reference=image.geometry, resample=args.resample_seg)
        write_dicom_seg(image, labels, args.seg_out, **options)
        print(f"wrote {args.seg_out}: DICOM SEG")
        seg_path = Path(args.seg_out)
    tp = None
    if args.time_point or args.baseline is not None:
        tp = TimePoint(time_point_id=args.time_point or "1", baseline=args.baseline)
    sr = write_dicom_sr(
        image,
        seg_path,
        args.out,
        time_point=tp,
        recist_response=args.recist_response,
        volumetric_response=args.volumetric_response,
        derive_frame_of_reference=args.derive_frame_of_reference,
        deidentify=options["deidentify"],
    )
    print(
        f"wrote {args.out}: TID 1500 SR, {len(sr.lesions)} lesion(s), total tumour volume "
        f"{sr.total_tumor_volume_mm3:.0f} mm3, sum of long axes {sr.sum_of_diameters_mm:.1f} mm"
    )
    return 0
