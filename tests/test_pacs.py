"""PACS client against a real Orthanc on loopback: DICOMweb (QIDO/WADO/STOW) and DIMSE (ECHO/FIND/GET/MOVE/STORE).

The series is uploaded through Orthanc's own REST API, pulled by both protocols and compared voxel by voxel with
what was written; SEG and SR computed on the pulled series are pushed, read back from Orthanc and validated.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from tests._dicom_export_helpers import case_volumes, dciodvfy_errors, report_containers
from tests._io_helpers import ORIENTATIONS
from tests._pacs_helpers import Orthanc, free_port, start_orthanc, upload

from hepavol.cli import main
from hepavol.io import read_dicom_series, read_segmentation, reorient_like, write_dicom_series
from hepavol.io.seg_write import write_dicom_seg
from hepavol.io.sr_write import write_dicom_sr
from hepavol.pacs import PacsError, connect
from hepavol.pacs.dicomweb import DicomWebClient
from hepavol.pacs.dimse import DimseClient

pytestmark = pytest.mark.external

PATIENT = "HV-PACS-1"


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    yield from start_orthanc(tmp_path_factory.mktemp("orthanc"))


@pytest.fixture(scope="module")
def uploaded(orthanc: Orthanc, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The case CT written as DICOM and uploaded; its UIDs, array and labels."""
    tmp = tmp_path_factory.mktemp("case")
    ct, labels = case_volumes(ORIENTATIONS["axial"])
    files = write_dicom_series(ct, tmp / "ct", patient_id=PATIENT, study_date="2026-01-15")
    upload(orthanc, files)
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    return {
        "study": str(ds.StudyInstanceUID),
        "series": str(ds.SeriesInstanceUID),
        "array": ct.array,
        "labels": labels,
        "n": len(files),
        "files": files,
    }


def _dimse(orthanc: Orthanc, **kw: object) -> DimseClient:
    return DimseClient("127.0.0.1", orthanc.dicom_port, aet=orthanc.scu_aet, called_aet=orthanc.aet, **kw)  # type: ignore[arg-type]


