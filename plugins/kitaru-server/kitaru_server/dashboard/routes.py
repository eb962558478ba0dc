"""The dashboard's routes: its pages, login and logout, static files, and artifact previews.

The pages are shells; their scripts read everything from the REST API (`/api/v1/...`) with
the session cookie. These routes are not part of the published API (not in the OpenAPI
schema); `tests/test_dashboard.py` checks their authentication.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from kitaru.client import Artifact

from ..keys import AuthError, Principal
from ..security import LOCAL_ADMIN, require
from ..sessions import CSRF_FIELD, Session, clear_cookie, read_session, require_csrf, set_cookie
from . import shell
from .previews import PREVIEW_LIMIT, image_type, preview

STATIC_DIR = Path(__file__).parent / "static"
router = APIRouter(include_in_schema=False)
#: Largest login form body read (an API key and two short fields).
_FORM_LIMIT = 4096


def static_files() -> StaticFiles:
    """The dashboard's scripts, style sheet and icon (mounted at /dashboard/static)."""
    return StaticFiles(directory=STATIC_DIR)


def _safe_next(path: str | None) -> str:
    """Where to go after logging in: a dashboard path on this server, never another site."""
    if path and path.startswith("/dashboard/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/dashboard/"


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={"cache-control": "no-store"})


def _signed_in(request: Request) -> tuple[Session, Principal] | None:
    """The request's session and who it stands for; None when it must log in first."""
    state = request.app.state.kitaru
    session = read_session(request)
    if state.settings.single_user:
        return (session or Session.new()), LOCAL_ADMIN
    if session is None or session.token is None:
        return None
    try:
        return session, state.key_cache.verify(session.token)
    except AuthError:
        return None


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"/dashboard/login?next={quote(target, safe='')}", status_code=303)
    clear_cookie(response, request)
    return response


def _page(request: Request, name: str, title: str, **data: str) -> Response:
    found = _signed_in(request)
    if found is None:
        return _to_login(request)
    session, principal = found
    single = request.app.state.kitaru.settings.single_user
    who = "single-user mode" if single else f"{principal.account} ({principal.scope})"
    response = _html(shell.page(name, title, csrf=session.csrf, who=who, single_user=single,
                                data={**data, "scope": principal.scope}))
    set_cookie(response, request, session)  # refreshes its age; single-user: binds the CSRF token
    return response


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard/", status_code=307)


@router.get("/dashboard")
def dashboard_root() -> RedirectResponse:
    return RedirectResponse("/dashboard/", status_code=307)


@router.get("/dashboard/")
def executions_page(request: Request) -> Response:
    return _page(request, "executions", "Executions")


@router.get("/dashboard/executions/{exec_id}")
def execution_page(request: Request, exec_id: str) -> Response:
    return _page(request, "execution", f"Execution {exec_id[:12]}", exec=exec_id)


@router.get("/dashboard/diff")
def diff_page(request: Request) -> Response:
    return _page(request, "diff", "Compare executions")


@router.get("/dashboard/deployments")
def deployments_page(request: Request) -> Response:
    return _page(request, "deployments", "Deployments")


@router.get("/dashboard/memory")
def memory_page(request: Request) -> Response:
    return _page(request, "memory", "Memory")


@router.get("/dashboard/login")
def login_page(request: Request, next: str | None = None) -> Response:
    if request.app.state.kitaru.settings.single_user or _signed_in(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    session = read_session(request) or Session.new()
    response = _html(shell.login(csrf=session.csrf, next_path=_safe_next(next)))
    set_cookie(response, request, Session(None, session.csrf))
    return response


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > _FORM_LIMIT:
        return {}
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", errors="replace")).items()}


@router.post("/dashboard/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    session = read_session(request)
    require_csrf(request, session, form.get(CSRF_FIELD, ""))
    assert session is not None  # require_csrf refused a request without one
    next_path = _safe_next(form.get("next"))
    token = form.get("api_key", "").strip()
    try:
        request.app.state.kitaru.keys.verify(token)
    except AuthError as exc:
        return _html(shell.login(csrf=session.csrf, next_path=next_path, error=str(exc)), 401)
    response = RedirectResponse(next_path, status_code=303)
    set_cookie(response, request, Session.new(token))  # a new CSRF token too
    return response


@router.post("/dashboard/logout")
async def logout(request: Request) -> Response:
    form = await _form(request)
    require_csrf(request, read_session(request), form.get(CSRF_FIELD, ""))
    response = RedirectResponse("/dashboard/login", status_code=303)
    clear_cookie(response, request)
    return response


def _record(request: Request, artifact_id: str) -> Any:
    return request.app.state.kitaru.stack.registry.get_artifact(artifact_id)


def _bytes(request: Request, record: Any) -> bytes:
    """The artifact's serialized bytes (inline in its record, or its blob)."""
    return Artifact.of(record, request.app.state.kitaru.stack).load_bytes()


@router.get("/dashboard/api/artifacts/{artifact_id}/preview", dependencies=[require("read")])
def artifact_preview(request: Request, artifact_id: str) -> JSONResponse:
    """What the dashboard shows of an artifact's value (see `previews`)."""
    record = _record(request, artifact_id)
    info = {"artifact_id": record.artifact_id, "name": record.name, "size": record.size,
            "type_name": record.type_name, "serializer": record.serializer}
    if record.size > PREVIEW_LIMIT:
        return JSONResponse({**info, "kind": "large",
                             "note": f"{record.size} bytes: too large to preview here"})
    data = _bytes(request, record)
    return JSONResponse({**info, **preview(record, data).to_dict()})


@router.get("/dashboard/api/artifacts/{artifact_id}/image", dependencies=[require("read")])
def artifact_image(request: Request, artifact_id: str) -> Response:
    """An image artifact's bytes (PNG, JPEG, GIF, WebP), for an `<img>`; 404 for anything else."""
    record = _record(request, artifact_id)
    if record.serializer != "bytes":
        return JSONResponse({"error": "NotAnImage", "detail": "this artifact is not an image"}, 404)
    data = _bytes(request, record)
    media = image_type(data)
    if media is None:
        return JSONResponse({"error": "NotAnImage", "detail": "this artifact is not an image"}, 404)
    return Response(data, media_type=media, headers={"cache-control": "private, max-age=3600"})
