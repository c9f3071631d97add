"""The CSV tables a study reads (clinical data, treatments, scan manifests, segmentation lists, patient lists).

They are read by :func:`hepavol.table.read_table`, the one reader of every table hepavol is given (encodings,
separators and line-numbered messages are described there); this module keeps the names the study code imports.
"""

from __future__ import annotations

from hepavol.table import Table, normalise_name, read_table

__all__ = ["Table", "normalise_name", "read_table"]
