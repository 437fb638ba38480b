"""The cratedb charm's SQL against a real CrateDB, where one is given.

No registry this project can reach ships CrateDB, so these run only when
``CRATEDB_URL`` names one whose superuser ``crate`` is trusted from
localhost (as the charm's host-based auth sets it up), e.g.
``CRATEDB_URL=http://127.0.0.1:4200``. Everywhere else they skip, saying so.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from stack.charm_loader import charm_modules
from stack.mlflow_server import MlflowServer, mt
from tests.workload.conftest import PebbleFactory, record

URL = os.environ.get("CRATEDB_URL", "")
pytestmark = pytest.mark.skipif(
    not URL,
    reason=(
        "needs a CrateDB: set CRATEDB_URL=http://127.0.0.1:4200 (superuser crate trusted from "
        "localhost); no package registry reachable from here ships CrateDB"
    ),
)
cr = charm_modules("cratedb", "sql", "database", "state")


@pytest.fixture
def crate_port() -> int:
    return urlsplit(URL).port or 4200


@pytest.fixture
def client_user(crate_port: int):
    """A user and schema made by the charm's own statements, dropped afterwards."""
    sql = cr.sql.CrateSQL(port=crate_port)
    suffix = secrets.token_hex(4)
    user, schema, password = f"relation_{suffix}", f"wl_{suffix}", cr.database.generate_password()
    sql.execute(cr.sql.create_user(user, password))
    sql.execute(cr.sql.grant_schema(user, schema))
    yield user, schema, password
    for (table,) in sql.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [schema]
    ):
        sql.execute(f"DROP TABLE {cr.sql.ident(schema)}.{cr.sql.ident(table)}")
    sql.execute(cr.sql.drop_user(user))


def _connect(port: int, user: str, password: str):
    from crate import client

    return client.connect(f"http://127.0.0.1:{port}", username=user, password=password, timeout=10)


def test_client_user_creates_tables_in_its_schema_and_nowhere_else(crate_port: int, client_user):
    user, schema, password = client_user
    from crate.client.exceptions import ProgrammingError

    with _connect(crate_port, user, password) as conn:
        cursor = conn.cursor()
        cursor.execute(f'CREATE TABLE "{schema}".t (x INT)')
        cursor.execute(f'INSERT INTO "{schema}".t (x) VALUES (1)')
        cursor.execute(f'REFRESH TABLE "{schema}".t')
        cursor.execute(f'SELECT count(*) FROM "{schema}".t')
        assert cursor.fetchone()[0] == 1
        with pytest.raises(ProgrammingError):
            cursor.execute("CREATE TABLE doc.intruder (x INT)")
        with pytest.raises(ProgrammingError):
            cursor.execute("SET GLOBAL TRANSIENT \"cluster.routing.allocation.enable\" = 'none'")


def test_mlflow_logs_a_run_with_the_uri_the_charm_hands_out(
    crate_port: int, client_user, module_pebble_factory: PebbleFactory, mlflow_venv_dir: Path
):
    venv = mlflow_venv_dir
    user, schema, password = client_user
    store = mt.workload.build_store(
        mt.state.StoreKind.CRATEDB, schema, user, password, f"127.0.0.1:{crate_port}", None
    )
    server = MlflowServer.start(
        module_pebble_factory("mlflow-crate"), Path(venv), store, mt.state.LOCAL_ARTIFACTS
    )
    record("mlflow [cratedb] start (replan -> /health)", f"{server.started_in:.1f} s")

    logged = server.notebook(Path(venv), "log", "experiment-cratedb")

    sql = cr.sql.CrateSQL(port=crate_port)
    rows = sql.query(
        f'SELECT status FROM {cr.sql.ident(schema)}."runs" WHERE run_uuid = ?', [logged["run_id"]]
    )
    assert rows == [("FINISHED",)]
