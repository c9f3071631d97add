"""JSON and CSV text of cohort results (strict JSON: NaN/inf become null; dates ISO; tuples lists)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def clean(value: Any) -> Any:
    """A JSON-safe copy of ``value``.

    >>> clean({"a": (1.0, float("nan")), "d": dt.date(2020, 1, 2)})
    {'a': [1.0, None], 'd': '2020-01-02'}
    """
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        return clean(value.item())
    return str(value)


def json_text(obj: Any) -> str:
    """Pretty, strict JSON text ending with a newline."""
    return json.dumps(clean(obj), indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """CSV text with a header; None is written as an empty cell."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if (v := clean(row.get(k))) is None else v for k in columns})
    return buf.getvalue()
