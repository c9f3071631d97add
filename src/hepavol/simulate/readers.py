"""A reader model: how a radiologist's measurements of the simulated lesions scatter around the truth.

Each read of a lesion on a scan draws, from the read's own random stream,

- a boundary error ``η ~ Normal(boundary_bias_log, boundary_sd_log²)``: the reader's contour lies at ``exp(η)``
  times the true one along every semi-axis (a boundary displacement proportional to the lesion's size), so the
  measured volume is ``V·exp(3η)``;
- a calliper error ``ξ ~ Normal(0, long_axis_sd_log²)`` of the long axis on top of it (choice of slice and end
  points): the measured long axis is ``L·exp(η + ξ)``;
- whether a small lesion is missed: a non-target lesion (non-target or new) whose true long axis is below
  ``miss_below_mm`` is left out of the read with probability ``miss_probability``. Targets are never missed.

So, for two reads r and s of the same lesions, ``ln(V_s/V_r)`` has mean ``3(μ_s − μ_r)`` and variance
``9(τ_r² + τ_s²)``, and ``ln(L_s/L_r)`` has mean ``μ_s − μ_r`` and variance ``τ_r² + τ_s² + σ_r² + σ_s²``
(:func:`expected_log_differences`). A repeated read by the same reader (``A#2``) shares the reader's bias μ and
draws new errors. Volumes are written to 1e-5 mL and long axes to 0.1 mm, as a viewer shows them.

:func:`reader_label_map` voxelises the same read (same draws) on the scan's grid, for importing a read as a
reader's segmentation (``hepavol simulate --readers`` writes them as ``P/readers/NAME/DATE_seg.nii.gz`` and one
``NAME_segs.csv`` per read in the ``study import-seg`` format). Their voxel volumes differ from ``readers.csv``
by the voxelisation, as the true masks differ from the true volumes.

Defaults are design choices of the order published for liver metastases: inter-reader limits of agreement of
the long axis about ±15-20 % and of volumes about ±20-30 % (SCIENCE.md §1, Huh 2018; Rothe 2013).

The streams are ``SeedSequence(seed, spawn_key=(patient index, 3, read index))``: reads never change the
patient, its images or the other outputs of ``hepavol simulate``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hepavol.agreement.reads import base_reader
from hepavol.errors import InputError
from hepavol.simulate.patient import VirtualPatient, patient_rng
from hepavol.volume import Volume

__all__ = [
    "DEFAULT_READERS",
    "READER_COLUMNS",
    "LesionDraw",
    "ReaderModel",
    "default_reads",
    "expected_log_differences",
    "reader_draws",
    "reader_folder_name",
    "reader_label_map",
    "reader_rows",
]

READER_COLUMNS = ("patient_id", "date", "reader", "lesion_id", "volume_ml", "long_axis_mm", "target")
_READER_STREAM = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class ReaderModel:
    """One read's error model (log-scale parameters are dimensionless; ``miss_below_mm`` in mm)."""

    name: str
    boundary_bias_log: float = 0.0
    boundary_sd_log: float = 0.03
    long_axis_sd_log: float = 0.04
    miss_probability: float = 0.2
    miss_below_mm: float = 10.0

    def __post_init__(self) -> None:
        if not self.name or "," in self.name:
            raise InputError(f"a reader name must be non-empty without commas, but it is {self.name!r}")
        if self.boundary_sd_log < 0 or self.long_axis_sd_log < 0:
            raise InputError(f"reader {self.name!r}: standard deviations must be >= 0")
        if not 0.0 <= self.miss_probability <= 1.0:
            raise InputError(
                f"reader {self.name!r}: miss_probability must be in [0, 1], got {self.miss_probability}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Two readers: A unbiased; B draws contours 2 % larger (volumes +6 %) and is a little noisier.
DEFAULT_READERS: tuple[ReaderModel, ...] = (
    ReaderModel(
        name="A", boundary_bias_log=0.0, boundary_sd_log=0.03, long_axis_sd_log=0.04, miss_probability=0.1
    ),
    ReaderModel(
        name="B", boundary_bias_log=0.02, boundary_sd_log=0.04, long_axis_sd_log=0.05, miss_probability=0.15
    ),
)


def default_reads(n_readers: int, *, repeat: bool = False) -> tuple[ReaderModel, ...]:
    """The first ``n_readers`` default readers (2 at most), plus ``A#2`` (a repeated read of A) with ``repeat``."""
    if not 2 <= n_readers <= len(DEFAULT_READERS):
        raise InputError(f"--readers must be 2 (two simulated readers A and B), but it is {n_readers}")
    reads = DEFAULT_READERS[:n_readers]
    if repeat:
        a = reads[0]
        reads = (*reads, ReaderModel(**(a.to_dict() | {"name": f"{a.name}#2"})))
    return reads


def expected_log_differences(first: ReaderModel, second: ReaderModel) -> dict[str, float]:
    """Known mean and variance of ln(second/first) for a lesion's volume and long axis (lesions both found).

    A repeated read (``A`` and ``A#2``) has the same bias by construction.

    >>> e = expected_log_differences(DEFAULT_READERS[0], DEFAULT_READERS[1])
    >>> round(e["volume_mean"], 4), round(e["volume_var"], 6)
    (0.06, 0.0225)
    """
    return {
        "volume_mean": 3.0 * (second.boundary_bias_log - first.boundary_bias_log),
        "volume_var": 9.0 * (first.boundary_sd_log**2 + second.boundary_sd_log**2),
        "long_axis_mean": second.boundary_bias_log - first.boundary_bias_log,
        "long_axis_var": first.boundary_sd_log**2
        + second.boundary_sd_log**2
        + first.long_axis_sd_log**2
        + second.long_axis_sd_log**2,
    }


@dataclass(frozen=True, slots=True)
class LesionDraw:
    """One read of one lesion on one scan: found or missed, boundary error ``eta`` and calliper error ``xi``."""

    found: bool
    eta: float
    xi: float


def reader_draws(patient: VirtualPatient, reads: Sequence[ReaderModel]) -> dict[tuple[int, int, int], LesionDraw]:
    """Every read's draws for every lesion present on every scan: key (read index, scan index, lesion id)."""
    names = [r.name for r in reads]
    if len(set(names)) != len(names):
        raise InputError(f"reader names must differ, got {names}")
    targets = set(patient.truth.target_ids)
    out: dict[tuple[int, int, int], LesionDraw] = {}
    for k, model in enumerate(reads):
        mu = next((r for r in reads if r.name == base_reader(model.name)), model).boundary_bias_log
        rng = patient_rng(patient.seed, patient.index, _READER_STREAM, k)
        for i, scan in enumerate(patient.truth.scans):
            for lt in scan.lesions:
                # always draw the three numbers, so that a miss does not shift the other lesions' errors
                u, eta, xi = float(rng.uniform()), float(rng.normal()), float(rng.normal())
                small = lt.lesion_id not in targets and lt.long_axis_mm < model.miss_below_mm
                out[(k, i, lt.lesion_id)] = LesionDraw(
                    found=not (small and u < model.miss_probability),
                    eta=mu + model.boundary_sd_log * eta,
                    xi=model.long_axis_sd_log * xi,
                )
    return out


def reader_rows(patient: VirtualPatient, reads: Sequence[ReaderModel]) -> list[dict[str, Any]]:
    """The rows of ``readers.csv`` (the ``hepavol agreement`` table) of one patient for every read.

    A scan on which a read finds no lesion gets one row with an empty ``lesion_id``.
    """
    draws = reader_draws(patient, reads)
    targets = set(patient.truth.target_ids)
    rows: list[dict[str, Any]] = []
    for k, model in enumerate(reads):
        for i, scan in enumerate(patient.truth.scans):
            found = 0
            for lt in scan.lesions:
                d = draws[(k, i, lt.lesion_id)]
                if not d.found:
                    continue
                found += 1
                rows.append(
                    {
                        "patient_id": patient.patient_id,
                        "date": scan.date.isoformat(),
                        "reader": model.name,
                        "lesion_id": f"L{lt.lesion_id}",
                        "volume_ml": round(lt.true_volume_ml * math.exp(3.0 * d.eta), 5),
                        "long_axis_mm": round(lt.long_axis_mm * math.exp(d.eta + d.xi), 1),
                        "target": "yes" if lt.lesion_id in targets else "no",
                    }
                )
            if not found:
                rows.append(
                    {"patient_id": patient.patient_id, "date": scan.date.isoformat(), "reader": model.name}
                )
    return rows


def reader_folder_name(name: str) -> str:
    """A file-system name for a read (``A#2`` → ``A_2``).

    >>> reader_folder_name("A#2"), reader_folder_name("Dr B")
    ('A_2', 'Dr_B')
    """
    return "".join(c if c.isalnum() or c in "-." else "_" for c in name)


def reader_label_map(
    patient: VirtualPatient,
    scan_index: int,
    labels: Volume,
    draws: dict[tuple[int, int, int], LesionDraw],
    read_index: int,
) -> Volume:
    """One read's label map of a scan (liver 1, tumour 2) on the scan's grid: the true liver, and each lesion
    the read found as its ellipsoid scaled by ``exp(eta)`` (a voxel is tumour when its centre lies inside).

    ``labels`` is the scan's true label map (:func:`hepavol.simulate.render.render_scan`); tumour voxels of lesions
    the read leaves out or draws smaller become liver.
    """
    from hepavol.simulate.lesions import rasterise
    from hepavol.simulate.render import LIVER_LABEL, TUMOUR_LABEL, _body_points, _voxel_box

    scan = patient.scans[scan_index]
    geometry = labels.geometry
    out = labels.array.copy()
    out[out == TUMOUR_LABEL] = LIVER_LABEL
    for spec in patient.lesions:
        d = draws.get((read_index, scan_index, spec.lesion_id))
        if d is None or not d.found or not spec.present(scan.day):
            continue
        scale = math.exp(d.eta)
        centre = scan.pose.to_scanner(np.array(spec.centre_mm))
        box = _voxel_box(geometry, centre, float(spec.semi_axes_mm(scan.day).max()) * scale)
        if box is None:
            continue
        pts = _body_points(geometry, scan, box[0].start, box[0].stop, box[1], box[2])
        _, rho = rasterise(spec, scan.day, pts)
        sub = out[box]
        sub[rho <= scale] = TUMOUR_LABEL
    return labels.with_array(out)
