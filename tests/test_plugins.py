"""Plugins: the registrar's checks, broken plugins reported (not fatal unless strict), listing.

Unit checks build a fresh `PluginManager` and register module objects made
here; entry-point checks put a `*.dist-info` folder on the path, which is how
an installed distribution announces its plugin.
"""

from __future__ import annotations

import json
import sys
import types
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import run_cli
from pydantic import BaseModel, Field

from kitaru_core.errors import ConfigError, FlavorNotFoundError, PluginError
from kitaru_core.interfaces import FlavorConfig
from kitaru_core.plugins import Flavor, FlavorRegistrar, hookimpl
from kitaru_core.plugins import manager as manager_module
from kitaru_core.plugins.manager import PluginManager, default_manager
from kitaru_core.stack import get_stack, validate_stack


class EchoConfig(FlavorConfig):
    url: str = Field(description="Where the echo service listens")
    retries: int = 3
    tags: list[str] = Field(default_factory=lambda: ["a"], description="Labels")


class NotAFlavorConfig(BaseModel):
    url: str = ""


def echo_flavor(name: str = "echo", type_: str = "registry", config: object = EchoConfig,
                implementation: str = "kitaru_test_echo_sdk.registry:EchoRegistry") -> Flavor:
    return Flavor(name=name, type=type_, config=config, implementation=implementation,  # type: ignore[arg-type]
                  description="An echo registry for tests")


def plugin_module(name: str, register: Callable[[FlavorRegistrar], None]) -> types.ModuleType:
    """A plugin as a module object, like the one an entry point would import."""
    module = types.ModuleType(name)

    @hookimpl
    def kitaru_register_flavors(registrar: FlavorRegistrar) -> None:
        register(registrar)

    module.kitaru_register_flavors = kitaru_register_flavors  # type: ignore[attr-defined]
    return module


def manager_with(**plugins: Callable[[FlavorRegistrar], None]) -> PluginManager:
    manager = PluginManager()
    for name, register in plugins.items():
        manager.register(plugin_module(name, register), name=name)
    return manager


def info(manager: PluginManager, name: str) -> manager_module.PluginInfo:
    return next(p for p in manager.plugins() if p.name == name)


# -- registering and finding flavors -------------------------------------------------------


def test_registered_flavor_is_found_and_listed_with_its_config_fields():
    manager = manager_with(echo_plugin=lambda r: r.add(echo_flavor()))
    flavor = manager.flavor("registry", "echo")
    assert flavor.plugin == "echo_plugin"  # filled in by the registrar
    assert [f.name for f in info(manager, "echo_plugin").flavors] == ["echo"]
    assert info(manager, "echo_plugin").error is None
    fields = flavor.config_fields()
    assert fields["url"] == {"type": "str", "required": True, "default": None,
                             "description": "Where the echo service listens"}
    assert fields["retries"] == {"type": "int", "required": False, "default": 3, "description": ""}
    assert fields["tags"]["type"] == "list[str]"
    assert fields["tags"]["default"] == ["a"]


def test_same_name_for_different_component_types_is_fine():
    def register(r: FlavorRegistrar) -> None:
        r.add(echo_flavor("echo", "registry"))
        r.add(echo_flavor("echo", "artifact_store"))

    manager = manager_with(both=register)
    assert manager.flavor("artifact_store", "echo").type == "artifact_store"
    assert len(info(manager, "both").flavors) == 2


def test_listing_and_validating_import_no_implementation():
    import kitaru_local.plugin

    manager = manager_with(echo_plugin=lambda r: r.add(echo_flavor()))
    manager.register(kitaru_local.plugin, name="local")  # the other components' flavors
    spec = validate_stack({"name": "echoes", "registry": {"flavor": "echo", "config": {"url": "x"}}},
                          manager=manager)
    manager.plugins()
    assert "kitaru_test_echo_sdk" not in sys.modules
    # the implementation is imported when the stack is built: a missing SDK says what to install
    stack = get_stack(spec=spec, manager=manager)
    with pytest.raises(PluginError, match=r"could not load 'kitaru_test_echo_sdk.registry:EchoRegistry'.*"
                                          r"pip install echo_plugin"):
        stack.registry  # noqa: B018


def test_stack_config_is_validated_against_a_plugins_config_model():
    manager = manager_with(echo_plugin=lambda r: r.add(echo_flavor()))
    with pytest.raises(ConfigError, match=r"`registry.config` of flavor 'echo': missing required key "
                                          r"'url' \(str\)"):
        validate_stack({"name": "s", "registry": {"flavor": "echo"}}, manager=manager)
    with pytest.raises(ConfigError, match=r"retries: expected int, got 'many'"):
        validate_stack({"name": "s", "registry": {"flavor": "echo",
                                                  "config": {"url": "x", "retries": "many"}}},
                       manager=manager)


