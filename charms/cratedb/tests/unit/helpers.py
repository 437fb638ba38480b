"""Test helpers for this charm's unit tests: states, relations, fakes, readers.

Fixtures live in ``conftest.py``; tests import these by name from ``helpers``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ops import testing

from constants import CONTAINER, PEER_RELATION, S3_RELATION, SERVICE, STORAGE
from exceptions import WorkloadError
from state import ClusterStatus, Health

GIB = 1024**3


@dataclass
class FakeCrate:
    """A CrateDB as the charm's SQL client sees it."""

    statements: list[str] = field(default_factory=list)
    users: set[str] = field(default_factory=lambda: {"crate"})
    health: Health = Health.GREEN
    nodes: int = 1
    version: str = "6.4.0"
    replicas: int = 0
    shards: dict[str, list[int]] = field(default_factory=dict)
    primaries: dict[str, int] = field(default_factory=dict)
    repository: bool = False
    snapshot_state: str = "SUCCESS"
    snapshots_taken: list[str] = field(default_factory=list)
    down: bool = False
    # The rolling refresh's reads: each node's version, allocation, moving shards.
    versions: dict[str, str] = field(default_factory=dict)
    restricted: bool = False
    moving: int = 0
    # What the charm speaks to the node: HTTPS once its plan carries a keystore.
    https: bool = False
    # What CrateDB would enforce: each user's password and the schemas it holds privileges on.
    passwords: dict[str, str] = field(default_factory=dict)
    grants: dict[str, set[str]] = field(default_factory=dict)
    # (table, is a view) by schema: the schemas that hold data.
    tables: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)

    def _check(self) -> None:
        if self.down:
            raise WorkloadError("CrateDB error: connection refused")

    def query(self, statement: str, args: Any = ()) -> list[tuple]:
        raise AssertionError(f"unexpected query: {statement}")

    def primaries_on(self, node: str) -> int:
        self._check()
        return self.primaries.get(node, 0)

    def execute(self, statement: str) -> None:
        self._check()
        self.statements.append(statement)
        if match := re.match(r'CREATE USER "(\w+)"', statement):
            self.users.add(match.group(1))
        if match := re.match(
            r'(?:CREATE|ALTER) USER "(\w+)" (?:WITH|SET) \(password = \'(\w+)\'\)', statement
        ):
            self.passwords[match.group(1)] = match.group(2)
        if match := re.match(r'DROP USER IF EXISTS "(\w+)"', statement):
            self.users.discard(match.group(1))
            self.passwords.pop(match.group(1), None)
            self.grants.pop(match.group(1), None)
        if match := re.match(r'GRANT DQL, DML, DDL ON SCHEMA "(\w+)" TO "(\w+)"', statement):
            self.grants.setdefault(match.group(2), set()).add(match.group(1))
        if match := re.match(r'REVOKE DQL, DML, DDL ON SCHEMA "(\w+)" FROM "(\w+)"', statement):
            self.grants.get(match.group(2), set()).discard(match.group(1))
        if match := re.match(r'DROP (?:TABLE|VIEW) IF EXISTS "(\w+)"\."([^"]+)"', statement):
            kept = [t for t in self.tables.get(match.group(1), []) if t[0] != match.group(2)]
            self.tables[match.group(1)] = kept
        if "cluster.routing.allocation.enable" in statement:
            self.restricted = statement.startswith("SET GLOBAL")
        if statement.startswith("CREATE REPOSITORY"):
            self.repository = True
        if statement.startswith("DROP REPOSITORY"):
            self.repository = False
        if match := re.match(r'CREATE SNAPSHOT "backups"\."([^"]+)"', statement):
            self.snapshots_taken.append(match.group(1))

    def status(self) -> ClusterStatus:
        self._check()
        return ClusterStatus(self.health, self.nodes, self.version)

    def user_exists(self, user: str) -> bool:
        self._check()
        return user in self.users

    def tables_in(self, schema: str) -> list[tuple[str, bool]]:
        self._check()
        return list(self.tables.get(schema, []))

    def schema_privileges(self) -> dict[str, set[str]]:
        self._check()
        return {user: set(schemas) for user, schemas in self.grants.items() if schemas}

    def user_names(self) -> set[str]:
        self._check()
        return set(self.users)

    def shards_on(self, node: str) -> int:
        self._check()
        remaining = self.shards.get(node, [0])
        return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    def max_replicas(self) -> int:
        self._check()
        return self.replicas

    def repository_exists(self) -> bool:
        self._check()
        return self.repository

    def node_versions(self) -> dict[str, str]:
        self._check()
        return self.versions or {f"cratedb-{n}": self.version for n in range(self.nodes)}

    def allocation_restricted(self) -> bool:
        self._check()
        return self.restricted

    def moving_shards(self) -> int:
        self._check()
        return self.moving

    def snapshots(self) -> list[tuple]:
        self._check()
        return [
            (n, self.snapshot_state, "2026-11-22T20:00:00", "2026-11-22T20:00:05", 3)
            for n in self.snapshots_taken
        ]


