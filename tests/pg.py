"""A real PostgreSQL for tests: a throwaway cluster (initdb) on a free loopback port, once per session,
and a fresh database per test. Uses the server binaries of Debian's `postgresql` package (CI installs it);
$PG_BIN may point at another bin directory. Missing binaries fail the test with what to install: nothing
is skipped.

    from tests.pg import postgres_server, postgres_url  # noqa: F401  (pytest finds fixtures by name)
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.debian import apt_install
from tests.helpers import free_port

INSTALL = "apt-get install -y postgresql (Debian/Ubuntu), or set PG_BIN to a directory holding initdb and pg_ctl"


def pg_bin(installing: bool = False) -> Path:
    candidates = [Path(os.environ["PG_BIN"])] if os.environ.get("PG_BIN") else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _major(p.parent.name),
                         reverse=True)
    if found := shutil.which("initdb"):
        candidates.append(Path(found).parent)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    if not installing:
        try:  # a clean machine (CI): install Debian's server once, then look again
            apt_install("postgresql", "PostgreSQL server binaries (initdb, pg_ctl) not found")
        except RuntimeError as exc:
            pytest.fail(f"{exc}; or set PG_BIN to a directory holding initdb and pg_ctl")
        return pg_bin(installing=True)
    pytest.fail(f"PostgreSQL server binaries (initdb, pg_ctl) not found: {INSTALL}")


def _major(name: str) -> int:
    return int(name) if name.isdigit() else 0


def _as_owner(args: list[str]) -> list[str]:
    """initdb refuses to run as root: as root, run the server as the `postgres` user the package made."""
    if os.geteuid() != 0:
        return args
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(f"running as root needs the `postgres` user to own the test cluster: {INSTALL}")
    return ["runuser", "-u", "postgres", "--", *args]


def _run(args: list[str], cwd: Path) -> None:
    done = subprocess.run(_as_owner(args), cwd=cwd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}): {done.stdout}{done.stderr}"[-3000:])


def _start(bin_dir: Path, root: Path) -> int:
    for _ in range(3):  # a free port can be taken between the check and the bind: try another
        port = free_port()
        options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=50")
        try:
            _run([str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "server.log"), "-w",
                  "-t", "60", "-o", options, "start"], root)
            return port
        except RuntimeError:
            log = root / "server.log"
            if "could not bind" not in (log.read_text() if log.exists() else ""):
                raise
    raise RuntimeError("PostgreSQL found no free port in 3 tries")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The cluster's base URL (`postgresql+psycopg://postgres@127.0.0.1:PORT`), trust auth on loopback."""
    bin_dir = pg_bin()
    root = Path(tempfile.mkdtemp(prefix="incidentflow-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    _run([str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8",
          "--no-sync"], root)
    port = _start(bin_dir, root)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_owner([str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "-w",
                                  "stop"]), cwd=root, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A database of the test's own on the session's cluster, dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = postgres_server.replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield f"{postgres_server}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
