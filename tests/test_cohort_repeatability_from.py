"""Issue 22: ``hepavol cohort --repeatability-from AGREEMENT_DIR/results.json`` takes the within-patient CV of the
total tumour volume from a real ``hepavol agreement`` run on a simulated two-reader study, with the same effect
as ``--repeatability-cv`` and the source recorded in results.json; clear errors otherwise.

Issue 21: the source carries the reader agreement (ICC, Bland–Altman, wCV, RC of the four quantities, the kappas,
the progression-date changes, the smallest detectable change) and the report shows it in a "Reader agreement"
section: every number is checked against the agreement's own results.json, read here; ``<stem>_agreement.json``
beside the table is used without an option."""

from __future__ import annotations

import html
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

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
    summary = source.pop("agreement")
    assert source == {
        "kind": "agreement",
        "file": str(results),
        "quantity": "total_tumor_volume_ml",
        "wcv_percent": wcv,
        "design": "inter-reader",
        "readers": {"first": "A", "second": "B"},
        "n": agr["total_tumor_volume_ml"]["n"],
    }
    _check_summary(summary, agr)
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


QUANTITIES = ("total_tumor_volume_ml", "sum_of_diameters_mm", "volume_change_percent", "sld_change_percent")


def _part(block: dict[str, Any], *keys: str) -> dict[str, Any]:
    out = {k: block[k] for k in keys}
    if block.get("reason"):
        out["reason"] = block["reason"]
    return out


def _check_summary(summary: dict[str, Any], agr: dict[str, Any]) -> None:
    """The reader agreement in the cohort's results.json = the agreement results.json's values (issue 21)."""
    assert set(summary["quantities"]) == set(QUANTITIES)
    for key in QUANTITIES:
        q, mine = agr[key], summary["quantities"][key]
        assert mine["n"] == q["n"]
        assert (mine["unit"], mine["scale"]) == (q["unit"], q["scale"])
        assert mine["icc_2_1"] == _part(q["icc_2_1"], "value", "ci95")
        assert mine["icc_3_1"] == _part(q["icc_3_1"], "value", "ci95")
        assert mine["bland_altman"] == _part(q["bland_altman"], "bias", "loa95", "scale")
        assert mine["wcv"] == _part(q["wcv"], "value", "unit")
        assert mine["repeatability_coefficient"] == _part(q["repeatability_coefficient"], "value", "unit")
    for key in ("recist_response", "volumetric_response"):
        c, mine = agr[key], summary["categories"][key]
        assert mine["n"] == c["n"]
        assert mine["observed_agreement"] == c["observed_agreement"]
        assert mine["kappa"] == _part(c["kappa"], "value", "ci95")
        assert mine["weighted_kappa"] == _part(c["weighted_kappa"], "value", "ci95", "weights")
    for key in ("recist", "volumetric"):
        assert summary["progression_date_changes"][key] == _part(
            agr["progression_date_changes"][key], "count", "n", "share", "ci95"
        )
    sdc = summary["smallest_detectable_change"]
    assert sdc == agr["smallest_detectable_change"]
    assert (sdc["total_tumor_volume"]["volumetric_pr_threshold_percent"],
            sdc["total_tumor_volume"]["volumetric_pd_threshold_percent"]) == (-65.0, 73.0)  # fmt: skip


def _tables_after(text: str, heading: str) -> list[list[list[str]]]:
    """The tables of the report section under ``<h3>heading</h3>`` (up to the next heading): rows of cell texts."""
    start = text.index(f"<h3>{heading}</h3>")
    end = min(i for i in (text.find("<h2", start + 1), text.find("<h3", start + 1), len(text)) if i > 0)
    section = text[start:end]
    tables = []
    for table in re.findall(r"<tbody>(.*?)</tbody>", section, flags=re.S):
        rows = re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)
        tables.append(
            [[html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r, flags=re.S)] for r in rows]
        )
    return tables


def _fixed(value: float | None, digits: int) -> str:
    """A number as the report prints it: fixed decimals, no minus sign on a zero."""
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _with_ci(e: dict[str, Any], digits: int = 3) -> str:
    if e["value"] is None:
        return "–"
    return f"{_fixed(e['value'], digits)} ({_fixed(e['ci95'][0], digits)} to {_fixed(e['ci95'][1], digits)})"


