"""A real, throw-away PostgreSQL 15 for the cluster tests, the local cluster and the benchmark.

Plain Python (no pytest at module level) so ``scripts/cluster-local`` and ``bench/cluster.py``
use the same code as the tests::

    from tests.cluster.pg import missing, postgres

    with postgres() as pg:              # initdb into a temp dir, start, create the database
        print(pg.url)                   # postgresql://postgres@127.0.0.1:PORT/lambdalet
    # stopped, and its directory removed

The server runs from Debian's ``postgresql-15`` binaries as the unprivileged ``postgres`` user
when we are root (PostgreSQL refuses to run as root), else as the current user; it listens on a
free port on 127.0.0.1 only, with no Unix socket, trust auth, and durability off (fsync,
synchronous_commit, full_page_writes): it is a test database, and the tests kill workers, not it.
It gets ``SIGINT`` (fast shutdown) if the process that started it dies.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Debian's ``postgresql-15`` server binaries (``LAMBDALET_PG_BIN`` overrides)
PG_BIN = Path(os.environ.get("LAMBDALET_PG_BIN", "/usr/lib/postgresql/15/bin"))
#: the unprivileged account the server runs as when we are root (Debian's package creates it)
PG_USER = "postgres"
DBNAME = "lambdalet"
_NEEDED = ("initdb", "postgres", "pg_isready", "createdb")
_READY_TIMEOUT = 60.0


def missing() -> str | None:
    """Why PostgreSQL cannot start here, or None when it can (for ``tests.needs.require``)."""
    for name in _NEEDED:
        if not (PG_BIN / name).is_file():
            return f"{PG_BIN / name} not found (apt-get install postgresql; lambdalet.sh does it)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return f"no {PG_USER!r} user to run PostgreSQL as (root cannot)"
        if shutil.which("setpriv") is None:
            return "setpriv (util-linux) not found"
    return None


@dataclass(frozen=True)
class Postgres:
    """A running server: ``url`` names its database; ``admin_url`` its ``postgres`` database."""

    port: int
    data_dir: Path
    dbname: str
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return self.url_for(self.dbname)

    @property
    def admin_url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, dbname: str) -> str:
        """Create another empty database on this server (one per test module, say); its URL."""
        _run(_as_user([str(PG_BIN / "createdb"), *self._conn_args(), dbname]))
        return self.url_for(dbname)

    def _conn_args(self) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER]


def _as_user(argv: list[str], *, pdeathsig: bool = False) -> list[str]:
    """``argv`` run as the unprivileged user when we are root (setpriv execs, so the pid we get
    is the program's own and signals reach it), else as it is."""
    prefix: list[str] = []
    if os.geteuid() == 0 or pdeathsig:
        prefix = ["setpriv"]
        if os.geteuid() == 0:
            prefix += [f"--reuid={PG_USER}", f"--regid={PG_USER}", "--init-groups"]
        if pdeathsig:
            prefix += ["--pdeathsig", "INT"]
        prefix.append("--")
    return [*prefix, *argv]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    if os.geteuid() == 0:
        env["HOME"] = tempfile.gettempdir()
    return env


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _initdb(root: Path) -> Path:
    data = root / "data"
    if os.geteuid() == 0:
        pw = pwd.getpwnam(PG_USER)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    argv = [str(PG_BIN / "initdb"), "-D", str(data), "-U", PG_USER, "-E", "UTF8"]
    argv += ["--no-locale", "--auth=trust", "--no-sync"]
    _run(_as_user(argv))
    return data


def _start(data: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": "",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "300",
        "shared_buffers": "32MB",
    }
    argv = [str(PG_BIN / "postgres"), "-D", str(data)]
    for key, value in settings.items():
        argv += ["-c", f"{key}={value}"]
    with log.open("ab") as out:
        return subprocess.Popen(
            _as_user(argv, pdeathsig=True),
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    argv = [str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER]
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"postgres exited ({proc.returncode}): {_tail(log)}")
        if subprocess.run(argv, env=_env(), check=False).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"postgres not ready after {_READY_TIMEOUT:.0f}s: {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)  # fast shutdown: roll back, disconnect clients, exit
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def postgres(dbname: str = DBNAME, *, keep_dir: bool = False) -> Iterator[Postgres]:
    """Start a fresh PostgreSQL with database ``dbname``; stop it and remove its files after.

    Raises RuntimeError (with the server's log) when it cannot start; call ``missing()`` first to
    skip or fail cleanly when PostgreSQL is not installed.
    """
    why = missing()
    if why is not None:
        raise RuntimeError(f"PostgreSQL unavailable: {why}")
    root = Path(tempfile.mkdtemp(prefix="lambdalet-pg-"))
    log = root / "postgres.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        data = _initdb(root)
        for attempt in range(3):  # a free port can be taken between the probe and the bind
            port = _free_port()
            proc = _start(data, port, log)
            try:
                _wait_ready(proc, port, log)
                break
            except RuntimeError:
                _stop(proc)
                if attempt == 2:
                    raise
        assert proc is not None
        pg = Postgres(port=port, data_dir=data, dbname=dbname, process=proc)
        if dbname != "postgres":
            pg.create_database(dbname)
        yield pg
    finally:
        if proc is not None:
            _stop(proc)
        if not keep_dir:
            shutil.rmtree(root, ignore_errors=True)
