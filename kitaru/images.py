"""Container images for remote stacks: a Dockerfile and its build context (`kitaru image dockerfile`).

The image holds what a remote runner or worker needs, at the versions of the machine that
renders it (the runner's):

- the base image `python:<major.minor>-slim` of this interpreter (the worker refuses a
  spec from another Python major.minor);
- kitaru and the plugin distribution of each flavor the stack names, pinned at their
  installed versions (`kitaru-aws==0.1.0`), and cloudpickle (a pickled function is
  refused by a worker with another cloudpickle). A distribution installed from a local
  folder (an editable or `pip install ./dir` install, which no registry serves) is carried
  as source in the build context under `vendor/<name>/` and installed from there, with
  every local-folder distribution it requires;
- the project: the files a code package holds (the same filter: no environments, caches,
  VCS, dotfiles, `.kitaruignore` patterns) under `project/`, copied to the stack's
  `code.path` (default `/app`), with `.kitaru-code.json` recording their digest. It is
  then installed from there (`pip install` for a `pyproject.toml` / `setup.py`,
  `pip install -r` for a `requirements.txt`).

Nothing of the environment's values goes in: a stack's `${env:NAME}` references are not
read here, and the project's dotfiles (`.env`) are left out.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from kitaru_core.code_source import DEFAULT_IMAGE_PATH, code_source
from kitaru_core.errors import ConfigError
from kitaru_core.plugins.flavor import COMPONENT_TYPES
from kitaru_core.runtime.code_package import CODE_MANIFEST, code_digest, package_files

#: Folders of the build context `write_context` makes.
PROJECT_DIR = "project"
VENDOR_DIR = "vendor"
#: Where vendored sources go inside the image (removed after they are installed).
VENDOR_IN_IMAGE = "/tmp/kitaru-vendor"
#: Always pinned besides kitaru and the plugins: the worker checks its version for pickled functions.
ALSO_PINNED = ("cloudpickle",)
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class Pin:
    """One distribution the image installs: from the registry at `version`, or from `source`."""

    name: str
    version: str
    source: Path | None = None  # the local folder it was installed from (carried as source)
    why: str = ""

    @property
    def vendored(self) -> str:
        """Its folder name under `vendor/`."""
        return _canonical(self.name)


@dataclass(frozen=True)
class ImagePlan:
    """Everything `render` and `write_context` need: what to install and where the code goes."""

    stack: str
    python: str  # "3.11"
    base: str
    pins: tuple[Pin, ...]
    project: Path
    code_path: str
    digest: str
    install: str  # "pyproject", "requirements" or "" (the project's own dependencies)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _local_source(dist: metadata.Distribution) -> Path | None:
    """The folder `dist` was installed from (editable or not), None for a registry install.

    A `direct_url.json` says so for pip installs; metadata found outside site-packages (a
    `name.egg-info` in a source folder on the path) is that folder's.
    """
    raw = dist.read_text("direct_url.json")
    if not raw:
        base = Path(str(dist.locate_file("")))
        if {"site-packages", "dist-packages"} & set(base.parts):
            return None
        has_build = (base / "pyproject.toml").is_file() or (base / "setup.py").is_file()
        return base if has_build else None
    try:
        info = json.loads(raw)
    except ValueError:
        return None
    url = str(info.get("url", ""))
    if "dir_info" not in info or not url.startswith("file:"):
        return None
    return Path(unquote(urlparse(url).path))


def _pin(name: str, why: str) -> Pin:
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise ConfigError(
            f"{name} is not installed here, so its version for the image is unknown; install it "
            "(the image is rendered from this machine's versions)"
        ) from None
    return Pin(str(dist.metadata["Name"]), dist.version, _local_source(dist), why)


def _local_requirements(pin: Pin, seen: set[str]) -> list[Pin]:
    """The distributions `pin` requires (transitively) that were installed from local folders."""
    out: list[Pin] = []
    for requirement in metadata.distribution(pin.name).requires or []:
        if "extra ==" in requirement.replace('"', "'").replace("extra==", "extra =="):
            continue
        match = _NAME.match(requirement)
        if not match or _canonical(match.group(1)) in seen:
            continue
        try:
            dep = metadata.distribution(match.group(1))
        except metadata.PackageNotFoundError:
            continue
        if _local_source(dep) is None:
            continue
        found = Pin(str(dep.metadata["Name"]), dep.version, _local_source(dep), f"required by {pin.name}")
        seen.add(_canonical(found.name))
        out += [found, *_local_requirements(found, seen)]
    return out


def stack_pins(spec: dict[str, Any], manager: Any) -> list[Pin]:
    """kitaru, the plugin of each of the stack's flavors and `ALSO_PINNED`, at their installed versions."""
    pins = [_pin("kitaru", "the runtime")]
    for ctype in COMPONENT_TYPES:
        flavor = manager.flavor(ctype, spec[ctype]["flavor"])
        plugin = flavor.plugin or ""
        label = f"{spec[ctype]['flavor']} {ctype.replace('_', ' ')}"
        existing = next((p for p in pins if _canonical(p.name) == _canonical(plugin)), None)
        if existing is not None:
            pins[pins.index(existing)] = Pin(existing.name, existing.version, existing.source,
                                             f"{existing.why}, {label}")
            continue
        if not plugin:
            raise ConfigError(
                f"the {label} flavor was registered by no installed distribution, so the image cannot "
                "install it; install its plugin as a package"
            )
        pins.append(_pin(plugin, label))
    seen = {_canonical(p.name) for p in pins}
    for pin in list(pins):
        if pin.source is not None:
            pins += _local_requirements(pin, seen)
    for name in ALSO_PINNED:
        if _canonical(name) not in seen:
            pins.append(_pin(name, "checked by the worker for pickled functions"))
            seen.add(_canonical(name))
    return pins


