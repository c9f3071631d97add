"""Agreement of two reads (two readers, or one reader twice) on the scans both read.

:func:`analyse_agreement` takes two :class:`~hepavol.agreement.reads.ReaderReads`, keeps the scans both read
(the others are counted), summarises each read on its own (:func:`~hepavol.agreement.derive.summarise_reader`)
and pairs the results:

- continuous quantities (:data:`QUANTITIES`): per lesion (volume, long axis; lesions both reads found on a scan),
  per scan (``total_tumor_volume_ml``, ``sum_of_diameters_mm``) and per patient (``volume_change_percent``,
  ``sld_change_percent``): ICC(2,1), ICC(3,1), Bland–Altman, wCV and repeatability coefficient
  (:mod:`hepavol.agreement.stats`). Volumes are analysed on the log scale (all statistics: the error of a volume
  is proportional to its size; Bartlett & Frost, Ultrasound Obstet Gynecol 2008;31:466-475), diameters and
  percent changes on the linear scale. Differences are second − first.
- lesion detection: lesions found by both reads, by one only;
- categories per follow-up time point: RECIST 1.1 overall response and volumetric response, Cohen's κ and
  quadratic-weighted κ over CR < PR < SD < PD (NE and non-target-only categories are counted and left out);
- the share of patients whose progression date (RECIST; volumetric) differs between the reads;
- the smallest detectable change of the total tumour volume, RC on the log scale → percent, against the
  −65 %/+73 % volumetric thresholds, and of the sum of diameters against RECIST's −30 %/+20 % and 5 mm.

Pairs are treated as independent. Lesions of one patient and a patient's repeated scans are correlated, so the
per-lesion and per-scan CIs are too narrow by an unknown amount; the per-patient quantities are independent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from hepavol.agreement.derive import ReaderSummary, summarise_reader
from hepavol.agreement.reads import ReaderReads, base_reader
from hepavol.agreement.stats import (
    BlandAltman,
    Estimate,
    IntraclassCorrelation,
    Kappa,
    Proportion,
    WithinSubject,
    bland_altman,
    cohen_kappa,
    icc,
    proportion,
    within_subject,
)
from hepavol.errors import InputError
from hepavol.response.volumetric import VOLUME_PD_PERCENT, VOLUME_PR_PERCENT
from hepavol.study.eligibility import EARLY_WINDOW_DAYS

__all__ = [
    "QUANTITIES",
    "RESPONSE_ORDER",
    "AgreementAnalysis",
    "ContinuousAgreement",
    "Quantity",
    "analyse_agreement",
    "select_reads",
]

RESULTS_FORMAT = "hepavol-agreement"
RESULTS_VERSION = 1
RESPONSE_ORDER = ("CR", "PR", "SD", "PD")
"""Ordered response categories of κ and weighted κ."""


@dataclass(frozen=True, slots=True)
class Quantity:
    """A continuous quantity: its key in ``results.json``, level (lesion/scan/patient), label, unit, scale."""

    key: str
    level: str
    label: str
    unit: str
    log: bool


QUANTITIES: tuple[Quantity, ...] = (
    Quantity("lesion_volume_ml", "lesion", "Lesion volume", "mL", True),
    Quantity("lesion_long_axis_mm", "lesion", "Lesion long axis", "mm", False),
    Quantity("total_tumor_volume_ml", "scan", "Total tumour volume", "mL", True),
    Quantity("sum_of_diameters_mm", "scan", "Sum of target diameters", "mm", False),
    Quantity("volume_change_percent", "patient", "Early change of total tumour volume", "%", False),
    Quantity("sld_change_percent", "patient", "Early change of the sum of diameters", "%", False),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContinuousAgreement:
    """The paired values of one quantity and their agreement statistics."""

    quantity: Quantity
    labels: tuple[str, ...]  # one per pair: "patient date [lesion]"
    first: NDArray[np.float64]
    second: NDArray[np.float64]
    excluded: dict[str, int]
    icc: IntraclassCorrelation
    bland_altman: BlandAltman
    within: WithinSubject

    @property
    def n(self) -> int:
        return int(self.first.size)

    def to_dict(self) -> dict[str, object]:
        q = self.quantity
        return {
            "level": q.level,
            "unit": q.unit,
            "scale": "log" if q.log else "linear",
            "n": self.n,
            "excluded": dict(self.excluded),
            "mean_first": float(self.first.mean()) if self.n else None,
            "mean_second": float(self.second.mean()) if self.n else None,
            "icc_2_1": self.icc.icc_2_1.to_dict(),
            "icc_3_1": self.icc.icc_3_1.to_dict(),
            "bland_altman": self.bland_altman.to_dict(),
            "wcv": self.within.wcv_dict(),
            "repeatability_coefficient": self.within.rc_dict(q.unit),
        }


def _continuous(
    q: Quantity, labels: Sequence[str], first: Sequence[float], second: Sequence[float], excluded: dict[str, int]
) -> ContinuousAgreement:
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    m = np.column_stack([a, b]) if a.size else np.zeros((0, 2))
    scaled = np.log(m) if q.log and m.size else m
    if a.size == 0:
        reason = "no pair: no " + {"lesion": "lesion", "scan": "scan", "patient": "patient"}[q.level]
        reason += " has this value from both reads"
        ba = BlandAltman(n=0, scale="log" if q.log else "linear", bias=None, sd=None, loa95=None, reason=reason)
        ws = WithinSubject(
            n_subjects=0,
            scale="log" if q.log else "linear",
            sw=None,
            repeatability_coefficient=None,
            wcv_percent=None,
            reason=reason,
        )
        ic = IntraclassCorrelation(
            n_subjects=0, n_raters=2, icc_2_1=Estimate(None, reason=reason), icc_3_1=Estimate(None, reason=reason)
        )
    else:
        ic = icc(scaled)
        ba = bland_altman(a, b, log=q.log)
        ws = within_subject(m, log=q.log)
    return ContinuousAgreement(
        quantity=q,
        labels=tuple(labels),
        first=a,
        second=b,
        excluded=excluded,
        icc=ic,
        bland_altman=ba,
        within=ws,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CategoryAgreement:
    """Per-time-point categories of both reads and their κ."""

    name: str
    kappa: Kappa
    excluded: dict[str, int]

    def to_dict(self) -> dict[str, object]:
        return self.kappa.to_dict() | {"excluded": dict(self.excluded), "unit": "follow-up time point"}


@dataclass(frozen=True, slots=True, kw_only=True)
class AgreementAnalysis:
    """Everything :func:`analyse_agreement` computed (``results()`` is the content of ``results.json``)."""

    first: str
    second: str
    design: str  # "inter-reader" or "intra-reader"
    early_window_days: tuple[int, int]
    counts: dict[str, int]
    quantities: dict[str, ContinuousAgreement]
    detection: dict[str, object]
    recist_response: CategoryAgreement
    volumetric_response: CategoryAgreement
    progression_recist: Proportion
    progression_volumetric: Proportion
    smallest_detectable_change: dict[str, object]
    summaries: tuple[ReaderSummary, ReaderSummary]
    warnings: tuple[str, ...] = field(default=())

    def category_rows(self) -> list[dict[str, object]]:
        """Both reads' RECIST and volumetric response at every follow-up time point they share."""
        rows: list[dict[str, object]] = []
        sa, sb = self.summaries
        for criteria in ("recist_response", "volumetric_response"):
            for p in sorted(set(sa.patients) & set(sb.patients)):
                ra = getattr(sa.patients[p], criteria)()
                rb = getattr(sb.patients[p], criteria)()
                for d in sorted(set(ra) & set(rb)):
                    rows.append(
                        {"criteria": criteria, "patient_id": p, "date": d, "first": ra[d], "second": rb[d]}
                    )
        return rows

    def results(self) -> dict[str, object]:
        """The JSON-ready results (strict JSON after :func:`hepavol.cohort._serialize.clean`)."""
        lo, hi = self.early_window_days
        out: dict[str, object] = {
            "format": RESULTS_FORMAT,
            "version": RESULTS_VERSION,
            "design": self.design,
            "readers": {"first": self.first, "second": self.second},
            "difference": "second - first (log scale: ln(second / first))",
            "early_scan_rule": (
                f"first scan {lo}-{hi} days after the baseline (the earliest scan both reads have), both inclusive "
                "(the study's early window, 3-6 months)"
            ),
            "early_window_days": [lo, hi],
            "repeatability_coefficient_note": (
                "RC = 1.96·sqrt(2)·s_w of the two reads: the smallest difference between two measurements that "
                + (
                    "the same reader's repeated reads exceed by chance in only 5 % (repeatability)"
                    if self.design == "intra-reader"
                    else "two different readers exceed by chance in only 5 % (reproducibility)"
                )
            ),
            "counts": dict(self.counts),
        }
        for key, qa in self.quantities.items():
            out[key] = qa.to_dict()
        out["lesion_detection"] = self.detection
        out["recist_response"] = self.recist_response.to_dict()
        out["volumetric_response"] = self.volumetric_response.to_dict()
        out["progression_date_changes"] = {
            "recist": self.progression_recist.to_dict(),
            "volumetric": self.progression_volumetric.to_dict(),
            "rule": "patients with a follow-up read by both, whose first overall PD date (or no PD) differs",
        }
        out["smallest_detectable_change"] = self.smallest_detectable_change
        out["warnings"] = list(self.warnings)
        return out


