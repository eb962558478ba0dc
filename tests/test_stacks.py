"""Stacks: the built-in `local` stack, registering and choosing stacks, and bad stack files.

A second stack, `elsewhere`, keeps its SQLite file and artifacts in another
folder, so which registry holds an execution proves which stack ran it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from kitaru import checkpoint, flow
from kitaru_core.errors import (
    ConfigError,
    ExecutionNotFoundError,
    StackBuildError,
    StackExistsError,
    StackNotFoundError,
)
from kitaru_core.home import stacks_dir
from kitaru_core.stack import (
    StackStore,
    builtin_local_stack,
    clear_stack_cache,
    get_stack,
    load_stack_file,
    validate_stack,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_STACKS = sorted((REPO / "stacks").glob("*.yaml"))


@checkpoint
def greet(name: str) -> str:
    return f"hello {name}"


@flow
def hello(name: str) -> str:
    return greet(name).load()


@flow(stack="elsewhere")
def hello_elsewhere(name: str) -> str:
    return greet(name).load()


@flow(stack="local")
def hello_local(name: str) -> str:
    return greet(name).load()


@checkpoint(runtime="isolated")
def worker_pid() -> int:
    return os.getpid()


@flow
def where_do_isolated_calls_run() -> int:
    return worker_pid().load()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def elsewhere_file(tmp_path: Path) -> Path:
    """A stack file whose registry and artifacts live outside the kitaru home."""
    data = tmp_path / "elsewhere-data"
    return write(tmp_path / "elsewhere.yaml", f"""\
name: elsewhere
registry:
  flavor: sqlite
  config: {{path: "{data / 'records.db'}"}}
artifact_store:
  flavor: local
  config: {{root: "{data / 'artifacts'}"}}
