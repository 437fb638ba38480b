"""The cratedb charm against a real CrateDB, wherever one is given.

``CRATEDB_HOME`` names an unpacked CrateDB (see ``stack/cratedb.py`` and the
README for how to build one locally; nothing of it is committed). Every test
here then starts the real ``crate`` under a real Pebble with the layer and
command line the charm builds, and drives it with the charm's own code: its
SQL statements and client, its discovery settings, its layer application, its
drain, and its actions and relation handlers (the cratedb charm run in
ops.testing with its SQL door aimed at the real node). Without
``CRATEDB_HOME`` each test skips, saying how to get a CrateDB.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stack.charm_loader import charm_modules
from stack.cratedb import (
    HOW_TO_GET_ONE,
    NOFILE,
    CrateNode,
    NodePorts,
    bootstrap_failures,
    cratedb_home,
    nofile_allows_bootstrap_checks,
    peer,
)
from stack.mlflow_server import MlflowServer, mt
from stack.pebble import free_port
from stack.seaweed import SeaweedStore
from tests.workload.conftest import PebbleFactory, bin_dir_on_path, record

HOME = cratedb_home()
ENFORCE = nofile_allows_bootstrap_checks()
pytestmark = pytest.mark.skipif(HOME is None, reason=HOW_TO_GET_ONE)
cr = charm_modules(
    "cratedb", "charm", "sql", "database", "state", "workload", "scale", "container", "constants"
)
APP = "cratedb"
REPO = Path(__file__).resolve().parents[2]


# -- helpers ------------------------------------------------------------------


def http_sql(
    port: int, statement: str, user: str, password: str | None = None, source: str = "127.0.0.1"
) -> tuple[int, dict]:
    """One statement over CrateDB's HTTP endpoint, from ``source`` (a loopback address)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20, source_address=(source, 0))
    token = b64encode(f"{user}:{password or ''}".encode()).decode()
    conn.request(
        "POST",
        "/_sql",
        body=json.dumps({"stmt": statement}),
        headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
    )
    response = conn.getresponse()
    body = response.read().decode(errors="replace")
    try:
        return response.status, json.loads(body)
    except json.JSONDecodeError:
        return response.status, {"raw": body}


def start_node(
    factory: PebbleFactory,
    index: int,
    members: list[tuple[int, NodePorts]],
    planned: int,
    bootstrapped: bool,
    enforce: bool | None = None,
    **layer: Any,
) -> CrateNode:
    """Unit ``cratedb/<index>`` started with the charm's discovery settings for ``members``.

    Bootstrap checks are enforced (as in a pod) wherever the host lets CrateDB
    have the 65536 open files one of them wants, unless ``enforce`` says.
    """
    assert HOME is not None
    ports = dict(members)[index]
    node = CrateNode(
        factory(f"crate-{index}", nofile=NOFILE),
        HOME,
        ports,
        name=f"{APP}-{index}",
        enforce_bootstrap_checks=ENFORCE if enforce is None else enforce,
    )
    node.apply(plan_for(index, members, planned, bootstrapped), **layer)
    return node


def plan_for(index: int, members: list[tuple[int, NodePorts]], planned: int, bootstrapped: bool):
    """The charm's discovery settings for unit ``index`` given the peers it sees."""
    peers = [peer(i, p) for i, p in members]
    me = next(p for p in peers if p.node_name == f"{APP}-{index}")
    return cr.workload.discovery_settings(
        cluster_name=APP,
        me=me,
        peers=peers,
        planned_units=planned,
        bootstrapped=bootstrapped,
        bootstrap_node=f"{APP}-0",
    )


def relation_user(node: CrateNode, schema: str) -> tuple[str, str]:
    """A client user made by the charm's own statements, as a relation would get one."""
    user, password = f"relation_{secrets.token_hex(3)}", cr.database.generate_password()
    sql = node.sql()
    sql.execute(cr.sql.create_user(user, password))
    sql.execute(cr.sql.grant_schema(user, schema))
    return user, password


def drop_user_and_schema(node: CrateNode, user: str, schema: str) -> None:
    """Leave nothing behind: the user's tables, then the user."""
    sql = node.sql()
    for (table,) in sql.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [schema]
    ):
        sql.execute(f"DROP TABLE IF EXISTS {cr.sql.ident(schema)}.{cr.sql.ident(table)}")
    sql.execute(cr.sql.drop_user(user))


# -- one node -----------------------------------------------------------------


@pytest.fixture(scope="module")
def node(module_pebble_factory: PebbleFactory) -> Iterator[CrateNode]:
    """One node from the charm's layer, mmap off (the default); checks enforced where possible."""
    members = [(0, NodePorts.free())]
    started = time.monotonic()
    single = start_node(module_pebble_factory, 0, members, planned=1, bootstrapped=False)
    single.wait_sql()
    sql_in = time.monotonic() - started
    checks_in = single.wait_ready()
    record(
        "CrateDB one node from the charm's layer: replan -> SQL answers / ready check up",
        f"{sql_in:.1f} s / {sql_in + checks_in:.1f} s",
    )
    yield single
    leftovers = single.sql().query(
        "SELECT name FROM sys.users WHERE name LIKE 'relation_%'"
    ) + single.sql().query(
        "SELECT table_schema FROM information_schema.tables "
        "WHERE table_schema NOT IN ('sys', 'information_schema', 'pg_catalog', 'blob', 'doc')"
    )
    assert leftovers == [], f"the tests left users or schemas behind: {leftovers}"