def test_report_shows_the_reader_agreement_of_the_file(tmp_path: Path, agreement: tuple[Path, Path]) -> None:
    """Every number of the "Reader agreement" section is the agreement results.json's, rounded as printed."""
    from hepavol.cohort.report import AGREEMENT_LABELS

    table, results = agreement
    agr = json.loads(results.read_text())
    assert _cohort(table, tmp_path / "c", "--repeatability-from", str(results)) == 0
    text = (tmp_path / "c" / "report.html").read_text()
    quantities, kappas = _tables_after(text, "Reader agreement")
    assert [row[0] for row in quantities] == [AGREEMENT_LABELS[k] for k in QUANTITIES]
    for row, key in zip(quantities, QUANTITIES, strict=True):
        q = agr[key]
        ba, rc, wcv = q["bland_altman"], q["repeatability_coefficient"], q["wcv"]["value"]
        digits, unit = (3, "ln") if ba["scale"] == "log" else (2, q["unit"])
        bias = (
            f"{_fixed(ba['bias'], digits)} ({_fixed(ba['loa95'][0], digits)} to {_fixed(ba['loa95'][1], digits)})"
        )
        rc_unit = "ln" if rc["unit"] == "log" else rc["unit"]
        expected = [
            AGREEMENT_LABELS[key],
            str(q["n"]),
            _with_ci(q["icc_2_1"]),
            _fixed(q["icc_3_1"]["value"], 3),
            f"{bias} {unit}",
            "–" if wcv is None else f"{_fixed(wcv, 1)} %",
            f"{_fixed(rc['value'], 3 if rc['unit'] == 'log' else 2)} {rc_unit}",
        ]
        assert row == expected, key
    assert [row[0] for row in kappas] == ["RECIST 1.1 response", "Volumetric response"]
    for row, key in zip(kappas, ("recist_response", "volumetric_response"), strict=True):
        c = agr[key]
        assert row == [row[0], str(c["n"]), _fixed(c["observed_agreement"], 3), _with_ci(c["kappa"]),
                       _with_ci(c["weighted_kappa"])], key  # fmt: skip
    p = agr["progression_date_changes"]["recist"]
    assert (
        f"The RECIST 1.1 progression date changes with the reader in {p['count']} of {p['n']} patients "
        f"({_fixed(100 * p['share'], 1)} %)" in html.unescape(text)
    )
    sdc = agr["smallest_detectable_change"]["total_tumor_volume"]
    assert (
        f"the smallest detectable change of the total tumour volume is "
        f"{_fixed(sdc['smallest_detectable_decrease_percent'], 1)} % / "
        f"+{_fixed(sdc['smallest_detectable_increase_percent'], 1)} %" in html.unescape(text)
    )
    # the same in results.json
    source = json.loads((tmp_path / "c" / "results.json").read_text())["head_to_head"]["repeatability"]["source"]
    _check_summary(source["agreement"], agr)


def test_agreement_beside_the_table_is_used_without_an_option(
    tmp_path: Path, agreement: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """``<stem>_agreement.json`` beside TABLE (as hepavol study export writes it) = --repeatability-from it;
    --repeatability-cv overrides it; a beside file that cannot give a CV is said and left aside."""
    table, results = agreement
    mine = tmp_path / "cohort.csv"
    shutil.copy(table, mine)
    shutil.copy(results, tmp_path / "cohort_agreement.json")
    capsys.readouterr()
    assert _cohort(mine, tmp_path / "auto") == 0
    out = capsys.readouterr().out
    wcv = json.loads(results.read_text())["total_tumor_volume_ml"]["wcv"]["value"]
    line = (
        f"repeatability: within-patient CV {wcv:.2f} % of the total tumour volume from the reader agreement "
        f"{tmp_path / 'cohort_agreement.json'} beside the table"
    )
    assert line in out
    assert _cohort(mine, tmp_path / "from", "--repeatability-from", str(tmp_path / "cohort_agreement.json")) == 0
    auto = json.loads((tmp_path / "auto" / "results.json").read_text())["head_to_head"]["repeatability"]
    given = json.loads((tmp_path / "from" / "results.json").read_text())["head_to_head"]["repeatability"]
    assert auto["source"].pop("file") == given["source"].pop("file") == str(tmp_path / "cohort_agreement.json")
    assert auto == given
    capsys.readouterr()
    assert _cohort(mine, tmp_path / "cv", "--repeatability-cv", "5") == 0
    assert "repeatability:" not in capsys.readouterr().out
    cv = json.loads((tmp_path / "cv" / "results.json").read_text())["head_to_head"]["repeatability"]
    assert (cv["source"], cv["cv_percent"]) == ({"kind": "given", "option": "--repeatability-cv"}, 5.0)
    (tmp_path / "cohort_agreement.json").write_text('{"format": "hepavol-agreement"}')
    assert _cohort(mine, tmp_path / "bad") == 0
    err = capsys.readouterr().err
    assert "not used: the reader agreement beside the table '" in err
    assert "has no 'total_tumor_volume_ml.wcv'" in err
    assert "repeatability" not in json.loads((tmp_path / "bad" / "results.json").read_text())["head_to_head"]
