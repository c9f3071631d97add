"""Measurement uncertainty of the early volume change (issue 22): 95 % intervals and the smallest detectable change.

A volume measured twice on the same patient varies with a within-patient coefficient of variation ``CV`` (from
a reader-agreement analysis, or given with ``--repeatability-cv``). Volumes are log-normal to a good
approximation, so the within-patient SD of ln V is σ = √(ln(1 + CV²)), and a ratio of two independent
measurements V₁/V₀ has SD √2·σ on the log scale. The repeatability coefficient on the log scale is
**RC = 1.96·√2·σ** (Bland & Altman, Lancet 1986; QIBA: Raunig et al., Stat Methods Med Res 2015;24:27–67, "RC =
2.77·wSD"). Then, for a patient with measured log ratio L = ln(V₁/V₀) over t months:

- 95 % interval of the true volume change: 100·(exp(L ± RC) − 1) %;
- 95 % interval of the volumetric TGR: 100·(exp((L ± RC)/t) − 1) %/month (TGR_V = 100·(exp(L/t) − 1));
- the change is **below the smallest detectable change** when |L| < RC, i.e. between 100·(exp(−RC) − 1) %
  and 100·(exp(RC) − 1) %: it cannot be told apart from measurement noise at the 95 % level.

The CV is that of a volume; the diameter-based criteria are left as they are. :func:`repeatability_from_agreement`
reads it from a ``hepavol agreement`` result (``--repeatability-from``, or ``<stem>_agreement.json`` that
``hepavol study export`` writes beside the cohort table when the study has a second reader), with the reader
agreement the cohort report shows beside it (:func:`agreement_summary`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hepavol.cohort.derive import DerivedPatient
from hepavol.cohort.stats import Z975
from hepavol.response.growth import DAYS_PER_MONTH


@dataclass(frozen=True, slots=True, kw_only=True)
class Repeatability:
    """The repeatability coefficient of a volume ratio for a within-patient CV (in %)."""

    cv_percent: float
    sd_log: float  # σ = √(ln(1 + CV²))
    rc_log: float  # 1.96·√2·σ
    sdc_increase_percent: float  # 100·(exp(RC) − 1)
    sdc_decrease_percent: float  # 100·(exp(−RC) − 1), negative

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def repeatability(cv_percent: float) -> Repeatability:
    """The repeatability coefficient for a within-patient CV of ``cv_percent`` %.

    Examples
    --------
    CV 10 %: σ = √ln(1.01) = 0.099751, RC = 2.771808·σ = 0.276492 (computed), so a change between −24.2 % and
    +31.8 % is within measurement noise.

    >>> r = repeatability(10.0)
    >>> round(r.sd_log, 6), round(r.rc_log, 6), round(r.sdc_increase_percent, 2), round(r.sdc_decrease_percent, 2)
    (0.099751, 0.276492, 31.85, -24.16)
    """
    if not 0 < cv_percent < 100:
        raise ValueError(f"cv_percent must be between 0 and 100, but it is {cv_percent}")
    sd = math.sqrt(math.log1p((cv_percent / 100.0) ** 2))
    rc = Z975 * math.sqrt(2.0) * sd
    return Repeatability(
        cv_percent=cv_percent,
        sd_log=sd,
        rc_log=rc,
        sdc_increase_percent=100.0 * math.expm1(rc),
        sdc_decrease_percent=100.0 * math.expm1(-rc),
    )


def _log_ratio(change_percent: float | None) -> float | None:
    if change_percent is None or change_percent <= -100.0:
        return None
    return math.log1p(change_percent / 100.0)


def with_repeatability(patients: Sequence[DerivedPatient], cv_percent: float) -> tuple[DerivedPatient, ...]:
    """The patients with their 95 % intervals of volume change and volumetric TGR and the below-SDC flags.

    A volume change of −100 % (every lesion gone) has no log ratio: its interval and flag stay None (a
    disappearance is not measurement noise).
    """
    r = repeatability(cv_percent)
    out = []
    for p in patients:
        values: dict[str, float | bool | None] = {}
        lr = _log_ratio(p.volume_change_percent)
        if lr is not None:
            values["volume_change_ci95_low_percent"] = 100.0 * math.expm1(lr - r.rc_log)
            values["volume_change_ci95_high_percent"] = 100.0 * math.expm1(lr + r.rc_log)
            values["volume_change_below_sdc"] = abs(lr) < r.rc_log
            if p.interval_days:
                months = p.interval_days / DAYS_PER_MONTH
                values["tgr_volume_ci95_low_percent_per_month"] = 100.0 * math.expm1((lr - r.rc_log) / months)
                values["tgr_volume_ci95_high_percent_per_month"] = 100.0 * math.expm1((lr + r.rc_log) / months)
        tr = _log_ratio(p.target_volume_change_percent)
        if tr is not None:
            values["target_volume_change_below_sdc"] = abs(tr) < r.rc_log
        out.append(dataclasses.replace(p, **values))  # type: ignore[arg-type]
    return tuple(out)


#: The agreement quantities the cohort report shows (the keys of ``hepavol agreement``'s results.json).
AGREEMENT_QUANTITIES = (
    "total_tumor_volume_ml",
    "sum_of_diameters_mm",
    "volume_change_percent",
    "sld_change_percent",
)
#: The response categories whose kappas the cohort report shows.
AGREEMENT_CATEGORIES = ("recist_response", "volumetric_response")


def _pick(block: Any, keys: Sequence[str]) -> dict[str, Any] | None:
    """``block``'s ``keys`` (and its ``reason`` when it has one), or None when it is not an object."""
    if not isinstance(block, dict):
        return None
    out = {k: block.get(k) for k in keys}
    if block.get("reason"):
        out["reason"] = block["reason"]
    return out


