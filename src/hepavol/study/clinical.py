"""Read and validate a study's clinical data: one row per patient, and every treatment with its dates.

Two CSV files, UTF-8 or Windows-1252, separated by commas, semicolons or tabs (found from the header line; read by
:func:`hepavol.table.read_table`), header on line 1, columns in any order. Column names are read case-insensitively, with spaces, hyphens and a
unit in brackets allowed: ``Ki-67 (%)`` reads as ``ki_67_percent``, ``CgA (µg/L)`` as ``cga_ug_l``. A cell that is
empty, ``NA``, ``N/A``, ``NaN``, ``NULL``, ``None`` or ``.`` is a missing value. Numbers may use a decimal comma
(``12,5``). Dates are ISO ``YYYY-MM-DD``. Yes/no cells accept ``yes``/``no``, ``y``/``n``, ``1``/``0`` and
``true``/``false``.

**clinical.csv**, one row per patient (only ``patient_id`` is required; other columns may be left out, and every
value may be missing):

==============================  =====================================================================================
column                          content
==============================  =====================================================================================
``patient_id``                  the hospital's patient id (``hepavol study`` replaces it by a keyed-hash pseudonym)
``tumour_type``                 ``NET`` (well-differentiated neuroendocrine tumour, also ``carcinoid``), ``NEC``
                                (neuroendocrine carcinoma), ``MiNEN`` or ``other`` (WHO 2019 classification)
``primary_site``                ``small_intestine`` (also ``ileum``, ``jejunum``, ``small bowel``), ``duodenum``,
                                ``stomach``, ``pancreas``, ``appendix``, ``colon``, ``rectum``, ``lung``, ``unknown``
                                (primary never found) or ``other``
``differentiation``             ``well`` or ``poorly`` (may be left out: NET is well, NEC poorly differentiated)
``ki67_percent``                Ki-67 labelling index in %, 0-100 (``5`` or ``5 %``, never the fraction ``0.05``)
``grade``                       WHO grade ``G1``/``G2``/``G3`` (or ``1``/``2``/``3``)
``cga_ug_l``                    chromogranin A in µg/L (= ng/mL: ``cga_ng_ml`` is accepted; so is ``cga_ug_per_l``)
``extra_abdominal``             extra-abdominal disease, yes/no (also ``extra_abdominal_disease``)
``primary_resected``            primary tumour resected, yes/no
``somatostatin_analogue``       optional yes/no summaries of the treatment history ("ever received"); checked
``invasive_liver_treatment``    against the dated treatments; without a treatments file they tell whether a
``systemic_therapy``            patient had such a treatment at all (``systemic_chemotherapy`` is accepted)
==============================  =====================================================================================

Other columns (age, sex, ...) are ignored with a warning. A ``treatments`` column is refused: treatments go in the
second file, one row each, so that every one has its dates.

**treatments.csv**, one row per treatment (long format): ``patient_id, treatment, start_date, end_date``.
``treatment`` is one of :data:`TREATMENT_KINDS` (or a synonym such as ``octreotide``, ``hepatectomy``,
``radiofrequency ablation``, ``chemoembolisation``, ``Y-90``, ``capecitabine``, ``Lutathera``). ``start_date`` is
required; an empty ``end_date`` means the day of the procedure for a procedure (surgery, ablation, embolisation,
:data:`PROCEDURES`) and "ongoing" for a drug. A patient who is not in the file had no treatment. Example::

    patient_id,treatment,start_date,end_date
    H123456,somatostatin_analogue,2017-11-02,
    H123456,TACE,2019-03-14,
    H789012,everolimus,2018-06-01,2018-12-20

Messages name the file, the line, the column and the value, never the patient id (the hospital id identifies a
person): the line number finds the row.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from hepavol.errors import TableError
from hepavol.study.table import Table, normalise_name, read_table
from hepavol.table import future_date_warning

#: Treatment kinds and their category. ``invasive_liver`` and ``systemic`` exclude a patient from NCT03689231
#: when given during follow-up; ``somatostatin_analogue`` is allowed; ``other`` (including resection of the
#: primary, allowed by the registry record) does not exclude but is reported for review.
TREATMENT_KINDS: dict[str, str] = {
    "somatostatin_analogue": "somatostatin_analogue",
    "liver_surgery": "invasive_liver",
    "rfa": "invasive_liver",
    "microwave_ablation": "invasive_liver",
    "tace": "invasive_liver",
    "tae": "invasive_liver",
    "sirt": "invasive_liver",
    "liver_transplant": "invasive_liver",
    "other_liver": "invasive_liver",
    "chemotherapy": "systemic",
    "everolimus": "systemic",
    "sunitinib": "systemic",
    "prrt": "systemic",
    "interferon": "systemic",
    "other_systemic": "systemic",
    "primary_resection": "other",
    "other": "other",
}

#: Treatment categories, in the order used by reports.
CATEGORIES: tuple[str, ...] = ("somatostatin_analogue", "invasive_liver", "systemic", "other")

#: Kinds that are one-day procedures: an empty ``end_date`` means the start date.
PROCEDURES: frozenset[str] = frozenset(
    {
        "liver_surgery",
        "rfa",
        "microwave_ablation",
        "tace",
        "tae",
        "sirt",
        "liver_transplant",
        "other_liver",
        "primary_resection",
    }
)

_TREATMENT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "somatostatin_analogue": (
        "ssa",
        "somatostatin_analog",
        "somatostatin_analogues",
        "octreotide",
        "octreotide_lar",
        "sandostatin",
        "sandostatin_lar",
        "lanreotide",
        "somatuline",
        "somatuline_autogel",
        "pasireotide",
    ),
    "liver_surgery": ("liver_resection", "hepatic_resection", "hepatectomy", "liver_metastasectomy"),
    "rfa": ("radiofrequency_ablation", "rf_ablation"),
    "microwave_ablation": ("mwa", "microwave"),
    "tace": (
        "chemoembolisation",
        "chemoembolization",
        "transarterial_chemoembolisation",
        "transarterial_chemoembolization",
        "trans_arterial_chemoembolisation",
        "trans_arterial_chemoembolization",
    ),
    "tae": (
        "embolisation",
        "embolization",
        "bland_embolisation",
        "bland_embolization",
        "transarterial_embolisation",
        "transarterial_embolization",
    ),
    "sirt": (
        "radioembolisation",
        "radioembolization",
        "tare",
        "y90",
        "y_90",
        "selective_internal_radiation_therapy",
    ),
    "liver_transplant": ("liver_transplantation",),
    "chemotherapy": (
        "chemo",
        "systemic_chemotherapy",
        "capecitabine",
        "temozolomide",
        "captem",
        "capecitabine_temozolomide",
        "streptozocin",
        "streptozotocin",
        "fluorouracil",
        "5_fu",
        "folfox",
        "folfiri",
        "cisplatin_etoposide",
        "carboplatin_etoposide",
    ),
    "everolimus": ("afinitor",),
    "sunitinib": ("sutent",),
    "prrt": (
        "peptide_receptor_radionuclide_therapy",
        "lutathera",
        "177lu_dotatate",
        "lu177_dotatate",
        "lu_177_dotatate",
    ),
    "interferon": ("interferon_alpha", "ifn", "ifn_alpha"),
    "primary_resection": ("primary_surgery", "primary_tumour_resection", "primary_tumor_resection"),
}

_SITES: dict[str, tuple[str, ...]] = {
    "small_intestine": (
        "small_intestinal",
        "small_bowel",
        "si",
        "ileum",
        "ileal",
        "terminal_ileum",
        "jejunum",
        "jejunal",
        "jejunoileal",
        "jejuno_ileal",
        "ileocaecal",
        "ileocecal",
    ),
    "duodenum": ("duodenal",),
    "stomach": ("gastric",),
    "pancreas": ("pancreatic",),
    "appendix": ("appendiceal", "appendicular"),
    "colon": ("colonic", "caecum", "cecum", "caecal", "cecal"),
    "rectum": ("rectal",),
    "lung": ("bronchial", "bronchopulmonary", "pulmonary"),
    "unknown": ("unknown_primary", "cup", "occult"),
    "other": (),
}

_TUMOUR_TYPES: dict[str, tuple[str, ...]] = {
    "NET": (
        "net",
        "neuroendocrine_tumour",
        "neuroendocrine_tumor",
        "well_differentiated_net",
        "well_differentiated_neuroendocrine_tumour",
        "well_differentiated_neuroendocrine_tumor",
        "carcinoid",
    ),
    "NEC": (
        "nec",
        "neuroendocrine_carcinoma",
        "poorly_differentiated_nec",
        "poorly_differentiated_neuroendocrine_carcinoma",
    ),
    "MiNEN": ("minen", "mixed_neuroendocrine_non_neuroendocrine_neoplasm", "manec"),
    "other": ("other",),
}
_DIFFERENTIATIONS: dict[str, tuple[str, ...]] = {
    "well": ("well", "well_differentiated", "wd"),
    "poorly": ("poorly", "poor", "poorly_differentiated"),
}

#: Largest accepted chromogranin A, µg/L (design choice: values reported in NET patients reach thousands to tens
#: of thousands of µg/L; a larger number is taken as a unit mistake such as ng/L or pg/mL entered as µg/L).
CGA_MAX_UG_L = 100_000.0

_MISSING = {"", "na", "n/a", "nan", "null", "none", "."}
_TRUE = {"1", "yes", "y", "true"}
_FALSE = {"0", "no", "n", "false"}
_BOOL_HELP = "yes/no (also y/n, 1/0, true/false), or empty if unknown"

# clinical.csv: canonical column -> accepted (normalised) header names
_CLINICAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "patient_id": ("patient_id",),
    "tumour_type": ("tumour_type", "tumor_type"),
    "primary_site": ("primary_site", "primary_tumour_site", "primary_tumor_site"),
    "differentiation": ("differentiation",),
    "ki67_percent": ("ki67_percent", "ki_67_percent", "ki67_pct", "ki_67_pct"),
    "grade": ("grade", "who_grade", "tumour_grade", "tumor_grade"),
    "cga_ug_l": (
        "cga_ug_l",
        "cga_ug_per_l",
        "cga_ng_ml",
        "cga_ng_per_ml",
        "chromogranin_a_ug_l",
        "chromogranin_a_ng_ml",
    ),
    "extra_abdominal": ("extra_abdominal", "extra_abdominal_disease"),
    "primary_resected": ("primary_resected",),
    "somatostatin_analogue": ("somatostatin_analogue", "somatostatin_analog"),
    "invasive_liver_treatment": ("invasive_liver_treatment",),
    "systemic_therapy": ("systemic_therapy", "systemic_chemotherapy"),
}
# yes/no treatment-history columns of clinical.csv -> treatment category
_FLAG_CATEGORY = {
    "somatostatin_analogue": "somatostatin_analogue",
    "invasive_liver_treatment": "invasive_liver",
    "systemic_therapy": "systemic",
}
_TREATMENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "patient_id": ("patient_id",),
    "treatment": ("treatment", "treatment_kind", "treatment_type", "kind"),
    "start_date": ("start_date", "start"),
    "end_date": ("end_date", "end", "stop_date"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Treatment:
    """One treatment of a patient (dates inclusive; ``end_date`` None = ongoing when the data were collected).

    ``kind`` is a key of :data:`TREATMENT_KINDS`; ``line`` is its line in the treatments file.
    """

    kind: str
    start_date: dt.date
    end_date: dt.date | None
    line: int

    @property
    def category(self) -> str:
        """``somatostatin_analogue``, ``invasive_liver``, ``systemic`` or ``other``."""
        return TREATMENT_KINDS[self.kind]

    def overlaps(self, first: dt.date, last: dt.date) -> bool:
        """Whether the treatment interval shares at least one day with ``[first, last]`` (both inclusive).

        Examples
        --------
        >>> t = Treatment(kind="tace", start_date=dt.date(2020, 3, 1), end_date=dt.date(2020, 3, 1), line=2)
        >>> t.overlaps(dt.date(2020, 1, 1), dt.date(2020, 3, 1)), t.overlaps(dt.date(2020, 3, 2), dt.date(2021, 1, 1))
        (True, False)
        """
        return self.start_date <= last and (self.end_date is None or self.end_date >= first)

    def describe(self) -> str:
        """``tace 2020-03-01`` or ``everolimus 2019-01-01 to ongoing`` (for messages)."""
        if self.end_date == self.start_date:
            return f"{self.kind} {self.start_date.isoformat()}"
        end = "ongoing" if self.end_date is None else self.end_date.isoformat()
        return f"{self.kind} {self.start_date.isoformat()} to {end}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClinicalRecord:
    """The validated clinical data of one patient (``None`` = missing).

    ``tumour_type`` is ``NET``/``NEC``/``MiNEN``/``other``; ``primary_site`` a key of the site list in the module
    docstring (``small_intestine``...); ``differentiation`` ``well``/``poorly``; ``grade`` ``G1``/``G2``/``G3``.
    ``treatments_recorded`` is False when nothing tells whether the patient had invasive liver or systemic
    treatment (no treatments file and no yes/no history columns); ``undated_treatment_categories`` lists the
    categories (``invasive_liver``, ``systemic``) marked "yes" in clinical.csv without any dated treatment.
    """

    patient_id: str
    line: int
    tumour_type: str | None
    primary_site: str | None
    differentiation: str | None
    ki67_percent: float | None
    grade: str | None
    cga_ug_l: float | None
    extra_abdominal: bool | None
    primary_resected: bool | None
    treatments: tuple[Treatment, ...] = ()
    treatments_recorded: bool = True
    undated_treatment_categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ClinicalTable:
    """A validated clinical table: records in file order, the files read and the warnings (one string each)."""

    path: str
    records: tuple[ClinicalRecord, ...]
    warnings: tuple[str, ...] = ()
    treatments_path: str | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[ClinicalRecord]:
        return iter(self.records)

    def get(self, patient_id: str) -> ClinicalRecord | None:
        """The record of ``patient_id`` (hospital id, as in the file), or None."""
        for record in self.records:
            if record.patient_id == patient_id:
                return record
        return None


def who_2019_grade(ki67_percent: float) -> str:
    """WHO 2019 grade of a well-differentiated GEP-NET from its Ki-67 index alone.

    G1 < 3 %, G2 3-20 %, G3 > 20 % (WHO 2019 digestive system tumours, SCIENCE.md §3.4,
    https://pmc.ncbi.nlm.nih.gov/articles/PMC7763988 Table 1). The WHO grade is the higher of this and the
    mitotic-count grade.

    Examples
    --------
    >>> who_2019_grade(2.9), who_2019_grade(3.0), who_2019_grade(20.0), who_2019_grade(20.1)
    ('G1', 'G2', 'G2', 'G3')
    """
    if ki67_percent < 3.0:
        return "G1"
    if ki67_percent <= 20.0:
        return "G2"
    return "G3"


def _lookup(table: dict[str, tuple[str, ...]], key: str) -> str | None:
    for canonical, synonyms in table.items():
        if key == normalise_name(canonical) or key in synonyms:
            return canonical
    return None


_TREATMENT_LOOKUP = {k: k for k in TREATMENT_KINDS} | {s: k for k, syn in _TREATMENT_SYNONYMS.items() for s in syn}


def treatment_kind(name: str) -> str | None:
    """The canonical treatment kind of a name or synonym, or None if unknown.

    Examples
    --------
    >>> treatment_kind("Octreotide LAR"), treatment_kind("TACE"), treatment_kind("177Lu-DOTATATE")
    ('somatostatin_analogue', 'tace', 'prrt')
    """
    return _TREATMENT_LOOKUP.get(normalise_name(name))


# ---- reading --------------------------------------------------------------------------------------------------


def _map_columns(data: Table, spec: dict[str, tuple[str, ...]], what: str, warnings: list[str]) -> dict[str, int]:
    """Canonical column → index in the file; refuses units that cannot be converted and duplicated columns."""
    found: dict[str, int] = {}
    ignored: list[str] = []
    for i, (raw, key) in enumerate(zip(data.header, data.keys)):
        if not key:
            if any(row[i] for _, row in data.rows):
                raise TableError(f"{data.source}, line 1: column {i + 1} has no name but holds values; name it")
            continue
        canonical = next((c for c, names in spec.items() if key in names), None)
        if canonical is None:
            _refuse_column(data.source, raw, key, what)
            ignored.append(raw)
            continue
        if canonical in found:
            other = data.header[found[canonical]]
            raise TableError(
                f"{data.source}, line 1: columns {other!r} and {raw!r} both give {canonical}; keep only one"
            )
        found[canonical] = i
    if ignored:
        warnings.append(f"{data.source}: ignored column(s) {', '.join(repr(c) for c in ignored)}")
    return found


def _refuse_column(source: str, raw: str, key: str, what: str) -> None:
    """Raise for columns that hold a known variable in a unit hepavol cannot use (or without a unit)."""
    where = f"{source}, line 1, column {raw!r}"
    if what == "clinical" and key == "treatments":
        raise TableError(
            f"{where}: treatments go in a separate file (one row per treatment: patient_id,treatment,start_date,"
            "end_date) given with --treatments, so that each has its dates"
        )
    if what == "clinical" and (key.startswith("cga") or key.startswith("chromogranin")):
        unit = key.split("_", 1)[1] if "_" in key and key.startswith("cga") else key
        if re.search(r"(^|_)(n|p)mol", unit):
            fix = (
                "a molar CgA concentration cannot be converted to µg/L with a fixed factor (assays measure "
                "different CgA fragments and are calibrated differently); enter the µg/L (= ng/mL) value of the "
                "laboratory report in a column 'cga_ug_l', or leave CgA out"
            )
        elif re.search(r"(^|_)(k?iu|u)_l$|(^|_)(k?iu|u)_per_l$", unit):
            fix = (
                "assay units per litre are not µg/L and cannot be converted; enter the µg/L (= ng/mL) value in a "
                "column 'cga_ug_l', or leave CgA out"
            )
        elif "uln" in unit:
            fix = (
                "multiples of the upper limit of normal depend on the assay; enter the µg/L (= ng/mL) value in a "
                "column 'cga_ug_l'"
            )
        elif re.search(r"(^|_)mg_(per_)?l$", unit):
            fix = "multiply the values by 1000 and name the column 'cga_ug_l' (1 mg/L = 1000 µg/L)"
        elif re.search(r"(^|_)(ng_(per_)?l|pg_(per_)?ml)$", unit):
            fix = "divide the values by 1000 and name the column 'cga_ug_l' (1000 ng/L = 1000 pg/mL = 1 µg/L)"
        else:
            fix = "name the column with its unit: 'cga_ug_l' for µg/L (ng/mL is the same: 'cga_ng_ml')"
        raise TableError(f"{where}: chromogranin A in an unusable unit or without a unit; {fix}")
    if what == "clinical" and re.fullmatch(r"ki_?67(_index)?(_fraction|_frac|_ratio)?", key):
        if key.endswith(("_fraction", "_frac", "_ratio")):
            fix = "multiply the values by 100 and name the column 'ki67_percent'"
        else:
            fix = "name the column 'ki67_percent' (Ki-67 index in %, 0-100)"
        raise TableError(f"{where}: Ki-67 needs its unit in the column name; {fix}")


def _where(source: str, line: int, column: str, raw: str) -> str:
    return f"{source}, line {line}, column '{column}': value {raw!r}"


def _is_missing(raw: str) -> bool:
    return raw.strip().lower() in _MISSING


def _number(source: str, line: int, column: str, raw: str) -> float:
    text = raw.strip()
    if text.startswith(("<", ">", "≤", "≥")):
        raise TableError(
            f"{_where(source, line, column, raw)} is a bound, not a number; enter the number (e.g. 1 for '<1') and "
            "keep the bound in your notes, or leave the cell empty"
        )
    if re.fullmatch(r"[+-]?[1-9]\d{0,2},\d{3}", text):
        raise TableError(
            f"{_where(source, line, column, raw)} is ambiguous: {text.replace(',', '')} or {text.replace(',', '.')}? "
            "write the number without thousands separators and with a decimal point"
        )
    if re.fullmatch(r"[+-]?\d+,\d+", text):
        text = text.replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        hint = ""
        if re.fullmatch(r"[+-]?\d{1,3}([ ,']\d{3})+(\.\d+)?", text):
            hint = " without thousands separators"
        raise TableError(
            f"{_where(source, line, column, raw)} is not a number; write a plain number{hint} "
            "(decimal point or decimal comma), or leave the cell empty if unknown"
        ) from None
    if not math.isfinite(value):
        raise TableError(f"{_where(source, line, column, raw)} is not a finite number; leave the cell empty")
    return value


def _bool(source: str, line: int, column: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise TableError(f"{_where(source, line, column, raw)} is not a yes/no value; use {_BOOL_HELP}")


def _date(source: str, line: int, column: str, raw: str) -> dt.date:
    text = raw.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            value = dt.date.fromisoformat(text)
        except ValueError:
            raise TableError(f"{_where(source, line, column, raw)} is not a calendar date") from None
        if value.year < 1900:
            raise TableError(f"{_where(source, line, column, raw)}: year before 1900; check the date")
        return value
    if re.fullmatch(r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}", text):
        hint = "day/month order is ambiguous; write it as YYYY-MM-DD (e.g. 2019-03-14)"
    else:
        hint = "write dates as YYYY-MM-DD (e.g. 2019-03-14)"
    raise TableError(f"{_where(source, line, column, raw)} is not an ISO date; {hint}")


def _choice(
    table: dict[str, tuple[str, ...]], source: str, line: int, column: str, raw: str, accepted: str
) -> str:
    value = _lookup(table, normalise_name(raw))
    if value is None:
        raise TableError(f"{_where(source, line, column, raw)} is not recognised; use {accepted}")
    return value


def _grade(source: str, line: int, column: str, raw: str) -> str:
    m = re.fullmatch(r"(?:who_?)?(?:g|grade_?)?([123])", normalise_name(raw))
    if m is None:
        raise TableError(
            f"{_where(source, line, column, raw)} is not a WHO grade; use G1, G2 or G3 (or 1, 2, 3), or leave the "
            "cell empty if unknown"
        )
    return f"G{m.group(1)}"


def _parse_clinical_row(
    data: Table, columns: dict[str, int], line: int, cells: tuple[str, ...], warnings: list[str]
) -> tuple[ClinicalRecord, dict[str, bool | None]]:
    """One clinical row as a record without treatments, and its yes/no treatment-history values."""
    src = data.source

    def col(name: str) -> str:
        return data.header[columns[name]]

    def cell(name: str) -> str | None:
        i = columns.get(name)
        if i is None or _is_missing(cells[i]):
            return None
        return cells[i]

    patient_id = cells[columns["patient_id"]]
    if _is_missing(patient_id):
        raise TableError(
            f"{src}, line {line}, column '{col('patient_id')}': empty; every row needs the patient's id"
        )

    raw = cell("ki67_percent")
    ki67: float | None = None
    if raw is not None:
        ki67 = _number(src, line, col("ki67_percent"), raw.rstrip().removesuffix("%"))
        if not 0.0 <= ki67 <= 100.0:
            raise TableError(
                f"{_where(src, line, col('ki67_percent'), raw)} is outside 0-100; Ki-67 is the percentage of "
                "tumour cells stained"
            )

    raw = cell("grade")
    grade = None if raw is None else _grade(src, line, col("grade"), raw)
    if grade is not None and ki67 is not None:
        by_ki67 = who_2019_grade(ki67)
        if by_ki67 != grade:
            if grade < by_ki67:
                why = "contradicts WHO 2019 (the grade is the higher of the Ki-67 and the mitotic-count grade)"
            else:
                why = "is consistent with WHO 2019 only if the mitotic count gave the higher grade"
            warnings.append(
                f"{src}, line {line}: grade {grade} with Ki-67 {ki67:g} % (WHO 2019 Ki-67 grade {by_ki67}: "
                f"G1 < 3 %, G2 3-20 %, G3 > 20 %) {why}; check both values"
            )

    raw = cell("cga_ug_l")
    cga: float | None = None
    if raw is not None:
        cga = _number(src, line, col("cga_ug_l"), raw)
        if cga < 0:
            raise TableError(f"{_where(src, line, col('cga_ug_l'), raw)} is negative; CgA is a concentration >= 0")
        if cga > CGA_MAX_UG_L:
            raise TableError(
                f"{_where(src, line, col('cga_ug_l'), raw)} is above {CGA_MAX_UG_L:g} µg/L, implausible for "
                "chromogranin A; check the unit (ng/L and pg/mL must be divided by 1000 to give µg/L)"
            )

    yes_no: dict[str, bool | None] = {}
    for name in ("extra_abdominal", "primary_resected", *_FLAG_CATEGORY):
        raw = cell(name)
        yes_no[name] = None if raw is None else _bool(src, line, col(name), raw)

    raw = cell("primary_site")
    site = None if raw is None else _choice(_SITES, src, line, col("primary_site"), raw, ", ".join(_SITES))
    raw = cell("tumour_type")
    ttype = (
        None
        if raw is None
        else _choice(_TUMOUR_TYPES, src, line, col("tumour_type"), raw, "NET, NEC, MiNEN or other")
    )
    raw = cell("differentiation")
    diff = (
        None
        if raw is None
        else _choice(_DIFFERENTIATIONS, src, line, col("differentiation"), raw, "well or poorly (differentiated)")
    )
    implied = {"NET": "well", "NEC": "poorly"}
    if ttype in implied and diff is not None and diff != implied[ttype]:
        raise TableError(
            f"{src}, line {line}: tumour type {ttype} with differentiation {diff!r}; in the WHO 2019 classification "
            "a NET is well and a NEC poorly differentiated: correct one of the two"
        )
    if ttype in implied:
        diff = implied[ttype]
    elif ttype is None and diff is not None:
        ttype = {"well": "NET", "poorly": "NEC"}[diff]
    if ttype == "NEC" and grade in ("G1", "G2"):
        warnings.append(
            f"{src}, line {line}: a NEC is G3 by definition (WHO 2019) but the grade is {grade}; check"
        )

    record = ClinicalRecord(
        patient_id=patient_id,
        line=line,
        tumour_type=ttype,
        primary_site=site,
        differentiation=diff,
        ki67_percent=ki67,
        grade=grade,
        cga_ug_l=cga,
        extra_abdominal=yes_no["extra_abdominal"],
        primary_resected=yes_no["primary_resected"],
    )
    flags = {name: yes_no[name] for name in _FLAG_CATEGORY if name in columns}
    return record, flags


def _read_treatments(
    path: str | os.PathLike[str],
    ids: dict[str, int],
    clinical_source: str,
    warnings: list[str],
    today: dt.date | None = None,
) -> dict[str, list[Treatment]]:
    data = read_table(path, "treatments")
    src = data.source
    columns = _map_columns(data, _TREATMENT_COLUMNS, "treatments", warnings)
    missing = [c for c in ("patient_id", "treatment", "start_date") if c not in columns]
    if missing:
        raise TableError(
            f"{src}, line 1: missing column(s) {', '.join(repr(m) for m in missing)}; a treatments file has the "
            "columns patient_id,treatment,start_date,end_date (end_date may be empty)"
        )
    accepted = ", ".join(TREATMENT_KINDS)
    out: dict[str, list[Treatment]] = {}
    seen: dict[tuple[str, str, dt.date, dt.date | None], int] = {}
    for line, cells in data.rows:
        pid = cells[columns["patient_id"]]
        if _is_missing(pid):
            raise TableError(f"{src}, line {line}, column 'patient_id': empty; give the patient's id")
        if pid not in ids:
            raise TableError(
                f"{src}, line {line}, column 'patient_id': this patient is not in {clinical_source}; add a row for "
                "the patient there or correct the id"
            )
        tcol = data.header[columns["treatment"]]
        raw_kind = cells[columns["treatment"]]
        if _is_missing(raw_kind):
            raise TableError(f"{src}, line {line}, column '{tcol}': empty; name the treatment ({accepted})")
        kind = treatment_kind(raw_kind)
        if kind is None:
            raise TableError(
                f"{_where(src, line, tcol, raw_kind)} is not a known treatment; use one of {accepted} (or a "
                "synonym such as octreotide, hepatectomy, radiofrequency ablation, chemoembolisation, capecitabine, "
                "Lutathera); for anything else use other_liver, other_systemic or other"
            )
        scol = data.header[columns["start_date"]]
        raw_start = cells[columns["start_date"]]
        if _is_missing(raw_start):
            raise TableError(
                f"{src}, line {line}, column '{scol}': empty; every treatment needs its start date (if only the "
                "month is known, give its first day)"
            )
        start = _date(src, line, scol, raw_start)
        if warning := future_date_warning(f"{src}, line {line}", scol, start, today=today):
            warnings.append(warning)
        end: dt.date | None = None
        if "end_date" in columns:
            ecol = data.header[columns["end_date"]]
            raw_end = cells[columns["end_date"]]
            if not _is_missing(raw_end):
                end = _date(src, line, ecol, raw_end)
                if warning := future_date_warning(f"{src}, line {line}", ecol, end, today=today):
                    warnings.append(warning)
                if end < start:
                    raise TableError(
                        f"{_where(src, line, ecol, raw_end)} is before the start date {start.isoformat()}; "
                        "swap or correct the dates"
                    )
        if end is None and kind in PROCEDURES:
            end = start
        key = (pid, kind, start, end)
        if key in seen:
            warnings.append(f"{src}, line {line}: same treatment and dates as line {seen[key]}; counted once")
            continue
        seen[key] = line
        out.setdefault(pid, []).append(Treatment(kind=kind, start_date=start, end_date=end, line=line))
    return out


def read_clinical(
    path: str | os.PathLike[str],
    *,
    treatments_path: str | os.PathLike[str] | None = None,
    today: dt.date | None = None,
) -> ClinicalTable:
    """Read and validate a clinical table and, optionally, the patients' treatments.

    Parameters
    ----------
    path : str or path-like
        ``clinical.csv``: one row per patient (columns in the module docstring; only ``patient_id`` is required).
    treatments_path : str or path-like, optional
        ``treatments.csv``: one row per treatment, ``patient_id,treatment,start_date,end_date``. Patients absent
        from it had no treatment. Without it, the yes/no columns ``invasive_liver_treatment`` and
        ``systemic_therapy`` of clinical.csv (if present) tell whether a patient had such a treatment, undated.

    Returns
    -------
    ClinicalTable
        Records in file order, each with its treatments sorted by start date, and warnings (each naming the
        file and the line): grade not matching Ki-67 by WHO 2019, Ki-67 values that look like fractions, a
        yes/no history column saying "yes" with no dated treatment, ignored columns, duplicated treatments,
        treatment dates after ``today`` (default: the computer's date; kept as given).

    Raises
    ------
    TableError
        Unreadable or empty file; missing ``patient_id`` column; CgA or Ki-67 in an unusable unit or without
        one; a value that cannot be parsed (number, yes/no, grade, ISO date, site, tumour type, treatment name);
        Ki-67 outside 0-100; CgA negative or above :data:`CGA_MAX_UG_L`; a NET recorded as poorly or a NEC as
        well differentiated; a patient listed twice; a treatment for a patient missing from clinical.csv, without
        a start date, or ending before it starts; a yes/no history column saying "no" where the treatments file
        has such a treatment. The message names the file, the line, the column, the value and the fix.
    """
    warnings: list[str] = []
    data = read_table(path, "clinical")
    src = data.source
    columns = _map_columns(data, _CLINICAL_COLUMNS, "clinical", warnings)
    if "patient_id" not in columns:
        hint = ""
        if len(data.header) == 1 and "," not in data.header[0]:
            hint = " (the header has a single column: is the separator a comma, semicolon or tab?)"
        raise TableError(
            f"{src}, line 1: no 'patient_id' column{hint}; the clinical table needs one row per patient with a "
            "patient_id column"
        )
    if not {"tumour_type", "differentiation"} & columns.keys() or "primary_site" not in columns:
        warnings.append(
            f"{src}: no tumour_type/differentiation or primary_site column; the tumour-type criterion cannot be "
            "assessed and every patient will be 'not assessable' for it"
        )
    parsed: list[tuple[ClinicalRecord, dict[str, bool | None]]] = []
    ids: dict[str, int] = {}
    for line, cells in data.rows:
        record, flags = _parse_clinical_row(data, columns, line, cells, warnings)
        if record.patient_id in ids:
            raise TableError(
                f"{src}, line {line}, column '{data.header[columns['patient_id']]}': the same patient id as on line "
                f"{ids[record.patient_id]}; keep one row per patient"
            )
        ids[record.patient_id] = line
        parsed.append((record, flags))
    if not parsed:
        raise TableError(f"{src} has a header but no patient rows")

    kis = [r.ki67_percent for r, _ in parsed if r.ki67_percent is not None]
    if len(kis) >= 3 and max(kis) <= 1.0 and max(kis) > 0.0:
        warnings.append(
            f"{src}: every Ki-67 value is at most 1; if they are fractions (0.05 for 5 %), multiply them by 100"
        )

    treatments: dict[str, list[Treatment]] = {}
    tsource: str | None = None
    if treatments_path is not None:
        tsource = str(treatments_path)
        treatments = _read_treatments(treatments_path, ids, src, warnings, today)

    records: list[ClinicalRecord] = []
    for record, flags in parsed:
        own = sorted(treatments.get(record.patient_id, []), key=lambda t: (t.start_date, t.line))
        undated: list[str] = []
        for flag, value in flags.items():
            category = _FLAG_CATEGORY[flag]
            dated = [t for t in own if t.category == category]
            column = data.header[columns[flag]]
            if value is False and dated:
                raise TableError(
                    f"{src}, line {record.line}, column '{column}': 'no', but {tsource}, line {dated[0].line} "
                    f"records {dated[0].kind} for the same patient; correct one of the two"
                )
            if value is True and not dated and category != "somatostatin_analogue":
                undated.append(category)
                warnings.append(
                    f"{src}, line {record.line}: '{column}' is yes but no dated {category} treatment is recorded; "
                    "eligibility cannot be assessed until the treatment and its dates are in the treatments file"
                )
        recorded = tsource is not None or all(
            flags.get(flag) is not None for flag in ("invasive_liver_treatment", "systemic_therapy")
        )
        records.append(
            replace(
                record,
                treatments=tuple(own),
                treatments_recorded=recorded,
                undated_treatment_categories=tuple(undated),
            )
        )
    return ClinicalTable(path=src, records=tuple(records), warnings=tuple(warnings), treatments_path=tsource)


__all__: Sequence[str] = (
    "CATEGORIES",
    "CGA_MAX_UG_L",
    "PROCEDURES",
    "TREATMENT_KINDS",
    "ClinicalRecord",
    "ClinicalTable",
    "Treatment",
    "normalise_name",
    "read_clinical",
    "treatment_kind",
    "who_2019_grade",
)
