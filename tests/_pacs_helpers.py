"""A real Orthanc (Debian orthanc + orthanc-dicomweb) on loopback for the PACS tests, started and stopped by pid."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Orthanc:
    """A running Orthanc: its REST/DICOMweb base URL, DICOM port and AE title, and our registered SCP."""

    http_url: str
    dicom_port: int
    aet: str
    scu_aet: str
    scp_port: int
    log: Path

    @property
    def dicomweb_url(self) -> str:
        return f"{self.http_url}/dicom-web"


def start_orthanc(tmp: Path) -> Iterator[Orthanc]:
    """Start Orthanc with a JSON config on loopback (free ports, storage in ``tmp``); stop it by its pid after."""
    exe = shutil.which("Orthanc")
    assert exe, "Orthanc is missing: run 'make test' (APT_PACKAGES has orthanc orthanc-dicomweb)"
    assert DICOMWEB_PLUGIN.exists(), f"{DICOMWEB_PLUGIN} is missing: apt-get install orthanc-dicomweb"
    http_port, dicom_port, scp_port = free_port(), free_port(), free_port()
    config = {
        "Name": "hepavol-test",
        "StorageDirectory": str(tmp / "storage"),
        "IndexDirectory": str(tmp / "storage"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "HttpBindAddress": "127.0.0.1",
        "DicomServerEnabled": True,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomAet": "ORTHANC",
        "DicomCheckCalledAet": True,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "DicomModalities": {"hepavol": ["HEPAVOL", "127.0.0.1", scp_port]},
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "SaveJobs": False,
        "StorageCompression": False,
    }
    cfg = tmp / "orthanc.json"
    cfg.write_text(json.dumps(config))
    log = tmp / "orthanc.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen([exe, str(cfg)], stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"Orthanc exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/system", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"Orthanc did not answer within 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield Orthanc(url, dicom_port, "ORTHANC", "HEPAVOL", scp_port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def upload(orthanc: Orthanc, files: list[Path]) -> None:
    """Store files through Orthanc's own REST API (POST /instances), independent of hepavol's client."""
    for f in files:
        r = requests.post(f"{orthanc.http_url}/instances", data=f.read_bytes(), timeout=30)
        r.raise_for_status()
