"""Reading 3D-IRCADb-01 patients at run time for the real-liver benchmarks (issues 16 and 18).

``../shared/data/ircadb01/patientNN/`` is CC BY-NC-ND 4.0: nothing of it, nor label maps made from it, is written
into the repository; the mask series are unzipped into a temporary folder the caller gives. A tumour is one
26-connected component of the union of the tumour masks (``livertumorNN/`` or ``tumor/``).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from hepavol.io import read_dicom_series
from hepavol.volume import Volume

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "ircadb01"
SHARED_DATA = Path("/work/shared/data/ircadb01")


def data_folder(given: Path | None = None) -> Path:
    """The ircadb01 folder: ``given``, else ``../shared/data/ircadb01`` beside the repository, else /work/shared."""
    for candidate in (given, DEFAULT_DATA, SHARED_DATA):
        if candidate is not None and candidate.is_dir():
            return candidate
    raise SystemExit(f"3D-IRCADb-01 not found: give --data (tried {DEFAULT_DATA} and {SHARED_DATA})")


def load_patient(folder: Path, tmp: Path) -> tuple[Volume, NDArray[np.bool_], list[NDArray[np.bool_]]]:
    """CT, liver mask (tumours included) and the tumours (26-connected components of the union of tumour masks,
    in the order of ``scipy.ndimage.label``) of one patient."""
    with zipfile.ZipFile(folder / "MASKS_DICOM.zip") as z:
        names = [n for n in z.namelist() if n.split("/")[1:2] and n.split("/")[1].startswith(("liver", "tumor"))]
        z.extractall(tmp, members=names)
    image = read_dicom_series(folder / "PATIENT_DICOM")
    masks = tmp / "MASKS_DICOM"
    liver = np.asarray(read_dicom_series(masks / "liver").array) > 0
    union = np.zeros(image.geometry.shape, dtype=bool)
    for d in sorted(p for p in masks.iterdir() if p.name.startswith(("livertumor", "tumor"))):
        union |= np.asarray(read_dicom_series(d).array) > 0
    labels, n = ndimage.label(union, structure=np.ones((3, 3, 3)))
    tumours = [labels == k for k in range(1, n + 1)]
    return image, liver | union, tumours
