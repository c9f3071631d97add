"""A peer that answers A-ASSOCIATE-RJ and closes the connection at once (as Orthanc does) is reported as a rejection.

pynetdicom's requestor may see the closed socket before it reads the queued A-ASSOCIATE-RJ and then reports an abort
(Orthanc under load: 46 of 300 echoes before the fix). The client keys the message on the received PDU instead.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from pynetdicom.pdu import A_ASSOCIATE_RJ

from hepavol.pacs import PacsError
from hepavol.pacs.dimse import DimseClient


@pytest.fixture
def rejecting_peer() -> Iterator[int]:
    """A TCP port whose peer reads the request, sends A-ASSOCIATE-RJ (permanent, service user, reason 3) and closes."""
    pdu = A_ASSOCIATE_RJ()
    pdu.result, pdu.source, pdu.reason_diagnostic = (
        1,
        1,
        3,
    )  # PS3.8 table 9-21: 3 = calling AE title not recognized
    data = pdu.encode()
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    server.close()
    thread.join(timeout=5)


def test_rejection_then_close_is_reported_as_rejection_with_its_reason(rejecting_peer: int) -> None:
    client = DimseClient("127.0.0.1", rejecting_peer, aet="STRANGER", called_aet="PACS", timeout_s=5)
    for _ in range(30):
        with pytest.raises(PacsError) as err:
            client.echo()
        assert str(err.value).startswith(
            f"DICOM node PACS@127.0.0.1:{rejecting_peer} rejected the association from AE title 'STRANGER' "
            "(Calling AE title not recognised). Check the called AE title (--called-aet)"
        )
