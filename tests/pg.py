"""A real PostgreSQL server for tests: initdb + pg_ctl in a temporary directory.

- `PgServer.launch()` finds the server binaries (`TRADEPLANE_PG_BINDIR`, else the newest
  /usr/lib/postgresql/*/bin, else `initdb` on PATH), runs `initdb` in a fresh temp dir and
  starts the server on a free 127.0.0.1 port. initdb refuses to run as root, so as root
  every server command runs as the `postgres` user (`runuser -u postgres --`) on a data
  dir chowned to it.
- Durability is traded for speed (fsync=off, full_page_writes=off): the server process is
  never crashed by a test, only stopped (`stop()`/`start()`, e.g. for outage tests), and a
  stopped server keeps everything committed. `synchronous_commit` stays on, so a commit
  the client saw is in the WAL when the server is stopped, even with `-m immediate`.
- Clients authenticate with a password over TCP (scram-sha-256), so tests can check that
  the password never reaches a log line; `url(db)` builds the connection URL.
- `fresh_database(server)` creates `test_<random>` and drops it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path

ENV_BINDIR = "TRADEPLANE_PG_BINDIR"
SUPERUSER = "tradeplane"
RUN_AS = "postgres"  # the OS user the server runs as when we are root


class PgUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (hack/bootstrap installs them)."""


def find_bindir() -> Path:
    override = os.environ.get(ENV_BINDIR)
    if override:
        return Path(override)

    def version(path: str) -> tuple[int, ...]:
        found = re.search(r"postgresql/([\d.]+)/bin", path)
        return tuple(int(p) for p in found.group(1).split(".")) if found else (0,)

    candidates = sorted(glob("/usr/lib/postgresql/*/bin"), key=version)
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PgUnavailable(
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, no "
        f"initdb on PATH, {ENV_BINDIR} unset): run hack/bootstrap (apt package postgresql)"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PgServer:
    bindir: Path
    root: Path  # temp dir: data/, sock/, server.log
    port: int
    password: str = field(repr=False)
    run_as: str | None  # OS user for server commands (None: ourselves)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    # ---- lifecycle ----------------------------------------------------------------------

    @classmethod
    def launch(cls, *, attempts: int = 3) -> PgServer:
        bindir = find_bindir()
        run_as = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(RUN_AS)
            except KeyError:
                raise PgUnavailable(
                    f"running as root and there is no {RUN_AS!r} user to run PostgreSQL as"
                ) from None
            run_as = RUN_AS
        root = Path(tempfile.mkdtemp(prefix="tradeplane-pg-"))
        server = cls(bindir, root, free_port(), secrets.token_hex(16), run_as)
        try:
            server._initdb()
            for attempt in range(attempts):
                try:
                    server.start()
                    return server
                except RuntimeError:
                    if attempt == attempts - 1:
                        raise
                    server.port = free_port()  # somebody took the port: try another
                    server._write_config()
        except BaseException:
            server.destroy()
            raise
        raise AssertionError("unreachable")

    def _cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        return [*prefix, *args]

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._cmd(*args),
            cwd=self.root,  # the server user must be able to stat its working directory
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _initdb(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        (self.root / "sock").mkdir()
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            for path in (self.root, pwfile, self.root / "sock"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(pwfile, 0o600)
        done = self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.data_dir),
            "-U", SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E", "UTF8",
            "--no-locale",
            "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()[-2000:]}")
        self._write_config()

    def _write_config(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root / 'sock'}'",
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "on",
            "max_connections": "200",
            "shared_buffers": "32MB",
            "log_min_messages": "warning",
        }
        text = "".join(f"{key} = {value}\n" for key, value in settings.items())
        # postgresql.auto.conf is read last: it wins over postgresql.conf
        target = self.data_dir / "postgresql.auto.conf"
        target.write_text(text)
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(target, entry.pw_uid, entry.pw_gid)

    def start(self, timeout: float = 30) -> None:
        done = self._run(
            str(self.bindir / "pg_ctl"),
            "-D", str(self.data_dir),
            "-l", str(self.log_file),
            "-w", "-t", str(int(timeout)),
            "start",
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip()} {self.log_tail()}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: disconnect clients; `immediate`: like a crash)."""
        done = self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"
        )
        if done.returncode != 0 and self.running:
            raise RuntimeError(f"pg_ctl stop failed: {done.stderr.strip()}")

    @property
    def running(self) -> bool:
        done = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "status")
        return done.returncode == 0

    def ensure_running(self) -> None:
        if not self.running:
            self.start()

    @contextlib.contextmanager
    def down(self, mode: str = "fast") -> Iterator[None]:
        """The server is stopped inside the block and started again after it."""
        self.stop(mode)
        try:
            yield
        finally:
            self.start()

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            if self.data_dir.exists() and self.running:
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


async def create_database(server: PgServer, name: str | None = None) -> str:
    import asyncpg

    name = name or f"test_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(server.url(), timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_database(server: PgServer, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(server.url(), timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_database(server: PgServer) -> AsyncIterator[str]:
    """A new, empty database for one test; yields its URL and drops it afterwards (the
    server is started again first if the test left it stopped)."""
    name = await create_database(server)
    try:
        yield server.url(name)
    finally:
        server.ensure_running()
        deadline = time.monotonic() + 10
        while True:
            try:
                await drop_database(server, name)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