def agreement_summary(data: dict[str, Any]) -> dict[str, Any]:
    """What the cohort report shows of a ``hepavol agreement`` results.json, its values copied as they are:

    - ``quantities``: for each of :data:`AGREEMENT_QUANTITIES`, ``n``, ``unit``, ``scale``, ``icc_2_1`` and
      ``icc_3_1`` (``value``, ``ci95``), ``bland_altman`` (``bias``, ``loa95``, ``scale``), ``wcv`` (``value``,
      ``unit``) and ``repeatability_coefficient`` (``value``, ``unit``); a value that could not be estimated is
      null with its ``reason``;
    - ``categories``: RECIST 1.1 and volumetric response per follow-up time point, ``n``, ``observed_agreement``,
      ``kappa`` and ``weighted_kappa`` (``value``, ``ci95``);
    - ``progression_date_changes``: the share of patients whose progression date changes with the reader
      (``recist``, ``volumetric``: ``count``, ``n``, ``share``, ``ci95``);
    - ``smallest_detectable_change``: of the total tumour volume and of the sum of diameters, against the
      volumetric −65 %/+73 % and RECIST −30 %/+20 % thresholds.
    """
    quantities: dict[str, Any] = {}
    for key in AGREEMENT_QUANTITIES:
        q = data.get(key)
        if not isinstance(q, dict):
            quantities[key] = None
            continue
        quantities[key] = {
            "n": q.get("n"),
            "unit": q.get("unit"),
            "scale": q.get("scale"),
            "icc_2_1": _pick(q.get("icc_2_1"), ("value", "ci95")),
            "icc_3_1": _pick(q.get("icc_3_1"), ("value", "ci95")),
            "bland_altman": _pick(q.get("bland_altman"), ("bias", "loa95", "scale")),
            "wcv": _pick(q.get("wcv"), ("value", "unit")),
            "repeatability_coefficient": _pick(q.get("repeatability_coefficient"), ("value", "unit")),
        }
    categories: dict[str, Any] = {}
    for key in AGREEMENT_CATEGORIES:
        c = data.get(key)
        categories[key] = (
            {
                "n": c.get("n"),
                "observed_agreement": c.get("observed_agreement"),
                "kappa": _pick(c.get("kappa"), ("value", "ci95")),
                "weighted_kappa": _pick(c.get("weighted_kappa"), ("value", "ci95", "weights")),
            }
            if isinstance(c, dict)
            else None
        )
    changes = data.get("progression_date_changes")
    changes = changes if isinstance(changes, dict) else {}
    return {
        "quantities": quantities,
        "categories": categories,
        "progression_date_changes": {
            k: _pick(changes.get(k), ("count", "n", "share", "ci95")) for k in ("recist", "volumetric")
        },
        "smallest_detectable_change": data.get("smallest_detectable_change"),
    }


