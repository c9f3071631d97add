"""``hepavol study import --pacs`` against a real Orthanc on loopback (DICOMweb and DIMSE).

A simulated DICOM cohort (2 patients, 10 studies, one image series and one DICOM SEG per study) gets one more
series in its first study: a thinner (2 mm) arterial-phase copy of the portal-venous series, whose phase is written
only in ContrastBolusAgent, an image-level attribute. The cohort is uploaded through Orthanc's own REST API and
imported twice: from the local folder (``study import DICOM_ROOT``, the reference) and from the PACS. The two
workspaces must hold the same patients (by original id), studies, chosen series and segmentations, with the same
pixel data instance by instance. Content hashes in the database cannot be compared: they hash file names and
bytes, and the pulled files are named by SOPInstanceUID and carry the client's file meta information.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select
from tests._pacs_helpers import Orthanc, free_port, start_orthanc, upload
from tests._study_helpers import db_url  # noqa: F401  (fixture)

from hepavol.cli import main
from hepavol.errors import TableError
from hepavol.pacs import PacsError
from hepavol.pacs.dimse import DimseClient
from hepavol.study.audit import entries
from hepavol.study.models import Identity, Patient
from hepavol.study.pacs_import import (
    DICOM_FOLDER,
    PARTIAL_FOLDER,
    connect_pacs,
    import_from_pacs,
    read_patient_list,
)
from hepavol.study.workspace import find_workspace, init_workspace

pytestmark = pytest.mark.external

ARTERIAL = "ABDOMEN 2 MM"  # a neutral description: the phase is only in ContrastBolusAgent


def _dicom_files(root: Path) -> list[Path]:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                if f.read(132)[128:] == b"DICM":
                    out.append(p)
    return out


def _add_arterial_copy(study_folder: Path) -> str:
    """A 2 mm arterial copy of the study's series_001 in series_002 (new UIDs); its SeriesInstanceUID."""
    series_uid = generate_uid()
    out = study_folder / "series_002"
    out.mkdir()
    for f in sorted((study_folder / "series_001").iterdir()):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber = 2
        ds.SeriesDescription = ARTERIAL
        ds.ContrastBolusAgent = "IODINATED CONTRAST, ARTERIAL PHASE"
        ds.SliceThickness = "2.0"
        ds.save_as(out / f.name, enforce_file_format=True)
    return series_uid


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from hepavol.simulate import simulate_cohort

    root = tmp_path_factory.mktemp("cohort") / "sim"
    simulate_cohort(2, root, seed=2, fmt="dicom")
    first = sorted((root / "SIM-001").glob("*_CT"))[0]
    arterial = _add_arterial_copy(first)
    return {"root": root, "arterial": arterial, "first_date": first.name[:8]}


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory, cohort: dict[str, Any]) -> Iterator[Orthanc]:
    for server in start_orthanc(tmp_path_factory.mktemp("orthanc")):
        upload(server, _dicom_files(cohort["root"]))
        yield server


def _fingerprint(folder: Path, *, sop: str | None = None) -> dict[str, str]:
    """SOPInstanceUID -> SHA-256 of the Pixel Data bytes, for every DICOM file of a folder (or one SOP)."""
    out = {}
    for f in _dicom_files(folder) if folder.is_dir() else [folder]:
        ds = pydicom.dcmread(f)
        if sop is None or ds.SOPInstanceUID == sop:
            out[str(ds.SOPInstanceUID)] = hashlib.sha256(ds.PixelData).hexdigest()
    return out


def _snapshot(study_dir: Path) -> dict[str, Any]:
    """Per original patient id: studies by UID with date, modality, chosen series and active segmentations."""
    ws = find_workspace(study_dir)
    try:
        with ws.db.transaction() as session:
            out: dict[str, Any] = {}
            for identity, patient in session.execute(
                select(Identity, Patient).join(Patient, Patient.id == Identity.patient_id)
            ):
                studies = {}
                for study in patient.studies:
                    (chosen,) = [s for s in study.series if s.chosen]
                    segs = {
                        str(g.sop_instance_uid): _fingerprint(Path(g.path), sop=g.sop_instance_uid)
                        for g in chosen.segmentations
                        if g.active
                    }
                    studies[study.study_uid] = {
                        "date": study.study_date,
                        "modality": study.modality,
                        "chosen": chosen.series_uid,
                        "attributes": (chosen.n_instances, chosen.orientation, chosen.contrast_phase),
                        "pixels": _fingerprint(Path(chosen.path)),
                        "segs": segs,
                        "all_series": sorted(s.series_uid for s in study.series),
                        "reason": chosen.choice_reason,
                    }
                out[identity.original_id] = studies
            return out
    finally:
        ws.close()


