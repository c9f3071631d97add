"""Dated treatments of a virtual patient, written as ``OUT/treatments.csv`` (the format ``hepavol study`` reads).

One row per treatment, ``patient_id,treatment,start_date,end_date`` (see :mod:`hepavol.study.clinical`):

- a somatostatin analogue for patients with ``somatostatin_analogue``: started 0-730 days before the baseline
  scan (at or before baseline) and ongoing (empty end date);
- for ``invasive_liver_treatment``: one liver surgery, radiofrequency ablation or TACE (equally likely) on a day
  between the day after baseline and the last scan (the baseline day itself when the baseline is the only scan),
  so that it falls inside the follow-up and makes the patient ineligible, as ``clinical.csv`` says;
- for ``systemic_chemotherapy``: chemotherapy, everolimus or sunitinib (equally likely) starting on such a day,
  ongoing or stopped 60-365 days later (equally likely).

Kinds, delays and durations are design choices (treatments have no effect on the simulated growth). The draws
come from the patient's own random stream ``SeedSequence(seed, spawn_key=(index, 2))``, so the rest of the
simulation is unchanged, and are all made whatever the flags, so a patient's dates do not depend on them.
"""

from __future__ import annotations

import datetime

from hepavol.simulate.patient import VirtualPatient, patient_rng

TREATMENT_COLUMNS = ("patient_id", "treatment", "start_date", "end_date")
INVASIVE_KINDS = ("liver_surgery", "rfa", "tace")
SYSTEMIC_KINDS = ("chemotherapy", "everolimus", "sunitinib")


def patient_treatments(patient: VirtualPatient) -> list[dict[str, str]]:
    """The ``treatments.csv`` rows of one patient, by start date (an empty ``end_date`` means ongoing).

    Examples
    --------
    >>> from hepavol.simulate import DEFAULT_CONFIG, sample_patient
    >>> cfg = DEFAULT_CONFIG.replace(somatostatin_analogue_probability=0.0, invasive_liver_treatment_probability=1.0)
    >>> p = sample_patient(0, seed=1, config=cfg)
    >>> rows = patient_treatments(p)
    >>> [r["treatment"] in INVASIVE_KINDS for r in rows if r["treatment"] not in SYSTEMIC_KINDS]
    [True]
    >>> p.scans[0].date.isoformat() <= rows[0]["start_date"] <= p.scans[-1].date.isoformat()
    True
    """
    rng = patient_rng(patient.seed, patient.index, 2)
    baseline = patient.scans[0].date
    last_day = patient.scans[-1].day
    first_day = min(1, last_day)
    ssa_start = baseline - datetime.timedelta(days=int(rng.integers(0, 731)))
    invasive_kind = INVASIVE_KINDS[int(rng.integers(0, len(INVASIVE_KINDS)))]
    invasive_day = int(rng.integers(first_day, last_day + 1))
    systemic_kind = SYSTEMIC_KINDS[int(rng.integers(0, len(SYSTEMIC_KINDS)))]
    systemic_day = int(rng.integers(first_day, last_day + 1))
    systemic_ongoing = bool(rng.uniform() < 0.5)
    systemic_days = int(rng.integers(60, 366))

    clinical = patient.clinical
    rows: list[dict[str, str]] = []
    if clinical.somatostatin_analogue:
        rows.append(_row(patient, "somatostatin_analogue", ssa_start, None))
    if clinical.invasive_liver_treatment:
        day = baseline + datetime.timedelta(days=invasive_day)
        rows.append(_row(patient, invasive_kind, day, day))
    if clinical.systemic_chemotherapy:
        start = baseline + datetime.timedelta(days=systemic_day)
        end = None if systemic_ongoing else start + datetime.timedelta(days=systemic_days)
        rows.append(_row(patient, systemic_kind, start, end))
    return sorted(rows, key=lambda r: r["start_date"])


def _row(patient: VirtualPatient, kind: str, start: datetime.date, end: datetime.date | None) -> dict[str, str]:
    return {
        "patient_id": patient.patient_id,
        "treatment": kind,
        "start_date": start.isoformat(),
        "end_date": "" if end is None else end.isoformat(),
    }