def select_reads(
    reads: Mapping[str, ReaderReads],
    *,
    readers: Sequence[str] | None = None,
    repeat: str | None = None,
    source: str = "the table",
) -> tuple[ReaderReads, ReaderReads]:
    """The two reads to compare: ``readers`` (two names), ``repeat`` (``NAME`` and ``NAME#2``), or the only two.

    Raises
    ------
    InputError
        One read only, more than two without a choice, an unknown name.
    """
    names = list(reads)
    shown = ", ".join(repr(n) for n in names)
    if readers is not None and repeat is not None:
        raise InputError("give either --readers A,B or --repeat A, not both")
    if repeat is not None:
        repeats = sorted((n for n in names if n != repeat and base_reader(n) == repeat), key=lambda n: n)
        if repeat not in reads or not repeats:
            raise InputError(
                f"--repeat {repeat}: {source} needs reads named {repeat!r} and {repeat + '#2'!r} (a repeated read "
                f"of one reader); it has {shown}"
            )
        chosen = [repeat, repeats[0]]
    elif readers is not None:
        chosen = list(readers)
        if len(chosen) != 2 or chosen[0] == chosen[1]:
            raise InputError(f"--readers needs two different reader names, e.g. --readers A,B; got {chosen}")
        missing = [n for n in chosen if n not in reads]
        if missing:
            raise InputError(f"reader(s) {', '.join(repr(m) for m in missing)} not in {source}; it has {shown}")
    elif len(names) == 1:
        raise InputError(
            f"{source} has reads of one reader only ({shown}); agreement needs a second reader, or a repeated "
            f"read of the same reader named {names[0] + '#2'!r}"
        )
    elif len(names) > 2:
        raise InputError(f"{source} has {len(names)} readers ({shown}); choose two with --readers A,B")
    else:
        chosen = names
    return reads[chosen[0]], reads[chosen[1]]


