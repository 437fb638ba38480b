"""One charm hook in a fresh process, as Juju pays it: import the charm, run one reconcile.

    python hook_runner.py CHARM_DIR CLIENTS [--with-database]

Prints JSON: seconds to import the charm module, seconds for a first
``config-changed`` reconcile, and (with CLIENTS related clients already set
up) seconds for a steady-state ``update-status`` reconcile. Only each charm's
network/SQL doors are stubbed, as in its unit tests; Scenario stands in for
Juju and Pebble (its own import is paid by every charm alike, the do-nothing
one included).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

STARTED = time.perf_counter()
import ops  # noqa: F401  (what every hook pays before the charm's own imports)

OPS_IMPORT = time.perf_counter() - STARTED
from ops import testing  # (Scenario: the harness standing in for Juju)

HARNESS = time.perf_counter() - STARTED - OPS_IMPORT
REQ = json.dumps(["access-key", "secret-key"])


def _state(name: str, clients: int, with_database: bool = False) -> testing.State:
    if name == "nothing":
        return testing.State(leader=True)
    if name == "seaweedfs":
        rels = {
            testing.Relation(
                "s3-credentials",
                remote_app_name=f"app{i}",
                remote_app_data={
                    "version": "1",
                    "bucket": f"bucket-{i:03d}",
                    "requested-secrets": REQ,
                },
            )
            for i in range(clients)
        }
        container = testing.Container(
            "seaweedfs",
            can_connect=True,
            execs={
                testing.Exec(["weed", "-config_dir=/etc/seaweedfs/security", "shell"], stdout="")
            },
        )
        return testing.State(
            leader=True,
            relations={*rels, testing.PeerRelation("cluster")},
            containers={container},
            storages={testing.Storage("data")},
        )
    if name == "cratedb":
        rels = {
            testing.Relation(
                "database",
                remote_app_name=f"app{i}",
                remote_app_data={
                    "version": "v1",
                    "requests": json.dumps(
                        [
                            {
                                "resource": f"schema_{i}",
                                "request-id": f"{i:016x}",
                                "salt": f"{i:016x}",
                            }
                        ]
                    ),
                },
            )
            for i in range(clients)
        }
        container = testing.Container(
            "cratedb",
            can_connect=True,
            execs={testing.Exec(["cat"], stdout="4294967296\n"), testing.Exec(["chown"])},
        )
        return testing.State(
            leader=True,
            relations={*rels, testing.PeerRelation("cluster")},
            containers={container},
            storages={testing.Storage("data")},
        )
    rels = {
        testing.Relation("pod-defaults", remote_app_name=f"dispatcher{i}") for i in range(clients)
    }
    if with_database:
        # The bundle's case: a cratedb relation (its answer not there yet).
        rels.add(testing.Relation("cratedb", remote_app_name="cratedb"))
    modules = "mlflow_cratedb,psycopg2,pymysql,prometheus_flask_exporter,httptools,uvloop"
    container = testing.Container(
        "mlflow-server",
        can_connect=True,
        execs={
            testing.Exec(["sh", "-c"], stdout=modules),
            # schema.py: the store at the image's own revision.
            testing.Exec(
                ["python3"],
                stdout='{"current": "r1", "head": "r1", "known": true, "tables": true}',
            ),
        },
    )
    return testing.State(
        leader=True, relations=rels, containers={container}, storages={testing.Storage("mlflow")}
    )


def _stub_doors(name: str, module: Any) -> None:
    if name == "seaweedfs":
        import client

        client.WorkloadClient.s3_ready = lambda self: True
        client.WorkloadClient.volume_status = lambda self: None
        client.disk_capacity_bytes = lambda path: 100 * 1024**3
    elif name == "cratedb":
        import state

        class Crate(module.CrateSQL):
            """The charm's SQL door with every query answered empty (no node)."""

            def query(self, statement: str, args: Any = ()) -> list:
                return []

            def status(self) -> Any:
                return state.ClusterStatus(state.Health.GREEN, 1, "6.4.0")

        module.CrateSQL = Crate
    elif name == "mlflow-tracking":
        import client

        client.Probe.server_ready = lambda self, port, ca=None: True
        client.Probe.reachable = lambda self, host, port: True
        client.Probe.url_reachable = lambda self, url: True


def main(charm_dir: str, clients: int, with_database: bool = False) -> dict[str, float]:
    root = Path(charm_dir)
    name = root.name
    sys.path.insert(0, str(root / "src"))
    started = time.perf_counter()
    import charm as module

    imported = time.perf_counter() - started
    charm_type = next(
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and obj.__module__ == "charm" and obj.__name__.endswith("Charm")
    )
    _stub_doors(name, module)
    ctx: testing.Context[Any] = testing.Context(charm_type)
    state = _state(name, clients, with_database)
    started = time.perf_counter()
    out = ctx.run(ctx.on.config_changed(), state)
    first = time.perf_counter() - started
    started = time.perf_counter()
    ctx.run(ctx.on.update_status(), out)
    steady = time.perf_counter() - started
    return {
        "ops_import_s": OPS_IMPORT,
        "harness_import_s": HARNESS,
        "charm_import_s": imported,
        "first_reconcile_s": first,
        "steady_reconcile_s": steady,
        # What a Juju hook pays beyond the interpreter: ops, the charm, one reconcile.
        "hook_s": OPS_IMPORT + imported + first,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), "--with-database" in sys.argv[3:])))
