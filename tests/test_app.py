"""The review app's server: display grid, access token, CSRF, what the browser is sent (no identity), overlays.

The browser itself is driven in tests/test_app_browser.py. References from outside the code: SimpleITK's
``DICOMOrient`` for the display grid (an ITK image reoriented to "LPS" has its array axes toward superior,
posterior and left, the radiological axial display); ``measure_scan``'s voxel counts stored by ``study run`` for
the overlay's lesion numbering.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from tests._app_helpers import build_study
from tests._study_helpers import BACKENDS, fresh_postgres_database

from hepavol.app.display import DisplayGrid
from hepavol.geometry import Geometry
from hepavol.volume import Volume

pytest.importorskip("starlette")
from starlette.testclient import TestClient

from hepavol.app.server import AppState, create_app
from hepavol.app.volumes import LIVER_VALUE


@pytest.mark.parametrize(
    ("perm", "signs"),
    [(p, s) for p in itertools.permutations(range(3)) for s in ((1, 1, 1), (-1, 1, -1), (1, -1, 1), (-1, -1, -1))],
)
def test_display_grid_equals_simpleitk_dicomorient_lps(perm: tuple[int, ...], signs: tuple[int, ...]) -> None:
    import SimpleITK as sitk

    direction = np.zeros((3, 3))
    for axis, (lps, sign) in enumerate(zip(perm, signs, strict=True)):
        direction[lps, axis] = sign  # stored axis `axis` runs along LPS axis `lps`
    geometry = Geometry(
        shape=(4, 5, 6), spacing_mm=(3.0, 2.0, 1.0), origin_lps_mm=(10.0, -20.0, 30.0),
        direction=tuple(tuple(r) for r in direction),  # type: ignore[arg-type]
    )  # fmt: skip
    array = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    volume = Volume(array, geometry)
    reference = sitk.GetArrayFromImage(sitk.DICOMOrient(volume.to_sitk(), "LPS"))
    grid = DisplayGrid.of(geometry)
    np.testing.assert_array_equal(grid.view(array), reference)
    # a display index maps back to the stored voxel with the same value, and to_display inverts it
    for display_index in [(0, 0, 0), (1, 2, 3), tuple(n - 1 for n in grid.shape)]:
        stored = grid.to_stored_index(display_index)
        assert array[stored] == reference[display_index]
        np.testing.assert_allclose(grid.to_display(stored), display_index)


@pytest.fixture(scope="module", params=BACKENDS)
def study_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str | None]]:
    """The simulated study, on SQLite and on PostgreSQL (every server test runs on both)."""
    if request.param == "sqlite":
        yield build_study(tmp_path_factory.mktemp("app")), None
        return
    with fresh_postgres_database() as url:
        yield build_study(tmp_path_factory.mktemp("app"), db_url=url), url


@pytest.fixture
def study(study_db: tuple[Path, str | None]) -> Path:
    return study_db[0]


@pytest.fixture
def served(study_db: tuple[Path, str | None]) -> Iterator[tuple[TestClient, AppState]]:
    from hepavol.study.workspace import find_workspace

    ws = find_workspace(study_db[0], db_url=study_db[1])
    state = AppState(ws=ws, reader="Dr Reader")
    client = TestClient(create_app(state), base_url="http://127.0.0.1")
    yield client, state
    ws.close()


def _sign_in(client: TestClient, state: AppState) -> str:
    response = client.get(f"/?token={state.token}", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/"  # the token leaves the URL
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    csrf: str = client.get("/api/session").json()["csrf"]
    return csrf


def test_no_token_no_cookie_no_csrf_is_refused(served: tuple[TestClient, AppState]) -> None:
    client, state = served
    assert client.get("/").status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    assert client.get("/api/worklist").status_code == 401
    csrf = _sign_in(client, state)
    pseudonym = client.get("/api/worklist").json()["patients"][0]["pseudonym"]
    body = {"decision": "exclude", "reason": "forged"}
    forged = client.post(f"/api/patients/{pseudonym}/eligibility", json=body)
    assert forged.status_code == 403
    assert "CSRF" in forged.json()["error"]
    wrong = client.post(f"/api/patients/{pseudonym}/eligibility", json=body, headers={"X-CSRF-Token": csrf + "x"})
    assert wrong.status_code == 403
    # another Host (DNS rebinding) is refused before any route
    assert client.get("/api/worklist", headers={"Host": "evil.example:8765"}).status_code == 400
    with state.ws.db.transaction() as session:
        from hepavol.study.models import ReviewDecision

        assert session.scalars(select(ReviewDecision)).all() == []


def test_a_decision_is_stored_with_the_reader_and_audited(served: tuple[TestClient, AppState]) -> None:
    from hepavol.study import audit
    from hepavol.study.review import review_history

    client, state = served
    csrf = _sign_in(client, state)
    rows = client.get("/api/worklist").json()["patients"]
    pseudonym = next(r["pseudonym"] for r in rows if r["eligibility"] == "eligible")
    response = client.post(
        f"/api/patients/{pseudonym}/targets",
        json={"targets": ["L1"], "reason": "L2 is a cyst"},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status_code == 200, response.text
    history = review_history(state.ws, pseudonym)
    assert [(h["field"], h["new"], h["reviewer"], h["reason"]) for h in history] == [
        ("targets", ["L1"], "Dr Reader", "L2 is a cyst")
    ]
    with state.ws.db.transaction() as session:
        last = audit.entries(session)[-1]
        assert (last.action, last.entity_key, last.actor) == ("review", pseudonym, "Dr Reader")
    # the new targets make the analysis stale: the worklist says so (the study's rule, not the app's)
    row = next(r for r in client.get("/api/worklist").json()["patients"] if r["pseudonym"] == pseudonym)
    assert row["analysis"] == "to redo"
    assert row["reviewed"] is True
    bad = client.post(
        f"/api/patients/{pseudonym}/targets",
        json={"targets": ["L1"], "reason": " "},
        headers={"X-CSRF-Token": csrf},
    )
    assert bad.status_code == 400
    assert "reason" in bad.json()["error"]
    # back to the automatic choice, so that other tests see the study as it was run
    client.post(
        f"/api/patients/{pseudonym}/targets",
        json={"targets": "auto", "reason": "test done"},
        headers={"X-CSRF-Token": csrf},
    )


def test_reader_recist_calls_are_stored_as_review_decisions(served: tuple[TestClient, AppState]) -> None:
    from hepavol.study.review import review_history

    client, state = served
    csrf = _sign_in(client, state)
    rows = client.get("/api/worklist").json()["patients"]
    pseudonym = next(r["pseudonym"] for r in rows if r["eligibility"] == "eligible")
    dates = [s["date"] for s in client.get(f"/api/patients/{pseudonym}").json()["scans"]]
    url = f"/api/patients/{pseudonym}/recist-marks"
    headers = {"X-CSRF-Token": csrf}
    body = {"non_target": [f"{dates[1]}=progression"], "new_lesions": [], "reason": "NT grew in segment VI"}
    response = client.post(url, json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["recist_marks"] == {"non_target": {dates[1]: "progression"}, "new_lesions": {}}
    (last,) = review_history(state.ws, pseudonym)[-1:]
    assert (last["field"], last["reviewer"], last["reason"]) == (
        "recist-marks",
        "Dr Reader",
        "NT grew in segment VI",
    )
    bad = client.post(url, json={"non_target": "x", "reason": "r"}, headers=headers)
    assert bad.status_code == 400
    assert "non_target must be a list" in bad.json()["error"]
    bad = client.post(url, json={"non_target": [f"{dates[1]}=worse"], "reason": "r"}, headers=headers)
    assert bad.status_code == 400
    assert "with CALL one of present, absent, progression, auto" in bad.json()["error"]
    # without the CSRF header nothing is stored
    assert client.post(url, json=body).status_code == 403
    # back to the rule, so that other tests see the study as it was run
    body = {"non_target": [f"{dates[1]}=auto"], "reason": "test done"}
    assert client.post(url, json=body, headers=headers).json()["recist_marks"] == {
        "non_target": {},
        "new_lesions": {},
    }


def test_a_relink_is_a_review_decision_and_the_analysis_follows(served: tuple[TestClient, AppState]) -> None:
    """POST lesion-links (``study review --link``): the lesion starts a new track, and RECIST 1.1 Table 1 makes a
    new lesion PD on its scan; the analysis is recomputed in the request."""
    from hepavol.study.review import review_history

    client, state = served
    csrf = _sign_in(client, state)
    headers = {"X-CSRF-Token": csrf}
    rows = client.get("/api/worklist").json()["patients"]
    pseudonym = next(r["pseudonym"] for r in rows if r["analysis"] == "up to date")
    before = client.get(f"/api/patients/{pseudonym}").json()
    scan = next(s for s in before["scans"][1:] if s["lesions"])
    index = before["scans"].index(scan)
    assert before["assessments"][index]["new_lesion_ids"] == []  # the simulation has no new lesion there
    lesion = scan["lesions"][0]
    url = f"/api/patients/{pseudonym}/lesion-links"
    body = {"links": [f"{scan['date']}:{lesion['lesion_id']}=new"], "reason": "another lesion than at baseline"}
    response = client.post(url, json=body, headers=headers)
    assert response.status_code == 200, response.text
    after = response.json()
    assert after["analysis_outcome"] == "analysis updated"
    assert after["row"]["analysis"] == "up to date"
    assert after["lesion_links"] == {scan["date"]: {lesion["lesion_id"]: "new"}}
    row = next(x for x in after["scans"][index]["lesions"] if x["lesion_id"] == lesion["lesion_id"])
    assert row["track_id"] != lesion["track_id"]
    assert after["assessments"][index]["new_lesion_ids"] == [row["track_id"]]
    assert after["assessments"][index]["overall_response"] == "PD"
    (last,) = review_history(state.ws, pseudonym)[-1:]
    assert (last["field"], last["reviewer"], last["reason"]) == (
        "lesion-links",
        "Dr Reader",
        "another lesion than at baseline",
    )
    bad = client.post(url, json={"links": [f"{scan['date']}:L1"], "reason": "r"}, headers=headers)
    assert bad.status_code == 400
    assert "is not --link DATE:LESION=TRACK" in bad.json()["error"]
    bad = client.post(url, json={"links": "x", "reason": "r"}, headers=headers)
    assert "links must be a list" in bad.json()["error"]
    assert client.post(url, json=body).status_code == 403  # no CSRF token: refused
    # back to the automatic tracking: the analysis of the automatic tracking is stored already
    body = {"links": [f"{scan['date']}:{lesion['lesion_id']}=auto"], "reason": "test done"}
    restored = client.post(url, json=body, headers=headers).json()
    assert restored["analysis_outcome"] == "analysis up to date"
    assert restored["lesion_links"] == {}
    assert restored["assessments"] == before["assessments"]


def test_the_browser_gets_no_identity_and_no_path(served: tuple[TestClient, AppState], study: Path) -> None:
    from hepavol.study.models import Identity, Segmentation, Series

    client, state = served
    _sign_in(client, state)
    texts = [client.get("/api/session").text, client.get("/api/worklist").text]
    for row in client.get("/api/worklist").json()["patients"]:
        read = client.get(f"/api/patients/{row['pseudonym']}")
        texts.append(read.text)
        for scan in read.json()["scans"]:
            texts.append(client.get(f"/api/patients/{row['pseudonym']}/scans/{scan['study_pk']}").text)
    with state.ws.db.transaction() as session:
        forbidden = [i.original_id for i in session.scalars(select(Identity))]
        forbidden += [s.path for s in session.scalars(select(Series))]
        forbidden += [g.path for g in session.scalars(select(Segmentation))]
    forbidden.append(str(study.parent))
    assert len(forbidden) > 3
    for text in texts:
        for word in forbidden:
            assert word not in text


def test_overlay_numbers_lesions_as_the_run_measured_them(served: tuple[TestClient, AppState]) -> None:
    client, state = served
    _sign_in(client, state)
    row = next(r for r in client.get("/api/worklist").json()["patients"] if r["analysis"] == "up to date")
    read = client.get(f"/api/patients/{row['pseudonym']}").json()
    scan = read["scans"][0]
    url = f"/api/patients/{row['pseudonym']}/scans/{scan['study_pk']}"
    meta = client.get(url).json()
    n, rows, cols = meta["shape"]
    overlay = np.stack(
        [np.frombuffer(client.get(f"{url}/overlay/{k}").content, "<u2").reshape(rows, cols) for k in range(n)]
    )
    pixels = np.frombuffer(client.get(f"{url}/slices/0").content, "<i2")
    assert pixels.size == rows * cols
    with state.ws.db.transaction() as session:
        from hepavol.study.models import LesionMeasurement, ScanMeasurement

        scan_row = session.scalars(
            select(ScanMeasurement).where(
                ScanMeasurement.study_id == scan["study_pk"], ScanMeasurement.purpose == "run"
            )
        ).first()
        assert scan_row is not None
        counts = {
            les.lesion_id: les.voxel_count
            for les in session.scalars(
                select(LesionMeasurement).where(LesionMeasurement.scan_measurement_id == scan_row.id)
            )
        }
    assert counts
    for lesion_id, count in counts.items():
        assert int((overlay == int(lesion_id[1:])).sum()) == count, lesion_id
    assert (overlay == LIVER_VALUE).any()
    # each RECIST line lies on its lesion: the long axis' midpoint is inside the lesion's overlay on its slice
    for line in meta["lines"]:
        (r0, c0), (r1, c1) = line["long"]
        mid = overlay[line["slice"], round((r0 + r1) / 2), round((c0 + c1) / 2)]
        assert mid == line["value"], line
    # out of range slice: a clear message
    bad = client.get(f"{url}/slices/{n}")
    assert bad.status_code == 400
    assert f"slices 0 to {n - 1}" in bad.json()["error"]


def test_unknown_patient_and_foreign_scan_are_clear_errors(served: tuple[TestClient, AppState]) -> None:
    client, state = served
    _sign_in(client, state)
    assert "no patient 'P-nobody'" in client.get("/api/patients/P-nobody").json()["error"]
    rows = client.get("/api/worklist").json()["patients"]
    first, second = rows[0]["pseudonym"], rows[1]["pseudonym"]
    other_scan = client.get(f"/api/patients/{second}").json()["scans"][0]["study_pk"]
    response = client.get(f"/api/patients/{first}/scans/{other_scan}")
    assert response.status_code == 400
    assert "is not a scan of" in response.json()["error"]


def test_a_moved_scan_is_a_message_not_a_crash(served: tuple[TestClient, AppState], tmp_path: Path) -> None:
    from hepavol.study.models import Series

    client, state = served
    _sign_in(client, state)
    with state.ws.db.transaction() as session:
        series = session.scalars(select(Series).where(Series.chosen)).first()
        assert series is not None
        study_pk, original = series.study_id, series.path
        pseudonym = series.study.patient.pseudonym
        series.path = str(tmp_path / "moved away")
    try:
        response = client.get(f"/api/patients/{pseudonym}/scans/{study_pk}")
        assert response.status_code == 400
        error = json.loads(response.text)["error"]
        assert "moved away" not in error  # no path reaches the browser: the scan's label instead
        assert f"<{pseudonym} " in error, error
    finally:
        with state.ws.db.transaction() as session:
            moved = session.get(Series, series.id)
            assert moved is not None
            moved.path = original


def test_edit_save_a_version_conflict_and_sign_off(served: tuple[TestClient, AppState], tmp_path: Path) -> None:
    """Reader A erases part of the baseline's largest lesion with the eraser and saves: a new version (reader,
    based-on, audit), the patient recomputed, and the baseline total tumour volume lower by exactly the erased
    voxels (counted on the overlay before the edit). Reader B, who started editing before A saved, is refused.
    A signed-off read locks edits until reopened with a reason."""
    from hepavol.study import audit
    from hepavol.study.models import Segmentation

    client, state = served
    csrf = _sign_in(client, state)
    other = TestClient(client.app, base_url="http://127.0.0.1")
    csrf_b = _sign_in(other, state)
    row = next(r for r in client.get("/api/worklist").json()["patients"] if r["analysis"] == "up to date")
    pseudonym = row["pseudonym"]
    read = client.get(f"/api/patients/{pseudonym}").json()
    baseline = read["scans"][0]
    url = f"/api/patients/{pseudonym}/scans/{baseline['study_pk']}"
    meta = client.get(url).json()
    _, rows, cols = meta["shape"]
    line = next(x for x in meta["lines"] if x["value"] == 1)
    k = line["slice"]
    before = np.frombuffer(client.get(f"{url}/overlay/{k}").content, "<u2").reshape(rows, cols)
    centre = [round(v) for v in line["centre"][1:]]
    _, sr, sc = meta["spacing_mm"]
    rr, cc = np.mgrid[:rows, :cols]
    disc = ((rr - centre[0]) * sr) ** 2 + ((cc - centre[1]) * sc) ** 2 <= 50.0**2  # the 50 mm brush
    erased = int((disc & (before != 0) & (before != LIVER_VALUE)).sum())  # every lesion voxel under it
    assert erased >= int((before == 1).sum()) > 0

    b_edit = other.post(f"{url}/edit", json={"action": "brush", "mode": "erase lesion", "slice": k, "points": [centre],
                                              "radius_mm": 2}, headers={"X-CSRF-Token": csrf_b})  # fmt: skip
    assert b_edit.status_code == 200, b_edit.text
    assert b_edit.json()["edits"] == 1

    stroke = {"action": "brush", "mode": "erase lesion", "slice": k, "points": [centre], "radius_mm": 50}
    done = client.post(f"{url}/edit", json=stroke, headers={"X-CSRF-Token": csrf}).json()
    assert done["changed_voxels"] == erased
    after = np.frombuffer(client.get(f"{url}/overlay/{k}").content, "<u2").reshape(rows, cols)
    assert not (disc & (after != 0) & (after != LIVER_VALUE)).any()
    assert np.all(after[disc & (before != 0) & (before != LIVER_VALUE)] == LIVER_VALUE)  # back to the liver
    undone = client.post(f"{url}/edit", json={"action": "undo"}, headers={"X-CSRF-Token": csrf}).json()
    assert undone["edits"] == 0
    assert undone["can_redo"] is True
    client.post(f"{url}/edit", json={"action": "redo"}, headers={"X-CSRF-Token": csrf})

    saved = client.post(f"{url}/save", json={"note": "L1: part of the IVC"}, headers={"X-CSRF-Token": csrf})
    assert saved.status_code == 200, saved.text
    out = saved.json()
    assert out["saved"]["changed_voxels"] == erased
    assert out["analysis"] == "analysis updated"
    new_total = out["patient"]["scans"][0]["total_tumor_volume_ml"]
    voxel_ml = float(np.prod(meta["spacing_mm"])) / 1000.0
    assert new_total == pytest.approx(baseline["total_tumor_volume_ml"] - erased * voxel_ml, abs=1e-6)
    versions = client.get(f"{url}/versions").json()
    assert [(v["source"], v["reader"], v["active"]) for v in versions][-1] == ("review", "Dr Reader", True)
    assert versions[-1]["note"] == "L1: part of the IVC"
    with state.ws.db.transaction() as session:
        seg = session.get(Segmentation, versions[-1]["segmentation_pk"])
        assert seg is not None
        assert seg.based_on_id == versions[-2]["segmentation_pk"]
        assert (Path(seg.path).stat().st_mode & 0o077) == 0  # private like every workspace file
        entry = next(e for e in reversed(audit.entries(session)) if e.action == "segmentation-version")
        assert (entry.actor, entry.details["changed_voxels"]) == ("Dr Reader", erased)

    refused = other.post(f"{url}/save", json={}, headers={"X-CSRF-Token": csrf_b})
    assert refused.status_code == 400
    assert "was changed since you opened it" in refused.json()["error"]
    assert "Dr Reader" in refused.json()["error"]

    signed = client.post(f"/api/patients/{pseudonym}/sign-off", json={"action": "signed"},
                         headers={"X-CSRF-Token": csrf})  # fmt: skip
    assert signed.status_code == 200, signed.text
    assert signed.json()["row"]["signed_off"].startswith("by Dr Reader")
    other.post(f"{url}/edit", json={"action": "discard"}, headers={"X-CSRF-Token": csrf_b})
    locked = other.post(f"{url}/edit", json=stroke, headers={"X-CSRF-Token": csrf_b})
    assert locked.status_code == 400
    assert "signed off by Dr Reader" in locked.json()["error"]
    no_reason = client.post(f"/api/patients/{pseudonym}/sign-off", json={"action": "reopened"},
                            headers={"X-CSRF-Token": csrf})  # fmt: skip
    assert "needs a reason" in no_reason.json()["error"]
    reopened = client.post(f"/api/patients/{pseudonym}/sign-off", json={"action": "reopened", "reason": "L3 missed"},
                           headers={"X-CSRF-Token": csrf})  # fmt: skip
    assert reopened.json()["row"]["signed_off"] is None

    from hepavol.cli import main

    cohort = tmp_path / "cohort.csv"
    db = ["--db", state.ws.db.url] if state.ws.db.dialect == "postgresql" else []
    assert main(["study", "export", str(cohort), "--study", str(state.ws.root), *db]) == 0
    import csv

    with cohort.open() as f:
        exported = {r["patient_id"]: r for r in csv.DictReader(f)}
    assert float(exported[pseudonym]["baseline_volume_ml"]) == pytest.approx(new_total, abs=1e-6)


def test_link_maps_a_tracked_lesion_into_its_match_and_planes_are_reformats(
    served: tuple[TestClient, AppState],
) -> None:
    """Through the stored registration, each baseline lesion's centre lands inside (or within 2 voxels of) the
    same tracked lesion on the follow-up; a scan linked to itself maps a point to itself. The coronal and
    sagittal planes hold the same voxels as the axial slices (superior up)."""
    client, state = served
    _sign_in(client, state)
    row = next(r for r in client.get("/api/worklist").json()["patients"] if r["analysis"] == "up to date")
    p = row["pseudonym"]
    scans = client.get(f"/api/patients/{p}").json()["scans"]
    a, b = scans[0]["study_pk"], scans[1]["study_pk"]
    meta_a = client.get(f"/api/patients/{p}/scans/{a}").json()
    meta_b = client.get(f"/api/patients/{p}/scans/{b}").json()
    same = client.get(f"/api/patients/{p}/link", params={"from": a, "to": a, "k": 3, "r": 40.5, "c": 20}).json()
    assert (same["k"], same["r"], same["c"]) == pytest.approx((3, 40.5, 20), abs=1e-6)
    n, rows, cols = meta_b["shape"]
    checked = 0
    for line in meta_a["lines"]:
        match = next((m for m in meta_b["lines"] if m["track_id"] == line["track_id"]), None)
        if match is None:
            continue
        k, r, c = line["centre"]
        to = client.get(f"/api/patients/{p}/link", params={"from": a, "to": b, "k": k, "r": r, "c": c}).json()
        assert to["registered"] is True
        ki = min(max(round(to["k"]), 0), n - 1)
        ov = np.frombuffer(client.get(f"/api/patients/{p}/scans/{b}/overlay/{ki}").content, "<u2").reshape(
            rows, cols
        )
        r0, c0 = round(to["r"]), round(to["c"])
        around = ov[max(r0 - 2, 0) : r0 + 3, max(c0 - 2, 0) : c0 + 3]
        assert (around == match["value"]).any(), (line["lesion_id"], match["lesion_id"], to)
        checked += 1
    assert checked >= 1
    # reformats: coronal slice r, row j is axial slice n-1-j, row r
    url = f"/api/patients/{p}/scans/{a}"
    n, rows, cols = meta_a["shape"]
    axial = np.stack(
        [np.frombuffer(client.get(f"{url}/slices/{k}").content, "<i2").reshape(rows, cols) for k in range(n)]
    )
    coronal = np.frombuffer(client.get(f"{url}/slices/{rows // 2}", params={"plane": "coronal"}).content, "<i2")
    sagittal = np.frombuffer(client.get(f"{url}/slices/{cols // 3}", params={"plane": "sagittal"}).content, "<i2")
    np.testing.assert_array_equal(coronal.reshape(n, cols), axial[::-1, rows // 2, :])
    np.testing.assert_array_equal(sagittal.reshape(n, rows), axial[::-1, :, cols // 3])
    bad = client.get(f"{url}/slices/0", params={"plane": "oblique"})
    assert "plane 'oblique' is not one of axial, coronal, sagittal" in bad.json()["error"]


def test_a_blinded_second_read_keeps_its_own_versions_and_the_disagreement_shows(
    served: tuple[TestClient, AppState],
) -> None:
    """Reader A (the study's read) erases one disc of the baseline's L1 and saves; reader B, blinded, sees the
    imported mask (not A's edit), erases another disc and saves: B's version is never active, the study's analysis
    keeps A's volume, and the second-reads view gives both volumes against the counts of the erased voxels."""
    from hepavol.io import read_image, read_segmentation
    from hepavol.study.models import Segmentation

    client, state = served
    csrf = _sign_in(client, state)
    blinded = AppState(ws=state.ws, reader="Dr Second", blinded=True)
    second = TestClient(create_app(blinded), base_url="http://127.0.0.1")
    csrf_b = _sign_in(second, blinded)
    row = next(r for r in client.get("/api/worklist").json()["patients"] if r["analysis"] == "up to date")
    p = row["pseudonym"]
    scan = client.get(f"/api/patients/{p}").json()["scans"][0]
    url = f"/api/patients/{p}/scans/{scan['study_pk']}"
    meta = client.get(url).json()
    line = next(x for x in meta["lines"] if x["value"] == 1)
    k, centre = line["slice"], [round(v) for v in line["centre"][1:]]
    voxel_ml = float(np.prod(meta["spacing_mm"])) / 1000.0
    with state.ws.db.transaction() as session:
        imported = session.scalars(
            select(Segmentation).where(Segmentation.source != "review").order_by(Segmentation.id)
        ).all()
        files = {g.id: g.path for g in imported}
    versions = client.get(f"{url}/versions").json()
    imported_pk = next(v["segmentation_pk"] for v in reversed(versions) if v["source"] != "review")

    def erase(c: TestClient, token: str, dc: int) -> int:
        body = {"action": "brush", "mode": "erase lesion", "slice": k, "points": [[centre[0], centre[1] + dc]],
                "radius_mm": 3}  # fmt: skip
        n = c.post(f"{url}/edit", json=body, headers={"X-CSRF-Token": token}).json()["changed_voxels"]
        assert c.post(f"{url}/save", json={}, headers={"X-CSRF-Token": token}).status_code == 200
        return int(n)

    a_erased = erase(client, csrf, -2)
    after_a = client.get(f"/api/patients/{p}").json()["scans"][0]["total_tumor_volume_ml"]
    # B starts from the imported mask: its overlay on slice k has the voxels A erased
    b_view = second.get(f"/api/patients/{p}").json()
    assert b_view["assessments"] == []
    assert b_view["scans"][0]["lesions"] == []
    image = read_image(_image_path(state, scan["study_pk"]))
    base = np.isin(np.asarray(read_segmentation(files[imported_pk], reference=image.geometry).array), [2])
    b_erased = erase(second, csrf_b, +2)
    assert b_erased > 0
    assert a_erased > 0
    # the study still measures A's read
    assert client.get(f"/api/patients/{p}").json()["scans"][0]["total_tumor_volume_ml"] == pytest.approx(after_a)
    assert all(v["reader"] != "Dr Second" for v in client.get(f"{url}/versions").json())
    own = second.get(f"{url}/versions").json()
    assert [v["reader"] for v in own if v["source"] == "review"] == ["Dr Second"]
    reads = client.get(f"/api/patients/{p}/second-reads").json()
    mine = next(r for r in reads if r["study_pk"] == scan["study_pk"] and r["reader"] == "Dr Second")
    assert mine["study_tumor_volume_ml"] == pytest.approx(after_a, abs=1e-6)
    assert mine["second_tumor_volume_ml"] == pytest.approx(base.sum() * voxel_ml - b_erased * voxel_ml, abs=1e-6)
    assert 0.9 < mine["tumor_dice"] < 1.0
    refused = second.post(f"/api/patients/{p}/targets", json={"targets": ["L1"], "reason": "x"},
                          headers={"X-CSRF-Token": csrf_b})  # fmt: skip
    assert "blinded second read" in refused.json()["error"]
    assert "blinded" in second.get(f"/api/patients/{p}/second-reads").json()["error"]


def _image_path(state: AppState, study_pk: int) -> str:
    from hepavol.study.models import ImagingStudy

    with state.ws.db.transaction() as session:
        study = session.get(ImagingStudy, study_pk)
        assert study is not None
        return next(s.path for s in study.series if s.chosen)


def test_prefetch_reads_the_first_two_scans_into_the_cache(served: tuple[TestClient, AppState]) -> None:
    import time

    from hepavol.study import reading

    client, state = served
    _sign_in(client, state)
    p = client.get("/api/worklist").json()["patients"][0]["pseudonym"]
    assert client.get(f"/api/patients/{p}/prefetch").json() == {"prefetching": 2}
    wanted = [reading.scan_files(state.ws, p, s.study_pk) for s in reading.patient_read(state.ws, p).scans[:2]]
    deadline = time.monotonic() + 60
    while not all(f in state.scans for f in wanted) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(f in state.scans for f in wanted)


def test_saving_a_mask_identical_to_an_earlier_version_is_refused_clearly(
    served: tuple[TestClient, AppState],
) -> None:
    """The schema keeps one row per content on a series; a save that would repeat one is an InputError naming the
    earlier version (a reader who edits back to a saved state), not a database error."""
    from hepavol.errors import InputError
    from hepavol.study import reading
    from hepavol.study.mask_versions import save_segmentation_version

    _client, state = served
    p = reading.worklist(state.ws)[0].pseudonym
    study_pk = reading.patient_read(state.ws, p).scans[0].study_pk
    files = reading.scan_files(state.ws, p, study_pk)
    scan = state.scans.get(files)
    labels = scan.labels.copy()
    labels[labels == 2] = 1  # a version without lesions

    def save(based_on: int | None) -> int:
        return save_segmentation_version(
            state.ws, p, study_pk, scan.image.with_array(labels), reader="Dr Reader", based_on=based_on,
            liver_label=1, tumor_labels=(2,), changed_voxels=1,
        ).segmentation_pk  # fmt: skip

    first = save(files.segmentation_pk)
    with pytest.raises(InputError, match=rf"identical to an earlier one \(segmentation {first},"):
        save(first)


def test_a_blinded_reader_chooses_own_targets_never_the_studys(served: tuple[TestClient, AppState]) -> None:
    """A blinded reader's targets are their own decision: the study's targets, analysis and worklist ignore them.

    Reference: the reader has saved nothing on this patient, so their baseline is the imported segmentation, the
    one ``study run`` measured: their lesions are the run's baseline lesions (same ids and long axes, stored by the
    run) and each overlaps the study's lesion of the same id; the automatic rule gives the run's targets; a target's
    diameter is its long axis rounded half-up to 0.1 mm (RECIST 1.1 §4.2 sum of diameters)."""
    from decimal import ROUND_HALF_UP, Decimal

    client, state = served
    _sign_in(client, state)
    blinded = AppState(ws=state.ws, reader="Dr Third", blinded=True)
    second = TestClient(create_app(blinded), base_url="http://127.0.0.1")
    csrf_b = _sign_in(second, blinded)
    rows = client.get("/api/worklist").json()["patients"]

    def unedited(pseudonym: str) -> bool:  # the study's baseline is still the imported segmentation
        baseline = client.get(f"/api/patients/{pseudonym}").json()["scans"][0]["study_pk"]
        versions = client.get(f"/api/patients/{pseudonym}/scans/{baseline}/versions").json()
        return all(v["source"] != "review" for v in versions)

    row = next(  # not reviewed by another test of this module (the served workspace is shared)
        r for r in rows if r["analysis"] == "up to date" and not r["reviewed"] and unedited(r["pseudonym"])
    )
    p = row["pseudonym"]
    study_view = client.get(f"/api/patients/{p}").json()
    run_lesions = {x["lesion_id"]: x for x in study_view["scans"][0]["lesions"]}
    assert len(run_lesions) >= 2
    mine = second.get(f"/api/patients/{p}/second-read-targets").json()
    assert mine["chosen_by_hand"] is False
    assert mine["targets"] == study_view["targets"]  # the same rule on the same segmentation
    assert mine["study_targets"] is None  # blinded: nothing of the study's read
    assert mine["study_sum_of_diameters_mm"] is None
    assert {x["lesion_id"]: x["long_axis_mm"] for x in mine["lesions"]} == pytest.approx(
        {k: v["long_axis_mm"] for k, v in run_lesions.items()}
    )
    # the reader picks the second-largest lesion only
    url = f"/api/patients/{p}/second-read-targets"
    response = second.post(
        url, json={"targets": ["L2"], "reason": "L1 is a cyst"}, headers={"X-CSRF-Token": csrf_b}
    )
    assert response.status_code == 200, response.text
    mine = response.json()
    expected = Decimal(repr(run_lesions["L2"]["long_axis_mm"])).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    assert (mine["targets"], mine["chosen_by_hand"], mine["reason"]) == (["L2"], True, "L1 is a cyst")
    assert mine["sum_of_diameters_mm"] == float(expected)
    bad = second.post(url, json={"targets": ["L99"], "reason": "x"}, headers={"X-CSRF-Token": csrf_b})
    assert "L99 are not lesions of Dr Third's baseline segmentation" in bad.json()["error"]
    # never mixed: the study's targets, analysis and worklist are as before; the study's app shows both reads
    after = client.get(f"/api/patients/{p}").json()
    assert after["targets"] == study_view["targets"]
    assert after["assessments"] == study_view["assessments"]
    assert next(r for r in client.get("/api/worklist").json()["patients"] if r["pseudonym"] == p)["analysis"] == (
        "up to date"
    )
    assert (
        next(r for r in client.get("/api/worklist").json()["patients"] if r["pseudonym"] == p)["reviewed"] is False
    )
    (compared,) = [x for x in client.get(url).json() if x["reader"] == "Dr Third"]
    assert compared["study_targets"] == study_view["targets"]
    assert compared["study_sum_of_diameters_mm"] == study_view["assessments"][0]["sum_of_diameters_mm"]
    assert [(x["lesion_id"], x["study_lesion_id"]) for x in compared["lesions"]] == [(k, k) for k in run_lesions]
    # the study's read cannot write a blinded reader's targets
    csrf = client.get("/api/session").json()["csrf"]
    refused = client.post(url, json={"targets": ["L1"], "reason": "x"}, headers={"X-CSRF-Token": csrf})
    assert "chosen in a blinded read" in refused.json()["error"]
    # back to the automatic choice
    second.post(url, json={"targets": "auto", "reason": "test done"}, headers={"X-CSRF-Token": csrf_b})


def test_the_overlay_made_by_slice_equals_the_whole_volume_rule() -> None:
    """Reference: the overlay written voxel by voxel from ``measure_scan``'s numbering (its lesion map) and the
    liver label, compared in every plane; two lesions of equal size are numbered by their first voxel."""
    from hepavol.app.volumes import lesion_overlay
    from hepavol.geometry import identity_direction
    from hepavol.measurement import _measure_scan
    from hepavol.study.reading import ScanFiles

    labels = np.zeros((6, 9, 10), np.uint8)
    labels[1:5, 1:8, 1:9] = 1
    labels[2:4, 2:4, 2:4] = 2  # 8 voxels
    labels[2:4, 5:7, 5:7] = 2  # 8 voxels, later in C order: L2
    labels[4, 6, 1:4] = 2  # 3 voxels: L3
    geometry = Geometry(
        shape=labels.shape,
        spacing_mm=(2.0, 1.0, 1.0),
        origin_lps_mm=(0.0, 0.0, 0.0),
        direction=identity_direction(),
    )
    files = ScanFiles(study_pk=1, date="2024-01-01", image="", series_uid=None, seg=None, seg_hash=None,
                      segmentation_pk=None, liver_label=1, tumor_labels=(2,))  # fmt: skip
    grid = DisplayGrid.of(geometry)
    overlay, n = lesion_overlay(labels, files, grid)
    _, crop = _measure_scan(Volume(labels, geometry), liver_label=1, tumor_labels=(2,))
    assert crop is not None
    numbers = np.zeros(labels.shape, np.int64)
    numbers[crop.box] = crop.array
    expected = np.where(numbers > 0, numbers, np.where(labels == 1, 65535, 0))
    assert n == 3
    np.testing.assert_array_equal(overlay.array(), grid.view(expected))
    for plane, count in (("axial", 6), ("coronal", 9), ("sagittal", 10)):
        from hepavol.app.volumes import plane_slice

        for k in range(count):
            np.testing.assert_array_equal(
                overlay.plane(k, plane, "x"), plane_slice(grid.view(expected), k, plane, "x")
            )


def test_the_3d_brush_erases_a_ball_across_slices(served: tuple[TestClient, AppState]) -> None:
    """The sphere brush (``shape`` "sphere"): every lesion voxel whose centre is within ``radius_mm`` of the
    click, on the slices around it too, is erased; counted by hand from the overlay slices and the spacing."""
    client, state = served
    csrf = _sign_in(client, state)
    headers = {"X-CSRF-Token": csrf}
    row = next(r for r in client.get("/api/worklist").json()["patients"] if r["analysis"] == "up to date")
    scan = client.get(f"/api/patients/{row['pseudonym']}").json()["scans"][0]
    url = f"/api/patients/{row['pseudonym']}/scans/{scan['study_pk']}"
    meta = client.get(url).json()
    n, rows, cols = meta["shape"]
    sk, sr, sc = meta["spacing_mm"]
    line = next(x for x in meta["lines"] if x["value"] == 1)
    k, centre = line["slice"], [round(v) for v in line["centre"][1:]]
    radius = 2.5 * sk  # reaches two slices on each side
    rr, cc = np.mgrid[:rows, :cols]
    expected, beyond = 0, 0
    for kk in range(max(k - 3, 0), min(k + 3, n - 1) + 1):
        ov = np.frombuffer(client.get(f"{url}/overlay/{kk}").content, "<u2").reshape(rows, cols)
        ball = ((kk - k) * sk) ** 2 + ((rr - centre[0]) * sr) ** 2 + ((cc - centre[1]) * sc) ** 2 <= radius**2
        lesion = (ov != 0) & (ov != LIVER_VALUE)
        expected += int((ball & lesion).sum())
        if kk != k:
            beyond += int((ball & lesion).sum())
    assert beyond > 0  # the lesion reaches the neighbouring slices: the ball must too
    body = {"action": "brush", "mode": "erase lesion", "slice": k, "points": [centre], "radius_mm": radius}
    disc = client.post(f"{url}/edit", json=body, headers=headers).json()
    assert disc["changed_voxels"] == expected - beyond  # on the slice only (the default shape)
    client.post(f"{url}/edit", json={"action": "undo"}, headers=headers)
    sphere = client.post(f"{url}/edit", json={**body, "shape": "sphere"}, headers=headers).json()
    assert sphere["changed_voxels"] == expected
    bad = client.post(f"{url}/edit", json={**body, "shape": "cube"}, headers=headers)
    assert "brush shape 'cube' is not 'disc' (on the slice) or 'sphere' (3D)" in bad.json()["error"]
    client.post(f"{url}/edit", json={"action": "discard"}, headers=headers)
