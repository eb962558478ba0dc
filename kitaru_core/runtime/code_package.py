"""The project's code as a deterministic zip, shipped to isolated tasks through the store.

Everything under the project folder goes in (modules and package data next to them,
such as prompt templates), except environments, caches and VCS folders, hidden folders,
compiled files, and what a `.kitaruignore` at the project root excludes. The zip is
content-addressed (same files, same bytes, same key), so it is uploaded once per content.
`code_digest` names the same files by their paths and contents alone (no zip bytes), so a
copy of the project in a container image (`code: {source: image}`) can be checked against it.

`.kitaruignore` takes one pattern per line (`#` starts a comment): a pattern without `/`
matches a file or folder name at any depth (`*.csv`, `data`), one with `/` a path from the
root (`assets/raw/*`), a trailing `/` only folders. Negation (`!`) is not supported.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from ..errors import ConfigError

IGNORE_FILE = ".kitaruignore"
#: Largest total size (uncompressed) of a code package; `KITARU_CODE_PACKAGE_MAX_MB` changes it.
DEFAULT_MAX_BYTES = 50 * 2**20
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", "site-packages", ".tox",
              "build", "dist", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".so.tmp")

#: The file `kitaru image dockerfile` writes next to the code it copies (a dotfile: not code).
CODE_MANIFEST = ".kitaru-code.json"

_cache: dict[str, tuple[bytes, str] | None] = {}
_digests: dict[str, str] = {}


def max_bytes() -> int:
    raw = os.environ.get("KITARU_CODE_PACKAGE_MAX_MB")
    if not raw:
        return DEFAULT_MAX_BYTES
    try:
        return int(float(raw) * 2**20)
    except ValueError:
        raise ConfigError(
            f"KITARU_CODE_PACKAGE_MAX_MB={raw!r} is not a number of megabytes; set it like 200"
        ) from None


def ignore_patterns(root: Path) -> list[str]:
    """The patterns of `root/.kitaruignore` ([] without one)."""
    try:
        text = (root / IGNORE_FILE).read_text()
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def ignored(rel: str, is_dir: bool, patterns: list[str]) -> bool:
    """True if the relative path `rel` (with `/`) matches one of `patterns`."""
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        if pattern.endswith("/"):
            if not is_dir:
                continue
            pattern = pattern.rstrip("/")
        if "/" in pattern:
            if fnmatch.fnmatchcase(rel, pattern.lstrip("/")):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def package_files(root: Path, limit: int | None = None) -> list[Path]:
    """The files a package of `root` holds, in a stable order.

    Raises `ConfigError` as soon as their total size exceeds `limit` bytes (naming the
    largest files seen), so a huge folder is never walked to its end.
    """
    patterns = ignore_patterns(root)
    files: list[Path] = []
    sizes: dict[Path, int] = {}
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = sorted(
            d for d in dirnames
            if d not in _SKIP_DIRS and not d.startswith(".") and not d.endswith(".egg-info")
            and not ignored(prefix + d, True, patterns)
        )
        for name in sorted(filenames):
            if name.endswith(_SKIP_SUFFIXES) or name == IGNORE_FILE or name.startswith("."):
                continue
            if ignored(prefix + name, False, patterns):
                continue
            path = base / name
            files.append(path)
            sizes[path] = size = path.stat().st_size
            total += size
            if limit is not None and total > limit:
                largest = sorted(sizes, key=sizes.__getitem__, reverse=True)[:3]
                named = ", ".join(f"{f.relative_to(root).as_posix()} ({sizes[f] / 2**20:.1f} MB)"
                                  for f in largest)
                raise ConfigError(
                    f"the code package of {root} is over the {limit / 2**20:.0f} MB limit "
                    f"(largest files: {named}); list what isolated checkpoints do not need in "
                    f"{root / IGNORE_FILE}, or raise KITARU_CODE_PACKAGE_MAX_MB"
                )
    return files


def is_installed(root: Path) -> bool:
    """True for code under site-packages (an image installs it; it is never packaged)."""
    return bool({"site-packages", "dist-packages"} & set(root.parts))


def code_package(root: Path, *, cached: bool = True) -> tuple[bytes, str] | None:
    """A deterministic zip of the project under `root` and its sha256 (cached per process;
    `cached=False` reads the files as they are now, as a deployment does).

    None for installed code (under site-packages: the task's image installs it too).
    Raises `ConfigError` when the files exceed the size limit, naming the largest ones.
    """
    key = str(root)
    if cached and key in _cache:
        return _cache[key]
    if is_installed(root):
        _cache[key] = None
        return None
    files = package_files(root, max_bytes())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            info = zipfile.ZipInfo(f.relative_to(root).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, f.read_bytes())
    data = buf.getvalue()
    result = (data, hashlib.sha256(data).hexdigest())
    if cached:
        _cache[key] = result
    return result


def code_digest(root: Path, *, cached: bool = True) -> str:
    """sha256 of the files a package of `root` holds: each one's path and content, in order.

    Independent of zip and compression details, so the runner's project and a copy of it
    in an image have the same digest exactly when they hold the same files. Raises
    `ConfigError` over the size limit, as `code_package` does.
    """
    key = str(root)
    if cached and key in _digests:
        return _digests[key]
    outer = hashlib.sha256()
    for f in package_files(root, max_bytes()):
        outer.update(f.relative_to(root).as_posix().encode() + b"\0")
        outer.update(hashlib.sha256(f.read_bytes()).hexdigest().encode() + b"\n")
    digest = outer.hexdigest()
    if cached:
        _digests[key] = digest
    return digest


def code_cache_dir() -> Path:
    """Where code packages unpack: `<kitaru home>/code`, or `KITARU_CODE_CACHE`.

    Not a shared temporary folder: code found there is imported and run, so it
    must live where only this user can write.
    """
    from ..home import home_dir

    env = os.environ.get("KITARU_CODE_CACHE")
    return Path(env).expanduser() if env else home_dir() / "code"


def extract_code_package(store: Any, key: str) -> Path:
    """The folder the code package `key` (a blob of `store`) is unpacked to, once per key."""
    base = code_cache_dir()
    target = base / key
    if not (target / ".complete").exists():
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=base, prefix=f".{key[:12]}-"))
        try:
            with zipfile.ZipFile(io.BytesIO(store.get_blob(key))) as zf:
                zf.extractall(tmp)
            (tmp / ".complete").write_text("")
            os.replace(tmp, target)
        except OSError:
            if not (target / ".complete").exists():  # not "another worker extracted it first"
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
