"""OHIF Viewer's built ``dist/`` (npm ``@ohif/app``) served next to the test Orthanc, for the viewer tests.

``make ohif`` (part of ``make test``) unpacks ``npm pack @ohif/app@VERSION`` into ``OHIF_CACHE``
(``~/.cache/hepavol/ohif`` unless ``HEPAVOL_OHIF_CACHE`` says otherwise), one folder per version:
``OHIF_CACHE/VERSION/package/dist``. :func:`serve_ohif` serves that folder at / with the single-page-app fallback
(every unknown path is ``index.html``), replaces ``app-config.js`` by a configuration with one DICOMweb data source,
and proxies ``/dicom-web`` to Orthanc, so the browser sees one origin and needs no CORS.
"""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

#: OHIF releases the viewer test runs against: the current release on npm and the latest of the previous minor.
OHIF_VERSIONS = ("3.13.2", "3.12.10")

CONFIG = """window.config = {
  routerBasename: null, extensions: [], modes: [], customizationService: {}, showStudyList: true,
  maxNumberOfWebWorkers: 2, showWarningMessageForCrossOrigin: false, showCPUFallbackMessage: false,
  showLoadingIndicator: true, strictZSpacingForVolumeViewport: true, showErrorDetails: 'always',
  investigationalUseDialog: { option: 'never' },
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


def ohif_cache() -> Path:
    """Folder of the unpacked OHIF packages (``HEPAVOL_OHIF_CACHE``, default ``~/.cache/hepavol/ohif``)."""
    return Path(os.environ.get("HEPAVOL_OHIF_CACHE", Path.home() / ".cache" / "hepavol" / "ohif"))


def ohif_dist(version: str) -> Path | None:
    """The built viewer of an OHIF version, or None when ``make ohif`` has not fetched it."""
    dist = ohif_cache() / version / "package" / "dist"
    return dist if (dist / "index.html").is_file() else None


def _handler(dist: Path, orthanc_url: str) -> type[http.server.BaseHTTPRequestHandler]:
    session = requests.Session()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path.startswith("/dicom-web") or path.startswith("/wado"):
                accept = self.headers.get("Accept")
                r = session.get(orthanc_url + self.path, headers={"Accept": accept} if accept else {}, timeout=60)
                self._send(r.status_code, r.content, r.headers.get("Content-Type", "application/octet-stream"))
                return
            if path == "/app-config.js":
                self._send(200, CONFIG.encode(), "application/javascript")
                return
            f = (dist / path.lstrip("/")).resolve()
            if path == "/" or not f.is_file() or dist.resolve() not in f.parents:
                f = dist / "index.html"
            types = {".js": "application/javascript", ".css": "text/css", ".wasm": "application/wasm"}
            self._send(
                200,
                f.read_bytes(),
                types.get(f.suffix, "text/html" if f.suffix == ".html" else "application/octet-stream"),
            )

    return Handler


@contextmanager
def serve_ohif(dist: Path, orthanc_url: str) -> Iterator[str]:
    """Serve ``dist`` with the Orthanc proxy on a free loopback port; yields the viewer's base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(dist, orthanc_url))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
