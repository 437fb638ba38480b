"""A real MariaDB (Debian's ``mariadb-server``) run by a real Pebble: the MySQL-protocol store.

mysql-k8s runs MySQL 8.0; MariaDB speaks the same protocol and SQL dialect for
what MLflow does (docs/compatibility.md says what differs). The server lives in
its own directory under /tmp, listens on 127.0.0.1 only, runs as the ``mysql``
user when started as root, and is stopped through Pebble.
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

MARIADBD = Path("/usr/sbin/mariadbd")
INSTALL_DB = Path("/usr/bin/mariadb-install-db")
CLIENT = Path("/usr/bin/mariadb")


def mariadb_available() -> bool:
    """True when Debian's mariadb-server is installed."""
    return MARIADBD.exists() and INSTALL_DB.exists() and CLIENT.exists()


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _identifier(value: str) -> str:
    return "`" + value.replace("`", "``") + "`"


@dataclass
class MariaDB:
    """One MariaDB server; ``create_database`` hands out what mysql-k8s would."""

    daemon: PebbleDaemon
    root: Path
    port: int
    user: str | None

    @classmethod
    def start(cls, daemon: PebbleDaemon) -> MariaDB:
        """mariadb-install-db, then ``mariadbd`` under Pebble, waiting until it answers."""
        root = Path(tempfile.mkdtemp(prefix="mariadb-workload-", dir="/tmp"))
        user = "mysql" if os.geteuid() == 0 else None
        data = root / "data"
        data.mkdir()
        if user:
            account = pwd.getpwnam(user)
            for path in (root, data):
                os.chown(path, account.pw_uid, account.pw_gid)
        os.chmod(root, 0o755)  # noqa: S103 (the server's user must reach its socket)
        db = cls(daemon, root, free_port(), user)
        argv = [
            str(INSTALL_DB),
            f"--datadir={data}",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ]
        if user:
            argv.append(f"--user={user}")
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {done.stderr.strip()[-2000:]}")
        command = [
            str(MARIADBD),
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={db.socket}",
            f"--pid-file={root / 'mariadbd.pid'}",
            "--bind-address=127.0.0.1",
            f"--port={db.port}",
            "--skip-name-resolve",
            "--innodb-flush-log-at-trx-commit=2",
            "--log-error=" + str(root / "error.log"),
            *([f"--user={user}"] if user else []),
        ]
        service: dict = {"override": "replace", "command": " ".join(command), "startup": "enabled"}
        if user:
            service["user"] = user
        daemon.apply({"services": {"mariadb": service}}, label="mariadb")
        daemon.wait_for(db._answering, timeout=60, what="MariaDB accepting connections")
        return db

    @property
    def socket(self) -> Path:
        """The server's Unix socket (root logs in there, by socket authentication)."""
        return self.root / "mariadbd.sock"

    def sql(self, statement: str, database: str = "") -> str:
        """Run SQL as root over the Unix socket; tab-separated rows without headers."""
        argv = [str(CLIENT), f"--socket={self.socket}", "-uroot", "-N", "-B", "-e", statement]
        if database:
            argv.append(database)
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"mariadb failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def _answering(self) -> bool:
        try:
            return self.sql("SELECT 1") == "1"
        except RuntimeError:
            return False

    def version(self) -> str:
        """The server's version string (``10.11.x-MariaDB-...``)."""
        return self.sql("SELECT VERSION()")

    def create_database(self, name: str, user: str, password: str) -> None:
        """A database and a user with every right on it, from any host (as mysql-k8s makes)."""
        self.sql(f"CREATE DATABASE {_identifier(name)}")
        self.sql(f"CREATE USER {_literal(user)}@'%' IDENTIFIED BY {_literal(password)}")
        self.sql(f"GRANT ALL PRIVILEGES ON {_identifier(name)}.* TO {_literal(user)}@'%'")

    def cleanup(self) -> None:
        """Remove the server's files (after the daemon stopped)."""
        shutil.rmtree(self.root, ignore_errors=True)