def _restrict(reads: ReaderReads, keys: set[tuple[str, dt.date]]) -> ReaderReads:
    return ReaderReads(
        reads.reader, {k: v for k, v in reads.scans.items() if k in keys}, reads.targets_marked, reads.source
    )


def _category(
    name: str, a: Mapping[tuple[str, dt.date], str], b: Mapping[tuple[str, dt.date], str]
) -> CategoryAgreement:
    excluded: dict[str, int] = {}
    xs: list[str] = []
    ys: list[str] = []
    for key in a:
        if key not in b:
            continue
        ra, rb = a[key], b[key]
        if ra in RESPONSE_ORDER and rb in RESPONSE_ORDER:
            xs.append(ra)
            ys.append(rb)
        else:
            other = ra if ra not in RESPONSE_ORDER else rb
            reason = f"{other} by a reader (not on the CR < PR < SD < PD scale)"
            excluded[reason] = excluded.get(reason, 0) + 1
    return CategoryAgreement(name=name, kappa=cohen_kappa(xs, ys, RESPONSE_ORDER), excluded=excluded)


def _add(d: dict[str, int], reason: str) -> None:
    d[reason] = d.get(reason, 0) + 1


def _sdc(quantities: Mapping[str, ContinuousAgreement]) -> dict[str, object]:
    pr, pd = float(VOLUME_PR_PERCENT), float(VOLUME_PD_PERCENT)
    out: dict[str, object] = {}
    ttv = quantities["total_tumor_volume_ml"].within
    vol: dict[str, object] = {
        "from": "repeatability coefficient of total_tumor_volume_ml (log scale)",
        "repeatability_coefficient_log": ttv.repeatability_coefficient,
        "volumetric_pr_threshold_percent": pr,
        "volumetric_pd_threshold_percent": pd,
    }
    limits = ttv.rc_percent_limits()
    if limits is None:
        vol |= {
            "smallest_detectable_decrease_percent": None,
            "smallest_detectable_increase_percent": None,
            "reason": ttv.reason or "no repeatability coefficient",
        }
    else:
        down, up = limits
        vol |= {
            "smallest_detectable_decrease_percent": down,
            "smallest_detectable_increase_percent": up,
            "pr_threshold_beyond_sdc": pr < down,
            "pd_threshold_beyond_sdc": pd > up,
        }
    out["total_tumor_volume"] = vol
    sld = quantities["sum_of_diameters_mm"]
    entry: dict[str, object] = {
        "from": "repeatability coefficient of sum_of_diameters_mm (linear scale)",
        "repeatability_coefficient_mm": sld.within.repeatability_coefficient,
        "recist_pr_threshold_percent": -30.0,
        "recist_pd_threshold_percent": 20.0,
        "recist_pd_threshold_mm": 5.0,
    }
    rc = sld.within.repeatability_coefficient
    if rc is None or sld.n == 0:
        entry["reason"] = sld.within.reason or "no repeatability coefficient"
    else:
        mean = float(np.concatenate([sld.first, sld.second]).mean())
        rc_pct = 100.0 * rc / mean if mean > 0 else None
        entry |= {
            "mean_sum_of_diameters_mm": mean,
            "repeatability_coefficient_percent_of_mean": rc_pct,
            "pd_threshold_mm_beyond_sdc": rc < 5.0,
        }
        if rc_pct is not None:
            entry |= {"pr_threshold_beyond_sdc": rc_pct < 30.0, "pd_threshold_beyond_sdc": rc_pct < 20.0}
    out["sum_of_diameters"] = entry
    return out


