"""Run the review app: bind, print the URL with its token, serve until Ctrl+C."""

from __future__ import annotations

import socket
import sys

from hepavol.app.server import AppState, create_app
from hepavol.errors import InputError
from hepavol.study.workspace import Workspace

__all__ = ["serve"]


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(
            f"cannot listen on {host}:{port} ({exc.strerror}): another program may use the port; give another "
            "with --port, or --port 0 for any free one."
        ) from exc
    sock.listen(64)
    return sock


def _warm_up() -> None:
    """Import what opening a scan needs (nibabel, ISA-L, the connected-component labelling) while the reader opens
    the page, so that the first scan does not wait for them (importing nibabel alone took 0.6 s of CPU on the
    loaded 2-core test machine, ``python -X importtime``)."""
    import importlib

    try:
        for module in ("nibabel", "isal.igzip", "hepavol.io.images", "hepavol.io.segmentation"):
            importlib.import_module(module)
        import numpy as np

        from hepavol.measurement import connected_components

        connected_components(np.zeros((2, 2, 2), bool))  # imports cc3d (or scipy.ndimage)
    except Exception:  # a missing module shows, with its message, when a scan is opened
        return


def serve(
    ws: Workspace, *, host: str = "127.0.0.1", port: int = 8765, reader: str | None = None, blinded: bool = False
) -> None:
    """Serve the review app on ``host:port`` until interrupted; prints the URL to open."""
    import uvicorn

    if blinded and not reader:
        raise InputError("a blinded read needs the reader's name: give --reader NAME with --blinded.")
    state = AppState(ws=ws, reader=reader or Workspace.actor(), blinded=blinded)
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    shown = "localhost" if host in ("127.0.0.1", "::1", "localhost") else host
    hosts = ["127.0.0.1", "localhost", "::1"] if shown == "localhost" else [host, "127.0.0.1", "localhost"]
    app = create_app(state, allowed_hosts=hosts)
    url = f"http://{'[' + host + ']' if ':' in host else shown}:{bound}/?token={state.token}"
    mode = " (blinded second read)" if blinded else ""
    print(f"hepavol review app on study {ws.root.name}, reader {state.reader}{mode}", flush=True)
    print(
        f"open this URL in your browser (it holds the access token; keep it to yourself):\n    {url}", flush=True
    )
    if host not in ("127.0.0.1", "::1", "localhost"):
        print(
            f"warning: listening on {host}: other machines can reach the app (token still required)",
            file=sys.stderr,
        )
    import threading

    threading.Thread(target=_warm_up, daemon=True).start()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl+C is how the app is stopped: not an error
        pass
    finally:
        sock.close()
    print("review app stopped; unsaved edits were discarded", flush=True)