@pytest.fixture(scope="module")
def reference(cohort: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The workspace of a local ``study import`` of the cohort folder."""
    ws = tmp_path_factory.mktemp("ref") / "study"
    init_workspace(ws).close()
    assert main(["study", "import", str(cohort["root"]), "--study", str(ws)]) == 0
    return _snapshot(ws)


def _audit(study_dir: Path, action: str) -> list[Any]:
    ws = find_workspace(study_dir)
    try:
        with ws.db.transaction() as session:
            return [(e.entity_key, dict(e.details)) for e in entries(session) if e.action == action]
    finally:
        ws.close()


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.name.startswith("hepavol.db"))


def _compare(got: dict[str, Any], ref: dict[str, Any], arterial: str) -> None:
    assert set(got) == set(ref)
    for patient, studies in ref.items():
        assert set(got[patient]) == set(studies)
        for uid, want in studies.items():
            have = got[patient][uid]
            for key in ("date", "modality", "chosen", "attributes", "pixels", "segs"):
                assert have[key] == want[key], (patient, uid, key)
            assert len(want["pixels"]) >= 10
            assert len(want["segs"]) == 1
            # only the chosen series was pulled: the arterial copy stayed on the PACS
            assert have["all_series"] == [want["chosen"]]
            if arterial in want["all_series"]:
                assert "arterial" in want["reason"]
                assert ARTERIAL in have["reason"]
                assert "not pulled" in have["reason"]


def _patients_csv(tmp_path: Path, rows: str) -> Path:
    p = tmp_path / "patients.csv"
    p.write_text(rows)
    return p


def test_dicomweb_import_equals_local_import(
    orthanc: Orthanc, cohort: dict[str, Any], reference: dict[str, Any], tmp_path: Path, capsys: Any
) -> None:
    ws = tmp_path / "study"
    init_workspace(ws).close()
    patients = _patients_csv(tmp_path, "patient_id\nSIM-001\nNOBODY\nSIM-002\n")
    args = ["study", "import", "--pacs", orthanc.dicomweb_url, "--patients", str(patients), "--study", str(ws)]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "warning: patient list line 3: no study on DICOMweb" in err
    # 10 studies: 10 SEG + 10 chosen image series (60 slices each, simulator size 'small'); the copy stays
    assert "10 study(ies) found: 10 pulled (20 series, 610 instance(s); 1 series not needed" in out
    for secret in ("SIM-00", "SIMULATED", "NOBODY"):  # no patient id or name is printed
        assert secret not in out + err
    _compare(_snapshot(ws), reference, cohort["arterial"])
    assert not (ws / DICOM_FOLDER / PARTIAL_FOLDER).exists()
    pulls = _audit(ws, "pacs-pull")
    pseudonyms = sorted(p.name for p in (ws / DICOM_FOLDER).iterdir())
    assert sorted(key for key, _ in pulls) == pseudonyms
    assert [d["studies"] for _, d in pulls] in ([4, 6], [6, 4])
    assert "SIM-00" not in repr(pulls)

    # a second run asks the PACS for nothing more and adds nothing
    before = _listing(ws)
    assert main(args) == 0
    out, _ = capsys.readouterr()
    assert "0 pulled" in out
    assert "10 already in the workspace" in out
    assert "Imported: 0 patient(s) (0 new), 0 new scan(s), 0 new series" in out
    assert _listing(ws) == before
    assert len(_audit(ws, "pacs-pull")) == 2


def test_dimse_import_with_dates_and_modality(
    orthanc: Orthanc,
    cohort: dict[str, Any],
    reference: dict[str, Any],
    tmp_path: Path,
    capsys: Any,
    db_url: str | None,  # noqa: F811  (fixture)
) -> None:
    """C-GET of the first two CT studies (date range); the MR patient is asked for CT only. On SQLite and on
    PostgreSQL."""
    ws = tmp_path / "study"
    init_workspace(ws, db_url=db_url).close()
    ref_ct = reference["SIM-001"]
    first_two = sorted(ref_ct.values(), key=lambda s: s["date"])[:2]
    until = first_two[1]["date"].isoformat()
    patients = _patients_csv(tmp_path, f"patient_id,study_date_to,modality\nSIM-001,{until},\nSIM-002,,CT\n")
    spec = f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
    assert main(["study", "import", "--pacs", spec, "--patients", str(patients), "--study", str(ws)]) == 0
    out, err = capsys.readouterr()
    assert "warning: patient list line 3: 6 study(ies) on the PACS, none with CT images; skipped" in err
    assert "2 study(ies) found: 2 pulled (4 series, " in out
    got = _snapshot(ws)
    want = {uid: s for uid, s in ref_ct.items() if s["date"] <= first_two[1]["date"]}
    _compare(got, {"SIM-001": want}, cohort["arterial"])


def test_dimse_without_image_attributes_pulls_every_series(
    orthanc: Orthanc, cohort: dict[str, Any], reference: dict[str, Any], tmp_path: Path, monkeypatch: Any
) -> None:
    """A PACS answering IMAGE-level C-FIND without ImageOrientationPatient: every CT series comes (by C-MOVE to
    our storage SCP) and the import chooses among them, as a local import does."""
    original = DimseClient._find

    def plain_find(self: DimseClient, query: Any, what: str) -> list[Any]:
        found = original(self, query, what)
        for ds in found:
            if "ImageOrientationPatient" in ds:
                del ds.ImageOrientationPatient
        return found

    monkeypatch.setattr(DimseClient, "_find", plain_find)
    ws = init_workspace(tmp_path / "study")
    date = cohort["first_date"]
    patients = _patients_csv(tmp_path, f"patient_id,study_date_from,study_date_to\nSIM-001,{date},{date}\n")
    client = connect_pacs(f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}")
    summary = import_from_pacs(ws, client, patients, method="move", move_port=orthanc.scp_port)
    ws.close()
    assert (summary.studies_pulled, summary.series_pulled, summary.series_left_on_pacs) == (1, 3, 0)
    ((uid, got),) = _snapshot(ws.root)["SIM-001"].items()
    want = reference["SIM-001"][uid]
    assert got["all_series"] == want["all_series"]  # both image series, as in the local import
    assert cohort["arterial"] in got["all_series"]
    for key in ("chosen", "pixels", "segs", "reason"):
        assert got[key] == want[key]


def test_unreachable_or_rejecting_pacs_is_a_clear_error(orthanc: Orthanc, tmp_path: Path, capsys: Any) -> None:
    ws = tmp_path / "study"
    init_workspace(ws).close()
    patients = _patients_csv(tmp_path, "patient_id\nSIM-001\n")
    before = _listing(ws)
    closed = free_port()
    cases = [
        (f"http://127.0.0.1:{closed}/dicom-web", "Cannot reach DICOMweb"),
        (f"ORTHANC@127.0.0.1:{closed}", "Cannot connect to DICOM node ORTHANC@127.0.0.1"),
        (
            f"NOT-ORTHANC@127.0.0.1:{orthanc.dicom_port}",
            "rejected the association from AE title 'HEPAVOL' (Called AE title not recognised)",
        ),
    ]
    for spec, message in cases:
        args = [
            "study",
            "import",
            "--pacs",
            spec,
            "--patients",
            str(patients),
            "--study",
            str(ws),
            "--timeout",
            "5",
        ]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ")
        assert message in err
    assert _listing(ws) == before
    assert _audit(ws, "pacs-pull") == []


def test_a_failed_pull_leaves_nothing(orthanc: Orthanc, cohort: dict[str, Any], tmp_path: Path) -> None:
    """The PACS fails after the SEG of the first study has arrived: no study folder, no partial folder."""
    ws = init_workspace(tmp_path / "study")
    client = connect_pacs(orthanc.dicomweb_url)
    calls = []
    real_pull = client.pull_series

    def failing_pull(*args: Any, **kwargs: Any) -> list[Path]:
        calls.append(args[1])
        if len(calls) == 2:
            raise PacsError("the PACS went away (simulated)")
        return real_pull(*args, **kwargs)

    client.pull_series = failing_pull  # type: ignore[method-assign]
    # a partial folder left by a killed run (a process id that does not exist) is removed
    stale = ws.root / DICOM_FOLDER / PARTIAL_FOLDER / f"{2**22 + 12345}+{socket.gethostname()}+abc"
    other_host = stale.parent / f"{2**22 + 12345}+another-machine+abc"  # may be alive there: kept
    (stale / "x").mkdir(parents=True)
    other_host.mkdir()
    patients = _patients_csv(tmp_path, "patient_id\nSIM-001\n")
    with pytest.raises(PacsError, match="went away"):
        import_from_pacs(ws, client, patients)
    ws.close()
    assert len(calls) == 2
    assert not stale.exists()
    assert [p.name for p in (ws.root / DICOM_FOLDER).iterdir()] == [PARTIAL_FOLDER]  # no study folder
    assert list((ws.root / DICOM_FOLDER / PARTIAL_FOLDER).iterdir()) == [other_host]
    assert _snapshot(ws.root) == {}


def test_patient_list_errors(tmp_path: Path) -> None:
    def table(text: str) -> Path:
        p = tmp_path / "p.csv"
        p.write_text(text)
        return p

    with pytest.raises(TableError, match=r"missing column\(s\) 'patient_id'; the patient list .* \(found: 'id'\)"):
        read_patient_list(table("id\nA\n"))
    with pytest.raises(TableError, match=r"p\.csv, line 3: patient_id is empty"):
        read_patient_list(table("patient_id,modality\nA,CT\n,MR\n"))
    with pytest.raises(TableError, match=r"line 2: patient_id contains '\*', a DICOM wildcard"):
        read_patient_list(table("patient_id\nAB*\n"))
    with pytest.raises(TableError, match=r"line 2: study_date_from '2020-13-01' is not a date"):
        read_patient_list(table("patient_id,study_date_from\nA,2020-13-01\n"))
    with pytest.raises(TableError, match=r"line 2: the date range ends \(2020-01-01\) before it starts"):
        read_patient_list(table("patient_id,study_date_from,study_date_to\nA,2021-01-01,2020-01-01\n"))
    with pytest.raises(TableError, match=r"line 2: modality 'PET' is not CT or MR"):
        read_patient_list(table("patient_id,modality\nA,PET\n"))
    with pytest.raises(TableError, match=r"option: date_to \(--date-to\) '31\.12\.2020' is not a date"):
        read_patient_list(table("patient_id\nA\n"), date_to="31.12.2020")
    with pytest.raises(TableError, match="no patients"):
        read_patient_list(table("patient_id\n"))
    with pytest.raises(TableError, match="does not exist"):
        read_patient_list(tmp_path / "missing.csv")
    rows = read_patient_list(
        table("patient_id,study_date_from,study_date_to,modality\nQX-77,20200101,2020-01-01,mri\nB,,,\n"),
        date_to="2022-06-30",
        modality="CT",
    )
    assert [(r.line, r.study_date, r.modalities) for r in rows] == [
        (2, "20200101", ("MR",)),
        (3, "-20220630", ("CT",)),
    ]
    assert rows[0].patient_id == "QX-77"
    assert "QX-77" not in repr(rows[0])


def test_pacs_spec_and_cli_errors(tmp_path: Path, capsys: Any) -> None:
    with pytest.raises(PacsError, match=r"AET@HOST:PORT .* but it is 'pacs:4242'"):
        connect_pacs("pacs:4242")
    with pytest.raises(PacsError, match="but it is 'A@h:99999'"):
        connect_pacs("A@h:99999")
    with pytest.raises(PacsError, match="must not hold a user name or password"):
        connect_pacs("https://me:secret@pacs/dicom-web")
    client = connect_pacs("ORTHANC@[::1]:4242", aet="ME")
    assert isinstance(client, DimseClient)
    assert (client.host, client.port, client.aet, client.called_aet) == ("::1", 4242, "ME", "ORTHANC")
    ws = tmp_path / "study"
    init_workspace(ws).close()
    cases = [
        (["study", "import", str(tmp_path), "--pacs", "A@h:1", "--patients", "p.csv"], "either DICOM_ROOT"),
        (["study", "import"], "give a DICOM_ROOT folder to import, or --pacs"),
        (["study", "import", "--pacs", "A@h:1"], "--pacs needs --patients"),
        (["study", "import", str(tmp_path), "--patients", "p.csv"], "--patients is the patient list of --pacs"),
    ]
    for args, message in cases:
        assert main([*args, "--study", str(ws)]) == 2
        assert message in capsys.readouterr().err
    assert not (ws / DICOM_FOLDER).exists()