def plan_image(spec: dict[str, Any], project: Path, manager: Any, *, base: str | None = None) -> ImagePlan:
    """What the image of stack `spec` with the project at `project` installs."""
    project = project.resolve()
    if not project.is_dir():
        raise ConfigError(f"the project folder {project} does not exist; pass --project DIR")
    code = code_source(spec)
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    install = ("pyproject" if (project / "pyproject.toml").is_file() or (project / "setup.py").is_file()
               else "requirements" if (project / "requirements.txt").is_file() else "")
    return ImagePlan(
        stack=spec["name"], python=python, base=base or f"python:{python}-slim",
        pins=tuple(stack_pins(spec, manager)), project=project,
        code_path=code.path if code.in_image else DEFAULT_IMAGE_PATH,
        digest=code_digest(project, cached=False), install=install,
    )


def render(plan: ImagePlan, spec: dict[str, Any]) -> str:
    """The Dockerfile, for the build context `write_context` makes."""
    flavors = ", ".join(f"{ctype} {spec[ctype]['flavor']}" for ctype in COMPONENT_TYPES)
    lines = [
        "# syntax=docker/dockerfile:1",
        f"# The image of kitaru stack {plan.stack!r} ({flavors}),",
        "# rendered by `kitaru image dockerfile` from the runner's versions. Build it from the folder",
        "# `kitaru image dockerfile --out DIR` writes (this file, project/ and vendor/).",
        f"FROM {plan.base}",
        "ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
        "",
        "# kitaru and the plugins of the stack's flavors, at the runner's versions:",
    ]
    for pin in plan.pins:
        where = (f"installed here from {pin.source}: its source is in {VENDOR_DIR}/{pin.vendored}/"
                 if pin.source else "from the package index")
        lines.append(f"#   {pin.name} {pin.version} ({pin.why}; {where})")
    python = tuple(int(part) for part in plan.python.split("."))
    vendored = [p for p in plan.pins if p.source is not None]
    if vendored:
        lines.append(f"COPY {VENDOR_DIR}/ {VENDOR_IN_IMAGE}/")
    args = [f"{VENDOR_IN_IMAGE}/{p.vendored}" if p.source else f"{p.name}=={p.version}" for p in plan.pins]
    lines.append("RUN pip install \\")
    lines += [f'      "{arg}" \\' for arg in args[:-1]]
    lines.append(f'      "{args[-1]}"' + (f" \\\n && rm -rf {VENDOR_IN_IMAGE}" if vendored else ""))
    lines += [
        "",
        f"# The project (digest {plan.digest[:16]}, in {PROJECT_DIR}/{CODE_MANIFEST}) where the stack's",
        "# `code.path` says; a worker with `code: {source: image}` checks this digest before it runs.",
        f"COPY {PROJECT_DIR}/ {plan.code_path}/",
    ]
    if plan.install == "pyproject":
        lines.append(f"RUN pip install {plan.code_path} && rm -rf {plan.code_path}/build")
    elif plan.install == "requirements":
        lines.append(f"RUN pip install -r {plan.code_path}/requirements.txt")
    lines += [
        f"WORKDIR {plan.code_path}",
        "# Smoke test: the versions the runner checks.",
        f"RUN python -c \"import kitaru_core, sys; assert sys.version_info[:2] == {python}, sys.version; "
        f"assert kitaru_core.__version__ == '{_kitaru_core_version()}', kitaru_core.__version__\"",
        "",
    ]
    return "\n".join(lines)


def _kitaru_core_version() -> str:
    from kitaru_core import __version__

    return str(__version__)


def write_context(plan: ImagePlan, spec: dict[str, Any], out: Path) -> Path:
    """Write the build context to `out` (new or empty): Dockerfile, project/, vendor/. Returns `out`."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} is not an empty folder; pass --out a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    project = out / PROJECT_DIR
    _copy_files(plan.project, project)
    (project / CODE_MANIFEST).write_text(json.dumps({
        "digest": plan.digest, "path": plan.code_path, "stack": plan.stack, "python": plan.python,
    }, indent=2) + "\n")
    for pin in plan.pins:
        if pin.source is not None:
            _copy_files(pin.source, out / VENDOR_DIR / pin.vendored)
    (out / "Dockerfile").write_text(render(plan, spec))
    (out / ".dockerignore").write_text("# the context holds only what the image needs\n")
    return out


def _copy_files(root: Path, dest: Path) -> None:
    """The files a code package of `root` holds (no limit: a vendored source may be large)."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in package_files(root):
        target = dest / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
