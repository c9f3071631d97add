"""``hepavol follow-up``: the command, its JSON and report, the target override, and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from tests._followup_helpers import write_patient

from hepavol.cli import main
from hepavol.errors import InputError, TimelineError
from hepavol.followup import read_manifest, run_followup
from hepavol.io import read_image, write_image


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The phantom's first two scans (baseline 2024-01-01, follow-up 2024-03-01), with a manifest."""
    return write_patient(tmp_path_factory.mktemp("cli"), scans=2)


def test_json_to_stdout_and_report(patient: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report"
    assert main(["follow-up", str(patient), "--json", "-", "--report", str(report)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["targets"] == ["L1", "L2"]
    # Hand computation (tests/test_followup_pipeline.py docstring): sum 50 -> 28 mm (-44 %), TTV -79.6 %: PR, PR.
    assert [tp["overall_response"] for tp in d["timepoints"]] == [None, "PR"]
    assert [tp["volumetric_response"] for tp in d["timepoints"]] == [None, "PR"]
    text = (report / "report.html").read_text()
    assert text.startswith("<!DOCTYPE html>")
    # Self-contained: curves (one figure) + spider plot + 2 targets x 2 scans crops, embedded; nothing fetched.
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 1 + 1 + 4
    assert not re.search(r'src="(?!data:)', text)
    assert "L1 on 2024-03-01" in text


def test_table_and_target_override(patient: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["follow-up", str(patient), "--targets", "L2,L3"]) == 0
    out = capsys.readouterr().out
    assert "targets L2, L3" in out
    assert "best overall response" in out
    # L2 20 -> 12 mm and L3 14 -> 8 mm (truth): sum 34 -> 20 mm, -41 %: still PR.
    line = next(s for s in out.splitlines() if s.startswith("2024-03-01"))
    assert " PR " in line


def _manifest(tmp_path: Path, rows: list[str], header: str = "date,image,seg") -> Path:
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _files(patient: Path) -> tuple[str, str, str, str]:
    m = read_manifest(patient)
    return str(m.rows[0].image), str(m.rows[0].seg), str(m.rows[1].image), str(m.rows[1].seg)


def test_dates_out_of_order(patient: Path, tmp_path: Path) -> None:
    i0, s0, i1, s1 = _files(patient)
    path = _manifest(tmp_path, [f"2024-03-01,{i1},{s1}", f"2024-01-01,{i0},{s0}"])
    with pytest.raises(TimelineError, match=r"line 3: date 2024-01-01 comes before 2024-03-01 on line 2"):
        read_manifest(path)


def test_duplicated_date(patient: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    i0, s0, i1, s1 = _files(patient)
    path = _manifest(tmp_path, [f"2024-01-01,{i0},{s0}", f"2024-01-01,{i1},{s1}"])
    assert main(["follow-up", str(path)]) == 2
    assert re.search(r"error: .*line 3: date 2024-01-01 is repeated \(line 2\)", capsys.readouterr().err)


def test_missing_file_is_named_with_its_line(patient: Path, tmp_path: Path) -> None:
    i0, s0, _, _ = _files(patient)
    path = _manifest(tmp_path, [f"2024-01-01,{i0},{s0}", "2024-03-01,nowhere/image.nii.gz,nowhere/seg.nii.gz"])
    with pytest.raises(InputError, match=r"line 3: image file 'nowhere/image.nii.gz' .* does not exist"):
        read_manifest(path)


def test_bad_date_and_missing_column(patient: Path, tmp_path: Path) -> None:
    i0, s0, _, _ = _files(patient)
    with pytest.raises(InputError, match=r"date '01/03/2024' is not a date; write it as YYYY-MM-DD"):
        read_manifest(_manifest(tmp_path, [f"01/03/2024,{i0},{s0}"]))
    with pytest.raises(InputError, match=r"lacks column\(s\) seg"):
        read_manifest(_manifest(tmp_path, [f"2024-01-01,{i0}"], header="date,image"))


def test_timepoint_without_liver(patient: Path, tmp_path: Path) -> None:
    i0, s0, i1, s1 = _files(patient)
    seg = read_image(s1)
    no_liver = tmp_path / "seg_no_liver.nii.gz"
    write_image(seg.with_array(np.where(seg.array == 1, 0, seg.array).astype(np.uint8)), no_liver)
    path = _manifest(tmp_path, [f"2024-01-01,{i0},{s0}", f"2024-03-01,{i1},{no_liver}"])
    with pytest.raises(
        InputError, match=r"line 3 \(2024-03-01\): segmentation .* has no liver \(no voxel with label 1"
    ):
        run_followup(path)


def test_unknown_target_id(patient: Path) -> None:
    with pytest.raises(InputError, match=r"target lesion\(s\) L9 are not baseline lesions .* L1, L2, L3, L4, L5"):
        run_followup(patient, targets=["L1", "L9"])


def test_affine_registration_option(patient: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    assert main(["follow-up", str(patient), "--affine", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    follow = d["registration"][1]
    assert follow["kind"] == "affine"
    assert follow["liver_dice_after"] > 0.95
    # Truth pose of the follow-up (tests/_followup_helpers.py POSES[1]): translation (25, -20, 10) mm, no scaling.
    matrix = np.array(follow["matrix"])
    np.testing.assert_allclose(matrix[:3, 3], [25.0, -20.0, 10.0], atol=2.5)
    np.testing.assert_allclose(np.linalg.det(matrix[:3, :3]), 1.0, atol=0.03)
    assert [tp["overall_response"] for tp in d["timepoints"]] == [None, "PR"]