class TestOneNode:
    def test_the_charms_ready_check_goes_up(self, node: CrateNode):
        checks = {c.name: c for c in node.daemon.client.get_checks()}

        from ops import pebble

        assert checks[cr.constants.CHECK_HTTP].status == pebble.CheckStatus.UP

    def test_the_superuser_is_trusted_from_loopback_only(self, node: CrateNode):
        inside, _ = http_sql(node.ports.http, "SELECT 1", "crate")
        outside, body = http_sql(node.ports.http, "SELECT 1", "crate", source="127.0.0.2")

        assert inside == 200
        assert outside == 401, body

    def test_a_relation_user_gets_in_with_its_password_only(self, node: CrateNode):
        schema = f"hba_{secrets.token_hex(3)}"
        user, password = relation_user(node, schema)
        try:
            ok, _ = http_sql(node.ports.http, "SELECT 1", user, password, source="127.0.0.2")
            wrong, _ = http_sql(node.ports.http, "SELECT 1", user, "not-it", source="127.0.0.2")
            none, _ = http_sql(node.ports.http, "SELECT 1", user, None, source="127.0.0.1")
            status, body = http_sql(
                node.ports.http, "CREATE TABLE doc.intruder (x INT)", user, password
            )
        finally:
            drop_user_and_schema(node, user, schema)

        assert ok == 200
        assert wrong == 401
        assert none == 401
        assert status != 200, body


def test_with_bootstrap_checks_enforced_and_mmap_off_only_the_open_files_check_can_fail(
    pebble_factory: PebbleFactory,
):
    """A pod's checks, met by the charm's flags: vm.max_map_count is not checked without mmap."""
    members = [(0, NodePorts.free())]
    checked = start_node(pebble_factory, 0, members, planned=1, bootstrapped=False, enforce=True)
    if ENFORCE:
        checked.wait_sql()
        assert "explicitly enforcing bootstrap checks" in checked.log_text()
        assert bootstrap_failures(checked.log_text()) == []
        return
    checked.daemon.wait_for(
        lambda: bootstrap_failures(checked.log_text()), timeout=120, what="the bootstrap checks"
    )
    failures = bootstrap_failures(checked.log_text())
    record("CrateDB bootstrap checks enforced, mmap off: failed checks here", "; ".join(failures))
    # This host caps open files below CrateDB's 65536 (a pod's limit is 1M): that
    # check fails here and nothing else does; in particular not vm.max_map_count.
    assert len(failures) == 1, failures
    assert failures[0].startswith("max file descriptors [")


