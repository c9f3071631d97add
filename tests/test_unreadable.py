"""Files and folders that are present but cannot be read (issue 23, point 3): never skipped without a word.

The tests run hepavol as the unprivileged user ``nobody`` (``setpriv``), since root reads every file; they skip
where the tests do not run as root. A 20-slice series has 4 of its slices in a sub-folder that only root may list.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hepavol.geometry import Geometry
from hepavol.io.dicom_write import write_dicom_series
from hepavol.volume import Volume

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder that ``nobody`` may enter (pytest's tmp_path is private to root)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run hepavol as an unprivileged user")
    base = Path(tempfile.mkdtemp(prefix="hepavol-unreadable-", dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _series(folder: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    array = rng.integers(-100, 200, size=(20, 24, 24)).astype(np.int16)
    geometry = Geometry(  # axial: slices along S, rows along P, columns along L
        shape=(20, 24, 24),
        spacing_mm=(2.0, 1.0, 1.0),
        origin_lps_mm=(0.0, 0.0, 0.0),
        direction=((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)),
    )
    files = write_dicom_series(Volume(array, geometry), folder, series_instance_uid="1.2.826.0.1.3680043.8.498.77")
    for path in (folder, *folder.rglob("*")):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return files


def _as_nobody(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NOBODY, sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)


def test_a_series_with_an_unlistable_sub_folder_is_an_error_naming_it(shared_tmp: Path) -> None:
    folder = shared_tmp / "series"
    files = _series(folder)
    hidden = folder / "part2"
    hidden.mkdir()
    for f in files[-4:]:
        f.rename(hidden / f.name)
    os.chmod(hidden, 0o700)  # root only
    done = _as_nobody(
        "import sys; from hepavol.cli import main; sys.exit(main(['measure', 'series', '--seg', 'series']))",
        shared_tmp,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot read the folder" in done.stderr
    assert "part2" in done.stderr
    assert "Permission denied" in done.stderr


def test_an_unreadable_slice_is_an_error_naming_it(shared_tmp: Path) -> None:
    folder = shared_tmp / "series"
    files = _series(folder)
    os.chmod(files[7], 0o600)  # root only
    done = _as_nobody(
        "import sys; from hepavol.io.dicom_series import read_dicom_series\n"
        "try:\n    read_dicom_series('series')\nexcept ValueError as e:\n    print(e); sys.exit(2)",
        shared_tmp,
    )
    assert done.returncode == 2, done.stderr
    assert files[7].name in done.stdout
    assert "Permission denied" in done.stdout


def test_study_import_warns_when_the_measured_series_may_be_incomplete(shared_tmp: Path) -> None:
    from hepavol.study.workspace import init_workspace

    export = shared_tmp / "export" / "DUPONT_JEANNE_MRN4471901" / "CT"
    files = _series(export)
    os.chmod(export.parent.parent, 0o755)
    os.chmod(export.parent, 0o755)
    hidden = export / "more"
    hidden.mkdir()
    for f in files[-4:]:
        f.rename(hidden / f.name)
    os.chmod(hidden, 0o700)
    study = shared_tmp / "study"
    init_workspace(study).close()
    for path in (study, *study.iterdir()):
        os.chown(path, 65534, 65534)
    done = subprocess.run(
        [*NOBODY, sys.executable, "-m", "hepavol", "study", "import", str(shared_tmp / "export"),
         "--study", str(study)],
        capture_output=True, text=True, cwd=shared_tmp,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot be read" in done.stderr
    assert "may be incomplete" in done.stderr
    assert "DUPONT" not in done.stderr  # the patient folder by pseudonym
    assert "<P-" in done.stderr
