"""Small helpers the integration tests share."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from axis.core import pki
from axis.errors import AxisError
from axis.host.datadir import DataDir
from axis.http.sockets import free_port as free_port  # re-exported for the tests


def counts(data: DataDir) -> tuple[int, int]:
    """(packages, deliveries) in the hub's SQLite file, read behind the hub's back."""
    with sqlite3.connect(data.database) as db:
        packages = db.execute("SELECT count(*) FROM packages").fetchone()[0]
        deliveries = db.execute("SELECT count(*) FROM deliveries").fetchone()[0]
    return int(packages), int(deliveries)


def assert_problem(exc: pytest.ExceptionInfo[AxisError], name: str, status: int) -> None:
    """The hub answered problem+json of type ``urn:axis:problem:NAME`` with ``status``."""
    err = exc.value
    assert err.answer is not None, f"raised here, not answered by the hub: {err!r}"
    assert err.type_uri == f"urn:axis:problem:{name}", err.answer
    assert err.status == status
    assert err.answer["status"] == status
    assert err.answer.get("title") and err.answer.get("detail")


def foreign_identity(organ_id: str, tmp: Path) -> tuple[Path, Path]:
    """A key and a certificate for ``organ_id`` from a CA the hub does not trust."""
    ca_key, ca_cert = pki.create_ca("Some other CA")
    key, cert = pki.issue_agency_cert(ca_key, ca_cert, organ_id, "Impostor")
    return _write(tmp, "foreign", key, cert)


def self_signed_cert(
    common_name: str, key: pki.PrivateKey | None = None
) -> tuple[pki.PrivateKey, x509.Certificate]:
    """A self-signed, non-CA certificate: valid now, issued by nobody the hub trusts."""
    key = key if key is not None else pki.new_key("rsa")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def self_signed_identity(organ_id: str, tmp: Path) -> tuple[Path, Path]:
    """A key and a self-signed certificate naming ``organ_id``, written to ``tmp``."""
    return _write(tmp, "selfsigned", *self_signed_cert(organ_id))


def _write(tmp: Path, stem: str, key: pki.PrivateKey, cert: x509.Certificate) -> tuple[Path, Path]:
    key_path, cert_path = tmp / f"{stem}-key.pem", tmp / f"{stem}-cert.pem"
    key_path.write_bytes(pki.key_to_pem(key))
    cert_path.write_bytes(pki.cert_to_pem(cert))
    return key_path, cert_path


BIN = Path(sys.executable).parent

_SHARED_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
#: The fixed interop vectors: ../shared/samples beside the clone, else the copy in tests/data.
SAMPLES = (
    _SHARED_SAMPLES
    if (_SHARED_SAMPLES / "edoc-signed.xml").exists()
    else Path(__file__).resolve().parent / "data" / "samples"
)
#: edXML as the field's software writes it (SOURCES.md there), from the same place.
FIELD = SAMPLES / "field"
_SHARED_VDXP = Path(__file__).resolve().parents[2] / "shared" / "vdxp"
#: The national axis's API as its clients call it (PROTOCOL.md, the captured requests):
#: ../shared/vdxp beside the clone, else the copy in tests/data.
VDXP = (
    _SHARED_VDXP
    if (_SHARED_VDXP / "PROTOCOL.md").exists()
    else Path(__file__).resolve().parent / "data" / "vdxp"
)


def init_data(data: Path, port: int) -> Path:
    """``axis init`` a data folder whose node API port is ``port`` (so profiles point there)."""
    cli("axis", "init", "--data", data)
    toml = data / "axis.toml"
    toml.write_text(toml.read_text().replace("port = 8443", f"port = {port}"))
    return data


def cli(
    *args: str | Path, check: bool = True, env: dict[str, str] | None = None
) -> CompletedProcess[str]:
    """Run a command: ``axis`` and ``axis-node`` from this venv, others from the PATH."""
    program = BIN / str(args[0])
    command = [str(program) if program.exists() else str(args[0]), *map(str, args[1:])]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed ({result.returncode}):\n{result.stderr}")
    return result


@contextlib.contextmanager
def running_process(
    command: list[str], log_path: Path, ready: Callable[[], None], what: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command`` (output to ``log_path``), wait until ``ready()`` stops raising
    OSError (30 s at most), yield it, then stop it with SIGTERM (SIGKILL after 15 s)."""
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(log_path.read_text())
            try:
                ready()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"{what} was not ready in 30 s")
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextlib.contextmanager
def serving(
    data: Path, port: int, admin_port: int, *extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``axis serve`` as its own process, until the block ends; its output goes to
    DATA/serve.log."""

    def healthy() -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/healthz", timeout=1):
            pass

    command = [str(BIN / "axis"), "serve", "--data", str(data), "--port", str(port),
               "--admin-port", str(admin_port), *extra]  # fmt: skip
    with running_process(command, data / "serve.log", healthy, "axis serve") as process:
        yield process


@contextlib.contextmanager
def node_listening(profile: Path, port: int, out: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``axis-node listen`` as its own process, until the block ends."""

    def listening() -> None:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()

    command = [str(BIN / "axis-node"), "--profile", str(profile), "listen", "--port", str(port),
               "--out", str(out)]  # fmt: skip
    log_path = out.parent / f"listen-{port}.log"
    with running_process(command, log_path, listening, "axis-node listen") as process:
        yield process


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    """Poll ``check`` until it is true; fail after ``timeout`` seconds (a bounded wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not true within {timeout} s")


PG_URL = os.environ.get("AXIS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
# CI sets this: there a PostgreSQL test that cannot reach its database fails, never skips.
REQUIRE_PG = os.environ.get("AXIS_REQUIRE_POSTGRES") == "1"


# SQL that swaps an agency's certificate fingerprint behind the hub's back: always another
# value (a plain 'ab' || … leaves one that starts with "ab" as it was: 1 run in 256).
SWAPPED_FINGERPRINT = (
    "fingerprint = CASE WHEN fingerprint LIKE 'ab%' THEN 'cd' ELSE 'ab' END"
    " || substr(fingerprint, 3)"
)


@contextlib.asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A database URL whose tables live in a fresh schema, dropped afterwards: each test gets
    an empty database. Skips when PostgreSQL is unreachable (fails under
    AXIS_REQUIRE_POSTGRES=1)."""
    import asyncpg

    try:
        conn = await asyncpg.connect(PG_URL, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"no PostgreSQL at {PG_URL} ({exc})"
        if REQUIRE_PG:
            pytest.fail(f"{reason}, and AXIS_REQUIRE_POSTGRES=1 says it must be there")
        pytest.skip(f"{reason}; set AXIS_TEST_POSTGRES to run these tests")
    schema = f"axis_test_{uuid.uuid4().hex[:12]}"
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        # asyncpg passes query parameters it does not know to the server as settings.
        yield f"{PG_URL}?search_path={schema}"
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


def hub_stats(admin_port: int, token: str) -> dict[str, Any]:
    """The hub's ``GET /v1/stats``, as the operator sees it."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{admin_port}/v1/stats", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        stats: dict[str, Any] = json.loads(response.read())
        return stats


def rss_mb() -> float:
    """This process's resident memory now (an in-process hub's included), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")
