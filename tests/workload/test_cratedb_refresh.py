"""A rolling refresh of three real CrateDB nodes, 6.4.0 -> 6.4.1, under writes and MLflow.

Needs ``CRATEDB_HOME`` (6.4.0) and ``CRATEDB_HOME_NEXT`` (6.4.1), both built
locally from the public crate/crate source (nothing of them is committed).

What is real: the three nodes under their own Pebble with the charm's layer
and discovery settings, every SQL statement and read the charm's refresh
issues (``sql.restrict_allocation``, ``restore_allocation``, the pre-refresh
reads), the version each image's ``crate -v`` prints and the charm's gate on
it, a client writing the whole time, an MLflow server (the rock's, on the
charm's store URI) before and after. What the test plays: Kubernetes and
Juju - the partition the leader's ``refresh.next_partition`` asks for is
followed by stopping that node (after its stop hook's statement) and
starting it from the new home; the charm's event wiring around these steps
is tested in charms/cratedb/tests/unit/test_refresh.py.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from stack.charm_loader import charm_modules
from stack.cratedb import HOW_TO_GET_ONE, NodePorts, cratedb_home
from stack.mlflow_server import MlflowServer, mt
from stack.seaweed import SeaweedStore
from tests.workload.conftest import PebbleFactory, bin_dir_on_path, record
from tests.workload.test_cratedb import mlflow_store_through_the_charms, plan_for, start_node

HOME = cratedb_home()
NEXT = Path(os.environ.get("CRATEDB_HOME_NEXT", "/nonexistent"))
pytestmark = pytest.mark.skipif(
    HOME is None or not (NEXT / "bin" / "crate").exists(),
    reason=HOW_TO_GET_ONE + "; and CRATEDB_HOME_NEXT to a CrateDB 6.4.1 built the same way",
)
cr = charm_modules("cratedb", "charm", "sql", "refresh", "state", "constants")


class FailoverWriter(threading.Thread):
    """Inserts rows one at a time through any node that answers; remembers every acknowledged id."""

    def __init__(self, nodes: list[Any], table: str):
        super().__init__(daemon=True)
        self.nodes, self.table = nodes, table
        self.acked: list[int] = []
        self.errors = 0
        self.longest_gap = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        next_id, current, last_ack = 0, 0, time.monotonic()
        while not self.stop.is_set():
            sql = self.nodes[current].sql(timeout=5)
            try:
                sql.execute(f"INSERT INTO {self.table} (id) VALUES ({next_id})")
            except cr.sql.WorkloadError:
                self.errors += 1
                current = (current + 1) % len(self.nodes)
                time.sleep(0.1)
                continue
            now = time.monotonic()
            self.longest_gap = max(self.longest_gap, now - last_ack)
            self.acked.append(next_id)
            next_id, last_ack = next_id + 1, now


def image_version(home: Path) -> Any:
    """What the charm's gate reads: the image's ``crate -v``."""
    printed = subprocess.run(
        [str(home / "bin" / "crate"), "-v"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return cr.refresh.CrateVersion.parse(printed)


def cluster_check(node: Any) -> Any:
    """The reads the leader's pre-refresh check and partition move make, from a live node."""
    sql = node.sql()
    status = sql.status()
    return cr.refresh.ClusterCheck(
        health=status.health,
        nodes=status.nodes,
        planned_units=3,
        moving_shards=sql.moving_shards(),
        versions=tuple(sql.node_versions().values()),
        allocation_restricted=sql.allocation_restricted(),
    )


@pytest.fixture
def seaweed(pebble_factory: PebbleFactory, weed_bin: str) -> SeaweedStore:
    return SeaweedStore.start(
        pebble_factory("seaweedfs-for-refresh", env=bin_dir_on_path(weed_bin)), weed_bin
    )