def test_dicomweb_find_pull_push(orthanc: Orthanc, uploaded: dict, tmp_path: Path) -> None:
    client = DicomWebClient(orthanc.dicomweb_url, workers=3)
    client.echo()
    studies = client.find_studies(patient_id=PATIENT)
    assert [s.study_instance_uid for s in studies] == [uploaded["study"]]
    assert studies[0].study_date == "20260115"
    assert client.find_studies(patient_id="NOBODY") == []
    series = client.find_series(uploaded["study"])
    assert [(s.series_instance_uid, s.modality) for s in series] == [(uploaded["series"], "CT")]
    files = client.pull_series(uploaded["study"], uploaded["series"], tmp_path / "ct")
    assert len(files) == uploaded["n"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left
    image = read_dicom_series(tmp_path / "ct")
    assert np.array_equal(image.array, uploaded["array"])
    with pytest.raises(PacsError, match="already exists"):
        client.pull_series(uploaded["study"], uploaded["series"], tmp_path / "ct")

    # compute on the pulled series, push SEG by STOW-RS, read back by WADO-RS and validate
    labels = reorient_like(uploaded["labels"], image.geometry)  # type: ignore[arg-type]
    seg = write_dicom_seg(image, labels, tmp_path / "seg.dcm")
    sr = write_dicom_sr(image, tmp_path / "seg.dcm", tmp_path / "sr.dcm", recist_response="SD")
    assert client.push([tmp_path / "seg.dcm", tmp_path / "sr.dcm"]) == 2
    kinds = {s.modality: s for s in client.find_series(uploaded["study"])}
    assert set(kinds) == {"CT", "SEG", "SR"}
    client.pull_series(uploaded["study"], kinds["SEG"].series_instance_uid, tmp_path / "seg_back")
    client.pull_series(uploaded["study"], kinds["SR"].series_instance_uid, tmp_path / "sr_back")
    (seg_file,) = (tmp_path / "seg_back").iterdir()
    (sr_file,) = (tmp_path / "sr_back").iterdir()
    assert seg_file.name == f"{seg.sop_instance_uid}.dcm"
    assert sr_file.name == f"{sr.sop_instance_uid}.dcm"
    assert dciodvfy_errors(seg_file) == []
    assert dciodvfy_errors(sr_file) == []
    back = read_segmentation(seg_file, reference=image.geometry)
    assert np.array_equal(back.array, read_segmentation(tmp_path / "seg.dcm", reference=image.geometry).array)
    volumes = [
        float(item.MeasuredValueSequence[0].NumericValue)
        for group in report_containers(pydicom.dcmread(sr_file))["126010"].ContentSequence  # Imaging Measurements
        for item in group.ContentSequence
        if item.ValueType == "NUM" and item.ConceptNameCodeSequence[0].CodeValue == "118565006"
    ]
    assert volumes == pytest.approx([840 * 1.6, 40 * 1.6])  # analytic: voxel counts × 2.5 × 0.8 × 0.8 mm³


@pytest.mark.parametrize("method", ["get", "move"])
def test_dimse_find_pull(orthanc: Orthanc, uploaded: dict, tmp_path: Path, method: str) -> None:
    client = _dimse(orthanc)
    client.echo()
    studies = client.find_studies(patient_id=PATIENT)
    assert [s.study_instance_uid for s in studies] == [uploaded["study"]]
    ct = [s for s in client.find_series(uploaded["study"]) if s.modality == "CT"]
    assert [s.series_instance_uid for s in ct] == [uploaded["series"]]
    assert ct[0].number_of_instances == uploaded["n"]
    files = client.pull_series(
        uploaded["study"], uploaded["series"], tmp_path / "ct", method=method, move_port=orthanc.scp_port
    )
    assert len(files) == uploaded["n"]
    assert np.array_equal(read_dicom_series(tmp_path / "ct").array, uploaded["array"])


@pytest.mark.parametrize("method", ["get", "move"])
def test_dimse_parallel_pull_gives_the_same_files(
    orthanc: Orthanc, uploaded: dict, tmp_path: Path, method: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three associations asking for lists of instances write the same files, byte for byte, as one C-GET/C-MOVE."""
    study, series = uploaded["study"], uploaded["series"]
    one = _dimse(orthanc, workers=1).pull_series(
        study, series, tmp_path / "one", method=method, move_port=orthanc.scp_port
    )
    three = _dimse(orthanc, workers=3).pull_series(
        study, series, tmp_path / "three", method=method, move_port=orthanc.scp_port, progress=True
    )
    sops = sorted(f"{pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID}.dcm" for f in uploaded["files"])
    assert [p.name for p in one] == [p.name for p in three] == sops
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in three]
    assert np.array_equal(read_dicom_series(tmp_path / "three").array, uploaded["array"])
    n = uploaded["n"]
    assert capsys.readouterr().err.endswith(f"] {n}/{n}\n")  # the progress bar counted every instance


def test_dicomweb_streamed_and_parallel_pulls_give_the_same_files(
    orthanc: Orthanc, uploaded: dict, tmp_path: Path
) -> None:
    """One streamed series request and 4 parallel instance requests: the same files, datasets as uploaded."""
    client = DicomWebClient(orthanc.dicomweb_url)
    assert client.workers == 1
    streamed = client.pull_series(uploaded["study"], uploaded["series"], tmp_path / "streamed")
    parallel = client.pull_series(uploaded["study"], uploaded["series"], tmp_path / "parallel", workers=4)
    assert [p.name for p in streamed] == [p.name for p in parallel]
    assert [p.read_bytes() for p in streamed] == [p.read_bytes() for p in parallel]
    originals = {str(pydicom.dcmread(f).SOPInstanceUID): pydicom.dcmread(f) for f in uploaded["files"]}
    for path in streamed:
        assert pydicom.dcmread(path) == originals[path.stem]  # every element, pixel data included
    with pytest.raises(PacsError, match="'workers' must be at least 1, but it is 0"):
        client.pull_series(uploaded["study"], uploaded["series"], tmp_path / "none", workers=0)
    with pytest.raises(PacsError, match="'workers' must be at least 1"):
        DimseClient("127.0.0.1", orthanc.dicom_port, workers=0)
    assert not (tmp_path / "none").exists()


def test_dimse_push_and_cli(
    orthanc: Orthanc, uploaded: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = ["--host", "127.0.0.1", "--port", str(orthanc.dicom_port), "--called-aet", orthanc.aet]
    assert main(["pacs", "echo", *conn]) == 0
    assert "answers" in capsys.readouterr().out
    assert main(["pacs", "find", *conn, "--patient-id", PATIENT, "--json", "-"]) == 0
    assert uploaded["study"] in capsys.readouterr().out
    out = tmp_path / "pulled"
    assert (
        main(
            [
                "pacs",
                "pull",
                "--url",
                orthanc.dicomweb_url,
                "--study",
                str(uploaded["study"]),
                "--series",
                str(uploaded["series"]),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert f"pulled {uploaded['n']} instance(s)" in capsys.readouterr().out
    image = read_dicom_series(out)
    labels = reorient_like(uploaded["labels"], image.geometry)  # type: ignore[arg-type]
    write_dicom_seg(image, labels, tmp_path / "seg.dcm")
    pull = ["pacs", "pull", *conn, "--study", str(uploaded["study"]), "--series", str(uploaded["series"])]
    assert main([*pull, "--out", str(tmp_path / "dimse"), "--workers", "2"]) == 0
    assert f"pulled {uploaded['n']} instance(s)" in capsys.readouterr().out
    assert main([*pull, "--out", str(tmp_path / "bad"), "--workers", "0"]) == 2
    assert "--workers must be at least 1, but it is 0" in capsys.readouterr().err
    assert main(["pacs", "push", *conn, str(tmp_path / "seg.dcm")]) == 0
    assert "stored 1 file(s)" in capsys.readouterr().out
    sop = pydicom.dcmread(tmp_path / "seg.dcm").SOPInstanceUID
    found = requests.post(f"{orthanc.http_url}/tools/lookup", data=str(sop), timeout=10).json()
    assert [f["Type"] for f in found] == ["Instance"]


def test_errors_are_clear_and_leave_nothing(orthanc: Orthanc, uploaded: dict, tmp_path: Path) -> None:
    closed = free_port()
    with pytest.raises(PacsError, match=r"Cannot connect to DICOM node ORTHANC@127\.0\.0\.1"):
        DimseClient("127.0.0.1", closed, called_aet="ORTHANC", timeout_s=5).echo()
    with pytest.raises(PacsError, match="Cannot reach DICOMweb"):
        DicomWebClient(f"http://127.0.0.1:{closed}/dicom-web", timeout_s=5).echo()
    # Orthanc's log says "bad called AET"; the A-ASSOCIATE-RJ reason 7 (PS3.8 table 9-21) is named in the message
    with pytest.raises(PacsError, match=r"rejected the association .*\(Called AE title not recognised\)"):
        DimseClient("127.0.0.1", orthanc.dicom_port, called_aet="NOT-ORTHANC", timeout_s=5).echo()
    with pytest.raises(PacsError, match="HTTP 404"):
        DicomWebClient(f"{orthanc.http_url}/no-such-root", timeout_s=5).echo()
    # C-MOVE to an AE title Orthanc does not know: refused, no folder left behind
    stranger = DimseClient("127.0.0.1", orthanc.dicom_port, aet="STRANGER", called_aet=orthanc.aet, timeout_s=10)
    with pytest.raises(PacsError, match="STRANGER"):
        stranger.pull_series(
            uploaded["study"], uploaded["series"], tmp_path / "x", method="move", move_port=free_port()
        )
    with pytest.raises(PacsError, match="must be a DICOM UID"):
        _dimse(orthanc).pull_series("1.2.3", "not-a-uid", tmp_path / "y")
    # a series the PACS does not have
    with pytest.raises(PacsError, match="no instance"):
        DicomWebClient(orthanc.dicomweb_url).pull_series(uploaded["study"], "1.2.3.4", tmp_path / "z")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(PacsError, match="either a DICOMweb URL"):
        connect(url="http://x/dicom-web", host="h", port=1)
    with pytest.raises(PacsError, match="No PACS given"):
        connect()


def test_progress_bar_counts() -> None:
    import io

    from hepavol.pacs._progress import Progress

    buf = io.StringIO()
    bar = Progress(4, "pull", enabled=True, stream=buf)
    for _ in range(4):
        bar.advance()
    bar.close()
    assert buf.getvalue().endswith("\rpull [" + "#" * 30 + "] 4/4\n")
    assert "[" + "#" * 7 + "-" * 23 + "] 1/4" in buf.getvalue()  # 30 × 1/4 = 7.5 -> 7 filled
