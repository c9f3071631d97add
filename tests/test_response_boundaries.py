"""Exact RECIST 1.1 thresholds, ±0.1 mm around each, from ``tests/reference/recist_boundaries.csv``.

Each row names its source (RECIST 1.1, Eisenhauer et al., Eur J Cancer 2009;45:228-247; the EORTC FAQ; the
examples of SCIENCE.md §1.9-1.10 and STYLE.md §2.6). One target lesion per case, no non-target or new lesions,
assessments 56 days apart; ``expected`` is the target response at the last time point, or for ``measurability``
whether the baseline lesion draws the below-measurable-size warning.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from tests._response_helpers import assess_series

REFERENCE = Path(__file__).parent / "reference" / "recist_boundaries.csv"
ROWS = list(csv.DictReader(REFERENCE.open(encoding="utf-8")))


def test_reference_table_covers_every_threshold() -> None:
    prefixes = {row["case"].split("-")[0] for row in ROWS}
    assert prefixes == {"pr", "pd20", "pd5", "pdboth", "node", "nonnodal", "meas"}
    assert all(row["source"].strip() for row in ROWS)
    assert len(ROWS) >= 40


@pytest.mark.parametrize("row", ROWS, ids=[row["case"] for row in ROWS])
def test_boundary(row: dict[str, str]) -> None:
    diameters: list[str | float | None] = list(row["diameters_mm"].split(";"))
    result = assess_series(diameters, organ=row["organ"])
    if row["kind"] == "measurability":
        below = any("below the measurable" in w for w in result.warnings)
        assert ("warning" if below else "ok") == row["expected"], row["source"]
    else:
        assert row["kind"] == "target_response"
        assert result.timepoints[-1].target_response.value == row["expected"], row["source"]
