"""hepavol's SEG and SR in the real OHIF Viewer (issue 24), pushed with ``hepavol pacs push`` to the suite's Orthanc.

OHIF's built viewer comes from npm (``make ohif``: ``npm pack @ohif/app@VERSION``, unpacked outside git, see
tests/_ohif_helpers.py) and is served next to Orthanc's DICOMweb; Debian's Chromium draws it with software WebGL
(SwiftShader). References from outside the viewer: the analytic case of tests/_dicom_export_helpers.case_volumes
(lesion A 12 x 14 pixels of 0.8 mm: long axis sqrt((11 * 0.8)^2 + (14 * 0.8)^2) = 14.2436 mm), and hepavol's own
export for the other lengths, which OHIF prints with two decimals (``Number.toFixed(2)``).

What OHIF 3.13.2 and 3.12.10 show (and this test asserts): no error; the SR opens in an SR viewport on lesion L1's
RECIST slice with its long and short axes drawn and labelled "L: : 14.24 mm W: : 12.21 mm"; the viewport's arrows
step to lesion L2's axes; the SEG loads after OHIF's "Do you want to open this Segmentation?" and the
segmentation panel lists Liver, Lesion L1 and Lesion L2 with the SEG's colours. OHIF does not put the SR's
measurements into its measurement panel ("No tracked measurements"): it hydrates only SRs whose groups it can map
to its own tools, and shows the others read-only.

The test fails on hepavol's former encoding (time-point groups without image coordinates under "Imaging
Measurements", checked by running it on main's ``hepavol.io.sr_write``, 2026-12-07): OHIF 3.13.2 then draws no
viewport and no axes at all.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests._dicom_export_helpers import case_volumes
from tests._io_helpers import ORIENTATIONS
from tests._ohif_helpers import OHIF_VERSIONS, ohif_cache, ohif_dist, serve_ohif
from tests._pacs_helpers import DICOMWEB_PLUGIN, Orthanc, start_orthanc

from hepavol.cli import main
from hepavol.io import read_dicom_series, reorient_like, write_dicom_series
from hepavol.io.seg_write import write_dicom_seg
from hepavol.io.sr_write import TimePoint, write_dicom_sr

CHROMIUM = "/usr/bin/chromium"
#: Software WebGL in headless Chromium (Cornerstone3D needs WebGL2; see shared NOTES.md).
CHROMIUM_ARGS = ["--no-sandbox", "--enable-unsafe-swiftshader", "--use-gl=angle", "--use-angle=swiftshader"]
#: Copy the screenshot of the SR viewport of the current OHIF there (how docs/images/ohif-sr.png was made).
SCREENSHOT_ENV = "HEPAVOL_OHIF_SCREENSHOT"


def _missing() -> str | None:
    if shutil.which("Orthanc") is None or not DICOMWEB_PLUGIN.exists():
        return "Orthanc with its DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)"
    if not Path(CHROMIUM).exists():
        return "Debian's chromium is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """A fresh Orthanc per OHIF version (about 1.5 s): with one Orthanc for both versions, OHIF 3.12.10 run after
    3.13.2 in this test drew no image in its SR viewport, twice out of two runs. Not understood: a script opening
    the SR in both versions on one Orthanc (same files, every DICOMweb answer 200) shows it in both."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    yield from start_orthanc(tmp_path_factory.mktemp("orthanc_ohif"))


