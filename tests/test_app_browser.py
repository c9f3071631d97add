"""The review app in a real browser: Debian's headless Chromium driven by Playwright (no browser download).

``hepavol study serve`` runs as a user runs it (a subprocess, its printed URL opened); the test reads the
worklist, opens a patient, scrolls, changes the window, sets targets and excludes the patient through the page's
forms, then checks the database, the audit trail and ``study export``. A request forged from the page without the
CSRF header is refused. Timings of slice display are printed (``-s``), never asserted. With HEPAVOL_SCREENSHOTS=DIR
the screenshots of the worklist and the viewer are written there (docs/ keeps copies).
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests._app_helpers import build_study

pytestmark = pytest.mark.external
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_study(tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="module")
def server(study: Path) -> Iterator[str]:
    """``hepavol study serve --port 0`` on the study; the URL it prints."""
    yield from _serve(study, "--reader", "Dr Browser")


@pytest.fixture(scope="module")
def blinded_server(study: Path) -> Iterator[str]:
    """``hepavol study serve --blinded --reader 'Dr Blind'``: a blinded second read."""
    yield from _serve(study, "--reader", "Dr Blind", "--blinded")


def _serve(study: Path, *options: str) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hepavol", "study", "serve", "--study", str(study), "--port", "0", *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    url = None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if match := re.search(r"(http://\S+\?token=\S+)", line):
            url = match[1]
            break
    assert url is not None, "".join(lines) + (proc.stderr.read() if proc.stderr else "")
    yield url
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:  # pragma: no cover
        proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: install the Debian package chromium (make test does)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _canvas_xy(page: Any, row: float, col: float) -> tuple[float, float]:
    x, y = page.evaluate(f"window.hepavol.toCanvas({row}, {col})")
    box = page.locator("#view").bounding_box()
    return box["x"] + x, box["y"] + y


def _click(page: Any, row: float, col: float) -> None:
    page.mouse.click(*_canvas_xy(page, row, col))


def _drag(page: Any, start: Any, end: Any) -> None:
    page.mouse.move(*_canvas_xy(page, *start))
    page.mouse.down()
    page.mouse.move(*_canvas_xy(page, *end))
    page.mouse.up()


def _open_app(browser: Any, url: str) -> tuple[Any, list[str], list[dict[str, Any]]]:
    """A new page on the app, ready, with its page errors collected and the worklist's patients."""
    page = browser.new_page(viewport={"width": 1400, "height": 820})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("body[data-ready]")
    return page, errors, page.evaluate("api('/api/worklist').then(w => w.patients)")


