"""Helpers for the DICOM SEG/SR and PACS tests: a small CT series with a liver and two lesions, and validators."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from hepavol.geometry import Geometry
from hepavol.volume import Volume


def case_volumes(direction: Any) -> tuple[Volume, Volume]:
    """A 12×40×48 CT (HU) and its label map: liver (1) box, lesion A 5×12×14 voxels (840), lesion B 2×5×4 (40).

    Spacing 2.5 × 0.8 × 0.8 mm, so lesion A is 840 × 1.6 = 1344 mm³ and lesion B 40 × 1.6 = 64 mm³; lesion A's
    long axis is the diagonal of its 12 × 14 pixel rectangle, √((12·0.8)² + (14·0.8)²) = 14.7513 mm.
    """
    g = Geometry(
        shape=(12, 40, 48), spacing_mm=(2.5, 0.8, 0.8), origin_lps_mm=(-20.0, -15.0, -100.0), direction=direction
    )
    lab = np.zeros(g.shape, np.uint8)
    lab[2:10, 5:35, 5:40] = 1
    lab[3:8, 10:22, 10:24] = 2
    lab[5:7, 25:30, 30:34] = 2
    img = np.where(lab == 1, 60, np.where(lab == 2, 20, -100)).astype(np.int16)
    img[0, 0, :7] = 500  # asymmetric marker
    return Volume(img, g, "ct"), Volume(lab, g, "labels")


def require(tool: str) -> str:
    """Path of a Debian tool that ``make test`` installs; fail (not skip) when it is missing."""
    path = shutil.which(tool)
    assert path, f"{tool} is missing: run 'make test' (installs the Makefile's APT_PACKAGES) or apt-get install it"
    return path


def dciodvfy_errors(path: Path) -> list[str]:
    """Error lines of dciodvfy (dicom3tools) for a file."""
    exe = require("dciodvfy")
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


def template_of(group: Any) -> str:
    """Which TID 1500 measurement group a container is: 1410 planar, 1411 volumetric, 1501 other."""
    codes = {item.ConceptNameCodeSequence[0].CodeValue for item in group.ContentSequence}
    if "121191" in codes:  # Referenced Segment
        return "1411"
    if "121214" in codes:  # Referenced Segmentation Frame
        return "1410"
    return "1501"


def report_containers(ds: Any) -> dict[str, Any]:
    """The TID 1500 containers of a report by concept code: 126010 Imaging Measurements, 126011 Derived Imaging
    Measurements, C0034375 Qualitative Evaluations (a missing one is absent from the dict)."""
    return {
        item.ConceptNameCodeSequence[0].CodeValue: item
        for item in ds.ContentSequence
        if item.ValueType == "CONTAINER"
    }


def time_point_content(path: Path) -> dict[str, Any]:
    """What an SR says of its time point, read with pydicom: the derived measurements (``{meaning: value}``), the
    qualitative evaluations other than lesion statuses (``{meaning: [code values]}``), and per disappeared lesion
    its tracking id, UID and numeric properties."""
    import pydicom

    ds = pydicom.dcmread(path)
    containers = report_containers(ds)
    derived = {
        i.ConceptNameCodeSequence[0].CodeMeaning: float(i.MeasuredValueSequence[0].NumericValue)
        for i in getattr(containers.get("126011"), "ContentSequence", [])
    }
    evaluations: dict[str, list[str]] = {}
    gone = []
    for item in getattr(containers.get("C0034375"), "ContentSequence", []):
        name = item.ConceptNameCodeSequence[0].CodeMeaning
        if name == "Tracked lesion status":
            props = {c.ConceptNameCodeSequence[0].CodeMeaning: c for c in item.ContentSequence}
            gone.append(
                {
                    "status": item.ConceptCodeSequence[0].CodeMeaning,
                    "tracking_id": props["Tracking Identifier"].TextValue,
                    "tracking_uid": props["Tracking Unique Identifier"].UID,
                    "nums": {
                        k: float(v.MeasuredValueSequence[0].NumericValue)
                        for k, v in props.items()
                        if v.ValueType == "NUM"
                    },
                }
            )
        else:
            evaluations.setdefault(name, []).append(item.ConceptCodeSequence[0].CodeValue)
    return {"derived": derived, "evaluations": evaluations, "gone": gone}
