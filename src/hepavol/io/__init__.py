"""Image and segmentation input/output: every reader returns a :class:`~hepavol.volume.Volume` in LPS mm.

- :func:`read_image`: a DICOM folder or file, NIfTI, NRRD or MetaImage.
- :func:`read_dicom_series`: one DICOM series from a folder (sorting, rescale, gap and tilt checks).
- :func:`read_segmentation`: an integer label map (label-map file or DICOM SEG), optionally on an image grid.
- :func:`write_image`: NIfTI, NRRD or MetaImage, atomically.
- :func:`write_dicom_series`: a CT or MR Image Storage series.
"""

from hepavol.io.dicom_series import read_dicom_series
from hepavol.io.dicom_write import write_dicom_series
from hepavol.io.images import read_image, write_image
from hepavol.io.reorient import reorient_like
from hepavol.io.segmentation import read_segmentation

__all__ = [
    "read_dicom_series",
    "read_image",
    "read_segmentation",
    "reorient_like",
    "write_dicom_series",
    "write_image",
]