""")


@pytest.fixture
def elsewhere(cli, elsewhere_file: Path) -> Path:
    """`elsewhere` registered (not active); returns its data folder."""
    assert cli("stack", "register", str(elsewhere_file)).exit_code == 0
    return elsewhere_file.parent / "elsewhere-data"


def ran_on(handle) -> str:
    """Wait for the run; the one registered stack whose registry has its execution."""
    assert handle.wait(timeout=60).startswith("hello")
    return stack_holding(handle.exec_id)


def stack_holding(exec_id: str) -> str:
    """The one registered stack whose registry has this execution."""
    holders = []
    for name in ("local", "elsewhere"):
        try:
            get_stack(name).registry.get_execution(exec_id)
        except ExecutionNotFoundError:
            continue
        holders.append(name)
    assert len(holders) == 1, holders
    return holders[0]


# -- the built-in local stack ------------------------------------------------------


def test_local_stack_exists_and_is_active_out_of_the_box(cli, kitaru_home: Path):
    assert StackStore().names() == ["local"]
    assert StackStore().active_name() == "local"
    listed = cli("stack", "list", "-o", "json")
    assert listed.exit_code == 0
    assert listed.json() == [{
        "name": "local", "active": True, "error": None, "registry": "sqlite",
        "artifact_store": "local", "orchestrator": "local", "execution_target": "inline",
    }]
    shown = cli("stack", "show", "local", "-o", "json").json()
    assert shown == builtin_local_stack()
    assert hello("world") == "hello world"
    assert (kitaru_home / "kitaru.db").exists()


def test_init_creates_the_home_and_the_local_database(cli, kitaru_home: Path):
    result = cli("init", "-o", "json")
    assert result.exit_code == 0
    assert result.json() == {"home": str(kitaru_home), "active_stack": "local"}
    assert (kitaru_home / "kitaru.db").is_file()
    assert (kitaru_home / "artifacts").is_dir()
    assert (kitaru_home / "stacks").is_dir()


def test_init_keeps_an_active_stack_chosen_before(cli, elsewhere: Path):
    cli("stack", "set", "elsewhere")
    assert cli("init", "-o", "json").json()["active_stack"] == "elsewhere"


# -- register, set, list, show, validate, delete -------------------------------------------


def test_register_list_show_set_and_delete(cli, elsewhere_file: Path, kitaru_home: Path):
    registered = cli("stack", "register", str(elsewhere_file), "-o", "json")
    assert registered.exit_code == 0
    body = registered.json()
    assert body["registered"] == "elsewhere" and body["active"] is False
    assert body["stack"]["registry"]["config"]["path"].endswith("records.db")
    assert (stacks_dir(kitaru_home) / "elsewhere.yaml").is_file()

    listed = {row["name"]: row for row in cli("stack", "list", "-o", "json").json()}
    assert set(listed) == {"local", "elsewhere"}
    assert listed["local"]["active"] and not listed["elsewhere"]["active"]

    shown = cli("stack", "show", "elsewhere", "-o", "json").json()
    assert shown["name"] == "elsewhere"
    assert shown["durability"] == "default"
    # components left out of the file take the local defaults
    assert shown["orchestrator"] == {"flavor": "local", "config": {}}
    assert shown["execution_target"] == {"flavor": "inline", "config": {}}

    assert cli("stack", "set", "elsewhere", "-o", "json").json() == {"active": "elsewhere"}
    assert cli("stack", "show", "-o", "json").json()["name"] == "elsewhere"  # default: the active one
    assert cli("status", "-o", "json").json()["active_stack"] == "elsewhere"

    assert cli("stack", "set", "local").exit_code == 0
    assert cli("stack", "delete", "elsewhere", "-o", "json").json() == {"deleted": "elsewhere"}
    assert [r["name"] for r in cli("stack", "list", "-o", "json").json()] == ["local"]


def test_register_with_activate(cli, elsewhere_file: Path):
    result = cli("stack", "register", str(elsewhere_file), "--activate", "-o", "json")
    assert result.json()["active"] is True
    assert StackStore().active_name() == "elsewhere"


def test_register_again_needs_force_to_replace_the_stack(
    cli, elsewhere_file: Path, tmp_path: Path, kitaru_home: Path
):
    cli("stack", "register", str(elsewhere_file))
    changed = write(tmp_path / "v2.yaml", "name: elsewhere\ndescription: second version\n")
    before = registered_state(kitaru_home)
    refused = cli("stack", "register", str(changed), "--activate")
    assert refused.exit_code == 2
    assert "already a registered stack 'elsewhere'" in refused.stderr and "--force" in refused.stderr
    assert registered_state(kitaru_home) == before  # neither replaced nor activated
    with pytest.raises(StackExistsError, match="force"):
        StackStore().register(changed)

    assert cli("stack", "register", str(changed), "--force").exit_code == 0
    assert cli("stack", "show", "elsewhere", "-o", "json").json()["description"] == "second version"


def test_the_built_in_local_stack_is_replaced_only_with_force(cli, tmp_path: Path, kitaru_home: Path):
    mine = write(tmp_path / "local.yaml", "name: local\ndescription: my local\ndurability: strict\n")
    refused = cli("stack", "register", str(mine))
    assert refused.exit_code == 2
    assert "built-in `local` stack" in refused.stderr and "--force" in refused.stderr
    assert not (stacks_dir(kitaru_home) / "local.yaml").exists()
    assert cli("stack", "show", "local", "-o", "json").json() == builtin_local_stack()

    assert cli("stack", "register", str(mine), "--force").exit_code == 0
    assert cli("stack", "show", "local", "-o", "json").json()["durability"] == "strict"
    # deleting the replacement brings the built-in one back
    assert cli("stack", "delete", "local").exit_code == 0
    assert cli("stack", "show", "local", "-o", "json").json() == builtin_local_stack()


def test_validate_checks_without_registering(cli, elsewhere_file: Path, kitaru_home: Path):
    result = cli("stack", "validate", str(elsewhere_file), "-o", "json")
    assert result.exit_code == 0
    assert result.json()["valid"] is True
    assert result.json()["stack"]["name"] == "elsewhere"
    assert not (stacks_dir(kitaru_home) / "elsewhere.yaml").exists()
    assert "is valid" in cli("stack", "validate", str(elsewhere_file)).stdout


def test_table_output_of_stack_commands(cli, elsewhere: Path):
    listing = cli("stack", "list").stdout
    assert "elsewhere" in listing and "sqlite" in listing
    assert "registry:" in cli("stack", "show", "elsewhere").stdout
    assert "active stack: elsewhere" in cli("stack", "set", "elsewhere").stdout


# -- which stack runs an execution: most specific wins -------------------------------------


def test_the_active_stack_runs_flows(cli, elsewhere: Path):
    assert ran_on(hello.run("a")) == "local"
    cli("stack", "set", "elsewhere")
    assert ran_on(hello.run("b")) == "elsewhere"
    assert (elsewhere / "records.db").is_file()
    assert get_stack("elsewhere").artifact_store.root == elsewhere / "artifacts"


def test_kitaru_stack_env_overrides_the_active_stack(elsewhere: Path, monkeypatch):
    monkeypatch.setenv("KITARU_STACK", "elsewhere")
    assert ran_on(hello.run("env")) == "elsewhere"


def test_flow_decorator_stack_overrides_kitaru_stack(elsewhere: Path, monkeypatch):
    monkeypatch.setenv("KITARU_STACK", "elsewhere")
    assert ran_on(hello_local.run("decorated")) == "local"
    monkeypatch.setenv("KITARU_STACK", "local")
    assert ran_on(hello_elsewhere.run("decorated")) == "elsewhere"


def test_run_argument_overrides_the_flow_decorator(elsewhere: Path, monkeypatch):
    monkeypatch.setenv("KITARU_STACK", "elsewhere")
    assert ran_on(hello_elsewhere.run("argument", stack="local")) == "local"


def test_global_stack_option_of_the_cli(cli, elsewhere: Path):
    handle = hello.run("x", stack="elsewhere")
    exec_id = handle.exec_id
    assert ran_on(handle) == "elsewhere"
    assert cli("executions", "get", exec_id).exit_code == 1  # not in the active (local) registry
    found = cli("--stack", "elsewhere", "executions", "get", exec_id, "-o", "json")
    assert found.exit_code == 0
    assert found.json()["stack_name"] == "elsewhere"


def test_unknown_stack_name_anywhere_is_a_clear_error(monkeypatch):
    with pytest.raises(StackNotFoundError, match=r"no stack named 'nowhere'.*registered stacks: local"):
        hello.run("x", stack="nowhere")
    monkeypatch.setenv("KITARU_STACK", "nowhere")
    with pytest.raises(StackNotFoundError, match="kitaru stack register"):
        hello.run("x")


# -- the stack is frozen into the execution record -----------------------------------------


def test_resolved_stack_is_frozen_into_the_record(cli, elsewhere: Path, tmp_path: Path):
    handle = hello.run("frozen", stack="elsewhere")
    assert ran_on(handle) == "elsewhere"
    exec_id = handle.exec_id
    record = get_stack("elsewhere").registry.get_execution(exec_id)
    assert record.stack == StackStore().get("elsewhere")

    # changing the registered stack later does not rewrite what the execution ran on
    data = elsewhere
    write(tmp_path / "v2.yaml", f"""\