@pytest.mark.timeout(3000)  # three JVM restarts and recoveries on 2 cores
def test_a_rolling_refresh_6_4_0_to_6_4_1_loses_no_row_and_mlflow_serves_after(
    pebble_factory: PebbleFactory,
    seaweed: SeaweedStore,
    mlflow_venv_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    assert HOME is not None
    old, new = image_version(HOME), image_version(NEXT)
    assert (str(old), str(new)) == ("6.4.0", "6.4.1")
    members = [(i, NodePorts.free()) for i in range(3)]
    nodes = [
        start_node(pebble_factory, i, members, planned=3, bootstrapped=i != 0) for i in range(3)
    ]
    for node in nodes:
        node.wait_sql()
    first = nodes[0]
    first.daemon.wait_for(
        lambda: cluster_check(first).nodes == 3, timeout=300, interval=1, what="3 nodes"
    )
    sql = first.sql()
    sql.execute(
        "CREATE TABLE refresh.t (id INT PRIMARY KEY) CLUSTERED INTO 6 SHARDS "
        "WITH (number_of_replicas = 1)"
    )
    first.daemon.wait_for(
        lambda: cluster_check(first).health.name == "GREEN", timeout=300, interval=1, what="GREEN"
    )

    # MLflow on the cluster through both charms (the store URI names unit 0's node).
    monkeypatch.setattr(cr.charm, "CrateSQL", lambda https=False: first.sql())
    monkeypatch.setattr(cr.charm, "HTTP_PORT", first.ports.http)
    monkeypatch.setattr(cr.charm.CrateDBCharm, "_service_endpoint", lambda self: "127.0.0.1")
    store, _relation_id, _ = mlflow_store_through_the_charms("mlflow_refresh")
    monkeypatch.undo()
    creds = seaweed.relate(3900, "crate-refresh")
    artifacts = mt.state.ArtifactStore(
        bucket="crate-refresh",
        path="artifacts",
        endpoint=seaweed.endpoint,
        region="us-east-1",
        credentials=mt.state.S3Credentials(creds.access_key, creds.secret_key),
    )
    server = MlflowServer.start(
        pebble_factory("mlflow-refresh"), mlflow_venv_dir, store, artifacts, auth=True
    )
    before = server.notebook(mlflow_venv_dir, "log", "before-the-refresh")

    # The pre-refresh check on the real cluster: nothing stands in the way.
    assert cr.refresh.pre_refresh_problems(cluster_check(first)) == []
    writer = FailoverWriter(nodes, "refresh.t")
    writer.start()
    moved: list[str] = []
    partition = 2  # what the pre-refresh-check action opens: the highest unit
    try:
        first.daemon.wait_for(lambda: len(writer.acked) >= 50, timeout=60, what="50 writes")
        refreshed: set[int] = set()
        while True:
            ordinal = partition
            node = nodes[ordinal]
            started = time.monotonic()
            # Its stop hook, then Kubernetes replaces the pod.
            node.sql().execute(cr.sql.restrict_allocation())
            node.stop()
            # The new pod's gate: its data last ran 6.4.0, the others run 6.4.0 or 6.4.1.
            others = [
                cr.refresh.CrateVersion.parse(v)
                for name, v in first_alive(nodes, ordinal).sql().node_versions().items()
                if name != node.name
            ]
            assert cr.refresh.version_problem(new, old, others) is None
            node.home = NEXT
            node.apply(plan_for(ordinal, members, planned=3, bootstrapped=True))
            node.wait_sql(timeout=300)
            # Any unit's settle: every node back -> allocation restored.
            node.daemon.wait_for(
                lambda n=node: answers(n) and cluster_check(n).nodes == 3,
                timeout=300,
                interval=1,
                what="rejoined",
            )
            if node.sql().allocation_restricted():
                node.sql().execute(cr.sql.restore_allocation())
            refreshed.add(ordinal)
            rollout = cr.refresh.Rollout(
                partition=ordinal,
                update_revision="new",
                pod_revisions={i: "new" if i in refreshed else "old" for i in range(3)},
            )

            node.daemon.wait_for(
                lambda r=rollout, n=node, o=ordinal: leader_moves(r, n, o),
                timeout=600,
                interval=1,
                what="GREEN again",
            )
            moved.append(f"cratedb-{ordinal} {time.monotonic() - started:.1f} s")
            if ordinal == 0:
                break
            partition = ordinal - 1
        first.daemon.wait_for(lambda: len(writer.acked) >= 50, timeout=60, what="writes after")
    finally:
        writer.stop.set()
        writer.join(timeout=30)

    check = cluster_check(first)
    assert set(check.versions) == {"6.4.1"}
    assert check.health.name == "GREEN"
    sql = first.sql()
    sql.execute("REFRESH TABLE refresh.t")
    present = {row[0] for row in sql.query("SELECT id FROM refresh.t LIMIT 1000000")}
    lost = [i for i in writer.acked if i not in present]
    # Done: every pod on the new template, the leader closes the partition.
    done = cr.refresh.Rollout(3, "new", {0: "new", 1: "new", 2: "new"})
    assert cr.refresh.next_partition(done, check, 3).partition == 3

    # MLflow, on the same server process: what it had, and a new run.
    server.daemon.wait_for(server.healthy, timeout=120, what="mlflow healthy")
    checked = server.notebook(mlflow_venv_dir, "check", before["run_id"], before["model_uri"])
    after = server.notebook(mlflow_venv_dir, "log", "after-the-refresh")
    # A rollback of a refreshed node to 6.4.0 is refused before it starts.
    rollback = cr.refresh.version_problem(old, new, [new, new])
    record(
        "CrateDB rolling refresh 6.4.0 -> 6.4.1, 3 nodes, a writer throughout",
        f"each node stop -> GREEN: {', '.join(moved)}; {len(writer.acked)} rows acknowledged, "
        f"{len(lost)} lost, longest write gap {writer.longest_gap:.1f} s, "
        f"{writer.errors} failed attempts (retried on another node)",
    )
    assert lost == []
    assert (checked["status"], checked["notes"]) == ("FINISHED", "trained on four points\n")
    assert checked["loss_steps"] == 5
    assert after["run_id"] != before["run_id"]
    assert rollback is not None
    assert "downgrades are refused" in rollback


def answers(node: Any) -> bool:
    """True when the node answers SQL (a 503 while a master is elected is not an answer)."""
    try:
        node.sql(timeout=5).query("SELECT 1")
        return True
    except cr.sql.WorkloadError:
        return False


def leader_moves(rollout: Any, node: Any, ordinal: int) -> bool:
    """True once the leader's decision, on what the cluster says now, lets the next unit go."""
    try:
        check = cluster_check(node)
    except cr.sql.WorkloadError:
        return False  # the cluster is electing a master: the leader's hook would wait too
    if not rollout.in_progress:
        # The last pod done: the leader closes the partition; the cluster must be whole again.
        return cr.refresh.pre_refresh_problems(check) == []
    return cr.refresh.next_partition(rollout, check, 3).partition < ordinal


def first_alive(nodes: list[Any], but: int) -> Any:
    """A node other than ``but`` (every other one runs during a refresh)."""
    return next(n for i, n in enumerate(nodes) if i != but)
