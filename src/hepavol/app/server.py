"""``hepavol study serve``: the review app's web server (a thin layer over the study's operations).

Security, as Jupyter does it and a bit more:

* the server binds to loopback unless told otherwise and prints one URL with a random access token; opening it
  sets a session cookie (HttpOnly, SameSite=Strict) and redirects to a URL without the token, so the token stays
  out of the browser's history;
* every request needs the session cookie; every change (POST) also needs the session's CSRF token in the
  ``X-CSRF-Token`` header, which only the app's own page can read (``/api/session``);
* requests whose ``Host`` is not the server's own are refused (DNS rebinding);
* nothing identifying is sent: the browser gets pseudonyms, scan dates, pixels and measurements; no original id,
  name, birth date or file path (:mod:`hepavol.study.reading` returns none); the access log is off, so no URL is
  logged.

Every route calls a study operation (:mod:`hepavol.study.reading`, :func:`hepavol.study.review.record_review`);
a :class:`~hepavol.errors.InputError` becomes a JSON ``{"error": message}`` with status 400 that the page shows.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from hepavol.app.drafts import Draft
from hepavol.app.volumes import ScanCache
from hepavol.errors import HepavolError, InputError
from hepavol.study.workspace import Workspace

__all__ = ["AppState", "create_app"]

COOKIE = "hepavol_session"
STATIC = resources.files("hepavol.app") / "static"


@dataclass
class AppState:
    """What the server keeps: the workspace, the access token, the sessions (id → CSRF token) and the scans."""

    ws: Workspace
    reader: str
    blinded: bool = False  # a blinded second read: own segmentation chain, nothing of the study's read shown
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    sessions: dict[str, str] = field(default_factory=dict)
    scans: ScanCache = field(default_factory=ScanCache)
    drafts: dict[tuple[str, int], Draft] = field(default_factory=dict)  # (session, scan) → unsaved edits
    lock: threading.Lock = field(default_factory=threading.Lock)

    def csrf_of(self, request: Request) -> str | None:
        session = request.cookies.get(COOKIE)
        return self.sessions.get(session) if session else None


Handler = Callable[[Request], Awaitable[Response]]


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(state: AppState, *, allowed_hosts: list[str] | None = None) -> Starlette:
    """The ASGI app for one study workspace."""
    from starlette.concurrency import run_in_threadpool

    from hepavol.study import reading, review

    def guarded(func: Callable[..., Any], *, change: bool = False) -> Handler:
        async def endpoint(request: Request) -> Response:
            csrf = state.csrf_of(request)
            if csrf is None:
                return _error("not signed in: open the URL that 'hepavol study serve' printed.", 401)
            if change:
                sent = request.headers.get("x-csrf-token", "")
                if not hmac.compare_digest(sent, csrf):
                    return _error("refused: the request has no valid CSRF token (reload the page).", 403)
            try:
                body = await request.json() if change else None
            except ValueError:
                return _error("the request body is not JSON.")
            try:
                result = await run_in_threadpool(func, request, body)
            except HepavolError as exc:
                return _error(await run_in_threadpool(_redacted, str(exc), request))
            if isinstance(result, Response):
                return result
            return JSONResponse(result)

        return endpoint

    def _redacted(message: str, request: Request) -> str:
        """The message with file paths replaced by labels (as the CLI's study messages): paths may hold names."""
        from hepavol.study.redact import PathRedactor
        from hepavol.study.status import path_labels

        labels: dict[str, str] = {}
        pseudonym = request.path_params.get("pseudonym")
        if pseudonym:
            try:
                labels = {path: label for label, path in path_labels(state.ws, [pseudonym])}
            except HepavolError:
                labels = {}
        return PathRedactor(labels, workspace=state.ws.root).text(message)

    async def index(request: Request) -> Response:
        token = request.query_params.get("token")
        if token is not None:
            if not hmac.compare_digest(token, state.token):
                return _error("wrong access token: use the URL that 'hepavol study serve' printed.", 401)
            session = secrets.token_urlsafe(32)
            state.sessions[session] = secrets.token_urlsafe(32)
            response: Response = RedirectResponse("/", status_code=303)
            response.set_cookie(COOKIE, session, httponly=True, samesite="strict", path="/")
            return response
        if state.csrf_of(request) is None:
            return _error("not signed in: open the URL that 'hepavol study serve' printed.", 401)
        return FileResponse(str(STATIC / "index.html"), headers={"Cache-Control": "no-store"})

    blind = state.reader if state.blinded else None

    def _blinded_refusal(what: str) -> None:
        if state.blinded:
            raise InputError(
                f"{what} is the study's read, not part of a blinded second read: this app was started with "
                "--blinded, which stores the reader's own segmentations only."
            )

    def _patient_view(pseudonym: str) -> dict[str, Any]:
        read = reading.patient_read(state.ws, pseudonym).to_dict()
        if not state.blinded:
            read["second_reads"] = bool(reading.has_second_reads(state.ws, pseudonym))
            return read
        # blinded: nothing of the study's read (its analysis, responses, decisions, lesion measurements)
        row = read["row"]
        for key in ("analysis", "failed", "best_overall_response", "signed_off"):
            row[key] = None
        row["reviewed"] = False
        read.update(
            assessments=[],
            targets=[],
            warnings=[],
            second_reads=False,
            recist_marks={"non_target": {}, "new_lesions": {}},
            lesion_links={},
            stale_links=[],
        )
        for scan in read["scans"]:
            scan.update(lesions=[], liver_volume_ml=None, total_tumor_volume_ml=None, tumor_burden_percent=None)
        return read

    def session_info(request: Request, _body: Any) -> dict[str, Any]:
        return {
            "reader": state.reader,
            "csrf": state.csrf_of(request),
            "study": state.ws.root.name,
            "blinded": state.blinded,
        }

    def worklist(_request: Request, _body: Any) -> dict[str, Any]:
        rows = reading.worklist(state.ws)
        if state.blinded:
            hidden = {"failed": None, "best_overall_response": None, "signed_off": None, "reviewed": False}
            listed = [{**r.to_dict(), **hidden} for r in rows]
            return {"patients": listed, "progress": {"analysed": 0, "eligible": len(listed)}}
        done = sum(1 for r in rows if r.analysis == reading.UP_TO_DATE)
        eligible = sum(1 for r in rows if r.eligibility == "eligible")
        return {"patients": [r.to_dict() for r in rows], "progress": {"analysed": done, "eligible": eligible}}

    def patient(request: Request, _body: Any) -> dict[str, Any]:
        """The patient; the scan the page opens next (``?open=ID``, else the first segmented) starts loading now."""
        pseudonym = request.path_params["pseudonym"]
        view = _patient_view(pseudonym)
        wanted = request.query_params.get("open")
        segmented = [s["study_pk"] for s in view["scans"] if s["segmented"]]
        study_pk = int(wanted) if wanted and wanted.isdigit() and int(wanted) in segmented else None
        if study_pk is None and segmented and view["scans"][0]["segmented"]:
            study_pk = segmented[0]
        if study_pk is not None:
            files = reading.scan_files(state.ws, pseudonym, study_pk, blinded_reader=blind)
            if files not in state.scans:
                threading.Thread(target=_quietly, args=(state.scans.get, files), daemon=True).start()
        return view

    def _scan(request: Request) -> Any:
        pseudonym = request.path_params["pseudonym"]
        files = reading.scan_files(state.ws, pseudonym, int(request.path_params["study_pk"]), blinded_reader=blind)
        return state.scans.get(files)

    def scan_meta(request: Request, _body: Any) -> dict[str, Any]:
        if state.blinded:
            scan = _scan(request)
            lesions = []  # the study's measurements are not shown to a blinded reader
        else:  # the lesions are read from the database while the scan loads
            from concurrent.futures import ThreadPoolExecutor

            pseudonym, study_pk = request.path_params["pseudonym"], int(request.path_params["study_pk"])
            with ThreadPoolExecutor(max_workers=1) as pool:
                pending = pool.submit(reading.scan_lesions, state.ws, pseudonym, study_pk)
                scan = _scan(request)
                lesions = pending.result()
        draft = state.drafts.get(_draft_key(request))
        editing = draft.state() if draft is not None else None
        return {**scan.meta(), "lines": scan.lines(lesions), "editing": editing}

    def prefetch(request: Request, _body: Any) -> dict[str, Any]:
        """Start reading a patient's first scans into the cache (the reader hovers over the patient)."""
        pseudonym = request.path_params["pseudonym"]
        read = reading.patient_read(state.ws, pseudonym)
        wanted = [s.study_pk for s in read.scans if s.segmented][:PREFETCH_SCANS]
        files = [reading.scan_files(state.ws, pseudonym, study_pk, blinded_reader=blind) for study_pk in wanted]

        def load_in_turn() -> None:  # one after the other: the first scan is the one the page shows first
            for f in files:
                _quietly(state.scans.get, f)

        threading.Thread(target=load_in_turn, daemon=True).start()
        return {"prefetching": len(wanted)}

    def _binary(data: bytes) -> Response:
        return Response(
            data, media_type="application/octet-stream", headers={"Cache-Control": "private, max-age=60"}
        )

    def scan_slice(request: Request, _body: Any) -> Response:
        plane = request.query_params.get("plane", "axial")
        return _binary(_scan(request).slice_bytes(int(request.path_params["k"]), plane))

    def scan_overlay(request: Request, _body: Any) -> Response:
        plane = request.query_params.get("plane", "axial")
        draft = state.drafts.get(_draft_key(request))
        if draft is not None:
            return _binary(draft.overlay_bytes(int(request.path_params["k"]), plane))
        return _binary(_scan(request).overlay_bytes(int(request.path_params["k"]), plane))

    def link(request: Request, _body: Any) -> dict[str, Any]:
        """A point of one scan (display index) in another scan of the patient, through the stored registration."""
        pseudonym = request.path_params["pseudonym"]
        q = request.query_params
        try:
            source, target = int(q["from"]), int(q["to"])
            point = [float(q["k"]), float(q["r"]), float(q["c"])]
        except (KeyError, ValueError):
            raise InputError("a link needs from, to (scan ids) and k, r, c (a display index).") from None
        a = state.scans.get(reading.scan_files(state.ws, pseudonym, source, blinded_reader=blind))
        b = state.scans.get(reading.scan_files(state.ws, pseudonym, target, blinded_reader=blind))
        matrices = reading.registration_matrices(state.ws, pseudonym)  # the registration is of the images
        lps = a.display_to_lps(point)
        registered = source in matrices and target in matrices
        if registered:
            baseline = np.linalg.solve(np.asarray(matrices[source]), np.append(lps, 1.0))
            lps = (np.asarray(matrices[target]) @ baseline)[:3]
        k, r, c = (float(v) for v in b.lps_to_display(lps))
        n = b.pixels.shape
        inside = 0 <= round(k) < n[0] and 0 <= round(r) < n[1] and 0 <= round(c) < n[2]
        return {"k": k, "r": r, "c": c, "registered": registered, "inside": inside}

    def _draft_key(request: Request) -> tuple[str, int]:
        return request.cookies.get(COOKIE, ""), int(request.path_params["study_pk"])

    def edit(request: Request, body: Any) -> dict[str, Any]:
        from hepavol.study.review import require_open

        if not isinstance(body, dict):
            raise InputError("an edit is a JSON object with an 'action'.")
        key = _draft_key(request)
        with state.lock:
            draft = state.drafts.get(key)
            if body.get("action") == "discard":
                state.drafts.pop(key, None)
                return {"what": "discarded", "edits": 0, "can_undo": False, "can_redo": False}
            if draft is None:
                with state.ws.db.transaction() as session:
                    patient = reading.patient_by_pseudonym(session, request.path_params["pseudonym"])
                    if not state.blinded:
                        require_open(session, patient, "editing its segmentations")
                draft = Draft.start(_scan(request))
                state.drafts[key] = draft
            return draft.apply(body)

    def save(request: Request, body: Any) -> dict[str, Any]:
        from hepavol.study.mask_versions import reanalyse, save_segmentation_version

        key = _draft_key(request)
        pseudonym = request.path_params["pseudonym"]
        with state.lock:
            draft = state.drafts.get(key)
            if draft is None or not draft.editor.changes:
                raise InputError("nothing to save: no edits on this scan since it was opened or saved.")
            note = body.get("note") if isinstance(body, dict) and isinstance(body.get("note"), str) else None
            saved = save_segmentation_version(
                state.ws,
                pseudonym,
                key[1],
                draft.scan.image.with_array(draft.editor.labels),
                reader=state.reader,
                based_on=draft.based_on,
                liver_label=draft.scan.files.liver_label,
                tumor_labels=draft.scan.files.tumor_labels,
                changed_voxels=draft.changed_voxels,
                note=note or None,
                blinded_reader=blind,
            )
            state.drafts.pop(key, None)
        outcome = (
            "blinded read: the study's analysis is not changed"
            if state.blinded
            else reanalyse(state.ws, pseudonym)
        )
        return {
            "saved": {"version": saved.version, "changed_voxels": saved.changed_voxels},
            "analysis": outcome,
            "patient": _patient_view(pseudonym),
        }

    def versions(request: Request, _body: Any) -> list[dict[str, object]]:
        from hepavol.study.mask_versions import segmentation_versions

        pseudonym, study_pk = request.path_params["pseudonym"], int(request.path_params["study_pk"])
        return segmentation_versions(state.ws, pseudonym, study_pk, blinded_reader=blind)

    def disagreements(request: Request, _body: Any) -> list[dict[str, Any]]:
        from hepavol.study.second_reads import second_reads

        _blinded_refusal("comparing reads")
        return [r.to_dict() for r in second_reads(state.ws, request.path_params["pseudonym"])]

    def _review(request: Request, what: str, reason: str | None, **decision: Any) -> dict[str, Any]:
        """One review decision through the study's operation (the CLI's ``study review``), then the patient."""
        _blinded_refusal(what)
        pseudonym = request.path_params["pseudonym"]
        review.record_review(state.ws, pseudonym, reason=reason, reviewer=state.reader, **decision)
        return _patient_view(pseudonym)

    def sign_off(request: Request, body: Any) -> dict[str, Any]:
        action = _field(body, "action")
        if action not in ("signed", "reopened"):
            raise InputError("sign-off action must be 'signed' or 'reopened'.")
        reason = body.get("reason") if isinstance(body.get("reason"), str) else None
        return _review(request, "signing off", reason, sign_off=action)

    def eligibility(request: Request, body: Any) -> dict[str, Any]:
        return _review(request, "eligibility", _field(body, "reason"), eligibility=_field(body, "decision"))

    def targets(request: Request, body: Any) -> dict[str, Any]:
        chosen = body.get("targets") if isinstance(body, dict) else None
        if not (chosen == "auto" or (isinstance(chosen, list) and all(isinstance(t, str) for t in chosen))):
            raise InputError('targets must be "auto" or a list of baseline lesion ids such as ["L1", "L3"].')
        return _review(request, "choosing targets", _field(body, "reason"), targets=chosen)

    def recist_marks(request: Request, body: Any) -> dict[str, Any]:
        """The reader's RECIST calls: ``{"non_target": ["2024-03-01=progression"], "new_lesions": ["L6=equivocal"]}``."""
        items: dict[str, list[str]] = {}
        for key in ("non_target", "new_lesions"):
            value = body.get(key, []) if isinstance(body, dict) else None
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise InputError(f'{key} must be a list of "KEY=CALL" strings, e.g. ["2024-03-01=progression"].')
            items[key] = value
        return _review(
            request,
            "marking RECIST calls",
            _field(body, "reason"),
            non_target=items["non_target"],
            new_lesions=items["new_lesions"],
        )

    def lesion_links(request: Request, body: Any) -> dict[str, Any]:
        """The reader's relinks: ``{"links": ["2024-05-01:L2=L3"], "reason": "..."}`` (``study review --link``),
        then the patient's analysis is recomputed so that the tracks and responses show at once."""
        from hepavol.study.mask_versions import reanalyse

        links = body.get("links") if isinstance(body, dict) else None
        if not (isinstance(links, list) and links and all(isinstance(v, str) for v in links)):
            raise InputError('links must be a list of "DATE:LESION=TRACK" strings, e.g. ["2024-05-01:L2=L3"].')
        _review(request, "relinking lesions", _field(body, "reason"), links=links)
        pseudonym = request.path_params["pseudonym"]
        outcome = reanalyse(state.ws, pseudonym)
        return {**_patient_view(pseudonym), "analysis_outcome": outcome}

    def second_targets(request: Request, body: Any) -> Any:
        """A blinded reader's own targets (GET: theirs, or in the study's app every blinded reader's beside the
        study's; POST ``{"targets": ["L2"] | "auto", "reason": ...}``: only in a blinded read)."""
        from hepavol.study.second_reads import (
            record_second_read_targets,
            second_read_readers,
            second_read_targets,
        )

        pseudonym = request.path_params["pseudonym"]
        if request.method == "POST":
            if not state.blinded:
                raise InputError(
                    "a blinded reader's own targets are chosen in a blinded read (hepavol study serve --blinded); "
                    "the study's targets are set in the Decisions box."
                )
            chosen = body.get("targets") if isinstance(body, dict) else None
            if not (chosen == "auto" or (isinstance(chosen, list) and all(isinstance(t, str) for t in chosen))):
                raise InputError('targets must be "auto" or a list of baseline lesion ids such as ["L1", "L3"].')
            record_second_read_targets(
                state.ws, pseudonym, chosen, reader=state.reader, reason=_field(body, "reason")
            )
        if state.blinded:
            return second_read_targets(state.ws, pseudonym, state.reader).without_study().to_dict()
        return [
            second_read_targets(state.ws, pseudonym, r).to_dict() for r in second_read_readers(state.ws, pseudonym)
        ]

    def accept_segmentation(request: Request, body: Any) -> dict[str, Any]:
        """The reader accepts the segmentation ``study segment`` proposed for this scan (``study review
        --accept-segmentation``): ``{"reason": "..."}`` (optional)."""
        from hepavol.study.proposals import accept_segmentation as accept

        _blinded_refusal("accepting a proposed segmentation")
        pseudonym = request.path_params["pseudonym"]
        reason = body.get("reason") if isinstance(body, dict) and isinstance(body.get("reason"), str) else None
        accept(state.ws, pseudonym, "", study_pk=int(request.path_params["study_pk"]), reader=state.reader,
               reason=reason)  # fmt: skip
        return _patient_view(pseudonym)

    patient_path = "/api/patients/{pseudonym:str}"
    scan_path = patient_path + "/scans/{study_pk:int}"
    routes = [
        Route("/", index),
        Route("/favicon.ico", lambda _request: Response(status_code=204)),
        Route("/api/session", guarded(session_info)),
        Route("/api/worklist", guarded(worklist)),
        Route(patient_path, guarded(patient)),
        Route(scan_path, guarded(scan_meta)),
        Route(scan_path + "/slices/{k:int}", guarded(scan_slice)),
        Route(patient_path + "/link", guarded(link)),
        Route(patient_path + "/prefetch", guarded(prefetch)),
        Route(scan_path + "/overlay/{k:int}", guarded(scan_overlay)),
        Route(patient_path + "/eligibility", guarded(eligibility, change=True), methods=["POST"]),
        Route(patient_path + "/targets", guarded(targets, change=True), methods=["POST"]),
        Route(patient_path + "/sign-off", guarded(sign_off, change=True), methods=["POST"]),
        Route(patient_path + "/recist-marks", guarded(recist_marks, change=True), methods=["POST"]),
        Route(patient_path + "/lesion-links", guarded(lesion_links, change=True), methods=["POST"]),
        Route(scan_path + "/edit", guarded(edit, change=True), methods=["POST"]),
        Route(scan_path + "/save", guarded(save, change=True), methods=["POST"]),
        Route(scan_path + "/accept-segmentation", guarded(accept_segmentation, change=True), methods=["POST"]),
        Route(scan_path + "/versions", guarded(versions)),
        Route(patient_path + "/second-reads", guarded(disagreements)),
        Route(patient_path + "/second-read-targets", guarded(second_targets)),
        Route(patient_path + "/second-read-targets", guarded(second_targets, change=True), methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or ["127.0.0.1", "localhost"])]
    return Starlette(routes=routes, middleware=middleware)


PREFETCH_SCANS = 2  # the scans a patient's page opens first: the baseline and the next one


def _quietly(func: Callable[..., Any], *args: Any) -> None:
    """Run a prefetch; a failure shows when the scan is opened (with its message), not here."""
    try:
        func(*args)
    except Exception:  # reported again, with its message, by the request that opens the scan
        return


def _field(body: Any, name: str) -> str:
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, str):
        raise InputError(f"the request needs '{name}' (text).")
    return value
