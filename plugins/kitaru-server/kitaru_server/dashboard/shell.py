"""The HTML of the dashboard's pages: a shell (navigation, the CSRF token, the page's script)
that the page's script fills from the REST API; and the login page, which needs no script."""

from __future__ import annotations

from html import escape

from ..sessions import CSRF_FIELD

STATIC = "/dashboard/static"
#: (page, title, path) of the navigation bar.
NAV = (
    ("executions", "Executions", "/dashboard/"),
    ("deployments", "Deployments", "/dashboard/deployments"),
    ("memory", "Memory", "/dashboard/memory"),
    ("diff", "Compare", "/dashboard/diff"),
)


def _head(title: str, csrf: str, script: str | None) -> str:
    module = f'<script type="module" src="{STATIC}/pages/{script}.js"></script>' if script else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · kitaru</title>"
        f'<link rel="icon" href="{STATIC}/favicon.svg" type="image/svg+xml">'
        f'<link rel="stylesheet" href="{STATIC}/dashboard.css">'
        f'<meta name="csrf-token" content="{escape(csrf)}">{module}</head>'
    )


def page(name: str, title: str, *, csrf: str, who: str, single_user: bool,
         data: dict[str, str] | None = None) -> str:
    """A page shell: the page's script (static/pages/<name>.js) renders into `<main>`."""
    links = "".join(
        f'<a href="{path}"{" aria-current=page" if key == name else ""}>{label}</a>'
        for key, label, path in NAV
    )
    logout = "" if single_user else (
        f'<form method="post" action="/dashboard/logout" class="logout">'
        f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf)}">'
        '<button type="submit">Log out</button></form>'
    )
    attrs = "".join(f' data-{escape(k)}="{escape(v)}"' for k, v in (data or {}).items())
    return (
        _head(title, csrf, name)
        + '<body><header class="top"><a class="brand" href="/dashboard/">kitaru</a>'
        f'<nav>{links}</nav><span class="who">{escape(who)}</span>{logout}</header>'
        f'<main id="app" data-page="{escape(name)}"{attrs}><p class="muted">Loading…</p></main>'
        "</body></html>"
    )


def login(*, csrf: str, next_path: str, error: str | None = None) -> str:
    """The login form: an API key, kept in the session cookie once it is verified."""
    problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return (
        _head("Log in", csrf, None)
        + '<body class="login"><main><h1>kitaru</h1>'
        '<form method="post" action="/dashboard/login" class="card">'
        '<label for="api_key">API key</label>'
        '<input id="api_key" name="api_key" type="password" autocomplete="off" required '
        'placeholder="kitaru_…" autofocus>'
        f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf)}">'
        f'<input type="hidden" name="next" value="{escape(next_path)}">'
        f'{problem}<button type="submit">Log in</button>'
        '<p class="muted">Create a key with <code>kitaru auth api-keys create ACCOUNT</code>. '
        "It is kept in this browser's session cookie only.</p></form></main></body></html>"
    )
