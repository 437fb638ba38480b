"""Nothing MLflow promises is lost, on the stores many clients write to at once.

The charm's server (auth on, as deployed) on PostgreSQL, always, and on CrateDB
where one is given (``CRATEDB_HOME``): CrateDB makes a write visible to
queries only after a refresh, which the charm's server does once per flush
(``cratedb_app.py``); these tests hold it to what MLflow promises on any store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stack.local import cratedb_store
from stack.mlflow_server import MlflowServer, mt
from stack.postgres import Postgres, pg_bin
from tests.workload.conftest import PebbleFactory, record

CLIENTS = 4
WRITES_PER_CLIENT = 125  # 500 in all


@pytest.fixture(scope="module", params=["postgresql", "cratedb"])
def server(
    request: pytest.FixtureRequest, module_pebble_factory: PebbleFactory, mlflow_venv_dir: Path
) -> Iterator[MlflowServer]:
    kind = request.param
    if kind == "postgresql":
        binaries = pg_bin()
        if binaries is None:
            pytest.skip("needs PostgreSQL's server binaries (apt-get install postgresql)")
        pg = Postgres.start(module_pebble_factory("postgresql-consistency"), binaries)
        pg.create_database("consistency", "consistency_user", "consistency-password")
        store = mt.workload.build_store(
            mt.state.StoreKind.POSTGRESQL,
            "consistency",
            "consistency_user",
            "consistency-password",
            f"127.0.0.1:{pg.port}",
            None,
        )
    else:
        store = cratedb_store(
            request.getfixturevalue("cratedb_url"), "relation_consistency", "consistency"
        )
    server = MlflowServer.start(
        module_pebble_factory(f"mlflow-consistency-{kind}"),
        mlflow_venv_dir,
        store,
        mt.state.LOCAL_ARTIFACTS,
        auth=True,
    )
    yield server
    if kind == "postgresql":
        pg.daemon.stop()
        pg.cleanup()


def test_every_write_is_read_back_by_the_very_next_calls_with_several_clients_at_once(
    server: MlflowServer, mlflow_venv_dir: Path, request: pytest.FixtureRequest
):
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    kind = request.node.callspec.params["server"]

    def one(n: int) -> None:
        try:
            tag = f"{kind}-{n}-{time.time_ns()}"
            results.append(
                server.notebook(mlflow_venv_dir, "consistency", str(WRITES_PER_CLIENT), tag)
            )
        except BaseException as err:  # reported below
            errors.append(err)

    started = time.monotonic()
    threads = [threading.Thread(target=one, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=1800)
    seconds = time.monotonic() - started

    assert errors == []
    assert sum(r["writes"] for r in results) == CLIENTS * WRITES_PER_CLIENT
    assert [m for r in results for m in r["misses"]] == []
    record(
        f"write-then-read on {kind} ({CLIENTS} clients, {CLIENTS * WRITES_PER_CLIENT} writes, "
        "each read back by get_run, get_metric_history and search_runs)",
        f"0 misses in {seconds:.1f} s",
    )


def test_duplicates_are_refused_as_mlflow_refuses_them(
    server: MlflowServer, mlflow_venv_dir: Path, request: pytest.FixtureRequest
):
    kind = request.node.callspec.params["server"]

    codes = server.notebook(mlflow_venv_dir, "duplicates", f"{kind}-{time.time_ns()}")

    assert codes == {
        "experiment": "RESOURCE_ALREADY_EXISTS",
        "param": "INVALID_PARAMETER_VALUE",
        "same_param_again": "accepted",
        "registered_model": "RESOURCE_ALREADY_EXISTS",
    }
