"""Shared fixtures: paths to the bundled real data and helpers that build synthetic volumes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of real public test cases (see tests/data/README.md for sources and licences)."""
    return DATA


#: The per-test ``tmp_path`` folders (validated by :func:`_validate_written_dicom` when the test passed).
_TEST_FOLDERS: set[Path] = set()


@pytest.fixture(autouse=True, scope="module")
def _validate_module_dicom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After each test module: the same validators on every SEG/SR hepavol wrote into the folders the module made
    with ``tmp_path_factory.mktemp`` (module- and session-scoped fixtures), which no test's ``tmp_path`` covers."""
    base = tmp_path_factory.getbasetemp()
    before = set(base.iterdir())
    yield
    from tests.validators import validate_written

    for folder in sorted(set(base.iterdir()) - before - _TEST_FOLDERS):
        if folder.is_dir():
            validate_written(folder)


@pytest.fixture(autouse=True)
def _validate_written_dicom(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test using ``tmp_path``: outside validators (tests/validators.py) on every SEG/SR hepavol wrote.

    dcmqi, highdicom's readers and dciodvfy run on each file once (files a test already checked are skipped).
    """
    if "tmp_path" not in request.fixturenames:
        yield
        return
    folder = request.getfixturevalue("tmp_path")
    _TEST_FOLDERS.add(folder)
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and not report.passed:
        return
    from tests.validators import validate_written

    validate_written(folder)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    rep = yield
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
    return rep