name: elsewhere
durability: strict
registry: {{flavor: sqlite, config: {{path: "{data / 'records.db'}", busy_timeout: 5}}}}
artifact_store: {{flavor: local, config: {{root: "{data / 'artifacts'}"}}}}
""")
    assert cli("stack", "register", str(tmp_path / "v2.yaml"), "--force").exit_code == 0
    again = get_stack("elsewhere").registry.get_execution(exec_id)
    assert again.stack == record.stack
    assert again.stack["durability"] == "default"
    assert "busy_timeout" not in again.stack["registry"]["config"]


def test_env_references_stay_references_in_the_record(cli, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("KITARU_TEST_ARTIFACTS", str(tmp_path / "from-env"))
    write(tmp_path / "env.yaml", """\
name: from-env
artifact_store: {flavor: local, config: {root: "${env:KITARU_TEST_ARTIFACTS}"}}
""")
    assert cli("stack", "register", str(tmp_path / "env.yaml")).exit_code == 0
    handle = hello.run("env", stack="from-env")
    assert handle.wait() == "hello env"
    record = get_stack("from-env").registry.get_execution(handle.exec_id)
    assert record.stack["artifact_store"]["config"] == {"root": "${env:KITARU_TEST_ARTIFACTS}"}
    assert get_stack("from-env").artifact_store.root == tmp_path / "from-env"  # the value, used


# -- the example stack files ---------------------------------------------------------------


def test_example_stack_files_are_valid():
    assert {p.name for p in EXAMPLE_STACKS} >= {"local.yaml", "local-strict.yaml", "local-process.yaml"}
    for path in EXAMPLE_STACKS:
        spec = validate_stack(load_stack_file(path), source=str(path))
        assert spec["name"] == path.stem


def test_example_local_stack_matches_the_built_in_one(kitaru_home: Path):
    spec = validate_stack(load_stack_file(REPO / "stacks" / "local.yaml"))
    for component in ("registry", "artifact_store", "orchestrator", "execution_target"):
        assert spec[component]["flavor"] == builtin_local_stack()[component]["flavor"]
    stack = get_stack(spec=spec)
    assert stack.registry.path == kitaru_home / "kitaru.db"  # `${home}` is the kitaru home
    assert stack.artifact_store.root == kitaru_home / "artifacts"


def test_example_strict_stack_runs_flows_with_strict_durability(cli):
    assert cli("stack", "register", str(REPO / "stacks" / "local-strict.yaml")).exit_code == 0
    handle = hello.run("strict", stack="local-strict")
    assert handle.wait() == "hello strict"
    record = get_stack("local-strict").registry.get_execution(handle.exec_id)
    assert record.stack["durability"] == "strict"
    assert get_stack("local-strict").registry.context.strict


def test_example_process_stack_runs_isolated_checkpoints_in_another_process(cli):
    assert cli("stack", "register", str(REPO / "stacks" / "local-process.yaml")).exit_code == 0
    pid = where_do_isolated_calls_run.run(stack="local-process").wait(timeout=120)
    assert isinstance(pid, int) and pid != os.getpid()
    on_local = where_do_isolated_calls_run.run(stack="local").wait()
    assert on_local == os.getpid()  # the local stack's `inline` target: the same process


# -- bad stack input: a clear message, exit code 2, nothing registered changed -------------

GOOD = "name: shop\nregistry: {flavor: sqlite}\n"
BAD_FILES = {
    "yaml-syntax": ("name: shop\nregistry: {flavor: sqlite\n",
                    ["YAML syntax error", "line 3", "line 2"]),
    "unknown-top-level-key": ("name: shop\nregistri: {flavor: sqlite}\n",
                              ["unknown key 'registri'", "allowed top-level keys", "registry"]),
    "unknown-component-key": ("name: shop\nregistry: {flavor: sqlite, confg: {}}\n",
                              ["unknown key 'confg' in `registry`", "allowed keys: flavor, config"]),
    "unknown-config-key": ("name: shop\nregistry: {flavor: sqlite, config: {busy_time: 3}}\n",
                           ["`registry.config`", "unknown key 'busy_time'",
                            "allowed keys: path, busy_timeout"]),
    # `couch` stands for a flavor of ours whose plugin is not installed (the test adds it to
    # KNOWN_FLAVOR_PACKAGES: every plugin of ours is installed here).
    "unknown-flavor": ("name: shop\nregistry: {flavor: couch}\n",
                       ["`registry.flavor`", "unknown registry flavor 'couch'",
                        "installed registry flavors: postgres, server, sqlite",
                        "kitaru-couch plugin"]),
    "unknown-flavor-no-hint": ("name: shop\nregistry: {flavor: mongo}\n",
                               ["unknown registry flavor 'mongo'",
                                "installed registry flavors: postgres, server, sqlite"]),
    "wrong-config-type": ("name: shop\nregistry: {flavor: sqlite, config: {busy_timeout: soon}}\n",
                          ["`registry.config` of flavor 'sqlite'", "busy_timeout",
                           "expected float", "got 'soon'"]),
    "config-out-of-range": ("name: shop\nregistry: {flavor: sqlite, config: {busy_timeout: -1}}\n",
                            ["busy_timeout", "greater than 0", "got -1"]),
    "component-not-a-mapping": ("name: shop\nregistry: [sqlite]\n",
                                ["`registry` must be a mapping", "got list"]),
    "config-not-a-mapping": ("name: shop\nregistry: {flavor: sqlite, config: 5}\n",
                             ["`registry.config` must be a mapping", "got int"]),
    "bad-durability": ("name: shop\ndurability: forever\n",
                       ["`durability` must be one of default, strict", "'forever'"]),
    "bad-name": ("name: my shop\n", ["`name` must be a word", "'my shop'"]),
    "name-with-a-slash": ("name: ../shop\n", ["`name` must be a word", "'../shop'"]),
    "unknown-placeholder": ("name: shop\nregistry: {flavor: sqlite, config: {path: '${HOME}/x.db'}}\n",
                            ["`registry.config.path`", "unknown placeholder '${HOME}'",
                             "did you mean ${env:HOME}", "${home}"]),
    "placeholder-in-a-nested-value": (
        "name: shop\nexecution_target: {flavor: process, config: {env: {A: '${secret:A}'}}}\n",
        ["`execution_target.config.env.A`", "'${secret:A}' needs a secret name and key"]),
    "unknown-placeholder-in-a-nested-value": (
        "name: shop\nexecution_target: {flavor: process, config: {env: {A: '${vault:A}'}}}\n",
        ["`execution_target.config.env.A`", "unknown placeholder '${vault:A}'"]),
    "env-without-a-name": ("name: shop\nartifact_store: {flavor: local, config: {root: '${env:}'}}\n",
                           ["`artifact_store.config.root`", "'${env:}' needs an environment variable name"]),
    "unclosed-placeholder": ("name: shop\nartifact_store: {flavor: local, config: {root: '${home/a'}}\n",
                             ["`artifact_store.config.root`", "is never closed"]),
    "relative-sqlite-path": ("name: shop\nregistry: {flavor: sqlite, config: {path: data/shop.db}}\n",
                             ["`registry.config` of flavor 'sqlite'",
                              "path: 'data/shop.db' is a relative path", "write an absolute path",
                              "${home}/"]),
    "relative-artifact-root": ("name: shop\nartifact_store: {flavor: local, config: {root: ./artifacts}}\n",
                               ["`artifact_store.config`", "root: './artifacts' is a relative path"]),
    "relative-python": ("name: shop\nexecution_target: {flavor: process, config: {python: env/bin/python}}\n",
                        ["`execution_target.config`", "python: 'env/bin/python' is a relative path"]),
    "not-a-mapping": ("- shop\n", ["must be a mapping"]),
}


@pytest.fixture
def registered_shop(cli, tmp_path: Path) -> Path:
    """A valid `shop` stack registered and active, to show a bad file changes nothing."""
    good = write(tmp_path / "good.yaml", GOOD)
    assert cli("stack", "register", str(good), "--activate").exit_code == 0
    return good


def registered_state(home: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in [*stacks_dir(home).glob("*"), home / "settings.yaml"]
            if p.exists()}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_stack_file_is_refused_with_a_clear_message(
    case: str, cli, registered_shop: Path, tmp_path: Path, kitaru_home: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    from kitaru_core.plugins import manager

    monkeypatch.setitem(manager.KNOWN_FLAVOR_PACKAGES, ("registry", "couch"), "kitaru-couch")
    text, expected = BAD_FILES[case]
    bad = write(tmp_path / f"{case}.yaml", text)
    before = registered_state(kitaru_home)
    for command in (["stack", "register", str(bad), "--activate"], ["stack", "validate", str(bad)]):
        result = cli(*command)
        assert result.exit_code == 2, result
        assert result.stdout == ""
        assert result.stderr.startswith("kitaru: error: ")
        assert "Traceback" not in result.stderr
        message = " ".join(result.stderr.split())  # undo line wrapping, if any
        assert str(bad) in message  # the file is named
        for fragment in expected:
            assert fragment in message, (fragment, message)
    assert registered_state(kitaru_home) == before
    assert cli("stack", "show", "-o", "json").json()["registry"] == {"flavor": "sqlite", "config": {}}


def test_missing_stack_file(cli, tmp_path: Path):
    result = cli("stack", "register", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "nope.yaml does not exist" in result.stderr
    result = cli("stack", "validate", str(tmp_path))
    assert result.exit_code == 2
    assert "is not a file" in result.stderr


def test_set_unknown_stack_changes_nothing(cli, registered_shop: Path, kitaru_home: Path):
    before = registered_state(kitaru_home)
    result = cli("stack", "set", "nowhere")
    assert result.exit_code == 2
    assert "no stack named 'nowhere'" in result.stderr
    assert "registered stacks: local, shop" in result.stderr
    assert registered_state(kitaru_home) == before


def test_deleting_the_active_stack_is_refused(cli, registered_shop: Path, kitaru_home: Path):
    before = registered_state(kitaru_home)
    result = cli("stack", "delete", "shop")
    assert result.exit_code == 2
    assert "stack 'shop' is active" in result.stderr
    assert "kitaru stack set NAME" in result.stderr
    assert registered_state(kitaru_home) == before


def test_deleting_builtin_or_unknown_stacks_is_refused(cli):
    result = cli("stack", "delete", "local")
    assert result.exit_code == 2
    assert "built-in `local` stack cannot be deleted" in result.stderr
    result = cli("stack", "delete", "nowhere")
    assert result.exit_code == 2
    assert "no stack named 'nowhere'" in result.stderr


def test_show_unknown_stack(cli):
    result = cli("stack", "show", "nowhere", "-o", "json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "no stack named 'nowhere'" in result.stderr


def test_stack_list_still_lists_when_one_stack_file_went_bad(cli, registered_shop: Path, kitaru_home: Path):
    # e.g. the plugin providing a flavor was uninstalled after the stack was registered
    (stacks_dir(kitaru_home) / "shop.yaml").write_text("name: shop\nregistry: {flavor: mongo}\n")
    rows = {r["name"]: r for r in cli("stack", "list", "-o", "json").json()}
    assert rows["local"]["error"] is None and rows["local"]["registry"] == "sqlite"
    assert "unknown registry flavor 'mongo'" in rows["shop"]["error"]
    table = cli("stack", "list")
    assert table.exit_code == 0 and "invalid" in table.stdout
    # the broken stack is active: commands that need it fail clearly; switching away works
    assert cli("status").exit_code == 2
    assert cli("stack", "set", "local").exit_code == 0
    assert cli("stack", "delete", "shop").exit_code == 0


# -- placeholders: `${env:NAME}` for any field type, resolved only where components are built -----

TIMEOUT_FROM_ENV = """\
name: tuned
registry: {flavor: sqlite, config: {busy_timeout: "${env:KITARU_TEST_TIMEOUT}"}}
execution_target:
  flavor: process
  config: {env: "${env:KITARU_TEST_WORKER_ENV}", python: "${env:KITARU_TEST_PY}"}
