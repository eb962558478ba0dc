"""The layers stay apart: kitaru_core never imports kitaru or a plugin, and `import kitaru` is light."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORE = REPO / "kitaru_core"
PLUGINS = sorted(p for p in (REPO / "plugins").iterdir() if (p / "pyproject.toml").exists())

# What `import kitaru` must not pull in: every one of them is loaded on first use.
HEAVY_MODULES = ("pydantic", "yaml", "typer", "click", "rich", "pluggy", "sqlite3", "fsspec",
                 "cloudpickle", "jsonschema", "kitaru_core.stack", "kitaru_local")


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in a file, including `import_module("x")`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module",
                                                                               "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def top_level(module: str) -> str:
    return module.split(".")[0]


def forbidden_in_core(module: str) -> bool:
    """`kitaru` (the public package) or any plugin package (`kitaru_local`, `kitaru_aws`, ...)."""
    top = top_level(module)
    return top == "kitaru" or (top.startswith("kitaru_") and top != "kitaru_core")


def test_the_import_walk_sees_every_kind_of_import(tmp_path: Path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import kitaru\nfrom kitaru.flows import flow\nimport kitaru_local.plugin as p\n"
        "from . import errors\nimport importlib\nimportlib.import_module('kitaru_aws.s3')\n"
    )
    found = [m for _, m in imported_modules(sample)]
    assert found == ["kitaru", "kitaru.flows", "kitaru_local.plugin", "importlib", "kitaru_aws.s3"]
    assert [m for m in found if forbidden_in_core(m)] == [
        "kitaru", "kitaru.flows", "kitaru_local.plugin", "kitaru_aws.s3",
    ]
    assert not forbidden_in_core("kitaru_core.errors")


def test_kitaru_core_imports_neither_kitaru_nor_a_plugin():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10
    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in files
        for line, module in imported_modules(path)
        if forbidden_in_core(module)
    ]
    assert offenders == []


#: Distributions that are applications over kitaru's public API (the server and its CLI),
#: not flavor plugins: they may import `kitaru` and kitaru_core, except in their `flavors/`
#: modules, which runners load like any plugin's and which keep to the contract.
APPLICATIONS = {"kitaru-server"}


def application_module(plugin: Path, path: Path) -> bool:
    return plugin.name in APPLICATIONS and "flavors" not in path.relative_to(plugin).parts


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_plugins_import_only_kitaru_core(plugin: Path):
    own = {p.parent.name for p in plugin.glob("*/__init__.py")}
    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in sorted(plugin.rglob("*.py"))
        if ".egg-info" not in str(path) and not application_module(plugin, path)
        for line, module in imported_modules(path)
        if top_level(module) == "kitaru"
        or (top_level(module).startswith("kitaru_") and top_level(module) not in own | {"kitaru_core"})
        # kitaru_core's runner is not the contract: a third party could not rely on it
        or module.startswith(("kitaru_core.runtime", "kitaru_core.worker", "kitaru_core.entrypoint"))
    ]
    assert offenders == []


def fresh_import(statement: str) -> list[str]:
    """Run `statement` in a new interpreter; return which HEAVY_MODULES it loaded."""
    code = (
        f"import json, sys\n{statement}\n"
        f"print(json.dumps([m for m in {list(HEAVY_MODULES)!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_kitaru_is_light():
    assert fresh_import("import kitaru") == []


def test_kitaru_names_load_on_first_use():
    # `kitaru.flow` brings in the runner; still no CLI, no rich, no plugin implementation
    loaded = fresh_import("import kitaru\nkitaru.flow")
    assert not {"typer", "click", "rich", "kitaru_local", "sqlite3"} & set(loaded)


def test_cli_help_loads_no_stack_or_plugin():
    # `kitaru --help` must stay quick: no pydantic, yaml, pluggy or plugin until a command needs them
    loaded = fresh_import(
        "from kitaru.cli.main import app\n"
        "try:\n    app(['--help'], prog_name='kitaru')\nexcept SystemExit:\n    pass"
    )
    assert not {"pydantic", "yaml", "pluggy", "sqlite3", "kitaru_core.stack", "kitaru_local"} & set(loaded)
