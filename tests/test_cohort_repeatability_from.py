"""Issue 22: ``hepavol cohort --repeatability-from AGREEMENT_DIR/results.json`` takes the within-patient CV of the
total tumour volume from a real ``hepavol agreement`` run on a simulated two-reader study, with the same effect
as ``--repeatability-cv`` and the source recorded in results.json; clear errors otherwise."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from hepavol.cli import main


@pytest.fixture(scope="module")
def agreement(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the simulator's cohort table, the agreement results.json of its two simulated readers)."""
    root = tmp_path_factory.mktemp("rep_from")
    sim = root / "sim"
    assert main(["simulate", "--patients", "6", "--out", str(sim), "--seed", "1", "--readers", "2"]) == 0
    assert main(["agreement", str(sim / "readers.csv"), "--out", str(root / "agr"), "--no-pdf"]) == 0
    return sim / "truth_cohort.csv", root / "agr" / "results.json"


def _cohort(table: Path, out: Path, *extra: str) -> int:
    return main(["cohort", str(table), "--out", str(out), "--bootstrap", "0", "--no-pdf", *extra])


def test_same_effect_as_the_cv_and_source_recorded(tmp_path: Path, agreement: tuple[Path, Path]) -> None:
    table, results = agreement
    agr = json.loads(results.read_text())
    wcv = agr["total_tumor_volume_ml"]["wcv"]["value"]
    assert wcv is not None
    assert 0 < wcv < 100
    assert _cohort(table, tmp_path / "from", "--repeatability-from", str(results)) == 0
    assert _cohort(table, tmp_path / "cv", "--repeatability-cv", repr(wcv)) == 0
    rep_from = json.loads((tmp_path / "from" / "results.json").read_text())["head_to_head"]["repeatability"]
    rep_cv = json.loads((tmp_path / "cv" / "results.json").read_text())["head_to_head"]["repeatability"]
    source = rep_from.pop("source")
    assert source == {
        "kind": "agreement",
        "file": str(results),
        "quantity": "total_tumor_volume_ml",
        "wcv_percent": wcv,
        "design": "inter-reader",
        "readers": {"first": "A", "second": "B"},
        "n": agr["total_tumor_volume_ml"]["n"],
    }
    assert rep_cv.pop("source") == {"kind": "given", "option": "--repeatability-cv"}
    assert rep_from == rep_cv
    # RC = 1.96·√2·√ln(1 + CV²) (Bland & Altman 1986) from the agreement's wCV
    assert rep_from["rc_log"] == pytest.approx(1.959963984540054 * math.sqrt(2 * math.log1p((wcv / 100) ** 2)))
    derived_from = (tmp_path / "from" / "derived.csv").read_text()
    assert derived_from == (tmp_path / "cv" / "derived.csv").read_text()
    assert (
        "CV source: the inter-reader agreement analysis results.json"
        in (tmp_path / "from" / "report.html").read_text()
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"--repeatability-from '.*missing.json': no such file"),
        ("not json", r"not a JSON file"),
        ('{"landmark_n": 3}', r"not the result of a reader-agreement analysis \('format' is None"),
        ('{"format": "hepavol-agreement"}', r"has no 'total_tumor_volume_ml.wcv'"),
        (
            '{"format": "hepavol-agreement", "total_tumor_volume_ml": {"wcv": {"value": null, "reason": "1 pair"}}}',
            r"CV of total_tumor_volume_ml is null \(1 pair\)",
        ),
    ],
)
def test_bad_agreement_files_are_clear_errors(
    tmp_path: Path,
    agreement: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    message: str,
) -> None:
    table, _results = agreement
    path = tmp_path / ("missing.json" if content is None else "bad.json")
    if content is not None:
        path.write_text(content)
    assert _cohort(table, tmp_path / "out", "--repeatability-from", str(path)) == 2  # an input error
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "Traceback" not in err

    assert re.search(message, err), err


def test_a_cohort_result_is_not_an_agreement_result(tmp_path: Path, agreement: tuple[Path, Path]) -> None:
    table, _ = agreement
    assert _cohort(table, tmp_path / "c") == 0
    from hepavol.cohort.uncertainty import repeatability_from_agreement

    with pytest.raises(ValueError, match=r"expected 'hepavol-agreement'.*run 'hepavol agreement"):
        repeatability_from_agreement(tmp_path / "c" / "results.json")


def test_cv_and_from_are_exclusive(tmp_path: Path, agreement: tuple[Path, Path]) -> None:
    table, results = agreement
    with pytest.raises(SystemExit) as exc:
        _cohort(table, tmp_path / "x", "--repeatability-cv", "5", "--repeatability-from", str(results))
    assert exc.value.code == 2