def agreement_beside(table: str | os.PathLike[str]) -> Path:
    """Where ``hepavol study export`` writes the reader agreement of a cohort table: ``<stem>_agreement.json``."""
    path = Path(table)
    return path.with_name(f"{path.stem}_agreement.json")


def repeatability_from_agreement(
    path: str | os.PathLike[str], *, option: str = "--repeatability-from"
) -> tuple[float, dict[str, Any]]:
    """The within-patient CV of the total tumour volume from a ``hepavol agreement`` ``results.json``.

    Returns the CV in % (``total_tumor_volume_ml.wcv.value``) and the source as ``results.json`` records it
    (file, design, readers, number of scans, and the reader agreement: :func:`agreement_summary`). ``option``
    names where the file came from in messages.

    Raises
    ------
    InputError
        If the file cannot be read, is not JSON, is not the output of ``hepavol agreement``, or its wCV of
        ``total_tumor_volume_ml`` is missing or null (with the agreement analysis's reason).
    """
    import json

    from hepavol.errors import InputError

    where = f"{option} '{path}'"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{where}: no such file; give the results.json that 'hepavol agreement' wrote") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: cannot be read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{where}: not a JSON file ({exc.msg}, line {exc.lineno}); give the results.json that "
            "'hepavol agreement' wrote"
        ) from None
    fmt = data.get("format") if isinstance(data, dict) else None
    if fmt != "hepavol-agreement":
        raise InputError(
            f"{where}: not the result of a reader-agreement analysis ('format' is {fmt!r}, expected "
            "'hepavol-agreement'); run 'hepavol agreement READS.csv --out DIR' and give DIR/results.json"
        )
    ttv = data.get("total_tumor_volume_ml")
    wcv = ttv.get("wcv") if isinstance(ttv, dict) else None
    if not isinstance(wcv, dict) or "value" not in wcv:
        raise InputError(
            f"{where}: has no 'total_tumor_volume_ml.wcv' (an agreement result of another hepavol version?); "
            "run 'hepavol agreement' again or give the CV with --repeatability-cv PCT"
        )
    value = wcv["value"]
    if value is None:
        reason = wcv.get("reason") or "no reason recorded"
        raise InputError(
            f"{where}: the within-patient CV of total_tumor_volume_ml is null ({reason}); the agreement analysis "
            "needs more scans read by both readers, or give the CV with --repeatability-cv PCT"
        )
    if not isinstance(value, int | float) or not 0 < value < 100:
        raise InputError(
            f"{where}: the within-patient CV of total_tumor_volume_ml must be between 0 and 100 %, but it is "
            f"{value!r}; give the CV with --repeatability-cv PCT"
        )
    source = {
        "kind": "agreement",
        "file": str(path),
        "quantity": "total_tumor_volume_ml",
        "wcv_percent": float(value),
        "design": data.get("design"),
        "readers": data.get("readers"),
        "n": ttv.get("n") if isinstance(ttv, dict) else None,
        "agreement": agreement_summary(data),
    }
    return float(value), source