"""


def test_env_placeholder_fills_a_field_of_any_type(cli, tmp_path: Path, kitaru_home: Path, monkeypatch):
    for var in ("KITARU_TEST_TIMEOUT", "KITARU_TEST_WORKER_ENV", "KITARU_TEST_PY"):
        monkeypatch.delenv(var, raising=False)
    path = write(tmp_path / "tuned.yaml", TIMEOUT_FROM_ENV)
    # unset while validating: the file is still valid, and stored with its references
    assert cli("stack", "validate", str(path)).exit_code == 0
    assert cli("stack", "register", str(path)).exit_code == 0
    stored = (stacks_dir(kitaru_home) / "tuned.yaml").read_text()
    assert "${env:KITARU_TEST_TIMEOUT}" in stored and "${env:KITARU_TEST_WORKER_ENV}" in stored

    monkeypatch.setenv("KITARU_TEST_TIMEOUT", "7.5")
    monkeypatch.setenv("KITARU_TEST_WORKER_ENV", '{"MODE": "fast", "LEVEL": "3"}')
    monkeypatch.setenv("KITARU_TEST_PY", sys.executable)
    stack = get_stack("tuned")
    assert stack.registry.config.busy_timeout == 7.5
    assert stack.execution_target.config.env == {"MODE": "fast", "LEVEL": "3"}
    assert stack.execution_target.config.python == sys.executable
    assert StackStore().get("tuned")["registry"]["config"] == {"busy_timeout": "${env:KITARU_TEST_TIMEOUT}"}


def test_env_placeholder_problems_name_the_key_and_never_the_value(cli, tmp_path: Path, monkeypatch):
    monkeypatch.delenv("KITARU_TEST_TIMEOUT", raising=False)
    path = write(tmp_path / "tuned.yaml", TIMEOUT_FROM_ENV.replace(', python: "${env:KITARU_TEST_PY}"', ""))
    assert cli("stack", "register", str(path)).exit_code == 0
    monkeypatch.setenv("KITARU_TEST_WORKER_ENV", "{}")

    unset = r"`registry.config.busy_timeout` uses \$\{env:KITARU_TEST_TIMEOUT\}, but the environment variable"
    with pytest.raises(ConfigError, match=unset + " KITARU_TEST_TIMEOUT is not set"):
        get_stack("tuned").registry  # noqa: B018
    clear_stack_cache()

    monkeypatch.setenv("KITARU_TEST_TIMEOUT", "s3cr3t-value")
    with pytest.raises(ConfigError) as refused:
        get_stack("tuned").registry  # noqa: B018
    message = str(refused.value)
    assert "tuned" in message and "busy_timeout: expected float" in message
    assert "${env:KITARU_TEST_TIMEOUT}" in message and "s3cr3t" not in message
    # set while validating: checked like a literal value
    result = cli("stack", "validate", str(path))
    assert result.exit_code == 2
    assert "busy_timeout: expected float" in result.stderr and "s3cr3t" not in result.stderr


def test_dollar_dollar_is_a_literal_dollar(tmp_path: Path):
    path = write(tmp_path / "cost.yaml", """\
