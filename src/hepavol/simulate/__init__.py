"""Virtual cohort of small-intestinal NET liver metastases, scanned repeatedly, with known ground truth.

``hepavol simulate`` and the library functions :func:`simulate_cohort` / :func:`simulate_patient` write images,
label maps (liver 1, tumour 2), lesion instance maps, per-patient manifests, ``clinical.csv`` and ``truth.json``.
:func:`sample_patient` draws a patient at parameter level (no images; about 0.1 s), for cheap studies of the
simulated distributions. Parameters and their sources: :class:`SimulationConfig`.
"""

from hepavol.simulate.cohort import SimulatedCohort, SimulatedPatient, simulate_cohort, simulate_patient
from hepavol.simulate.config import DEFAULT_CONFIG, SimulationConfig
from hepavol.simulate.patient import VirtualPatient, sample_patient
from hepavol.simulate.render import RenderedScan, render_scan

__all__ = [
    "DEFAULT_CONFIG",
    "RenderedScan",
    "SimulatedCohort",
    "SimulatedPatient",
    "SimulationConfig",
    "VirtualPatient",
    "render_scan",
    "sample_patient",
    "simulate_cohort",
    "simulate_patient",
]
