"""Shared fixtures: paths to the bundled real data and helpers that build synthetic volumes."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of real public test cases (see tests/data/README.md for sources and licences)."""
    return DATA
