"""The published OpenAPI schema (docs/openapi.json) is the app's."""

from __future__ import annotations

import json
from pathlib import Path

from kitaru_server.app import openapi_json

PUBLISHED = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"
REGENERATE = "kitaru server openapi -o docs/openapi.json"


def test_published_openapi_is_the_apps(kitaru_home: Path) -> None:
    current = json.loads(openapi_json())
    published = json.loads(PUBLISHED.read_text(encoding="utf-8"))
    stale = sorted(set(current["paths"]) ^ set(published["paths"]))
    assert current == published, (
        f"docs/openapi.json differs from the server's schema (paths added or gone: {stale}); "
        f"regenerate it with `{REGENERATE}` and commit it")


def test_openapi_command_prints_and_writes_the_schema(cli, tmp_path: Path) -> None:
    printed = cli("server", "openapi")
    assert printed.exit_code == 0, printed.stderr
    schema = json.loads(printed.stdout)
    assert schema["info"]["title"] == "kitaru" and "/api/v1/executions" in schema["paths"]
    target = tmp_path / "openapi.json"
    assert cli("server", "openapi", "-o", str(target)).exit_code == 0
    assert target.read_text(encoding="utf-8") == printed.stdout
