"""hepavol: volumetric follow-up of liver metastases on CT and MRI.

Geometry is in DICOM patient coordinates (LPS, mm) throughout; arrays are indexed (slice, row, column).
"""

from hepavol._version import __version__
from hepavol.errors import GeometryError, HepavolError, InputError, SeriesError, TableError, TimelineError
from hepavol.geometry import Geometry
from hepavol.volume import Volume, resample_like

__all__ = [
    "Geometry",
    "GeometryError",
    "HepavolError",
    "InputError",
    "SeriesError",
    "TableError",
    "TimelineError",
    "Volume",
    "__version__",
    "resample_like",
]