@pytest.fixture
def pushed(orthanc: Orthanc, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The case CT, its SEG and SR, stored on Orthanc by ``hepavol pacs push`` (DICOMweb STOW-RS)."""
    tmp = tmp_path_factory.mktemp("ohif_case")
    ct, labels = case_volumes(ORIENTATIONS["axial"])
    write_dicom_series(ct, tmp / "ct")
    image = read_dicom_series(tmp / "ct")
    seg = write_dicom_seg(image, reorient_like(labels, image.geometry), tmp / "seg.dcm")
    sr = write_dicom_sr(
        image,
        tmp / "seg.dcm",
        tmp / "sr.dcm",
        time_point=TimePoint(time_point_id="FU1", baseline=False),
        recist_response="PR",
        volumetric_response="SD",
    )
    files = [*sorted((tmp / "ct").iterdir()), tmp / "seg.dcm", tmp / "sr.dcm"]
    assert main(["pacs", "push", "--url", orthanc.dicomweb_url, *map(str, files)]) == 0
    return {"study_uid": image.metadata["study_instance_uid"], "seg": seg, "sr": sr}


def _skip_tour(page: Any) -> None:
    """OHIF's first-visit guided tour covers the page; its "Skip all" closes it (no tour: nothing to do)."""
    with contextlib.suppress(Exception):
        page.get_by_text("Skip all").click(timeout=3000)


def _go_to_next_measurement(page: Any, label: str) -> None:
    """Show the SR's next measurement: OHIF 3.13's viewport arrows; OHIF 3.12 has none, so scroll the slices (mouse
    wheel over the viewport, one slice a step, both ways) until ``label`` is drawn."""
    arrows = page.locator("[data-cy=viewport-action-arrows-right]")
    if arrows.count():
        arrows.first.click()
        page.get_by_text(label.split("mmW")[0]).first.wait_for(timeout=15_000)
        return
    page.locator("[data-cy=viewport-pane]").first.hover()
    for delta in [100] * 12 + [-100] * 24:
        if label in page.inner_text("body"):
            return
        page.mouse.wheel(0, delta)
        time.sleep(0.4)


def _wait_for_all_images(page: Any, timeout_s: float = 60.0) -> None:
    """Until the viewport's loading counter ("I:4 (9/12)": 9 of 12 images loaded) is full, when it shows one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = re.findall(r"\((\d+)/(\d+)\)", page.inner_text("body"))
        if not counts or all(a == b for a, b in counts):
            return
        time.sleep(0.5)


def _open_sr(page: Any, url: str, label: str) -> bool:
    """Open the viewer at ``url``, show the CT, then double-click the SR; whether ``label`` is drawn within 60 s."""
    page.goto(url)
    sr_thumbnail = page.get_by_text("hepavol measurement report").first
    sr_thumbnail.wait_for(timeout=60_000)
    _skip_tour(page)
    # the CT first: OHIF 3.12 draws nothing in an SR viewport opened before the CT's images are shown
    page.get_by_text("W:").first.wait_for(timeout=60_000)
    _wait_for_all_images(page)
    for _click in range(2):  # a missed double click: the SR viewport does not open
        sr_thumbnail.dblclick()
        _wait_for_all_images(page)
        deadline = time.monotonic() + 30  # the labels are SVG text over the viewport (not in its pane in 3.12)
        while time.monotonic() < deadline:
            if label in page.inner_text("body"):
                return True
            time.sleep(0.5)
    return False


def _axes_label(piece: dict[str, Any]) -> str:
    """How OHIF labels a bidirectional SR measurement (its SR viewport, two decimals)."""
    return f"L: : {piece['long_axis_mm']:.2f} mmW: : {piece['short_axis_mm']:.2f} mm"


@pytest.mark.external
@pytest.mark.slow
@pytest.mark.parametrize("version", OHIF_VERSIONS)
def test_ohif_shows_the_sr_axes_and_the_seg_segments(
    version: str, orthanc: Orthanc, pushed: dict[str, Any], tmp_path: Path
) -> None:
    dist = ohif_dist(version)
    if dist is None:
        pytest.skip(f"OHIF {version} is not in {ohif_cache()}: run 'make ohif' (npm pack @ohif/app@{version})")
    from playwright.sync_api import sync_playwright

    l1, l2 = pushed["sr"].lesions
    assert l1["long_axis_mm"] == pytest.approx(np.hypot(11 * 0.8, 14 * 0.8))  # analytic, 14.2436 mm
    errors: list[str] = []
    with serve_ohif(dist, orthanc.http_url) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 900})
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
            # the SR: L1's axes on its slice, then L2's through the viewport's arrows. On a loaded machine OHIF
            # 3.12.10 can miss the double click, or stall its SR viewport with 9 of 12 images loaded and no axes
            # (CI, 2026-12-07; reproduced here with three busy loops on two cores): then open the viewer afresh.
            for _attempt in range(3):
                errors.clear()
                if _open_sr(page, f"{base}/viewer?StudyInstanceUIDs={pushed['study_uid']}", _axes_label(l1)):
                    break
            assert _axes_label(l1) in page.inner_text("body"), (page.inner_text("body"), errors)
            time.sleep(1)  # the canvas draws after the labels
            page.screenshot(path=str(tmp_path / "ohif-sr.png"))
            if os.environ.get(SCREENSHOT_ENV) and version == OHIF_VERSIONS[0]:
                shutil.copyfile(tmp_path / "ohif-sr.png", os.environ[SCREENSHOT_ENV])
            _go_to_next_measurement(page, _axes_label(l2))
            assert _axes_label(l2) in page.inner_text("body")
            assert _axes_label(l1) not in page.inner_text("body")  # another slice
            # the measurement panel stays empty: OHIF shows SRs it did not write read-only (module docstring)
            page.locator("[data-cy=trackedMeasurements-btn]").click()
            page.get_by_text("No tracked measurements").wait_for(timeout=10_000)

            # the SEG: OHIF asks before it loads a segmentation, then lists the segments
            page.get_by_text("hepavol segmentation").first.dblclick()
            page.get_by_role("button", name="Yes").click(timeout=20_000)
            page.locator("[data-cy=panelSegmentation-btn]").click()
            for info in pushed["seg"].segments:
                page.get_by_text(info.segment_label, exact=True).first.wait_for(timeout=20_000)
            body = page.inner_text("body")
        finally:
            browser.close()
    assert [s.segment_label for s in pushed["seg"].segments] == ["Liver", "Lesion L1", "Lesion L2"]
    assert "RecommendedDisplayCIELabValue not found" not in body  # the SEG's colours are used
    for text in ("Something went wrong", "Error Message"):  # OHIF's error boundary
        assert text not in body
    assert not [e for e in errors if "TypeError" in e or "page error" in e], errors
