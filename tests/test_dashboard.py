"""The dashboard's security and pages without a browser: every response carries the CSP,
login keeps the API key in a signed HttpOnly SameSite=Strict cookie, state changes with
that cookie need the CSRF token, single-user mode needs no login but still refuses a
browser's request without the token; artifact previews render text, JSON, markdown
(safely) and images and never unpickle."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
from fastapi.testclient import TestClient
from kitaru_server.app import create_app
from kitaru_server.dashboard.previews import render_markdown
from kitaru_server.sessions import COOKIE
from kitaru_server.settings import ServerSettings

from kitaru import checkpoint, flow

PAGES = ["/dashboard/", "/dashboard/executions/abc", "/dashboard/diff", "/dashboard/deployments",
         "/dashboard/memory"]
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f"
       b"\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00"
       b"\x00\x00\x00IEND\xaeB`\x82")


@pytest.fixture
def app(kitaru_home: Path):
    return create_app(ServerSettings(key_cache_seconds=0))


@pytest.fixture
def token(app) -> str:
    keys = app.state.kitaru.keys
    keys.create_account("web")
    return keys.create_key("web", scope="operator")[1]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def log_in(http: TestClient, token: str) -> str:
    """Log in through the form; returns the session's CSRF token (from a page)."""
    form = http.get("/dashboard/login")
    assert form.status_code == 200
    done = http.post("/dashboard/login", data={"api_key": token, "csrf_token": csrf_of(form.text),
                                               "next": "/dashboard/"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/dashboard/"
    page = http.get("/dashboard/")
    assert page.status_code == 200
    return csrf_of(page.text)


def test_every_response_carries_the_content_security_policy(app, token: str) -> None:
    http = TestClient(app, raise_server_exceptions=False)
    urls = ["/", "/health", "/ready", "/dashboard/login", "/dashboard/static/dashboard.css",
            "/dashboard/static/pages/execution.js", "/dashboard/static/nothing.js",
            "/api/v1/executions", "/api/v1/openapi.json", "/no/such/page", *PAGES]
    for url in urls:
        got = http.get(url, follow_redirects=False)
        policy = got.headers.get("content-security-policy", "")
        assert "default-src 'self'" in policy and "script-src 'self';" in policy, (url, policy)
        assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
        assert got.headers["x-content-type-options"] == "nosniff"
    posted = http.post("/dashboard/logout", follow_redirects=False)
    assert "default-src 'self'" in posted.headers["content-security-policy"]
    # The OpenAPI browser loads Swagger UI from its CDN: its page alone allows that.
    docs = http.get("/api/v1/docs")
    assert docs.status_code == 200 and "cdn.jsdelivr.net" in docs.headers["content-security-policy"]


def test_pages_need_a_login_and_keep_the_key_in_a_signed_strict_cookie(app, token: str) -> None:
    http = TestClient(app)
    for page in PAGES:
        got = http.get(page, follow_redirects=False)
        assert got.status_code == 303, page
        assert got.headers["location"].startswith("/dashboard/login?next=")
    form = http.get("/dashboard/login")
    assert 'type="password"' in form.text and 'name="csrf_token"' in form.text
    # a wrong key: the form again, with the reason
    bad = http.post("/dashboard/login", data={"api_key": "kitaru_nope", "csrf_token": csrf_of(form.text)})
    assert bad.status_code == 401 and "malformed" in bad.text
    http.cookies.clear()
    form = http.get("/dashboard/login")
    done = http.post("/dashboard/login", data={"api_key": token, "csrf_token": csrf_of(form.text),
                                               "next": "/dashboard/memory"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/dashboard/memory"
    cookie = done.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert token not in cookie.split(";")[0]  # signed and encoded, not the plain key
    # nor readable by decoding it: the payload (before the signature) holds the key encrypted
    payload = cookie.split(";")[0].split("=", 1)[1].split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert token.encode() not in decoded and token.split("_")[-1].encode() not in decoded
    page = http.get("/dashboard/executions/abc")
    assert page.status_code == 200 and 'data-exec="abc"' in page.text
    assert "web (operator)" in page.text and "/dashboard/static/pages/execution.js" in page.text
    # the REST API takes the session cookie instead of a bearer key
    assert http.get("/api/v1/auth/whoami").json()["account"] == "web"
    # a tampered cookie is no session
    value = http.cookies[COOKIE]
    http.cookies.clear()
    http.cookies.set(COOKIE, value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"))
    assert http.get("/api/v1/auth/whoami").status_code == 401
    assert http.get("/dashboard/", follow_redirects=False).status_code == 303


def test_state_changes_with_the_cookie_need_the_csrf_token(app, token: str) -> None:
    http = TestClient(app)
    csrf = log_in(http, token)
    url = "/api/v1/executions/nothing-here/input"
    refused = http.post(url, json={"value": True})
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    wrong = http.post(url, json={"value": True}, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    allowed = http.post(url, json={"value": True}, headers={"X-CSRF-Token": csrf})
    assert allowed.status_code == 404  # through authentication and CSRF to the route
    # a bearer key is no ambient credential: no CSRF token needed with it
    plain = TestClient(app)
    assert plain.post(url, json={"value": True},
                      headers={"Authorization": f"Bearer {token}"}).status_code == 404
    # logout needs the token too, and ends the session
    assert http.post("/dashboard/logout", data={}, follow_redirects=False).status_code == 403
    out = http.post("/dashboard/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/dashboard/login"
    assert http.get("/api/v1/auth/whoami").status_code == 401


def test_login_needs_the_form_token_and_never_redirects_off_site(app, token: str) -> None:
    http = TestClient(app)
    http.get("/dashboard/login")
    forged = http.post("/dashboard/login", data={"api_key": token, "csrf_token": "guess"})
    assert forged.status_code == 403
    form = http.get("/dashboard/login?next=//evil.example/x")
    assert 'name="next" value="/dashboard/"' in form.text
    done = http.post("/dashboard/login", data={"api_key": token, "csrf_token": csrf_of(form.text),
                                               "next": "https://evil.example/"}, follow_redirects=False)
    assert urlparse(done.headers["location"]).netloc == ""


def test_a_rotated_key_ends_the_session(app, token: str) -> None:
    http = TestClient(app)
    log_in(http, token)
    keys = app.state.kitaru.keys
    keys.rotate_key(keys.list_keys("web")[0].key_id)
    assert http.get("/api/v1/auth/whoami").status_code == 401
    assert http.get("/dashboard/", follow_redirects=False).status_code == 303


def test_single_user_mode_needs_no_login_but_refuses_a_browser_without_the_token(kitaru_home: Path) -> None:
    http = TestClient(create_app(ServerSettings(single_user=True)))
    page = http.get("/dashboard/")
    assert page.status_code == 200 and "single-user mode" in page.text and "Log out" not in page.text
    csrf = csrf_of(page.text)
    assert http.get("/dashboard/login", follow_redirects=False).status_code == 303
    url = "/api/v1/executions/nothing-here/cancel"
    # another site's page posting to the local server: the browser sends its Origin
    other = TestClient(http.app)
    assert other.post(url, headers={"Origin": "https://evil.example"}).status_code == 403
    assert http.post(url, headers={"Origin": "http://testserver"}).status_code == 403
    assert http.post(url, headers={"Origin": "http://testserver", "X-CSRF-Token": csrf}).status_code == 404
    # programs (curl, the kitaru client) send no Origin: unchanged
    assert other.post(url).status_code == 404


def test_dashboard_api_routes_need_a_session_or_key(app, token: str) -> None:
    http = TestClient(app)
    for url in ("/dashboard/api/artifacts/x/preview", "/dashboard/api/artifacts/x/image"):
        assert http.get(url).status_code == 401
        assert http.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 404


@checkpoint
def report() -> str:
    import kitaru

    kitaru.save("chart", PNG)
    kitaru.save("blob", b"\x00\x01\xfe")
    kitaru.save("notes.md", "# Findings\n\n<script>alert(1)</script> and [x](javascript:alert(2))")
    kitaru.save("opaque", {1, 2, 3})
    return "plain words, nothing more"


@checkpoint
def numbers() -> dict[str, int]:
    return {"a": 1, "b": 2}


@flow
def previews_flow() -> dict[str, int]:
    report()
    return numbers().load()


def test_artifact_previews_render_each_kind_safely(app, token: str) -> None:
    handle = previews_flow.run()
    handle.wait(timeout=60)
    http = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    execution = http.get(f"/api/v1/executions/{handle.exec_id}").json()
    arts = {a["name"]: a["artifact_id"] for c in execution["checkpoints"] for a in c["artifacts"]}
    kinds = {}
    for name, aid in arts.items():
        got = http.get(f"/dashboard/api/artifacts/{aid}/preview")
        assert got.status_code == 200, got.text
        kinds[name] = got.json()
    assert kinds["chart"]["kind"] == "image"
    image = http.get(f"/dashboard/api/artifacts/{arts['chart']}/image")
    assert image.headers["content-type"] == "image/png" and image.content == PNG
    assert http.get(f"/dashboard/api/artifacts/{arts['blob']}/image").status_code == 404
    assert kinds["blob"]["kind"] == "binary"
    md = kinds["notes.md"]
    assert md["kind"] == "markdown" and "<h1>Findings</h1>" in md["html"]
    assert "<script>" not in md["html"] and "&lt;script&gt;" in md["html"]
    assert "<a" not in md["html"]  # the javascript: link stays text
    assert kinds["opaque"]["kind"] == "python" and "does not unpickle" in kinds["opaque"]["note"]
    outputs = {c["name"]: c["artifacts"] for c in execution["checkpoints"]}
    text = next(a for a in outputs["report"] if a["direction"] == "output")
    shown = http.get(f"/dashboard/api/artifacts/{text['artifact_id']}/preview").json()
    assert (shown["kind"], shown["text"]) == ("text", "plain words, nothing more")
    data = next(a for a in outputs["numbers"] if a["direction"] == "output")
    shown = http.get(f"/dashboard/api/artifacts/{data['artifact_id']}/preview").json()
    assert (shown["kind"], shown["value"]) == ("json", {"a": 1, "b": 2})


def test_markdown_keeps_safe_links_only() -> None:
    html = render_markdown(
        "[a](https://x.example) [b](/dashboard/) [c](JavaScript:alert(1)) [d](data:text/html,x)")
    assert 'href="https://x.example"' in html and 'href="/dashboard/"' in html
    assert "href=\"javascript" not in html.lower() and "href=\"data:" not in html
