"""Reproduce what OHIF does with hepavol's DICOM (issue 24): a development script, not a test (yet).

Serves OHIF's built ``dist/`` (``npm pack @ohif/app@3.13.2`` and unpack: 50 MB) at / with an SPA fallback, proxies
/dicom-web to a fresh Debian Orthanc (same origin: no CORS), stores the given files in Orthanc, opens the study
in Debian's headless Chromium (software WebGL: --enable-unsafe-swiftshader), loads the SR, and prints the page
text and every console error; a screenshot goes to OUT/ohif.png.

    .venv/bin/python scripts/ohif_sr_check.py OHIF_DIST OUT CT/*.dcm SEG.dcm SR.dcm

Finding (2026-12-07, OHIF 3.13.2): every measurement group without image coordinates in the Imaging Measurements
container (the per-time-point RECIST and volumetric summaries, and disappeared lesions) ends in "Cannot read
properties of undefined (reading 'ReferencedSOPSequence') at _checkIfCanAddMeasurementsToDisplaySet"; OHIF
merges groups by TrackingUniqueIdentifier and crashes on a group without one as well.
"""

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.responses import FileResponse, Response
from starlette.routing import Route
from tests._pacs_helpers import free_port, start_orthanc

DIST = Path(sys.argv[1])
CONFIG = """window.config = {
  routerBasename: null, extensions: [], modes: [], customizationService: {}, showStudyList: true,
  maxNumberOfWebWorkers: 2, showWarningMessageForCrossOrigin: false, showCPUFallbackMessage: false,
  showLoadingIndicator: true, strictZSpacingForVolumeViewport: true, showErrorDetails: 'always',
  defaultDataSourceName: 'orthanc',
  dataSources: [{
    namespace: '@ohif/extension-default.dataSourcesModule.dicomweb', sourceName: 'orthanc',
    configuration: { friendlyName: 'Orthanc', name: 'orthanc', wadoUriRoot: '/wado', qidoRoot: '/dicom-web',
      wadoRoot: '/dicom-web', qidoSupportsIncludeField: false, imageRendering: 'wadors',
      thumbnailRendering: 'wadors', enableStudyLazyLoad: true, supportsFuzzyMatching: false, supportsWildcard: true,
      omitQuotationForMultipartRequest: true, bulkDataURI: { enabled: true } },
  }],
};
"""


def app(orthanc_url):
    client = httpx.AsyncClient(base_url=orthanc_url, timeout=60)

    async def handle(request):
        path = request.url.path
        if path.startswith("/dicom-web") or path.startswith("/wado"):
            r = await client.request(
                request.method,
                path + ("?" + request.url.query if request.url.query else ""),
                headers={k: v for k, v in request.headers.items() if k.lower() in ("accept",)},
            )
            return Response(
                r.content, status_code=r.status_code, headers={"content-type": r.headers.get("content-type", "")}
            )
        if path == "/app-config.js":
            return Response(CONFIG, media_type="application/javascript")
        f = DIST / path.lstrip("/")
        if path != "/" and f.is_file():
            return FileResponse(f)
        return FileResponse(DIST / "index.html")

    return Starlette(routes=[Route("/{p:path}", handle, methods=["GET", "POST"])])


if __name__ == "__main__":
    work = Path(sys.argv[2])
    files = [Path(x) for x in sys.argv[3:]]
    import contextlib

    with contextlib.contextmanager(start_orthanc)(work) as o:
        for f in files:
            r = httpx.post(f"{o.http_url}/instances", content=f.read_bytes())
            print(f.name, r.status_code)
        studies = httpx.get(f"{o.http_url}/dicom-web/studies").json()
        uid = studies[0]["0020000D"]["Value"][0]
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app(o.http_url), port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        time.sleep(1.5)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            b = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--no-sandbox", "--enable-unsafe-swiftshader", "--use-gl=angle", "--use-angle=swiftshader"],
            )
            pg = b.new_page(viewport={"width": 1500, "height": 900})
            logs = []
            pg.on("console", lambda m: logs.append(f"{m.type}: {m.text}"))
            pg.on("pageerror", lambda e: logs.append(f"PAGEERROR: {e}"))
            pg.goto(f"http://127.0.0.1:{port}/viewer?StudyInstanceUIDs={uid}")
            time.sleep(20)
            for label in ("Skip all", "Confirm and hide"):
                try:
                    pg.get_by_text(label).click(timeout=3000)
                except Exception:
                    print("no", label)
            pg.get_by_text("hepavol measurement report").first.dblclick()
            time.sleep(12)
            pg.screenshot(path=str(work / "ohif.png"))
            txt = pg.inner_text("body")
            print(txt[:3000])
            for line in logs:
                if "rror" in line or "ERR" in line:
                    print(line[:400])
            b.close()
        server.should_exit = True
