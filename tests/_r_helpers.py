"""Running an R script live next to hepavol (as the survival, pROC and psych tests do) and reading its output."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def rscript(packages: str = "r-cran-survival") -> str:
    """The ``Rscript`` executable, or a failed test naming the Debian packages to install."""
    path = shutil.which("Rscript")
    if path is None:
        pytest.fail(f"Rscript is missing: install the Debian packages r-base-core {packages} (make test does)")
    return path


def run_r(script: str, folder: Path, *args: str, packages: str = "r-cran-survival", timeout: float = 120) -> str:
    """Write ``script`` to ``folder/check.R``, run it with ``args`` and return its standard output (the test fails
    with R's standard error when R does)."""
    path = folder / "check.R"
    path.write_text(script)
    proc = subprocess.run(
        [rscript(packages), "--vanilla", str(path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def parse_r_values(stdout: str) -> dict[str, float | None]:
    """``key value`` lines (``NULL`` for a value R has not) as a dict of floats."""
    values: dict[str, float | None] = {}
    for line in stdout.splitlines():
        key, value = line.split()
        values[key] = None if value in ("NULL", "NA") else float(value)
    return values