def _shot(page: Any, name: str) -> None:
    folder = os.environ.get("HEPAVOL_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name))


def test_a_reader_reads_a_patient_and_decides(browser: Any, server: str, study: Path, tmp_path: Path) -> None:
    from hepavol.study import audit
    from hepavol.study.review import review_history
    from hepavol.study.workspace import find_workspace

    page = browser.new_page(viewport={"width": 1400, "height": 820})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)
    assert "token" not in page.url  # redirected to a URL without the token
    page.wait_for_selector("body[data-ready]")
    rows = page.locator("#worklist tbody tr")
    assert rows.count() == 3
    _shot(page, "review-worklist.png")
    page.select_option("#filter-eligibility", "excluded")
    assert rows.count() == 1
    page.select_option("#filter-eligibility", "eligible")
    assert rows.count() == 2
    page.fill("#filter", "CT")  # a CT patient (the study has CT and MR ones): the CT window presets
    assert rows.count() >= 1
    pseudonym = rows.first.get_attribute("data-pseudonym")

    rows.first.click()
    page.wait_for_selector("body[data-viewing]")
    assert page.locator("#lesions tbody tr").count() >= 1
    meta = page.evaluate("window.hepavol.meta")
    # the viewer opens on the largest lesion's RECIST slice; its long axis' midpoint is drawn in the lesion's colour
    first = next(line for line in meta["lines"] if line["value"] == 1)
    assert int(page.get_attribute("#view", "data-slice")) == first["slice"]
    (r0, c0), (r1, c1) = first["long"]
    rgb = page.evaluate(
        """([r, c]) => { const [x, y] = window.hepavol.toCanvas(r, c);
           return Array.from(document.getElementById('view').getContext('2d').getImageData(x, y, 1, 1).data); }""",
        [(r0 + r1) / 2, (c0 + c1) / 2],
    )
    assert rgb[0] > rgb[1] + 40, rgb  # red (L1 is red in the palette; the axis line and the overlay both are)
    _shot(page, "review-viewer.png")

    # scroll 10 slices with the wheel; change the window
    page.hover("#view")
    start = int(page.get_attribute("#view", "data-slice"))
    step = -1 if start + 10 >= meta["shape"][0] else 1
    for _ in range(10):
        page.mouse.wheel(0, 100 * step)
    page.wait_for_function(f"document.getElementById('view').dataset.slice == {start + 10 * step}")
    timings = page.evaluate("window.hepavol.timings")
    print(f"\nslice display: median {sorted(timings)[len(timings) // 2]:.1f} ms over {len(timings)} slices")
    page.select_option("#window", "soft tissue")
    assert page.get_attribute("#view", "data-window") == "50/400"  # Radiopaedia abdomen soft tissue W400 L50

    # side by side: the comparison viewer shows another scan; a click on L1 shows its tracked match there
    page.wait_for_function("document.getElementById('view2').dataset.date !== undefined")
    assert page.get_attribute("#view2", "data-date") != page.get_attribute("#view", "data-date")
    page.evaluate(f"setSlice({first['slice']})")
    page.wait_for_function(f"document.getElementById('view').dataset.slice == {first['slice']}")
    _click(page, (r0 + r1) / 2, (c0 + c1) / 2)
    page.wait_for_selector("body[data-matched]")
    other_lines = page.evaluate("window.hepavol.viewers[1].meta.lines")
    match = next(line for line in other_lines if line["lesion_id"] == page.get_attribute("body", "data-matched"))
    assert match["track_id"] == first["track_id"]
    assert int(page.get_attribute("#view2", "data-slice")) == match["slice"]  # the match's RECIST slice
    _shot(page, "review-side-by-side.png")
    # reformats: coronal and sagittal in both viewers
    for plane in ("coronal", "sagittal", "axial"):
        page.select_option("#plane", plane)
        page.wait_for_function(
            f"document.getElementById('view').dataset.plane == '{plane}' && "
            f"document.getElementById('view2').dataset.plane == '{plane}'"
        )
        if plane == "coronal":
            _shot(page, "review-coronal.png")

    # a request forged from the page without the CSRF header is refused
    status = page.evaluate(
        f"""fetch('/api/patients/{pseudonym}/eligibility', {{method: 'POST', headers: {{'Content-Type':
           'application/json'}}, body: JSON.stringify({{decision: 'exclude', reason: 'forged'}})}}).then(r => r.status)"""
    )
    assert status == 403

    # editing: erase lesion L2 on every slice with the eraser, add it back by one click at its centre, correct
    # it with an exclude click at its border and a small eraser stroke, save a version
    lesion = next(line for line in meta["lines"] if line["value"] == 2)
    url = page.evaluate("scanUrl()")
    n_slices, _rows, cols_ = meta["shape"]
    page.select_option("#tool", "erase lesion")
    page.fill("#brush-mm", "25")
    where = {}  # L2's voxels per slice, from the overlay before any edit (edits renumber the lesions)
    for k in range(n_slices):
        overlay = page.evaluate(
            f"fetch('{url}/overlay/{k}').then(r => r.arrayBuffer()).then(b => Array.from(new Uint16Array(b)))"
        )
        hits = [divmod(i, cols_) for i, v in enumerate(overlay) if v == 2]
        if hits:
            where[k] = (sum(h[0] for h in hits) / len(hits), sum(h[1] for h in hits) / len(hits))
    assert where
    for k, (r, c) in where.items():
        page.evaluate(f"setSlice({k})")
        page.wait_for_function(f"document.getElementById('view').dataset.slice == {k}")
        done = int(page.get_attribute("body", "data-edit-done") or 0)
        _drag(page, (r, c), (r, c + 1))
        page.wait_for_function(f"Number(document.body.dataset.editDone) > {done}")
    assert page.inner_text("#message") == ""
    page.select_option("#tool", "seed")
    page.evaluate(f"setSlice({lesion['slice']})")
    done = int(page.get_attribute("body", "data-edit-done"))
    _click(page, lesion["centre"][1], lesion["centre"][2])
    page.wait_for_function(f"Number(document.body.dataset.editDone) > {done}")
    assert page.inner_text("#message") == "", page.inner_text("#message")
    added = page.evaluate("window.hepavol.editing")
    assert "new lesion from a click" in added["what"]
    assert added["changed_voxels"] > 0
    (r0, c0), (r1, c1) = lesion["long"]
    page.select_option("#tool", "exclude")
    done = int(page.get_attribute("body", "data-edit-done"))
    _click(page, r0 + 0.15 * (r1 - r0), c0 + 0.15 * (c1 - c0))  # near one end of the long axis
    page.wait_for_function(f"Number(document.body.dataset.editDone) > {done}")
    page.select_option("#tool", "erase lesion")
    page.fill("#brush-mm", "2")
    done = int(page.get_attribute("body", "data-edit-done"))
    _drag(page, lesion["centre"][1:], (lesion["centre"][1] + 1, lesion["centre"][2]))
    page.wait_for_function(f"Number(document.body.dataset.editDone) > {done}")
    edits = int(page.get_attribute("body", "data-edits"))
    assert edits >= 3
    page.fill("#save-note", "L2 redrawn")
    page.click("#save")
    page.wait_for_selector("body[data-saved=version]", timeout=120_000)
    assert "analysis updated" in page.inner_text("#edit-state"), page.inner_text("#edit-state")
    edit_ms = page.evaluate("window.hepavol.editTimings")
    print(f"edit visible: median {sorted(edit_ms)[len(edit_ms) // 2]:.0f} ms over {len(edit_ms)} edits")
    baseline_total = page.evaluate("window.hepavol.patient.scans[0].total_tumor_volume_ml")
    page.select_option("#tool", "navigate")

    # targets and an exclusion through the forms
    page.fill("#targets", "L1")
    page.fill("#targets-reason", "L2 is a cyst")
    page.click("#targets-form button")
    page.wait_for_selector("body[data-saved=targets]")
    # the reader's RECIST call on the first follow-up (the date list holds the follow-ups only)
    follow_up = page.evaluate("window.hepavol.patient.scans[1].date")
    assert page.eval_on_selector("#nt-date", "s => s.value") == follow_up
    page.select_option("#nt-call", "progression")
    page.fill("#marks-reason", "non-target disease grew")
    page.click("#marks-form button")
    page.wait_for_selector("body[data-saved=recist-marks]")
    assert page.inner_text("#marks-current") == f"reader's calls: non-target {follow_up}: progression"
    page.click("#signoff")  # sign off the read: edits are locked
    page.wait_for_selector("body[data-signed=yes]")
    page.select_option("#tool", "exclude")
    _click(page, lesion["centre"][1], lesion["centre"][2])
    page.wait_for_function("document.getElementById('message').textContent.includes('signed off')")
    page.select_option("#tool", "navigate")
    page.select_option("#decision", "exclude")
    page.fill("#eligibility-reason", "second primary found")
    page.click("#eligibility-form button")
    page.wait_for_selector("body[data-saved=eligibility]")
    assert "excluded" in page.inner_text("#patient-state")
    assert errors == []

    ws = find_workspace(study)
    try:
        history = review_history(ws, pseudonym)
        assert [(h["field"], h["new"], h["reviewer"]) for h in history] == [
            ("targets", ["L1"], "Dr Browser"),
            ("recist-marks", {"non_target": {follow_up: "progression"}, "new_lesions": {}}, "Dr Browser"),
            ("sign-off", "signed", "Dr Browser"),
            ("eligibility", "exclude", "Dr Browser"),
        ]
        with ws.db.transaction() as session:
            reviews = [e for e in audit.entries(session) if e.action == "review"]
            assert [e.actor for e in reviews] == ["Dr Browser"] * 4
            versions = [e for e in audit.entries(session) if e.action == "segmentation-version"]
            assert [(e.actor, e.details["note"]) for e in versions] == [("Dr Browser", "L2 redrawn")]
    finally:
        ws.close()
    out = tmp_path / "cohort.csv"
    done = subprocess.run(
        [sys.executable, "-m", "hepavol", "study", "export", str(out), "--study", str(study)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with out.open() as f:
        exported = [row["patient_id"] for row in csv.DictReader(f)]
    assert pseudonym not in exported  # excluded in the app: out of the cohort table
    assert len(exported) == 1
    assert baseline_total > 0
    page.close()


def test_a_reader_relinks_a_lesion_in_the_lesion_table(browser: Any, server: str, study: Path) -> None:
    """The relink form under a follow-up's lesion table: the lesion becomes a new track, and the response table
    shows PD on that scan without a reload (RECIST 1.1 Table 1: a new lesion is PD)."""
    from hepavol.study.review import review_history
    from hepavol.study.workspace import find_workspace

    page, errors, rows = _open_app(browser, server)
    pseudonym = next(r["pseudonym"] for r in rows if r["analysis"] == "up to date" and not r["signed_off"])
    patient = page.evaluate(f"api('/api/patients/{pseudonym}')")
    index, scan = next((i, s) for i, s in enumerate(patient["scans"]) if i > 0 and s["lesions"])
    page.evaluate(f"location.hash = '#/patient/{pseudonym}/{scan['study_pk']}'")
    page.wait_for_selector(f"body[data-viewing='{pseudonym} {scan['date']}']")
    assert page.is_visible("#link-form")
    assert page.inner_text("#links-current") == "no reader's link on this scan"
    lesion = scan["lesions"][0]
    page.select_option("#link-lesion", lesion["lesion_id"])
    # the track dropdown lists every track of the patient with the scans it is seen on, then new and auto
    seen: dict[str, list[str]] = {}
    for s in patient["scans"]:
        for les in s["lesions"]:
            if les["track_id"]:
                seen.setdefault(les["track_id"], []).append(s["date"])
    offered = page.eval_on_selector_all("#link-to option", "os => os.map(o => [o.value, o.textContent])")
    expected = sorted(seen, key=lambda t: int(t.lstrip("L")))
    assert [v for v, _ in offered] == ["", *expected, "new", "auto"]
    first = expected[0]
    assert dict(offered)[first] == f"{first} (seen {', '.join(seen[first])})"
    page.select_option("#link-to", first)
    assert page.input_value("#link-track") == first  # choosing a track fills the field (merges are typed)
    page.select_option("#link-to", "new")
    assert page.input_value("#link-track") == "new"
    page.fill("#link-reason", "not the baseline lesion")
    page.click("#link-form button")
    page.wait_for_selector("body[data-saved=lesion-links]", timeout=120_000)
    assert page.inner_text("#message") == ""
    assert page.inner_text("#links-current") == f"reader's links on {scan['date']}: {lesion['lesion_id']} → new"
    cells = page.locator(f"#lesions tbody tr[data-lesion={lesion['lesion_id']}] td")
    new_track = cells.nth(1).inner_text()
    assert new_track not in ("", lesion["track_id"])
    response_row = page.locator("#response tbody tr").nth(index).locator("td")
    assert response_row.nth(0).inner_text() == scan["date"]
    assert response_row.nth(4).inner_text() == "PD"
    ws = find_workspace(study)
    try:
        last = review_history(ws, pseudonym)[-1]
        assert (last["field"], last["reviewer"], last["reason"]) == (
            "lesion-links",
            "Dr Browser",
            "not the baseline lesion",
        )
    finally:
        ws.close()
    # back to the automatic tracking (the same form), so that the other test sees the study as it was run
    page.fill("#link-track", "auto")
    page.fill("#link-reason", "test done")
    page.evaluate("document.body.dataset.saved = ''")
    page.click("#link-form button")
    page.wait_for_selector("body[data-saved=lesion-links]", timeout=120_000)
    assert page.inner_text("#links-current") == "no reader's link on this scan"
    assert cells.nth(1).inner_text() == lesion["track_id"]
    assert errors == []
    page.close()


def test_a_blinded_reader_sets_own_targets_and_the_study_sees_both(
    browser: Any, blinded_server: str, server: str, study: Path
) -> None:
    """In a blinded read the page lists the reader's own baseline lesions and takes their targets; the study's
    page then shows them beside its own targets (the study's targets are not changed)."""
    page, errors, rows = _open_app(browser, blinded_server)
    pseudonym = next(r["pseudonym"] for r in rows if r["eligibility"] == "eligible")
    page.evaluate(f"location.hash = '#/patient/{pseudonym}'")
    page.wait_for_selector("body[data-viewing]")
    page.wait_for_function("document.querySelectorAll('#own-lesions tbody tr').length > 1")
    assert page.is_visible("#own-targets-box")
    assert not page.is_visible("#targets-form")  # the study's targets are not part of a blinded read
    assert "(automatic)" in page.inner_text("#own-targets-state")
    page.fill("#own-targets", "L2")
    page.fill("#own-targets-reason", "L1 is a cyst")
    page.click("#own-targets-form button")
    page.wait_for_selector("body[data-saved=own-targets]")
    assert ": L2 (chosen by you), sum of diameters" in page.inner_text("#own-targets-state")
    assert page.locator("#own-lesions tbody tr").nth(1).locator("td").nth(3).inner_text() == "target"
    assert errors == []
    page.close()

    page = browser.new_page(viewport={"width": 1400, "height": 820})
    page.goto(server)
    page.wait_for_selector("body[data-ready]")
    page.evaluate(f"location.hash = '#/patient/{pseudonym}'")
    page.wait_for_selector("body[data-viewing]")
    page.wait_for_function("document.querySelectorAll('#second-targets tbody tr').length > 0")
    cells = page.locator("#second-targets tbody tr").first.locator("td")
    study_targets = page.evaluate("window.hepavol.patient.targets")
    assert [cells.nth(i).inner_text() for i in (0, 1, 4)] == ["Dr Blind", "L2", ", ".join(study_targets)]
    assert not page.is_visible("#own-targets-box")
    page.close()


def test_the_3d_box_makes_the_eraser_a_ball(browser: Any, server: str) -> None:
    """The "3D" box beside the brush size: the same eraser stroke reaches the neighbouring slices (the exact counts
    are checked against the overlay in tests/test_app.py); undo and discard leave the scan as it was."""
    page, errors, rows = _open_app(browser, server)
    pseudonym = next(r["pseudonym"] for r in rows if r["analysis"] == "up to date" and not r["signed_off"])
    page.evaluate(f"location.hash = '#/patient/{pseudonym}'")
    page.wait_for_selector("body[data-viewing]")
    meta = page.evaluate("window.hepavol.viewers[0].meta")
    line = next(x for x in meta["lines"] if x["value"] == 1)
    page.evaluate(f"setSlice({line['slice']})")
    page.wait_for_function(f"document.getElementById('view').dataset.slice == {line['slice']}")
    page.select_option("#tool", "erase lesion")
    page.fill("#brush-mm", str(round(2.5 * meta["spacing_mm"][0])))
    centre = line["centre"][1:]
    changed = []
    for three_d in (False, True):
        page.set_checked("#brush-3d", three_d)
        done = int(page.get_attribute("body", "data-edit-done") or 0)
        _drag(page, centre, (centre[0], centre[1] + 0.5))
        page.wait_for_function(f"Number(document.body.dataset.editDone) > {done}")
        assert page.inner_text("#message") == ""
        changed.append(page.evaluate("window.hepavol.editing.changed_voxels"))
        done = int(page.get_attribute("body", "data-edit-done"))
        page.click("#undo")
        page.wait_for_function(f"Number(document.body.dataset.editDone) > {done}")
    assert 0 < changed[0] < changed[1]
    page.click("#discard")
    page.select_option("#tool", "navigate")
    assert errors == []
    page.close()