def test_unknown_flavor_names_the_installed_ones_and_the_package_that_has_it():
    manager = manager_with(echo_plugin=lambda r: r.add(echo_flavor()))
    with pytest.raises(FlavorNotFoundError) as err:
        manager.flavor("registry", "postgres")
    assert "installed registry flavors: echo" in str(err.value)
    # kitaru's plugins are not on a package index: the hint names the folder that has it
    assert "`pip install " in str(err.value) and "plugins/kitaru-postgres`" in str(err.value)
    with pytest.raises(FlavorNotFoundError, match="installed artifact_store flavors: none"):
        manager.flavor("artifact_store", "somewhere")


def test_install_hints_name_only_plugins_that_exist(tmp_path: Path, monkeypatch):
    plugins = tmp_path / "plugins"
    (plugins / "kitaru-gcp").mkdir(parents=True)
    (plugins / "kitaru-gcp" / "pyproject.toml").write_text("[project]\nname = 'kitaru-gcp'\n")
    monkeypatch.setattr(manager_module, "PLUGINS_FOLDER", plugins)
    manager = manager_with(echo_plugin=lambda r: r.add(echo_flavor()))

    with pytest.raises(FlavorNotFoundError) as has_folder:
        manager.flavor("artifact_store", "gcs")
    assert f"`pip install {plugins / 'kitaru-gcp'}`" in str(has_folder.value)  # tmp_path: not below cwd

    with pytest.raises(FlavorNotFoundError) as no_folder:
        manager.flavor("artifact_store", "s3")
    message = str(no_folder.value)
    assert "kitaru has no kitaru-aws plugin yet" in message and str(plugins) in message
    assert "pip install kitaru-aws" not in message

    monkeypatch.setattr(manager_module, "PLUGINS_FOLDER", tmp_path / "no-checkout" / "plugins")
    with pytest.raises(FlavorNotFoundError, match=r"the `plugins/` folder of its source repository"):
        manager.flavor("artifact_store", "s3")
    with pytest.raises(FlavorNotFoundError) as unknown:
        manager.flavor("artifact_store", "somewhere")
    assert "pip install" not in str(unknown.value)


# -- broken plugins ----------------------------------------------------------------------


def half_then_fail(registrar: FlavorRegistrar) -> None:
    registrar.add(echo_flavor("half", "artifact_store"))
    raise RuntimeError("the plugin's SDK is not configured")


def test_a_plugin_that_raises_is_reported_and_the_others_still_work(monkeypatch):
    monkeypatch.delenv("KITARU_STRICT_PLUGINS", raising=False)
    manager = manager_with(good=lambda r: r.add(echo_flavor()), broken=half_then_fail)
    assert manager.flavor("registry", "echo").plugin == "good"
    broken = info(manager, "broken")
    assert broken.error == "RuntimeError: the plugin's SDK is not configured"
    assert broken.flavors == []  # all or nothing: the flavor it added before failing is dropped
    with pytest.raises(FlavorNotFoundError) as err:
        manager.flavor("artifact_store", "half")
    assert "plugins that failed to load: broken (RuntimeError: the plugin's SDK" in str(err.value)


@pytest.mark.parametrize("value", ["1", "true"])
def test_strict_plugins_makes_a_broken_plugin_fatal(monkeypatch, value: str):
    monkeypatch.setenv("KITARU_STRICT_PLUGINS", value)
    manager = manager_with(good=lambda r: r.add(echo_flavor()), broken=half_then_fail)
    with pytest.raises(PluginError, match=r"plugin 'broken' .* failed to load: RuntimeError"):
        manager.plugins()


