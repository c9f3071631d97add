"""Cohort analysis of the study endpoints: read a cohort table, derive variables, analyse, report.

>>> from hepavol.cohort import simulate_table, derive, analyse_cohort
"""

from __future__ import annotations

from hepavol.cohort.analysis import RESULT_KEYS, AnalysisOptions, CohortAnalysis, PatientFlow, analyse_cohort
from hepavol.cohort.derive import DerivedPatient, derive
from hepavol.cohort.simulate import simulate_table
from hepavol.cohort.table import COLUMNS, CohortTable, PatientRecord, read_cohort_table, write_cohort_table

__all__ = [
    "COLUMNS",
    "RESULT_KEYS",
    "AnalysisOptions",
    "CohortAnalysis",
    "CohortTable",
    "DerivedPatient",
    "PatientFlow",
    "PatientRecord",
    "analyse_cohort",
    "derive",
    "read_cohort_table",
    "simulate_table",
    "write_cohort_table",
]
