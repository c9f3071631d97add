"""Response assessment: RECIST 1.1, volumetric response and tumour growth rate (pure functions, no imaging).

The names most users need are re-exported here; each module documents its rules and sources.
"""

from hepavol.response.growth import GrowthRate, tgr_recist, tgr_volume
from hepavol.response.load import hepatic_tumor_load_class, tumor_burden_percent
from hepavol.response.recist import (
    Assessment,
    NewLesion,
    NonTargetLesion,
    PatientAssessment,
    Response,
    TargetLesion,
    TimepointResponse,
    assess_patient,
)

__all__ = [
    "Assessment",
    "GrowthRate",
    "NewLesion",
    "NonTargetLesion",
    "PatientAssessment",
    "Response",
    "TargetLesion",
    "TimepointResponse",
    "assess_patient",
    "hepatic_tumor_load_class",
    "tgr_recist",
    "tgr_volume",
    "tumor_burden_percent",
]
