"""The RECIST part of ``hepavol demo``: assess the bundled read table ``hepavol/data/demo_recist.csv``."""

from __future__ import annotations

import typing
from importlib import resources

DEMO_TABLE = "data/demo_recist.csv"


def run_recist_demo(out: typing.TextIO) -> None:
    """Print the RECIST 1.1 assessment of the bundled demo read table to ``out``.

    Five invented patients: PR maintained until PD (DEMO-01), PD by a new lesion (DEMO-02), SD (DEMO-03),
    CR with a lymph node of 8 mm short axis (DEMO-04) and an equivocal new lesion confirmed later, PD dated back
    to the scan that first showed it (DEMO-05).
    """
    from hepavol.cli.recist import format_recist_table
    from hepavol.response.table import assess_table, read_recist_table

    table = resources.files("hepavol").joinpath(DEMO_TABLE)
    with resources.as_file(table) as path:
        results = assess_table(read_recist_table(path, name=f"hepavol/{DEMO_TABLE}"))
    out.write(
        "RECIST 1.1 assessment of the bundled read table hepavol/data/demo_recist.csv "
        "(same as: hepavol recist TABLE.csv)\n\n"
    )
    out.write(format_recist_table(results))