name: cost
execution_target: {flavor: process, config: {env: {PRICE: "$$5", TEMPLATE: "$${HOME}"}}}
""")
    spec = validate_stack(load_stack_file(path))
    assert get_stack(spec=spec).execution_target.config.env == {"PRICE": "$5", "TEMPLATE": "${HOME}"}


# -- stack validate --connect ----------------------------------------------------------------


def test_validate_connect_builds_every_component(cli, elsewhere_file: Path):
    result = cli("stack", "validate", str(elsewhere_file), "--connect", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["connected"] is True
    assert (elsewhere_file.parent / "elsewhere-data" / "records.db").is_file()  # really opened
    assert "every component was built" in cli("stack", "validate", str(elsewhere_file), "--connect").stdout


def test_validate_connect_names_each_component_that_fails_and_its_plugin(cli, tmp_path: Path, monkeypatch):
    monkeypatch.delenv("KITARU_TEST_ROOT", raising=False)
    a_file = write(tmp_path / "not-a-folder", "x")
    path = write(tmp_path / "broken.yaml", f"""\
name: broken
registry: {{flavor: sqlite, config: {{path: "{tmp_path}"}}}}
artifact_store: {{flavor: local, config: {{root: "{a_file}/artifacts"}}}}
execution_target: {{flavor: process, config: {{env: {{ROOT: "${{env:KITARU_TEST_ROOT}}"}}}}}}
""")
    assert cli("stack", "validate", str(path)).exit_code == 0  # the file itself is fine
    result = cli("stack", "validate", str(path), "--connect")
    assert result.exit_code == 2
    assert result.stderr.startswith("kitaru: error: ") and "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "stack 'broken'" in message
    assert "`registry` (flavor 'sqlite' from plugin 'kitaru-local') could not be built" in message
    assert "`artifact_store` (flavor 'local' from plugin 'kitaru-local') could not be built" in message
    assert "`execution_target` (flavor 'process' from plugin 'kitaru-local') could not be built" in message
    assert "KITARU_TEST_ROOT is not set" in message
    assert "`orchestrator`" not in message  # the one that builds is not reported


def test_a_failing_constructor_at_run_time_names_the_component(tmp_path: Path):
    a_file = write(tmp_path / "not-a-folder", "x")
    spec = validate_stack({"name": "broken", "artifact_store": {"flavor": "local",
                                                                "config": {"root": f"{a_file}/artifacts"}}})
    expected = r"stack 'broken': `artifact_store` \(flavor 'local' from plugin 'kitaru-local'\) could not"
    with pytest.raises(StackBuildError, match=expected + r" be built: \w+Error"):
        get_stack(spec=spec).artifact_store  # noqa: B018


# -- stack names in any script ---------------------------------------------------------------


def test_non_ascii_stack_names(cli, tmp_path: Path, kitaru_home: Path):
    import unicodedata

    name = "données-çà"
    path = write(tmp_path / "fr.yaml", f"name: {unicodedata.normalize('NFD', name)}\n")
    registered = cli("stack", "register", str(path), "--activate", "-o", "json")
    assert registered.exit_code == 0, registered.stderr
    assert registered.json()["registered"] == name  # stored as NFC: one stack however it is typed
    assert (stacks_dir(kitaru_home) / f"{name}.yaml").is_file()
    assert name in [r["name"] for r in cli("stack", "list", "-o", "json").json()]
    assert name in cli("stack", "list").stdout
    assert cli("stack", "show", unicodedata.normalize("NFD", name), "-o", "json").json()["name"] == name
    assert StackStore().active_name() == name
    assert hello("monde") == "hello monde"
    assert cli("stack", "set", "local").exit_code == 0
    assert cli("stack", "delete", name).exit_code == 0


def test_a_stack_file_is_parsed_again_only_when_it_changed(
    elsewhere_file: Path, tmp_path: Path, kitaru_home: Path, monkeypatch
):
    import kitaru_core.stack as stack_module

    store = StackStore()
    store.register(elsewhere_file)
    parsed: list[Path] = []
    real_load = stack_module.load_stack_file
    monkeypatch.setattr(stack_module, "load_stack_file", lambda p: parsed.append(p) or real_load(p))
    first = store.get("elsewhere")
    first["description"] = "changed by the caller"  # a copy: the cached spec stays as read
    again = store.get("elsewhere")
    assert len(parsed) <= 1 and "description" not in again

    store.register(write(tmp_path / "v2.yaml", "name: elsewhere\ndescription: v2\n"), force=True)
    assert store.get("elsewhere")["description"] == "v2"
    # Edited in place: a new modification time is a new signature.
    path = stacks_dir(kitaru_home) / "elsewhere.yaml"
    path.write_text(path.read_text().replace("v2", "v3"))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert store.get("elsewhere")["description"] == "v3"