def test_allow_mmap_on_a_low_map_count_host_blocks_with_the_sysctl_and_crate_refuses(
    pebble_factory: PebbleFactory, module_pebble_factory: PebbleFactory
):
    """What the charm shows, and why: CrateDB's own check fails the same way."""
    from ops import testing

    from tests.contract.chain import context

    probe = pebble_factory("map-count-probe")
    count = cr.container.Workload(probe.container).max_map_count()
    if count is None or count >= cr.workload.MAP_COUNT_NEEDED:
        pytest.skip(f"this host's vm.max_map_count is {count}: not low, nothing to refuse")

    # The charm, reading that very value through its container door, blocks.
    ctx = context(APP)
    workload = testing.Container(
        cr.constants.CONTAINER,
        can_connect=True,
        execs={
            testing.Exec(["cat", "/proc/sys/vm/max_map_count"], stdout=f"{count}\n"),
            testing.Exec(["cat"], stdout="4294967296\n"),
            testing.Exec(["chown"]),
        },
    )
    state = testing.State(
        leader=True,
        config={"allow-mmap": True},
        containers={workload},
        relations={testing.PeerRelation("cluster")},
        storages={testing.Storage("data")},
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.BlockedStatus(cr.workload.mmap_problem(count))

    # CrateDB with mmap allowed and its checks enforced (as in a pod) refuses to start.
    members = [(0, NodePorts.free())]
    refused = start_node(
        pebble_factory, 0, members, planned=1, bootstrapped=False, enforce=True, allow_mmap=True
    )
    refused.daemon.wait_for(
        lambda: bootstrap_failures(refused.log_text()), timeout=120, what="the bootstrap checks"
    )
    failures = bootstrap_failures(refused.log_text())
    assert any(f.startswith("max virtual memory areas vm.max_map_count [") for f in failures)


# -- MLflow on it -------------------------------------------------------------


@pytest.fixture
def charm_on_node(node: CrateNode, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The cratedb charm with its SQL door aimed at the real node, on loopback.

    The service name a client would get (``cratedb.<model>.svc``) resolves to
    this loopback node here.
    """
    monkeypatch.setattr(cr.charm, "CrateSQL", lambda https=False: node.sql())
    monkeypatch.setattr(cr.charm, "HTTP_PORT", node.ports.http)
    monkeypatch.setattr(cr.charm.CrateDBCharm, "_service_endpoint", lambda self: "127.0.0.1")
    return cr.charm


def cratedb_state(*relations: Any, secrets_: Any = ()) -> Any:
    """The cratedb unit as Scenario sees it: its service running (the real one answers)."""
    from ops import pebble, testing

    layer = pebble.Layer({"services": {cr.constants.SERVICE: {"command": "crate"}}})
    workload = testing.Container(
        cr.constants.CONTAINER,
        can_connect=True,
        layers={"cratedb": layer},
        service_statuses={cr.constants.SERVICE: pebble.ServiceStatus.ACTIVE},
        execs={testing.Exec(["cat"], stdout="4294967296\n"), testing.Exec(["chown"])},
    )
    return testing.State(
        leader=True,
        relations={*relations, testing.PeerRelation("cluster")},
        secrets=set(secrets_),
        containers={workload},
        storages={testing.Storage("data")},
    )


def mlflow_store_through_the_charms(database: str, base: Any = None) -> tuple[Any, int, Any]:
    """mlflow-tracking asks, the cratedb charm answers (a real user), mlflow-tracking reads.

    Returns the store mlflow-tracking configures, the relation id and the
    cratedb charm's final state. ``base``: that state of an earlier call, for a
    second client of the same cratedb application (the leader drops the users
    of relations it does not have).
    """
    from tests.contract.chain import context, handover, with_changes
    from tests.contract.test_contracts import mlflow_env, mlflow_state

    ml_ctx = context("mlflow-tracking", app_name="mlflow-tracking")
    asking = __import__("ops").testing.Relation("cratedb", remote_app_name=APP)
    asked = ml_ctx.run(
        ml_ctx.on.relation_created(asking),
        # As bundle.yaml deploys it: the charm's defaults, auth on.
        mlflow_state(asking, config={"database-name": database}),
    )
    request, _ = handover(asked, asking.id, endpoint="database", app_name="mlflow-tracking")
    cr_ctx = context(APP)
    state = (
        cratedb_state(request)
        if base is None
        else with_changes(base, relations={*base.relations, request})
    )
    answered = cr_ctx.run(cr_ctx.on.relation_changed(request, remote_unit=0), state)
    answer, secrets_ = handover(
        answered,
        request.id,
        endpoint="cratedb",
        app_name=APP,
        local_app_data=dict(asked.get_relation(asking.id).local_app_data),
    )
    answer = dataclasses.replace(answer, id=asking.id)
    ml = charm_modules("mlflow-tracking", "charm", "client")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ml.client.Probe, "server_ready", lambda self, port, ca=None: True)
        final = ml_ctx.run(
            ml_ctx.on.relation_changed(answer, remote_unit=0),
            with_changes(asked, relations={answer}, secrets=set(secrets_)),
        )
    assert final.unit_status.message.startswith("metadata: CrateDB;"), final.unit_status
    uri = mlflow_env(ml_ctx, final)["MLFLOW_BACKEND_STORE_URI"]
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    store = mt.state.MetadataStore(
        kind=mt.state.StoreKind.CRATEDB,
        uri=uri,
        host=parts.hostname,
        port=parts.port,
        database=database,
    )
    return store, request.id, answered


@pytest.fixture(scope="module")
def seaweed(module_pebble_factory: PebbleFactory, weed_bin: str) -> SeaweedStore:
    store = SeaweedStore.start(
        module_pebble_factory("seaweedfs-for-cratedb", env=bin_dir_on_path(weed_bin)), weed_bin
    )
    store.wait_serving()
    return store


@pytest.mark.parametrize("mode", ["proxied", "direct"])
def test_mlflow_on_cratedb_end_to_end_through_both_charms(
    mode: str,
    node: CrateNode,
    charm_on_node: Any,
    seaweed: SeaweedStore,
    pebble_factory: PebbleFactory,
    mlflow_venv_dir: Path,
):
    schema = f"mlflow_{mode}"
    store, relation_id, _answered = mlflow_store_through_the_charms(schema)
    user = f"relation_{relation_id}"
    bucket = f"crate-{mode}"
    creds = seaweed.relate(3000 + len(mode), bucket)
    artifacts = mt.state.ArtifactStore(
        bucket=bucket,
        path="artifacts",
        endpoint=seaweed.endpoint,
        region="us-east-1",
        credentials=mt.state.S3Credentials(creds.access_key, creds.secret_key),
    )
    try:
        server = MlflowServer.start(
            pebble_factory(f"mlflow-crate-{mode}"),
            mlflow_venv_dir,
            store,
            artifacts,
            serve_artifacts=mode == "proxied",
            auth=True,  # the charm's default, as bundle.yaml deploys it
        )
        assert server.settings.executable.endswith("mlflow-cratedb")
        assert server.settings.app_name == "cratedb-basic-auth"
        assert server.api("/api/2.0/mlflow/experiments/search?max_results=5")[0] == 401
        first = server.notebook(mlflow_venv_dir, "first-run", f"first-on-cratedb-{mode}")
        assert (first["experiment_id"], first["version"], first["notes"]) == (
            "0",
            "1",
            "first run\n",
        )
        record(f"mlflow [cratedb, {mode}] start (replan -> /health)", f"{server.started_in:.1f} s")
        logged = server.notebook(mlflow_venv_dir, "log", f"on-cratedb-{mode}")
        reg = server.notebook(
            mlflow_venv_dir, "registry", logged["run_id"], logged["model_uri"], f"wine-{mode}"
        )
        checked = server.notebook(mlflow_venv_dir, "check", logged["run_id"], logged["model_uri"])

        assert reg["version"] == "1"
        assert reg["predictions"] == [0, 1]
        assert reg["found_runs"] == [logged["run_id"]]
        assert reg["loss_history"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
        assert checked["notes"] == "trained on four points\n"
        rows = node.sql().query(
            f"SELECT status FROM {cr.sql.ident(schema)}.runs WHERE run_uuid = ?",
            [logged["run_id"]],
        )
        assert rows == [("FINISHED",)]
    finally:
        drop_user_and_schema(node, user, schema)


@pytest.fixture(scope="module")
def cratedb_2_14_venv() -> Path:
    """mlflow-cratedb 2.14.1's own environment (scripts/setup.sh builds it with CRATEDB_HOME)."""
    from tests.workload.conftest import need

    venv = Path(os.environ.get("MLFLOW_CRATEDB_OLD_VENV", ""))
    return need(
        venv if (venv / "bin" / "mlflow-cratedb").exists() else None,
        "mlflow-cratedb 2.14.1 venv missing (set MLFLOW_CRATEDB_OLD_VENV; scripts/setup.sh "
        "builds it where CRATEDB_HOME is given)",
    )


def test_a_store_written_by_mlflow_cratedb_2_14_is_brought_forward_and_served_unchanged(
    node: CrateNode,
    charm_on_node: Any,
    cratedb_2_14_venv: Path,
    mlflow_venv_dir: Path,
    pebble_factory: PebbleFactory,
):
    from tests.workload.test_upgrades import read_with_the_charms_server, write_with_the_old_server

    schema = "mlflow_from_2_14"
    store, relation_id, _ = mlflow_store_through_the_charms(schema)
    user = f"relation_{relation_id}"
    daemon = pebble_factory("mlflow-from-2-14")
    server = MlflowServer.configure(
        daemon, mlflow_venv_dir, store, mt.state.LOCAL_ARTIFACTS, auth=True
    )
    try:
        before = write_with_the_old_server(
            daemon,
            cratedb_2_14_venv,
            store,
            Path(server.settings.local_artifacts_dir),
            executable="mlflow-cratedb",
        )
        assert sum(len(e["runs"]) for e in before["experiments"].values()) == 3
        old = server.schema_state()
        assert (old.current, old.head) == ("mlflow-cratedb 2.x", "mlflow-cratedb 3.12.0")

        # The default loses nothing: Blocked, naming the cratedb charm's backup.
        with pytest.raises(mt.exceptions.CharmError) as blocked:
            server.settle_schema(database_app="cratedb")
        assert str(blocked.value) == (
            f"the CrateDB store's schema must be migrated ({old.step_name}): back it up "
            "(juju run cratedb/leader create-backup), then juju run "
            "mlflow-tracking/leader migrate-store"
        )
        started = time.monotonic()
        _, migrated = server.settle_schema(approved=old.step_name, database_app="cratedb")
        migration_s = time.monotonic() - started
        assert migrated
        assert server.schema_state().current == old.head
        kept = {t for (t, _) in node.sql().tables_in(schema) if t.endswith("__premigration")}

        server.apply()
        server.wait_ready()
        after = read_with_the_charms_server(server, mlflow_venv_dir, "read")
        assert after == before
        new = read_with_the_charms_server(server, mlflow_venv_dir, "new")
        assert (new["status"], new["params"]) == ("FINISHED", {"upgraded": "yes"})
        record(
            "mlflow-cratedb 2.14.1 store -> the rock's 3.12 on CrateDB 6.4.0",
            f"{len(kept)} tables copied into the new layout (old ones kept as "
            f"<table>__premigration) in {migration_s:.1f} s; 3 runs, 2 model versions and "
            "their artifacts read back unchanged; a new run works",
        )
        assert "experiments__premigration" in kept
    finally:
        with contextlib.suppress(Exception):
            daemon.client.stop_services([mt.constants.SERVICE], timeout=60)
        drop_user_and_schema(node, user, schema)


def test_a_set_sent_by_the_crate_client_reaches_its_next_statement(
    node: CrateNode, mlflow_venv_dir: Path
):
    # Why the charm's server keeps mlflow-cratedb's SET at each checkout: over the
    # client's keep-alive connection CrateDB 6.4 keeps the session's settings.
    script = (
        "import json, sys\n"
        "from crate import client\n"
        "cursor = client.connect(sys.argv[1], username='crate').cursor()\n"
        "cursor.execute('SET error_on_unknown_object_key = false')\n"
        "cursor.execute('SHOW error_on_unknown_object_key')\n"
        "after = cursor.fetchone()[0]\n"
        "cursor.execute('SET SESSION error_on_unknown_object_key = false')\n"
        "cursor.execute('SHOW error_on_unknown_object_key')\n"
        "print(json.dumps([after, cursor.fetchone()[0]]))\n"
    )
    scheme = "https" if node.https else "http"
    url = f"{scheme}://127.0.0.1:{node.ports.http}"
    done = subprocess.run(
        [str(mlflow_venv_dir / "bin" / "python"), "-c", script, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    shown = json.loads(done.stdout.strip().splitlines()[-1])
    assert shown == ["false", "false"], "a SET over HTTP no longer reaches the next statement"


def test_a_log_metric_through_the_charms_server_sends_no_ping(
    node: CrateNode,
    charm_on_node: Any,
    pebble_factory: PebbleFactory,
    mlflow_venv_dir: Path,
):
    from bench.crate_profile import profile

    schema = "mlflow_round_trips"
    store, relation_id, _answered = mlflow_store_through_the_charms(schema)
    user = f"relation_{relation_id}"
    try:
        server = MlflowServer.start(
            pebble_factory("mlflow-crate-round-trips"),
            mlflow_venv_dir,
            store,
            mt.state.LOCAL_ARTIFACTS,
            auth=True,  # the charm's default: the auth app's statements count too
        )
        found = profile(
            node.sql(), user, 20, lambda: server.notebook(mlflow_venv_dir, "bench", "20")
        )
        assert found["client"]["logged"] == 20
        kinds = found["by_kind"]
        assert kinds["INSERT INTO metrics"]["per_call"] >= 1.0
        # Before: one SELECT 1 (pool_pre_ping) per connection checkout; the SET stays.
        assert "SELECT ?" not in kinds, kinds
        assert kinds["SET"]["per_call"] >= 1.0
        record(
            "cratedb: statements per log_metric through the charm's server (auth on)",
            f"{found['statements_per_call']:.1f}",
        )
    finally:
        drop_user_and_schema(node, user, schema)


def test_two_units_share_users_and_permissions_and_an_admin_rotation(
    node: CrateNode,
    charm_on_node: Any,
    seaweed: SeaweedStore,
    pebble_factory: PebbleFactory,
    mlflow_venv_dir: Path,
):
    """A second unit on the same store knows the users the leader made, and their grants."""
    schema = "mlflow_two_units"
    store, relation_id, _answered = mlflow_store_through_the_charms(schema)
    creds = seaweed.relate(3100, "crate-two-units")
    artifacts = mt.state.ArtifactStore(
        bucket="crate-two-units",
        path="artifacts",
        endpoint=seaweed.endpoint,
        region="us-east-1",
        credentials=mt.state.S3Credentials(creds.access_key, creds.secret_key),
    )
    try:
        leader = MlflowServer.start(
            pebble_factory("mlflow-crate-unit-0"), mlflow_venv_dir, store, artifacts, auth=True
        )
        # The same settings (one Juju secret for the app), no users script: not the leader.
        second = MlflowServer.start(
            pebble_factory("mlflow-crate-unit-1"),
            mlflow_venv_dir,
            store,
            artifacts,
            auth=leader.settings.auth,
            leader=False,
        )
        search = "/api/2.0/mlflow/experiments/search?max_results=5"
        for unit in (leader, second):
            assert unit.api(search)[0] == 401
            assert unit.api(search, unit.notebook_login)[0] == 200
            assert unit.api(search, leader.admin)[0] == 200
        # An experiment the notebook makes on one unit is its own on the other (MANAGE).
        made = leader.api(
            "/api/2.0/mlflow/experiments/create",
            leader.notebook_login,
            {"name": f"made-on-unit-0-{time.time()}"},
        )
        assert made[0] == 200, made
        run = second.api(
            "/api/2.0/mlflow/runs/create",
            second.notebook_login,
            {"experiment_id": made[1]["experiment_id"]},
        )
        assert run[0] == 200, run

        old, new = leader.rotate_admin_password()
        users = f"/api/2.0/mlflow/users/get?username={mt.auth.ADMIN_USER}"
        started = time.monotonic()
        for unit in (leader, second):
            unit.daemon.wait_for(
                lambda unit=unit: unit.api(users, (mt.auth.ADMIN_USER, new))[0] == 200,
                timeout=120,
                what="the rotated admin password",
            )
        valid_in = time.monotonic() - started
        for unit in (leader, second):
            # The old one goes once the login cache (30 s) forgets it.
            unit.daemon.wait_for(
                lambda unit=unit: unit.api(users, (mt.auth.ADMIN_USER, old))[0] == 401,
                timeout=120,
                what="the old admin password refused",
            )
        record(
            "mlflow on cratedb, 2 units: admin rotation",
            f"new password valid on both in {valid_in:.1f} s, "
            f"old refused on both {time.monotonic() - started:.1f} s after the rotation",
        )
    finally:
        drop_user_and_schema(node, f"relation_{relation_id}", schema)


def test_one_relations_user_cannot_read_another_relations_schema(
    node: CrateNode, charm_on_node: Any
):
    a_schema, b_schema = "tenant_a", "tenant_b"
    store_a, rel_a, answered_a = mlflow_store_through_the_charms(a_schema)
    store_b, rel_b, _ = mlflow_store_through_the_charms(b_schema, base=answered_a)
    from urllib.parse import unquote, urlsplit

    a, b = urlsplit(store_a.uri), urlsplit(store_b.uri)
    try:
        created, _ = http_sql(
            node.ports.http,
            f"CREATE TABLE {a_schema}.secrets (x TEXT)",
            a.username or "",
            unquote(a.password or ""),
        )
        own, _ = http_sql(
            node.ports.http,
            f"SELECT count(*) FROM {a_schema}.secrets",
            a.username or "",
            unquote(a.password or ""),
        )
        other, body = http_sql(
            node.ports.http,
            f"SELECT count(*) FROM {a_schema}.secrets",
            b.username or "",
            unquote(b.password or ""),
        )
    finally:
        drop_user_and_schema(node, f"relation_{rel_a}", a_schema)
        drop_user_and_schema(node, f"relation_{rel_b}", b_schema)

    assert (created, own) == (200, 200)
    assert other != 200, body


def test_a_relation_that_asks_for_another_schema_loses_the_old_one(
    node: CrateNode, charm_on_node: Any
):
    """The charm's REVOKE and its reading of sys.privileges, against the real node."""
    from urllib.parse import unquote, urlsplit

    from dpcharmlibs.interfaces import gen_hash

    from tests.contract.chain import context, with_changes

    store, rel_id, answered = mlflow_store_through_the_charms("first_schema")
    user, password = f"relation_{rel_id}", unquote(urlsplit(store.uri).password or "")
    try:
        made, _ = http_sql(node.ports.http, "CREATE TABLE first_schema.t (x TEXT)", user, password)
        relation = answered.get_relation(rel_id)
        [request] = json.loads(relation.remote_app_data["requests"])
        moved_request = {
            **request,
            "resource": "second_schema",
            "request-id": gen_hash("second_schema", request["salt"]),
        }
        moved = dataclasses.replace(
            relation,
            remote_app_data={**relation.remote_app_data, "requests": json.dumps([moved_request])},
        )
        cr_ctx = context(APP)
        cr_ctx.run(
            cr_ctx.on.relation_changed(moved, remote_unit=0),
            with_changes(
                answered, relations={*(r for r in answered.relations if r.id != rel_id), moved}
            ),
        )

        old, body = http_sql(
            node.ports.http, "SELECT count(*) FROM first_schema.t", user, password
        )
        held = node.sql().query(
            "SELECT ident FROM sys.privileges WHERE grantee = ? AND class = 'SCHEMA'", [user]
        )
        kept = node.sql().query("SELECT count(*) FROM first_schema.t")
    finally:
        drop_user_and_schema(node, user, "first_schema")

    assert made == 200
    assert old != 200, body
    assert {schema for (schema,) in held} == {"second_schema"}
    assert kept == [(0,)]


# -- credentials and backups --------------------------------------------------


def test_rotate_credentials_mlflow_carries_on_and_the_old_password_is_refused(
    node: CrateNode, charm_on_node: Any, pebble_factory: PebbleFactory, mlflow_venv_dir: Path
):
    from tests.contract.chain import context

    schema = "rotated"
    store, relation_id, answered = mlflow_store_through_the_charms(schema)
    user = f"relation_{relation_id}"
    from urllib.parse import unquote, urlsplit

    old_password = unquote(urlsplit(store.uri).password or "")
    daemon = pebble_factory("mlflow-crate-rotation")
    try:
        server = MlflowServer.start(daemon, mlflow_venv_dir, store, mt.state.LOCAL_ARTIFACTS)
        server.notebook(mlflow_venv_dir, "log", "before-rotation")

        cr_ctx = context(APP)
        rotated = cr_ctx.run(
            cr_ctx.on.action("rotate-credentials", params={"relation-id": relation_id}),
            answered,
        )
        secret = next(s for s in rotated.secrets if relation_id in (s.remote_grants or {}))
        content: dict[str, str] = dict(secret.latest_content or {})
        new_password = content["password"]
        assert new_password != old_password
        old, _ = http_sql(node.ports.http, "SELECT 1", user, old_password)
        # mlflow-tracking would restart with the new URI (its unit tests prove the env
        # file and restart); here the server is restarted with exactly that URI.
        new_store = mt.workload.build_store(
            mt.state.StoreKind.CRATEDB,
            schema,
            user,
            new_password,
            f"127.0.0.1:{node.ports.http}",
            None,
        )
        server.settings = dataclasses.replace(server.settings, store=new_store)
        server.apply()
        server.wait_ready()
        after = server.notebook(mlflow_venv_dir, "log", "after-rotation")
    finally:
        drop_user_and_schema(node, user, schema)

    assert old == 401
    assert after["run_id"]


def backup_relation(seaweed: SeaweedStore, relation_id: int, bucket: str) -> tuple[Any, Any]:
    """s3-parameters as seaweedfs answers it: bucket, endpoint, keys in a secret."""
    from ops import testing

    creds = seaweed.relate(relation_id, bucket)
    secret = testing.Secret(
        {"access-key": creds.access_key, "secret-key": creds.secret_key}, owner=None
    )
    data = {
        "version": "1",
        "bucket": bucket,
        "path": "cratedb",
        "endpoint": seaweed.endpoint,
        "region": "us-east-1",
        "s3-uri-style": "path",
        "secret-extra": secret.id,
    }
    relation = testing.Relation(
        "s3-parameters",
        id=relation_id,
        remote_app_name="seaweedfs",
        remote_app_data=data,
        local_unit_data={"requested-secrets": json.dumps(["access-key", "secret-key"])},
    )
    return relation, secret


def test_backups_create_list_restore_all_and_named_tables_and_survive_key_rotation(
    node: CrateNode, charm_on_node: Any, seaweed: SeaweedStore
):
    from tests.contract.chain import context

    sql = node.sql()
    sql.execute("CREATE TABLE backed.kept (id INT, v TEXT)")
    sql.execute("CREATE TABLE backed.other (id INT)")
    sql.execute(
        "INSERT INTO backed.kept (id, v) SELECT generate_series, 'v' FROM generate_series(1, 500)"
    )
    sql.execute("INSERT INTO backed.other (id) VALUES (1), (2)")
    sql.execute("REFRESH TABLE backed.kept, backed.other")
    relation, secret = backup_relation(seaweed, 4100, "cratedb-backups")
    ctx = context(APP)
    state = cratedb_state(relation, secrets_=[secret])
    try:
        started = time.monotonic()
        ctx.run(ctx.on.action("create-backup", params={"name": "first"}), state)
        snapshot_s = time.monotonic() - started
        assert ctx.action_results is not None
        assert ctx.action_results["state"] == "SUCCESS"
        ctx.run(ctx.on.action("list-backups"), state)
        assert "first  SUCCESS" in ctx.action_results["snapshots"]

        sql.execute("DROP TABLE backed.kept")
        sql.execute("DROP TABLE backed.other")
        started = time.monotonic()
        ctx.run(ctx.on.action("restore-backup", params={"name": "first"}), state)
        restore_all_s = time.monotonic() - started
        assert sql.query("SELECT count(*) FROM backed.kept") == [(500,)]
        assert sql.query("SELECT count(*) FROM backed.other") == [(2,)]

        sql.execute("DROP TABLE backed.other")
        started = time.monotonic()
        ctx.run(
            ctx.on.action("restore-backup", params={"name": "first", "tables": "backed.other"}),
            state,
        )
        restore_one_s = time.monotonic() - started
        assert sql.query("SELECT count(*) FROM backed.other") == [(2,)]

        # seaweedfs rotates the keys: the repository is redefined with the new ones.
        rotated = seaweed.rotate(4100)
        new_secret = dataclasses.replace(
            secret,
            tracked_content={"access-key": rotated.access_key, "secret-key": rotated.secret_key},
            latest_content={"access-key": rotated.access_key, "secret-key": rotated.secret_key},
        )
        state = cratedb_state(relation, secrets_=[new_secret])
        ctx.run(ctx.on.action("create-backup", params={"name": "after-rotation"}), state)
        assert ctx.action_results["state"] == "SUCCESS"
        record(
            "CrateDB backups into real SeaweedFS (create / restore all / restore one table)",
            f"{snapshot_s:.1f} s / {restore_all_s:.1f} s / {restore_one_s:.1f} s",
        )
    finally:
        with contextlib.suppress(Exception):
            sql.execute("DROP TABLE IF EXISTS backed.kept")
        with contextlib.suppress(Exception):
            sql.execute("DROP TABLE IF EXISTS backed.other")
        with contextlib.suppress(Exception):
            sql.execute(cr.sql.drop_repository())


def test_scheduled_backups_snapshot_on_time_prune_by_retention_and_restore_a_dropped_table(
    node: CrateNode, charm_on_node: Any, seaweed: SeaweedStore, tmp_path: Path
):
    """The leader's runner, as the charm lays it out, on the real node into the real weed."""
    from tests.contract.chain import context

    sql = node.sql()
    sql.execute("CREATE TABLE sched.runs (id INT, v TEXT)")
    sql.execute(
        "INSERT INTO sched.runs (id, v) SELECT generate_series, 'v' FROM generate_series(1, 300)"
    )
    sql.execute("REFRESH TABLE sched.runs")
    relation, secret = backup_relation(seaweed, 4200, "cratedb-scheduled")
    ctx = context(APP)
    config = {"backup-schedule": "1m", "backup-retention": "1"}
    state = dataclasses.replace(cratedb_state(relation, secrets_=[secret]), config=config)
    state_file = tmp_path / "backup-state.json"
    try:
        # The charm (leader) defines the repository from the relation and lays out its runner.
        out = ctx.run(ctx.on.update_status(), state)
        assert sql.repository_exists()
        planned = out.get_container(cr.constants.CONTAINER).plan.services[
            cr.constants.BACKUP_SERVICE
        ]
        assert planned.command.endswith("1m 1")
        # The same runner under the node's real Pebble: this repository's script, the test's python.
        settings = cr.workload.BackupScheduleSettings(
            schedule="1m",
            retention="1",
            http_port=node.ports.http,
            script=str(REPO / "charms/cratedb/src/in_container/backup_runner.py"),
            state_file=str(state_file),
            python=sys.executable,
            user=None,
        )
        node.daemon.apply(cr.workload.backup_schedule_layer(settings), "backup-schedule")
        started = time.monotonic()

        def scheduled() -> list[tuple]:
            return [r for r in sql.snapshots() if str(r[0]).startswith("scheduled-")]

        node.daemon.wait_for(
            lambda: len(scheduled()) >= 1, timeout=60, interval=1.0, what="the first snapshot"
        )
        first_s = time.monotonic() - started
        [(first, first_state, *_)] = scheduled()
        assert first_state == "SUCCESS"
        sql.execute("INSERT INTO sched.runs (id, v) VALUES (301, 'after the first')")
        sql.execute("REFRESH TABLE sched.runs")

        def second_made_first_pruned() -> bool:
            names = [r[0] for r in scheduled()]
            return len(names) == 1 and names[0] != first

        node.daemon.wait_for(
            second_made_first_pruned, timeout=150, interval=1.0, what="a second, the first pruned"
        )
        second_s = time.monotonic() - started
        [(second, second_state, *_)] = scheduled()
        assert second_state == "SUCCESS"
        outcome = json.loads(state_file.read_text())
        assert (outcome["failed"], outcome["last_snapshot"]) == (False, second)
        assert first in outcome["pruned"]
        out = ctx.run(ctx.on.update_status(), state)
        assert out.unit_status.name == "active"

        sql.execute("DROP TABLE sched.runs")
        ctx.run(
            ctx.on.action("restore-backup", params={"name": second, "tables": "sched.runs"}),
            state,
        )
        node.daemon.wait_for(
            lambda: _count_or_none(sql, "sched.runs") == 301, timeout=60, what="the restored table"
        )
        record(
            "CrateDB scheduled backups into real SeaweedFS (1m schedule, retention 1)",
            f"first snapshot after {first_s:.0f} s, second after {second_s:.0f} s with the "
            f"first pruned; a dropped 301-row table restored from it",
        )
    finally:
        node.daemon.client.stop_services([cr.constants.BACKUP_SERVICE])
        with contextlib.suppress(Exception):
            sql.execute("DROP TABLE IF EXISTS sched.runs")
        for name, *_ in sql.snapshots():
            with contextlib.suppress(Exception):
                sql.execute(f'DROP SNAPSHOT "backups"."{name}"')
        with contextlib.suppress(Exception):
            sql.execute(cr.sql.drop_repository())


def _count_or_none(sql: Any, table: str) -> int | None:
    try:
        return int(sql.query(f"SELECT count(*) FROM {table}")[0][0])
    except cr.sql.WorkloadError:
        return None


# -- a cluster, grown and shrunk by the charm's code ---------------------------


class Writer(threading.Thread):
    """Writes rows continuously through one node; remembers every acknowledged id."""

    def __init__(self, node: CrateNode, table: str):
        super().__init__(daemon=True)
        self.node, self.table = node, table
        self.acked: list[int] = []
        self.errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        sql = self.node.sql(timeout=10)
        next_id = 0
        while not self.stop.is_set():
            try:
                sql.execute(f"INSERT INTO {self.table} (id) VALUES ({next_id})")
                self.acked.append(next_id)
                next_id += 1
            except cr.sql.WorkloadError:
                self.errors += 1
                time.sleep(0.2)


def test_cluster_grows_1_to_3_without_restarts_and_shrinks_3_to_2_losing_nothing(
    module_pebble_factory: PebbleFactory, monkeypatch: pytest.MonkeyPatch
):
    from ops import testing

    from tests.contract.chain import context

    members = [(i, NodePorts.free()) for i in range(3)]
    first = start_node(module_pebble_factory, 0, members[:1], planned=1, bootstrapped=False)
    first.wait_sql()
    first_pid = first.pid()

    # The leader records "bootstrapped"; units 1 and 2 join with every peer as seeds,
    # and unit 0's plan gains them too: only start-time flags change, so no restart.
    started = time.monotonic()
    others = [
        start_node(module_pebble_factory, i, members, planned=3, bootstrapped=True) for i in (1, 2)
    ]
    outcome = first.apply(plan_for(0, members, planned=3, bootstrapped=True))
    first.daemon.wait_for(
        lambda: first.sql().status().nodes == 3, timeout=300, interval=1, what="3 nodes"
    )
    formed_s = time.monotonic() - started
    assert outcome == "deferred"
    assert first.pid() == first_pid

    sql = first.sql()
    sql.execute(
        "CREATE TABLE drained.t (id INT) CLUSTERED INTO 6 SHARDS WITH (number_of_replicas = 1)"
    )
    sql.execute("INSERT INTO drained.t (id) SELECT generate_series FROM generate_series(1, 5000)")
    writer = Writer(first, "drained.t")
    writer.start()
    try:
        # The drain starts while rows are being written.
        first.daemon.wait_for(lambda: len(writer.acked) >= 20, timeout=60, what="20 writes")
        # Unit 2 departs: the charm's relation-departed handler drains it, for real.
        departing = others[1]
        monkeypatch.setattr(cr.charm, "CrateSQL", lambda https=False: departing.sql(timeout=30))
        monkeypatch.setattr(cr.charm, "DRAIN_TIMEOUT", 600.0)
        ctx = context(APP, unit_id=2)
        peer_rel = testing.PeerRelation("cluster", peers_data={0: {}, 1: {}})
        state = dataclasses.replace(
            cratedb_state(), relations={peer_rel}, leader=False, planned_units=2
        )
        drain_started = time.monotonic()
        ctx.run(ctx.on.relation_departed(peer_rel, remote_unit=0, departing_unit=2), state)
        drain_s = time.monotonic() - drain_started
        monkeypatch.undo()
        assert any("cratedb-2 drained" in log.message for log in ctx.juju_log)
        assert departing.sql().shards_on("cratedb-2") == 0
        departing.stop()
        # The leader clears the exclusion once the node is gone.
        first.sql().execute(cr.sql.exclude_node(None))
        # Writes go on through the remaining nodes after the drain.
        after_drain = len(writer.acked)
        first.daemon.wait_for(
            lambda: len(writer.acked) >= after_drain + 20, timeout=60, what="writes after"
        )
    finally:
        writer.stop.set()
        writer.join(timeout=30)

    first.daemon.wait_for(
        lambda: first.sql().status().health.name == "GREEN", timeout=300, interval=1, what="GREEN"
    )
    sql.execute("REFRESH TABLE drained.t")
    present = {row[0] for row in sql.query("SELECT id FROM drained.t WHERE id < 1000000")}
    lost = [i for i in writer.acked if i not in present]
    record(
        "CrateDB cluster 1 -> 3 (charm's settings, no restart) / drain of 1 node under writes",
        f"formed in {formed_s:.1f} s / drained in {drain_s:.1f} s; "
        f"{len(writer.acked)} rows written during the drain, {len(lost)} lost, "
        f"{writer.errors} write errors",
    )
    assert lost == []
    assert sql.query("SELECT count(*) FROM drained.t WHERE id >= 1")[0][0] >= 5000

    # A table that wants more replicas than two nodes can hold: the charm's status says so.
    sql.execute("CREATE TABLE drained.wide (id INT) WITH (number_of_replicas = 2)")
    problem = cr.scale.replica_problem(sql.max_replicas(), 2)
    assert problem == (
        "tables want 2 replica(s), 2 node(s) cannot hold them: "
        "scale up or lower number_of_replicas"
    )
    sql.execute("DROP TABLE drained.wide")
    sql.execute("DROP TABLE drained.t")


def test_no_crate_process_is_left_once_the_daemons_stop(pebble_factory: PebbleFactory):
    members = [(0, NodePorts.free())]
    short = start_node(pebble_factory, 0, members, planned=1, bootstrapped=False)
    short.wait_sql()
    pids = short.daemon.service_pids()

    short.daemon.stop()

    assert pids
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)
    assert free_port() > 0
