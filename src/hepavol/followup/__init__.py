"""Longitudinal follow-up of one patient: registration to baseline, lesion tracking, RECIST and volumetry.

- :mod:`~hepavol.followup.registration`: align each follow-up scan to the baseline on the liver masks.
- :mod:`~hepavol.followup.pipeline`: read a manifest, measure, register, track, assess (``hepavol follow-up``).
- :mod:`~hepavol.followup.report`: the HTML report (curves, spider plot, target-lesion crops).
"""

from hepavol.followup.pipeline import FollowUpResult, Manifest, read_manifest, run_followup
from hepavol.followup.registration import Registration, register_to_baseline

__all__ = [
    "FollowUpResult",
    "Manifest",
    "Registration",
    "read_manifest",
    "register_to_baseline",
    "run_followup",
]
