"""Test helpers for this charm's unit tests: states, relations, fakes, readers.

Fixtures live in ``conftest.py``; tests import these by name from ``helpers``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import ops
from ops import testing

import security
from client import VolumeStatus
from constants import (
    CONTAINER,
    IDENTITIES_FILE,
    LAYER_LABEL,
    PEER_RELATION,
    S3_RELATION,
    SECURITY_DIR,
    SERVICE,
    STORAGE,
)
from workload import Cluster, Member, WeedSettings, pebble_layer, volume_layout

GIB = 1024**3


# How the charm starts ``weed shell``: with the folder of its security.toml.
WEED_SHELL = ["weed", f"-config_dir={SECURITY_DIR}", "shell"]


REQUESTED_SECRETS = json.dumps(["access-key", "secret-key"])


@dataclass
class FakeWorkload:
    """What the stubbed HTTP door answers."""

    ready: bool = True
    volumes: VolumeStatus | None = field(
        default_factory=lambda: VolumeStatus(max_volumes=128, free_volumes=100, starved_buckets=())
    )
    capacity_bytes: int = 10 * GIB
    dir_status: dict[str, Any] | None = field(default_factory=lambda: dir_status(ME.volume))
    raft: dict[str, Any] | None = field(
        default_factory=lambda: {"IsLeader": True, "Leader": f"{ME.master}.19333"}
    )
    # Volumes grown through the master's /vol/grow (each raises MaxVolumeId).
    grown: int = 0


MODEL = "test-model"


ME: Member = Member("seaweedfs/0", f"seaweedfs-0.seaweedfs-endpoints.{MODEL}.svc.cluster.local")


def dir_status(*servers: str) -> dict[str, Any]:
    """The master's /dir/status with these volume servers reporting."""
    nodes = [{"Url": url, "Volumes": 0, "Max": 100} for url in servers]
    return {"Topology": {"DataCenters": [{"Racks": [{"DataNodes": nodes}]}]}}


def bucket_list_output(*buckets: str) -> str:
    """What ``weed shell`` prints for ``s3.bucket.list``."""
    return "".join(f"  {b}\tsize:0\tlogical:0\tchunk:0\n" for b in buckets)


def weed_shell(*existing: str) -> testing.Exec:
    """The ``weed shell`` exec: lists the given buckets, accepts creates."""
    return testing.Exec(WEED_SHELL, stdout=bucket_list_output(*existing))


# What ``weed version`` prints in the image (the large-disk build of 4.48).
IMAGE_WEED = "version 30GB 4.48 0c1e4a9 linux amd64\n"


def weed_version(output: str = IMAGE_WEED) -> testing.Exec:
    """The image's ``weed version``, which the charm reads before weed starts."""
    return testing.Exec(["weed", "version"], stdout=output)


def container(
    *,
    connect: bool = True,
    running: bool = False,
    execs: frozenset[testing.Exec] | None = None,
    mounts: dict[str, testing.Mount] | None = None,
) -> testing.Container:
    """The workload container; ``running`` adds the charm's layer with the service active.

    ``weed version`` always answers (``execs`` may replace it); ``mounts`` puts
    a folder of the test's at ``/data``, say.
    """
    layers = {}
    statuses = {}
    if running:
        settings = WeedSettings(
            volumes=volume_layout(FakeWorkload.capacity_bytes, 1, replica_copies=2),
            cluster=Cluster(me=ME, masters=(ME,), replication="000"),
        )
        layer = pebble_layer(settings)
        layers = {LAYER_LABEL: ops.pebble.Layer(cast(ops.pebble.LayerDict, layer))}
        statuses = {SERVICE: ops.pebble.ServiceStatus.ACTIVE}
    return testing.Container(
        CONTAINER,
        can_connect=connect,
        execs=_with_weed_version(execs if execs is not None else frozenset({weed_shell()})),
        layers=layers,
        mounts=mounts or {},
        service_statuses=statuses,
    )


def _with_weed_version(execs: frozenset[testing.Exec]) -> frozenset[testing.Exec]:
    if any(tuple(e.command_prefix) == ("weed", "version") for e in execs):
        return execs
    return frozenset({weed_version(), *execs})


