"""``hepavol demo`` runs end to end on the bundled data and prints the reference figures of the real cases."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from hepavol.cli import main
from hepavol.cli.demo import run_demo


@pytest.mark.slow
def test_demo_prints_the_real_cases(data_dir: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    run_demo(out, data_dir, tmp_path)
    text = out.getvalue()
    # Liver volumes of the TotalSegmentator CT (1043 mL) and MR (499 mL), the DeepLesion lesion (63.7 mL):
    # tests/data/README.md.
    assert "liver 1043.1 mL" in text
    assert "liver 499.0 mL" in text
    assert "tumour 63.68 mL" in text
    assert "exported cohort table beside the simulator's truth" in text  # the study workspace section
    assert "Demo finished" in text


def test_demo_without_data_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "demo data folder" in capsys.readouterr().err