def test_a_hook_with_a_misspelled_name_is_reported(monkeypatch):
    monkeypatch.delenv("KITARU_STRICT_PLUGINS", raising=False)
    module = types.ModuleType("typo_plugin")

    @hookimpl
    def kitaru_register_flavor(registrar: FlavorRegistrar) -> None:  # missing the final "s"
        raise AssertionError("never called")

    module.kitaru_register_flavor = kitaru_register_flavor  # type: ignore[attr-defined]
    manager = PluginManager()
    manager.register(module)
    error = info(manager, "typo_plugin").error
    assert error is not None
    assert "unknown hook(s) kitaru_register_flavor" in error
    assert "kitaru_register_flavors" in error
    monkeypatch.setenv("KITARU_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="kitaru_register_flavor"):
        PluginManager().register(module)


# -- the registrar's checks --------------------------------------------------------------


@pytest.mark.parametrize(
    ("registered", "message"),
    [
        (lambda: echo_flavor(type_="database"),
         "unknown type 'database'; expected one of registry, artifact_store, orchestrator, "
         "execution_target"),
        (lambda: echo_flavor(config=NotAFlavorConfig),
         "flavor 'echo' config must subclass kitaru_core.interfaces.FlavorConfig"),
        (lambda: echo_flavor(config={"url": "str"}),
         "flavor 'echo' config must subclass kitaru_core.interfaces.FlavorConfig"),
        (lambda: {"name": "echo", "type": "registry"},
         "expected a kitaru_core.plugins.Flavor"),
    ],
    ids=["wrong-component-type", "config-not-flavor-config", "config-a-dict", "not-a-flavor"],
)
def test_registrar_refuses_invalid_registrations(registered, message: str, monkeypatch):
    monkeypatch.delenv("KITARU_STRICT_PLUGINS", raising=False)
    registrar = FlavorRegistrar()
    registrar.current_plugin = "sloppy"
    with pytest.raises(PluginError, match="sloppy") as err:
        registrar.add(registered())
    assert message in str(err.value)
    assert registrar.all() == []

    # through a manager the sloppy plugin is reported and a good one is unaffected
    manager = manager_with(good=lambda r: r.add(echo_flavor("fine")),
                           sloppy=lambda r: r.add(registered()))
    assert message in (info(manager, "sloppy").error or "")
    assert manager.flavor("registry", "fine").plugin == "good"


def test_duplicate_flavor_across_plugins_is_refused(monkeypatch):
    monkeypatch.delenv("KITARU_STRICT_PLUGINS", raising=False)
    manager = manager_with(first=lambda r: r.add(echo_flavor()), second=lambda r: r.add(echo_flavor()))
    assert manager.flavor("registry", "echo").plugin == "first"
    error = info(manager, "second").error or ""
    assert "flavor 'echo' (registry) is registered by both 'first' and 'second'" in error
    assert "uninstall one of them" in error
    monkeypatch.setenv("KITARU_STRICT_PLUGINS", "1")
    strict = manager_with(first=lambda r: r.add(echo_flavor()), second=lambda r: r.add(echo_flavor()))
    with pytest.raises(PluginError, match="registered by both"):
        strict.flavor("registry", "echo")


# -- the installed plugins (entry points) ------------------------------------------------------


def test_the_local_plugin_comes_through_the_entry_point():
    local = next(p for p in default_manager().plugins() if p.name == "local")
    assert local.distribution == "kitaru-local"
    assert local.version
    assert local.error is None
    assert {(f.type, f.name) for f in local.flavors} == {
        ("registry", "sqlite"), ("artifact_store", "local"), ("artifact_store", "fsspec"),
        ("orchestrator", "local"), ("execution_target", "inline"), ("execution_target", "process"),
    }
    assert all(f.plugin == "kitaru-local" for f in local.flavors)


def fake_distribution(root: Path, *, entry: str, target: str, source: str | None = None) -> str:
    """An installed-looking distribution in `root`: dist-info with METADATA and entry points.

    `source` becomes the module `target` names. Returns the distribution name.
    """
    name = f"kitaru-fake-{entry}"
    dist_info = root / f"{name.replace('-', '_')}-9.9.9.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 9.9.9\n")
    (dist_info / "entry_points.txt").write_text(f"[kitaru]\n{entry} = {target}\n")
    if source is not None:
        (root / f"{target.split(':')[0]}.py").write_text(source)
    return name


BROKEN_SOURCE = "raise ImportError('kitaru_fake_sdk is not installed')\n"
WORKING_SOURCE = """\
from kitaru_core.interfaces import FlavorConfig
from kitaru_core.plugins import Flavor, hookimpl


class VaultConfig(FlavorConfig):
    bucket: str = "vault"


@hookimpl
def kitaru_register_flavors(registrar):
    registrar.add(Flavor(name="vault-FLAVOR", type="artifact_store", config=VaultConfig,
                         implementation="kitaru_fake_sdk:Vault"))
"""


@pytest.fixture
def plugin_path(tmp_path: Path) -> types.SimpleNamespace:
    """A folder with one broken and one working plugin distribution (names unique per test)."""
    tag = uuid.uuid4().hex[:8]
    root = tmp_path / "site"
    root.mkdir()
    broken = fake_distribution(root, entry=f"broken{tag}", target=f"kitaru_fake_broken_{tag}",
                               source=BROKEN_SOURCE)
    working = fake_distribution(root, entry=f"vault{tag}", target=f"kitaru_fake_vault_{tag}",
                                source=WORKING_SOURCE.replace("FLAVOR", tag))
    return types.SimpleNamespace(root=root, broken=broken, working=working, tag=tag)


