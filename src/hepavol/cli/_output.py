"""Output helpers shared by the subcommands: JSON and CSV to a file (atomically) or to standard output."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hepavol._atomic import write_text_atomic


def _clean(value: Any) -> Any:
    """Make a value JSON-safe: NaN/inf become null, numpy scalars become Python numbers, tuples lists."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return _clean(value.item())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def to_json(obj: Any) -> str:
    """Pretty JSON text, strict (no NaN), ending with a newline."""
    return json.dumps(_clean(obj), indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def write_json(obj: Any, dest: str) -> None:
    """Write ``obj`` as JSON to ``dest`` (``-`` for standard output)."""
    text = to_json(obj)
    if dest == "-":
        sys.stdout.write(text)
    else:
        write_text_atomic(dest, text)


def csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """CSV text with a header; lists are written as space-separated values, None as empty."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        out = {}
        for k in columns:
            v = _clean(row.get(k))
            if isinstance(v, list):
                v = " ".join(str(x) for x in v)
            out[k] = "" if v is None else v
        writer.writerow(out)
    return buf.getvalue()


def write_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], dest: str) -> None:
    """Write rows as CSV to ``dest`` (``-`` for standard output)."""
    text = csv_text(rows, columns)
    if dest == "-":
        sys.stdout.write(text)
    else:
        write_text_atomic(dest, text)


def format_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain-text table with right-aligned numbers, for terminals."""
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return str(v)