def container(
    memory: str = str(4 * GIB),
    map_count: str = "65530",
    running: bool = False,
    connect: bool = True,
    image_version: str = "6.4.0",
) -> testing.Container:
    """The workload container; ``running`` pretends the service is up."""
    execs = {
        testing.Exec(["cat", "/sys/fs/cgroup/memory.max"], stdout=memory + "\n"),
        testing.Exec(["cat", "/proc/sys/vm/max_map_count"], stdout=map_count + "\n"),
        testing.Exec(["chown"]),
        # As CrateDB 6.4.1's ``crate -v`` prints it.
        testing.Exec(
            ["/crate/bin/crate", "-v"],
            stdout=f"Version: {image_version}, Build: 45bfa80/NA, JVM: 25.0.3\n",
        ),
    }
    return testing.Container(CONTAINER, can_connect=connect, execs=execs)


def peer_relation(
    peers: dict[int, str] | None = None, app_data: dict[str, str] | None = None
) -> testing.PeerRelation:
    """The cluster peer relation; ``peers`` maps unit number -> address."""
    return testing.PeerRelation(
        PEER_RELATION,
        local_app_data=app_data or {},
        peers_data={
            n: {"node-name": f"cratedb-{n}", "address": address}
            for n, address in (peers or {}).items()
        },
    )


def make_state(
    *relations: testing.RelationBase,
    leader: bool = True,
    config: dict[str, Any] | None = None,
    workload: testing.Container | None = None,
    storage: bool = True,
    planned_units: int = 1,
    secrets: tuple[testing.Secret, ...] = (),
    peer: testing.PeerRelation | None = None,
) -> testing.State:
    rels = {*relations, peer or peer_relation()}
    return testing.State(
        leader=leader,
        config=config or {},
        relations=rels,
        containers={workload or container()},
        storages={testing.Storage(STORAGE)} if storage else set(),
        planned_units=planned_units,
        secrets=set(secrets),
    )


def v1_requests(*schemas: str, app: str = "mlflow-tracking") -> str:
    """The ``requests`` field of a dpcharmlibs v1 requirer asking for ``schemas``."""
    salt = hashlib.sha256(app.encode()).hexdigest()[:16]
    from dpcharmlibs.interfaces import gen_hash

    return json.dumps(
        [
            {
                "resource": schema,
                "request-id": gen_hash(schema, salt),
                "salt": salt,
                "extra-user-roles": None,
                "entity-type": None,
            }
            for schema in schemas
        ]
    )


def v1_request(
    schema: str = "mlflow", app: str = "mlflow-tracking", also: tuple[str, ...] = ()
) -> testing.Relation:
    """A dpcharmlibs v1 requirer asking for ``schema`` (and the schemas in ``also``)."""
    return testing.Relation(
        "database",
        remote_app_name=app,
        remote_app_data={"version": "v1", "requests": v1_requests(schema, *also, app=app)},
    )


def v0_request(schema: str = "mlflow", app: str = "legacy-app") -> testing.Relation:
    """A legacy data_interfaces v0 requirer."""
    return testing.Relation("database", remote_app_name=app, remote_app_data={"database": schema})


def s3_relation() -> tuple[testing.Relation, testing.Secret]:
    """An s3-parameters relation whose provider answered."""
    secret = testing.Secret({"access-key": "BACKUPKEY", "secret-key": "backup-secret"}, owner=None)
    relation = testing.Relation(
        S3_RELATION,
        remote_app_name="seaweedfs",
        remote_app_data={
            "version": "1",
            "bucket": "cratedb",
            "path": "cratedb",
            "endpoint": "http://seaweedfs.model.svc.cluster.local:8333",
            "secret-extra": secret.id,
        },
        local_unit_data={"requested-secrets": json.dumps(["access-key", "secret-key"])},
    )
    return relation, secret


def command(state: testing.State) -> str:
    return state.get_container(CONTAINER).plan.services[SERVICE].command


def flags(state: testing.State) -> dict[str, str]:
    """The -C flags of the crate command, as a dict."""
    return dict(
        arg[2:].split("=", 1)
        for arg in command(state).split()
        if arg.startswith("-C") and "=" in arg
    )


def running_state(state: testing.State) -> testing.State:
    """The same state with the service running (as Pebble would have it after replan)."""
    workload = state.get_container(CONTAINER)
    from ops import pebble

    started = testing.Container(
        CONTAINER,
        can_connect=True,
        execs=workload.execs,
        layers=workload.layers,
        service_statuses={SERVICE: pebble.ServiceStatus.ACTIVE},
    )
    return testing.State(**{**state.__dict__, "containers": {started}})
