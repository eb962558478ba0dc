"""A read-only or full kitaru home: one-line errors naming the place and the fix; reads still
work on a read-only home. Real file systems: a home the test's user cannot write (as root:
run as `nobody`), and a 3 MB tmpfs (root only)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FLOW = '''
import sys
from kitaru import checkpoint, flow
from kitaru_core.errors import KitaruError

@checkpoint
def make(n: int) -> str:
    return "v" * n

@flow
def sized(n: int) -> int:
    return len(make(n).load())

if __name__ == "__main__":
    try:
        print(sized.run(int(sys.argv[1])).wait())
    except KitaruError as exc:
        print(type(exc).__name__, exc, file=sys.stderr)
        sys.exit(3)
'''


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user can reach (pytest's own temporary folders are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="kitaru-storage-"))
    path.chmod(0o755)
    (path / "sized_flow.py").write_text(FLOW)
    yield path
    for folder, _, _ in os.walk(path):
        os.chmod(folder, 0o755)
    shutil.rmtree(path, ignore_errors=True)


def _run(args: list[str], home: Path, *, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KITARU_HOME": str(home)}
    env.pop("KITARU_STACK", None)
    prefix = []
    if as_nobody:
        if shutil.which("setpriv") is None:
            pytest.skip("running as another user needs setpriv (util-linux)")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    return subprocess.run([*prefix, sys.executable, *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=home.parent)


def test_a_read_only_home_can_be_read_and_refuses_writes_in_one_line(shared_dir: Path):
    home = shared_dir / "home"
    done = _run([str(shared_dir / "sized_flow.py"), "10"], home)
    assert done.returncode == 0, done.stderr
    for folder, _, files in os.walk(home):
        os.chmod(folder, 0o555)
        for name in files:
            os.chmod(Path(folder) / name, 0o444)
    as_nobody = os.geteuid() == 0  # root writes anyway: be someone else
    if not as_nobody and os.access(home, os.W_OK):
        pytest.skip("this user can write a folder without write permission")

    listing = _run(["-m", "kitaru.cli.main", "executions", "list", "-o", "json"], home,
                   as_nobody=as_nobody)
    assert listing.returncode == 0, listing.stderr
    assert [e["status"] for e in __import__("json").loads(listing.stdout)] == ["completed"]
    status = _run(["-m", "kitaru.cli.main", "status"], home, as_nobody=as_nobody)
    assert status.returncode == 0 and "registry:     ok" in status.stdout, status.stderr

    run = _run([str(shared_dir / "sized_flow.py"), "20"], home, as_nobody=as_nobody)
    assert run.returncode == 3 and run.stderr.startswith("StorageError"), run.stderr
    assert "read-only" in run.stderr and "KITARU_HOME" in run.stderr
    delete = _run(["-m", "kitaru.cli.main", "executions", "delete", "--status", "completed",
                   "--yes"], home, as_nobody=as_nobody)
    assert delete.returncode == 1 and "read-only" in delete.stderr
    assert delete.stderr.count("\n") == 1  # one line, no traceback


@pytest.fixture
def small_disk() -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    path = Path(tempfile.mkdtemp(prefix="kitaru-full-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(path)],
                             capture_output=True)
    if mounted.returncode != 0:
        path.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)
        path.rmdir()


def test_a_full_disk_fails_the_run_in_one_line_and_gc_makes_room(small_disk: Path):
    script = small_disk.parent / f"{small_disk.name}-flow.py"
    script.write_text(FLOW)
    home = small_disk / "home"
    try:
        assert _run([str(script), "1000"], home).returncode == 0
        full = _run([str(script), str(5_000_000)], home)  # 5 MB on a 3 MB disk
        assert full.returncode == 3 and "is full" in full.stderr and "kitaru gc" in full.stderr
        assert full.stderr.count("\n") == 1
        leftovers = list((home / "artifacts" / "blobs").rglob("*"))
        assert not [p for p in leftovers if p.is_file() and p.stat().st_size > 100_000]
        listing = _run(["-m", "kitaru.cli.main", "executions", "list", "-o", "json"], home)
        statuses = sorted(e["status"] for e in __import__("json").loads(listing.stdout))
        assert statuses == ["completed", "failed"]  # recorded as failed, not left running
        assert _run([str(script), "2000"], home).returncode == 0  # room for small values still
    finally:
        script.unlink(missing_ok=True)
