"""The few exceptions hepavol raises on bad input.

All subclass :class:`ValueError`, so ``except ValueError`` keeps working. Each message says what failed, the
offending value and where (file, UID, lesion id), what was expected and how to fix it. The command line prints
``error: <message>`` and exits with status 2 for any of them (``--debug`` shows the traceback).
"""

from __future__ import annotations


class HepavolError(ValueError):
    """Base class of every user-facing error raised by hepavol."""


class InputError(HepavolError):
    """A file or value given by the user cannot be used (missing, unreadable, wrong format)."""


class SeriesError(InputError):
    """A DICOM series cannot be assembled into a volume (several series, gaps, missing tags, tilt...)."""


class GeometryError(HepavolError):
    """Two grids disagree, or a grid is not usable (non-orthogonal direction cosines, zero spacing...)."""


class TableError(InputError):
    """A CSV table has a bad row: the message names the file, the line and the value."""


class TimelineError(HepavolError):
    """Dates of a patient's assessments or scans are inconsistent (duplicated, out of order...)."""