def analyse_agreement(
    first: ReaderReads,
    second: ReaderReads,
    *,
    early_window_days: tuple[int, int] = EARLY_WINDOW_DAYS,
) -> AgreementAnalysis:
    """Agreement of two reads on the scans both read (module docstring).

    Raises
    ------
    InputError
        The two reads have no scan in common.
    """
    common = set(first.scans) & set(second.scans)
    if not common:
        raise InputError(
            f"readers {first.reader!r} ({len(first.scans)} scans) and {second.reader!r} ({len(second.scans)} scans) "
            "have no scan (patient_id and date) in common; agreement needs the same scans read by both"
        )
    warnings: list[str] = []
    only_first = len(set(first.scans) - common)
    only_second = len(set(second.scans) - common)
    if only_first or only_second:
        warnings.append(
            f"{only_first} scan(s) read only by {first.reader} and {only_second} only by {second.reader} are left "
            "out; baselines, early scans and responses use the scans both read"
        )
    a_reads, b_reads = _restrict(first, common), _restrict(second, common)
    sa = summarise_reader(a_reads, early_window_days=early_window_days)
    sb = summarise_reader(b_reads, early_window_days=early_window_days)
    warnings += sa.warnings + sb.warnings
    patients = sorted({p for p, _ in common})
    if len(patients) == 1:
        warnings.append(
            "one patient only: per-patient agreement is undefined, and per-lesion and per-scan pairs all come "
            "from that patient (not independent)"
        )
    quantities: dict[str, ContinuousAgreement] = {}
    keys = sorted(common)

    # per lesion
    vol_l: tuple[list[str], list[float], list[float], dict[str, int]] = ([], [], [], {})
    ax_l: tuple[list[str], list[float], list[float], dict[str, int]] = ([], [], [], {})
    both = only_a = only_b = 0
    for key in keys:
        la = {r.lesion_id: r for r in a_reads.scans[key]}
        lb = {r.lesion_id: r for r in b_reads.scans[key]}
        found_a = {i for i, r in la.items() if r.volume_ml > 0}
        found_b = {i for i, r in lb.items() if r.volume_ml > 0}
        both += len(found_a & found_b)
        only_a += len(found_a - found_b)
        only_b += len(found_b - found_a)
        for lesion_id in sorted(set(la) & set(lb)):
            ra, rb = la[lesion_id], lb[lesion_id]
            label = f"{key[0]} {key[1].isoformat()} {lesion_id}"
            if ra.volume_ml > 0 and rb.volume_ml > 0:
                vol_l[0].append(label)
                vol_l[1].append(ra.volume_ml)
                vol_l[2].append(rb.volume_ml)
            else:
                _add(vol_l[3], "volume 0 (disappeared) in a read: not on the log scale")
            if ra.long_axis_mm is not None and rb.long_axis_mm is not None:
                ax_l[0].append(label)
                ax_l[1].append(ra.long_axis_mm)
                ax_l[2].append(rb.long_axis_mm)
            else:
                _add(ax_l[3], "long axis not measured in a read")
        if set(la) ^ set(lb):
            n_one = len(set(la) ^ set(lb))
            vol_l[3]["lesion in one read only"] = vol_l[3].get("lesion in one read only", 0) + n_one
            ax_l[3]["lesion in one read only"] = ax_l[3].get("lesion in one read only", 0) + n_one
    quantities["lesion_volume_ml"] = _continuous(QUANTITIES[0], *vol_l)
    quantities["lesion_long_axis_mm"] = _continuous(QUANTITIES[1], *ax_l)
    total_found = both + only_a + only_b
    detection: dict[str, object] = {
        "unit": "lesion on a scan (volume > 0)",
        "found_by_both": both,
        "found_by_first_only": only_a,
        "found_by_second_only": only_b,
        "positive_agreement": None if total_found == 0 else 2 * both / (2 * both + only_a + only_b),
    }

    # per scan
    ttv: tuple[list[str], list[float], list[float], dict[str, int]] = ([], [], [], {})
    sod: tuple[list[str], list[float], list[float], dict[str, int]] = ([], [], [], {})
    for key in keys:
        xa, xb = sa.scans[key], sb.scans[key]
        label = f"{key[0]} {key[1].isoformat()}"
        if xa.total_tumor_volume_ml > 0 and xb.total_tumor_volume_ml > 0:
            ttv[0].append(label)
            ttv[1].append(xa.total_tumor_volume_ml)
            ttv[2].append(xb.total_tumor_volume_ml)
        else:
            _add(ttv[3], "total volume 0 in a read: not on the log scale")
        if xa.sum_of_diameters_mm is not None and xb.sum_of_diameters_mm is not None:
            sod[0].append(label)
            sod[1].append(xa.sum_of_diameters_mm)
            sod[2].append(xb.sum_of_diameters_mm)
        else:
            _add(sod[3], "no sum of diameters in a read (no target, or a target not measured)")
    quantities["total_tumor_volume_ml"] = _continuous(QUANTITIES[2], *ttv)
    quantities["sum_of_diameters_mm"] = _continuous(QUANTITIES[3], *sod)

    # per patient
    for q, attr in ((QUANTITIES[4], "volume_change_percent"), (QUANTITIES[5], "sld_change_percent")):
        labels: list[str] = []
        va: list[float] = []
        vb: list[float] = []
        excluded: dict[str, int] = {}
        for p in patients:
            pa, pb = sa.patients[p], sb.patients[p]
            if pa.early_date is None:
                _add(excluded, "no scan in the early window")
                continue
            x, y = getattr(pa, attr), getattr(pb, attr)
            if x is None or y is None:
                _add(excluded, "undefined in a read (baseline 0 or no sum of diameters at both scans)")
                continue
            labels.append(p)
            va.append(x)
            vb.append(y)
        quantities[q.key] = _continuous(q, labels, va, vb, excluded)
    for qa in quantities.values():
        if qa.n == 1:
            warnings.append(f"{qa.quantity.key}: one pair only; agreement statistics need at least 2")

    # categories per follow-up time point
    rec_a = {(p, d): r for p in patients for d, r in sa.patients[p].recist_response().items()}
    rec_b = {(p, d): r for p in patients for d, r in sb.patients[p].recist_response().items()}
    vol_a = {(p, d): r for p in patients for d, r in sa.patients[p].volumetric_response().items()}
    vol_b = {(p, d): r for p in patients for d, r in sb.patients[p].volumetric_response().items()}
    recist = _category("recist_response", rec_a, rec_b)
    volumetric = _category("volumetric_response", vol_a, vol_b)

    # progression dates
    changed_r = n_r = changed_v = n_v = 0
    for p in patients:
        pa, pb = sa.patients[p], sb.patients[p]
        if pa.recist is not None and pb.recist is not None:
            n_r += 1
            changed_r += pa.recist_progression_date != pb.recist_progression_date
        if pa.volumetric and pb.volumetric:
            n_v += 1
            changed_v += pa.volumetric_progression_date != pb.volumetric_progression_date

    design = "intra-reader" if base_reader(first.reader) == base_reader(second.reader) else "inter-reader"
    counts = {
        "patients": len(patients),
        "scans_read_by_both": len(common),
        "scans_read_by_first_only": only_first,
        "scans_read_by_second_only": only_second,
    }
    return AgreementAnalysis(
        first=first.reader,
        second=second.reader,
        design=design,
        early_window_days=early_window_days,
        counts=counts,
        quantities=quantities,
        detection=detection,
        recist_response=recist,
        volumetric_response=volumetric,
        progression_recist=proportion(changed_r, n_r),
        progression_volumetric=proportion(changed_v, n_v),
        smallest_detectable_change=_sdc(quantities),
        summaries=(sa, sb),
        warnings=tuple(warnings),
    )