def test_broken_entry_point_is_reported_with_its_error(plugin_path, monkeypatch):
    root, broken, working, tag = plugin_path.root, plugin_path.broken, plugin_path.working, plugin_path.tag
    monkeypatch.delenv("KITARU_STRICT_PLUGINS", raising=False)
    monkeypatch.syspath_prepend(str(root))
    manager = PluginManager()
    manager.load_entry_points()
    plugins = {p.name: p for p in manager.plugins()}
    assert plugins[f"broken{tag}"].distribution == broken
    assert plugins[f"broken{tag}"].error == "ImportError: kitaru_fake_sdk is not installed"
    vault = plugins[f"vault{tag}"]
    assert (vault.distribution, vault.version, vault.error) == (working, "9.9.9", None)
    assert [f.name for f in vault.flavors] == [f"vault-{tag}"]
    assert plugins["local"].error is None
    assert manager.flavor("registry", "sqlite").plugin == "kitaru-local"


def test_plugins_list_cli_shows_a_broken_plugin_and_the_others(plugin_path):
    tag = plugin_path.tag
    env = {"PYTHONPATH": str(plugin_path.root), "KITARU_STRICT_PLUGINS": "0"}
    result = run_cli("plugins", "list", "-o", "json", env=env)
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins[f"broken{tag}"]["error"] == "ImportError: kitaru_fake_sdk is not installed"
    assert plugins[f"broken{tag}"]["flavors"] == []
    vault = plugins[f"vault{tag}"]
    assert vault["distribution"] == plugin_path.working and vault["version"] == "9.9.9"
    assert vault["flavors"][0]["config"]["bucket"]["default"] == "vault"
    assert plugins["local"]["error"] is None

    table = run_cli("plugins", "list", env=env)
    assert table.returncode == 0
    assert "failed to load" in table.stdout and "kitaru_fake_sdk is not installed" in table.stdout
    # stacks keep working with a broken plugin installed
    assert run_cli("stack", "list", "-o", "json", env=env).returncode == 0


def test_strict_plugins_cli_exits_non_zero_naming_the_plugin(plugin_path):
    tag = plugin_path.tag
    result = run_cli("plugins", "list",
                     env={"PYTHONPATH": str(plugin_path.root), "KITARU_STRICT_PLUGINS": "1"})
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"kitaru: error: plugin 'broken{tag}'" in result.stderr
    assert "ImportError: kitaru_fake_sdk is not installed" in result.stderr
    assert "Traceback" not in result.stderr


# -- `kitaru plugins list` ---------------------------------------------------------------------


def test_plugins_list_shows_each_flavor_with_its_config_fields(cli):
    result = cli("plugins", "list", "-o", "json")
    assert result.exit_code == 0
    local = next(p for p in result.json() if p["name"] == "local")
    assert local["distribution"] == "kitaru-local" and local["version"] and local["error"] is None
    flavors = {(f["type"], f["name"]): f for f in local["flavors"]}
    sqlite = flavors[("registry", "sqlite")]
    assert sqlite["description"]
    assert sqlite["config"]["busy_timeout"]["type"] == "float"
    assert sqlite["config"]["busy_timeout"]["default"] == 30.0
    assert sqlite["config"]["path"]["type"] == "str | None"
    assert flavors[("execution_target", "process")]["config"]["env"] == {
        "type": "dict[str, str]", "required": False, "default": {},
        "description": "Extra environment variables for each worker",
    }

    table = cli("plugins", "list")
    assert table.exit_code == 0
    for text in ("kitaru-local", "registry sqlite", "busy_timeout: float = 30.0", "path: str | None = None",
                 "env: dict[str, str]"):
        assert text in table.stdout


def test_plugins_list_uses_the_process_manager(cli, monkeypatch):
    monkeypatch.delenv("KITARU_STRICT_PLUGINS", raising=False)
    manager = manager_with(good=lambda r: r.add(echo_flavor()), broken=half_then_fail)
    monkeypatch.setattr(manager_module, "_default", manager)
    data = {p["name"]: p for p in cli("plugins", "list", "-o", "json").json()}
    assert set(data) == {"good", "broken"}
    assert data["broken"]["error"].startswith("RuntimeError")
    assert data["good"]["flavors"][0]["config"]["url"]["required"] is True
    assert "failed to load: RuntimeError" in cli("plugins", "list").stdout
