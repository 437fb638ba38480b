"""A real PostgreSQL (Debian's package) run by a real Pebble, for workload tests.

The cluster lives in its own directory under /tmp (PostgreSQL refuses to run
as root, so as root it runs as the ``postgres`` user, which must be able to
reach its directory), listens on 127.0.0.1 only, and is stopped through Pebble.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from stack.pebble import PebbleDaemon, free_port


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL server binaries, if any."""
    env = os.environ.get("PG_BIN")
    if env and (Path(env) / "postgres").exists():
        return Path(env)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return found[-1].parent if found else None


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _identifier(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@dataclass
class Postgres:
    """One PostgreSQL cluster; ``uri_for`` builds what the charm would."""

    daemon: PebbleDaemon
    bin_dir: Path
    data_dir: Path
    port: int
    user: str | None

    @classmethod
    def start(cls, daemon: PebbleDaemon, bin_dir: Path) -> Postgres:
        """initdb, then run ``postgres`` under Pebble, waiting until it accepts connections."""
        root = Path(tempfile.mkdtemp(prefix="pg-workload-", dir="/tmp"))
        data = root / "data"
        user = "postgres" if os.geteuid() == 0 else None
        if user:
            account = pwd.getpwnam(user)
            os.chown(root, account.pw_uid, account.pw_gid)
        # The postgres user must reach its socket directory under /tmp.
        os.chmod(root, 0o755)  # noqa: S103
        pg = cls(daemon, bin_dir, data, free_port(), user)
        pg._run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ]
        )
        service: dict = {
            "override": "replace",
            "command": (
                f"{bin_dir / 'postgres'} -D {data} -p {pg.port} -h 127.0.0.1 -k {root} "
                "-c fsync=off -c synchronous_commit=off"
            ),
            "startup": "enabled",
        }
        if user:
            service["user"] = user
        daemon.apply({"services": {"postgresql": service}}, label="postgresql")
        daemon.wait_for(pg._accepting, timeout=60, what="PostgreSQL accepting connections")
        return pg

    def _run(self, argv: list[str], stdin: str | None = None) -> str:
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, check=False, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip()}")
        return done.stdout

    @property
    def socket_dir(self) -> Path:
        """Where the server's Unix socket lives."""
        return self.data_dir.parent

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the Unix socket; tuples only, unaligned."""
        return self._run(
            [
                str(self.bin_dir / "psql"),
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ]
        ).strip()

    def _accepting(self) -> bool:
        try:
            return self.psql("SELECT 1") == "1"
        except RuntimeError:
            return False

    def create_database(self, name: str, user: str, password: str) -> None:
        """A login role owning a new database, as a database charm hands out."""
        self.psql(f"CREATE ROLE {_identifier(user)} LOGIN PASSWORD {_literal(password)}")
        self.psql(f"CREATE DATABASE {_identifier(name)} OWNER {_identifier(user)}")

    def cleanup(self) -> None:
        """Remove the cluster's files (after the daemon stopped)."""
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)