def s3_request(
    bucket: str | None = "mlflow",
    path: str = "",
    app: str = "mlflow-tracking",
    v0: bool = False,
) -> testing.Relation:
    """An s3-credentials relation whose requirer asked for ``bucket`` (schema v1 unless v0)."""
    data = {"version": "1", "path": path}
    if bucket is not None:
        data["bucket"] = bucket
    if v0:
        data = {"bucket": bucket or f"relation-{app}"}
    else:
        data["requested-secrets"] = REQUESTED_SECRETS
    return testing.Relation(S3_RELATION, remote_app_name=app, remote_app_data=data)


def make_state(
    *relations: testing.RelationBase,
    leader: bool = True,
    config: dict[str, Any] | None = None,
    workload_container: testing.Container | None = None,
    storage: bool = True,
    peer: bool = True,
    planned_units: int = 1,
    secrets: frozenset[testing.Secret] = frozenset(),
) -> testing.State:
    """A state with the usual furniture; arguments change one thing at a time."""
    rels = set(relations)
    if peer and not any(isinstance(r, testing.PeerRelation) for r in rels):
        rels.add(testing.PeerRelation(PEER_RELATION))
    return testing.State(
        model=testing.Model(name=MODEL),
        leader=leader,
        config=config or {},
        relations=rels,
        containers={workload_container or container()},
        storages={testing.Storage(STORAGE)} if storage else set(),
        planned_units=planned_units,
        secrets=secrets,
    )


def identities(ctx: testing.Context[Any], state: testing.State) -> dict[str, Any]:
    """The identities file the charm pushed into the container."""
    root = state.get_container(CONTAINER).get_filesystem(ctx)
    path = root / IDENTITIES_FILE.lstrip("/")
    return json.loads(Path(path).read_text())


@functools.cache
def _security_content() -> dict[str, str]:
    return security.generate_material().content()


def with_security(state: testing.State) -> testing.State:
    """``state`` with the leader's ``weed-security`` secret made, as in any unit after the first hook."""
    secret = testing.Secret(_security_content(), owner="app", label=security.SECRET_LABEL)
    relations = set()
    for relation in state.relations:
        if isinstance(relation, testing.PeerRelation):
            data = {**relation.local_app_data, security.PEER_SECRET_KEY: secret.id}
            relation = dataclasses.replace(relation, local_app_data=data)
        relations.add(relation)
    return dataclasses.replace(
        state, relations=frozenset(relations), secrets=frozenset({*state.secrets, secret})
    )


def secret_content(state: testing.State, secret_id: str) -> dict[str, str]:
    """The latest content of a secret in the output state."""
    return dict(state.get_secret(id=secret_id).latest_content or {})


def shell_scripts(ctx: testing.Context[Any]) -> list[str]:
    """The stdin scripts the charm fed to ``weed shell``, in order."""
    calls = ctx.exec_history.get(CONTAINER, [])
    return [str(call.stdin) for call in calls if call.command[: len(WEED_SHELL)] == WEED_SHELL]


def identity_named(ctx: testing.Context[Any], out: testing.State, name: str) -> dict[str, Any]:
    """The S3 identity named ``name`` in the identities file the charm pushed."""
    return next(i for i in identities(ctx, out)["identities"] if i["name"] == name)


def labelled_secret(out: testing.State, label: str) -> testing.Secret:
    """The output state's secret with ``label``."""
    return next(s for s in out.secrets if s.label == label)


def weed_command(out: testing.State) -> str:
    """The weed service's command line in the output plan."""
    plan = out.get_container(CONTAINER).plan
    return plan.services[SERVICE].command


def peer_with(*units: int, masters: list[str] | None = None, **app: str) -> testing.PeerRelation:
    """The peer relation with units 1.. reporting their stable addresses."""
    data = {
        n: {"address": f"seaweedfs-{n}.seaweedfs-endpoints.test-model.svc.cluster.local"}
        for n in units
    }
    app_data = dict(app)
    if masters is not None:
        app_data["masters"] = json.dumps(masters)
    return testing.PeerRelation(PEER_RELATION, peers_data=data, local_app_data=app_data)


def unit_address_of(n: int) -> str:
    """Unit ``n``'s stable address in the test model."""
    return f"seaweedfs-{n}.seaweedfs-endpoints.test-model.svc.cluster.local"
