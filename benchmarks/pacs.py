"""Benchmark: pulling a 300-slice 512x512 CT series from a real Orthanc, serial against parallel.

Starts Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) on loopback with a temporary storage folder (the test
suite's helper, ``tests/_pacs_helpers.py``), uploads a 300-slice uncompressed int16 series (150 MB) through
Orthanc's REST API and pulls it with hepavol's clients:

- DICOMweb: one WADO-RS request per instance, serially (the baseline) and with 2, 4, 8 parallel requests; and the
  whole series in one streamed WADO-RS request (``workers=1``, the default of ``hepavol pacs pull --url``).
- DIMSE: one C-GET (or C-MOVE) of the whole series on one association (the baseline, ``--workers 1``) and with
  2, 4 (the default), 8 associations in parallel, each asking for lists of instances.

Each scenario is run on loopback as it is, and through a relay that delays every packet by half of ``--rtt-ms``
each way (a PACS on another network: a round trip of 10 ms by default, no bandwidth limit), for both directions
of C-MOVE as well. Each configuration runs ``--repeat`` times in this process; the table gives the best time and
its ratio to the protocol's serial baseline in the same network (a ratio above 1 is faster), all measured in one
run. Every pull is checked: the same file names and bytes for every configuration of a protocol, and the pixel
data of every instance equal to what was uploaded.

Run: ``.venv/bin/python benchmarks/pacs.py [--slices 300] [--repeat 3] [--rtt-ms 10]``. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests._pacs_helpers import free_port, start_orthanc, upload

from hepavol.geometry import Geometry, identity_direction
from hepavol.io import write_dicom_series
from hepavol.pacs.dicomweb import DicomWebClient
from hepavol.pacs.dimse import DimseClient
from hepavol.volume import Volume


class DelayRelay:
    """A TCP relay on loopback that forwards ``listen -> target`` and delays every chunk by ``delay_s`` each way."""

    def __init__(self, target_port: int, delay_s: float, listen_port: int = 0) -> None:
        self.target_port = target_port
        self.delay_s = delay_s
        self.server = socket.create_server(("127.0.0.1", listen_port), reuse_port=False)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = int(self.server.getsockname()[1])
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._pipe(client, upstream)
            self._pipe(upstream, client)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()

        def read() -> None:
            while True:
                try:
                    data = src.recv(1 << 18)
                except OSError:
                    data = b""
                chunks.put((time.monotonic() + self.delay_s, data))
                if not data:
                    return

        def write() -> None:
            while True:
                due, data = chunks.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if not data:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    return
                try:
                    dst.sendall(data)
                except OSError:
                    return

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()

    def close(self) -> None:
        self.closed = True
        self.server.close()


def serial_per_instance(client: DicomWebClient, study: str, series: str, dest: Path) -> None:
    """The baseline: one WADO-RS request per instance, one after the other (what a naive client does)."""
    uids = client._instance_uids(study, series)
    dest.mkdir()
    for sop in uids:
        ds = client._client().retrieve_instance(
            study_instance_uid=study, series_instance_uid=series, sop_instance_uid=sop
        )
        ds.save_as(dest / f"{sop}.dcm", enforce_file_format=True)


def best_of(repeat: int, run: Callable[[Path], Any], tmp: Path, name: str) -> tuple[float, Path]:
    times = []
    out = tmp / f"{name}-0"
    for k in range(repeat):
        dest = tmp / f"{name}-{k}"
        start = time.perf_counter()
        run(dest)
        times.append(time.perf_counter() - start)
        if k:
            shutil.rmtree(dest)
    return min(times), out


def same_files(a: Path, b: Path) -> bool:
    names_a = sorted(p.name for p in a.iterdir())
    if names_a != sorted(p.name for p in b.iterdir()):
        return False
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names_a)


def configurations(
    http_url: str, dicom_port: int, move_port: int, orthanc: Any, study: str, series: str
) -> list[tuple[str, str, str, Callable[[Path], Any]]]:
    """(protocol, retrieval, CLI options, run) for every configuration, baselines first."""
    web = DicomWebClient(f"{http_url}/dicom-web", timeout_s=120)

    def dimse(workers: int) -> DimseClient:
        return DimseClient(
            "127.0.0.1", dicom_port, aet=orthanc.scu_aet, called_aet=orthanc.aet, timeout_s=120, workers=workers
        )

    configs: list[tuple[str, str, str, Callable[[Path], Any]]] = [
        (
            "DICOMweb",
            "WADO-RS per instance, serial",
            "(baseline)",
            lambda d: serial_per_instance(web, study, series, d),
        ),
    ]
    for w in (2, 4, 8):
        configs.append(
            (
                "DICOMweb",
                f"WADO-RS per instance, {w} parallel",
                f"--workers {w}",
                lambda d, w=w: web.pull_series(study, series, d, workers=w),
            )
        )
    configs.append(
        (
            "DICOMweb",
            "WADO-RS whole series, one streamed request",
            "--workers 1 (default)",
            lambda d: web.pull_series(study, series, d, workers=1),
        )
    )
    for method in ("get", "move"):
        for w in (1, 2, 4, 8):
            label = "whole series, one association" if w == 1 else f"{w} associations, UID lists"
            configs.append(
                (
                    f"DIMSE C-{method.upper()}",
                    label,
                    f"--method {method} --workers {w}" + (" (default)" if w == 4 and method == "get" else ""),
                    lambda d, w=w, method=method: dimse(w).pull_series(
                        study, series, d, method=method, move_port=move_port
                    ),
                )
            )
    return configs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rtt-ms", type=float, default=10.0, help="round trip of the relayed network (10)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hepavol-bench-pacs-"))
    try:
        g = Geometry(
            shape=(args.slices, 512, 512),
            spacing_mm=(1.25, 0.75, 0.75),
            origin_lps_mm=(0.0, 0.0, 0.0),
            direction=identity_direction(),
        )
        array = np.random.default_rng(0).integers(-1000, 1500, size=g.shape, dtype=np.int16)
        files = write_dicom_series(Volume(array, g), tmp / "source", patient_id="BENCH")
        originals = {str(pydicom.dcmread(f).SOPInstanceUID): pydicom.dcmread(f) for f in files}
        first = next(iter(originals.values()))
        study, series = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        (tmp / "orthanc").mkdir()
        orthanc_run = start_orthanc(tmp / "orthanc")
        orthanc = next(orthanc_run)
        rows = []
        try:
            upload(orthanc, files)
            http_port = int(orthanc.http_url.rsplit(":", 1)[1])
            networks: list[tuple[str, float]] = [
                ("loopback", 0.0),
                (f"RTT {args.rtt_ms:g} ms", args.rtt_ms / 2000),
            ]
            for network, delay_s in networks:
                relays: list[DelayRelay] = []
                if delay_s:
                    web_relay = DelayRelay(http_port, delay_s)
                    dicom_relay = DelayRelay(orthanc.dicom_port, delay_s)
                    scp_port = free_port()
                    # Orthanc sends C-MOVE sub-operations to orthanc.scp_port: relay them to our SCP on scp_port
                    back_relay = DelayRelay(scp_port, delay_s, listen_port=orthanc.scp_port)
                    relays = [web_relay, dicom_relay, back_relay]
                    http_url, dicom_port = f"http://127.0.0.1:{web_relay.port}", dicom_relay.port
                else:
                    http_url, dicom_port, scp_port = orthanc.http_url, orthanc.dicom_port, orthanc.scp_port
                baseline: dict[str, float] = {}
                reference: dict[str, Path] = {}
                try:
                    for protocol, label, option, run in configurations(
                        http_url, dicom_port, scp_port, orthanc, study, series
                    ):
                        name = f"{network}-{protocol}-{label}".replace(" ", "_").replace(",", "")
                        seconds, out = best_of(args.repeat, run, tmp, name)
                        baseline.setdefault(protocol, seconds)
                        reference.setdefault(protocol, out)
                        identical = same_files(reference[protocol], out)
                        pulled = {p.stem: pydicom.dcmread(p) for p in out.iterdir()}
                        pixels_equal = sorted(pulled) == sorted(originals) and all(
                            np.array_equal(pulled[u].pixel_array, originals[u].pixel_array) for u in originals
                        )
                        rows.append(
                            (
                                network,
                                protocol,
                                label,
                                option,
                                seconds,
                                baseline[protocol] / seconds,
                                identical and pixels_equal,
                            )
                        )
                        print(
                            f"{network:10s} {protocol:12s} {label:44s} {seconds:7.3f} s",
                            file=sys.stderr,
                            flush=True,
                        )
                finally:
                    for relay in relays:
                        relay.close()
        finally:
            next(orthanc_run, None)
        print(
            f"{args.slices} slices of 512x512 int16 ({size_mb:.0f} MB) from Orthanc {orthanc_version()}, "
            f"best of {args.repeat}; speed-up = serial baseline of the same protocol and network / time:"
        )
        print()
        print("| network | protocol | retrieval | `hepavol pacs pull` | time (s) | speed-up | files identical |")
        print("|---|---|---|---|---|---|---|")
        for network, protocol, label, option, seconds, ratio, ok in rows:
            print(
                f"| {network} | {protocol} | {label} | `{option}` | {seconds:.2f} | {ratio:.2f} | "
                f"{'yes' if ok else 'NO'} |"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def orthanc_version() -> str:
    import subprocess

    out = subprocess.run(["Orthanc", "--version"], capture_output=True, text=True, check=False).stdout
    return out.split()[1] if len(out.split()) > 1 else "?"


if __name__ == "__main__":
    main()
