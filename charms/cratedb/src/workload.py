"""Pure builders for CrateDB: cluster membership, heap, command line, Pebble layer.

Plain data in, plain data out: the charm applies these, the unit tests read
them, and a workload suite feeds them to a real CrateDB where one is given.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from constants import (
    BACKUP_SERVICE,
    BACKUP_STATE_FILE,
    CHECK_HTTP,
    CRATE_BIN,
    CRATE_USER,
    DATA_DIR,
    HTTP_PORT,
    METRICS_FILE,
    METRICS_PORT,
    METRICS_SERVICE,
    PG_PORT,
    PYTHON,
    SCRIPTS_DIR,
    SERVICE,
    SUPERUSER,
    TLS_POLL_INTERVAL,
    TRANSPORT_PORT,
)
from state import Discovery, Peer

MIB = 1024 * 1024
# CrateDB's guidance: half the memory for the heap (the rest is page cache), never
# above ~30.5 GB (compressed object pointers).
MAX_HEAP_MB = 30_500
MIN_HEAP_MB = 256
DEFAULT_HEAP_MB = 1024  # when the container has no memory limit

# Flags that only matter when a node starts: changing them never needs a restart.
START_ONLY_FLAGS = (
    "-Cdiscovery.seed_hosts=",
    "-Ccluster.initial_master_nodes=",
    "-Cgateway.expected_data_nodes=",
    "-Cgateway.recover_after_data_nodes=",
)

_HEAP = re.compile(r"([1-9][0-9]{0,5})([mg])")


# CrateDB's bootstrap check when index files are memory-mapped.
MAP_COUNT_NEEDED = 262_144


def mmap_problem(max_map_count: int | None) -> str | None:
    """Why ``allow-mmap`` cannot be honoured on this node, if it cannot.

    With memory-mapping allowed, CrateDB's bootstrap checks (enforced when it
    binds a non-loopback address, as in a pod) refuse to start below 262144.
    """
    if max_map_count is not None and max_map_count < MAP_COUNT_NEEDED:
        return (
            f"vm.max_map_count is {max_map_count}: run "
            f"'sysctl -w vm.max_map_count={MAP_COUNT_NEEDED}' "
            "on every Kubernetes node, or set allow-mmap=false"
        )
    return None


def node_name(unit_name: str) -> str:
    """A node name from a unit name (``cratedb/2`` -> ``cratedb-2``)."""
    return unit_name.replace("/", "-")


def unit_address(unit_name: str, model: str, cluster_domain: str) -> str:
    """The stable DNS name of a unit's pod behind Juju's headless service."""
    app, _, number = unit_name.partition("/")
    return f"{app}-{number}.{app}-endpoints.{model}.svc.{cluster_domain}"


def discovery_settings(
    cluster_name: str,
    me: Peer,
    peers: Iterable[Peer],
    planned_units: int,
    bootstrapped: bool,
    bootstrap_node: str,
) -> Discovery:
    """Membership flags for one node.

    Every node seeds discovery with every peer's transport address. Only the
    bootstrap node (the first leader's) names ``initial_master_nodes``, and
    only while the cluster has never formed: a later start with it could
    found a second cluster. Gateway recovery waits for a majority of the
    planned data nodes.
    """
    others = sorted(
        {(p.address, p.transport_port) for p in peers if p.address and p.node_name != me.node_name}
    )
    seeds = tuple(
        f"{address}:{port}" for address, port in [(me.address, me.transport_port), *others]
    )
    planned = max(1, planned_units)
    return Discovery(
        cluster_name=cluster_name,
        node_name=me.node_name,
        publish_host=me.address,
        seed_hosts=seeds,
        initial_master_nodes=(
            (me.node_name,) if not bootstrapped and me.node_name == bootstrap_node else ()
        ),
        expected_data_nodes=planned,
        recover_after_data_nodes=planned // 2 + 1,
    )


def parse_heap(value: str) -> int:
    """Heap size in MB from ``512m`` / ``2g``; ValueError when malformed."""
    match = _HEAP.fullmatch(value.strip().lower())
    if not match:
        raise ValueError("must look like 512m or 4g")
    number, unit = int(match.group(1)), match.group(2)
    return number * 1024 if unit == "g" else number


def heap_size(memory_limit_bytes: int | None, configured: str = "") -> str:
    """``CRATE_HEAP_SIZE``: configured, or half the container's memory limit."""
    if configured:
        mb = parse_heap(configured)
    elif memory_limit_bytes:
        mb = memory_limit_bytes // MIB // 2
    else:
        mb = DEFAULT_HEAP_MB
    return f"{max(MIN_HEAP_MB, min(MAX_HEAP_MB, mb))}m"


@dataclass(frozen=True)
class CrateSettings:
    """Everything the ``crate`` command line and environment depend on."""

    discovery: Discovery
    heap: str = f"{DEFAULT_HEAP_MB}m"
    allow_mmap: bool = False
    data_dir: str = DATA_DIR
    bind_host: str = "0.0.0.0"  # noqa: S104 (clients and peers reach the pod)
    http_port: int = HTTP_PORT
    transport_port: int = TRANSPORT_PORT
    pg_port: int = PG_PORT
    crate_bin: str = CRATE_BIN
    user: str | None = CRATE_USER
    # None: the group named like the user (the image's crate:crate).
    group: str | None = None
    extra_flags: tuple[str, ...] = field(default=())
    # HTTPS on the HTTP port and SSL on the PostgreSQL port, from this keystore.
    keystore_file: str | None = None
    keystore_password: str = ""


def crate_command(settings: CrateSettings) -> list[str]:
    """The ``crate`` argv: cluster membership, listeners, host-based auth."""
    discovery = settings.discovery
    argv = [
        settings.crate_bin,
        f"-Ccluster.name={discovery.cluster_name}",
        f"-Cnode.name={discovery.node_name}",
        f"-Cpath.data={settings.data_dir}",
        f"-Cnetwork.bind_host={settings.bind_host}",
        f"-Cnetwork.publish_host={discovery.publish_host}",
        f"-Chttp.port={settings.http_port}",
        f"-Ctransport.port={settings.transport_port}",
        f"-Cpsql.port={settings.pg_port}",
        f"-Cdiscovery.seed_hosts={','.join(discovery.seed_hosts)}",
    ]
    if discovery.initial_master_nodes:
        argv.append(f"-Ccluster.initial_master_nodes={','.join(discovery.initial_master_nodes)}")
    argv += [
        f"-Cgateway.expected_data_nodes={discovery.expected_data_nodes}",
        f"-Cgateway.recover_after_data_nodes={discovery.recover_after_data_nodes}",
        # Without mmap the node needs no vm.max_map_count >= 262144 on the
        # Kubernetes host (a sysctl a charm cannot set): that bootstrap check
        # only applies when memory-mapping is allowed.
        f"-Cnode.store.allow_mmap={'true' if settings.allow_mmap else 'false'}",
        # The superuser has no password and cannot get one: it may log in only
        # from inside the pod (the charm); everybody else needs a password.
        "-Cauth.host_based.enabled=true",
        f"-Cauth.host_based.config.0.user={SUPERUSER}",
        "-Cauth.host_based.config.0.address=_local_",
        "-Cauth.host_based.config.0.method=trust",
        "-Cauth.host_based.config.99.method=password",
        *_tls_flags(settings),
        *settings.extra_flags,
    ]
    return argv


def _tls_flags(settings: CrateSettings) -> list[str]:
    if settings.keystore_file is None:
        return []
    return [
        "-Cssl.http.enabled=true",
        "-Cssl.psql.enabled=true",
        f"-Cssl.keystore_filepath={settings.keystore_file}",
        # Only the keystore's own lock: the file is the crate user's, mode 0600.
        f"-Cssl.keystore_password={settings.keystore_password}",
        f"-Cssl.keystore_key_password={settings.keystore_password}",
        f"-Cssl.resource_poll_interval={TLS_POLL_INTERVAL}",
    ]


def _run_as(user: str | None, group: str | None) -> dict[str, str]:
    """A service's ``user``/``group`` (the group named like the user unless given); {} for none."""
    return {"user": user, "group": group or user} if user else {}


def pebble_layer(settings: CrateSettings) -> dict:
    """The Pebble layer that runs CrateDB as the ``crate`` user."""
    service: dict = {
        "override": "replace",
        "summary": "CrateDB node",
        "command": shlex.join(crate_command(settings)),
        "startup": "enabled",
        "environment": {"CRATE_HEAP_SIZE": settings.heap},
        # Flushing translogs and handing off shards takes time.
        "kill-delay": "60s",
    }
    service.update(_run_as(settings.user, settings.group))
    return {
        "summary": "CrateDB",
        "description": "One CrateDB node",
        "services": {SERVICE: service},
        "checks": {
            # CrateDB's root answers 503 until the node sees an elected master:
            # "ready" here means "this node has joined a cluster". No restart on
            # failure: a node waiting for its peers must not be killed for it.
            CHECK_HTTP: {
                "override": "replace",
                "level": "ready",
                "period": "10s",
                "timeout": "5s",
                "threshold": 3,
                **_ready_probe(settings),
            }
        },
    }


def _ready_probe(settings: CrateSettings) -> dict:
    # Pebble's HTTP checks trust only the system's CAs, and the image has no
    # client to trust another: with TLS the check is a TCP connect (the charm
    # still reads the cluster's health through SQL).
    if settings.keystore_file is not None:
        return {"tcp": {"host": "127.0.0.1", "port": settings.http_port}}
    return {"http": {"url": f"http://127.0.0.1:{settings.http_port}/"}}


def restart_relevant(command: str) -> str:
    """The command without the flags that only matter at start (for change detection)."""
    return shlex.join(a for a in shlex.split(command) if not a.startswith(START_ONLY_FLAGS))


@dataclass(frozen=True)
class MetricsSettings:
    """Where the node's exporter (``metrics.py``) listens and which node it reads."""

    node_name: str
    https: bool = False
    http_port: int = HTTP_PORT
    host: str = "0.0.0.0"  # noqa: S104 (Prometheus scrapes the pod)
    port: int = METRICS_PORT
    script: str = METRICS_FILE
    python: str = PYTHON
    user: str | None = CRATE_USER
    group: str | None = None
    # The scheduled backups' state (written on the leader's unit only): its metrics.
    backup_state: str | None = BACKUP_STATE_FILE


# The files of in_container/ the cratedb container runs: the exporter, and the
# backup runner with the schedule rules it shares with the charm's config.
CONTAINER_SCRIPTS = ("metrics.py", "schedule.py", "backup_runner.py")


def container_scripts(directory: str = SCRIPTS_DIR) -> dict[str, str]:
    """Path in the container -> content, for every script the charm pushes there."""
    here = Path(__file__).parent / "in_container"
    return {f"{directory}/{name}": (here / name).read_text() for name in CONTAINER_SCRIPTS}


@dataclass(frozen=True)
class BackupScheduleSettings:
    """What the leader's backup runner (``backup_runner.py``) runs with."""

    schedule: str
    retention: str = ""
    https: bool = False
    http_port: int = HTTP_PORT
    script: str = f"{SCRIPTS_DIR}/backup_runner.py"
    state_file: str = BACKUP_STATE_FILE
    python: str = PYTHON
    user: str | None = CRATE_USER
    group: str | None = None


def backup_schedule_layer(settings: BackupScheduleSettings) -> dict:
    """The runner's own layer: applied apart from the node's, so it never restarts CrateDB."""
    crate_url = f"{'https' if settings.https else 'http'}://127.0.0.1:{settings.http_port}"
    service: dict = {
        "override": "replace",
        "summary": "CrateDB snapshots on the backup-schedule, pruned by backup-retention",
        "command": shlex.join(
            [
                settings.python,
                settings.script,
                crate_url,
                settings.state_file,
                settings.schedule,
                settings.retention,
            ]
        ),
        "startup": "enabled",
    }
    service.update(_run_as(settings.user, settings.group))
    return {
        "summary": "CrateDB scheduled backups",
        "description": "The charm's backup runner (leader only)",
        "services": {BACKUP_SERVICE: service},
    }


def metrics_layer(settings: MetricsSettings) -> dict:
    """The exporter's own layer: applied apart from the node's, so it never restarts CrateDB."""
    crate_url = f"{'https' if settings.https else 'http'}://127.0.0.1:{settings.http_port}"
    service: dict = {
        "override": "replace",
        "summary": "CrateDB's metrics from its sys tables, for Prometheus",
        "command": shlex.join(
            [
                settings.python,
                settings.script,
                settings.host,
                str(settings.port),
                crate_url,
                settings.node_name,
                *([settings.backup_state] if settings.backup_state else []),
            ]
        ),
        "startup": "enabled",
    }
    service.update(_run_as(settings.user, settings.group))
    return {
        "summary": "CrateDB metrics",
        "description": "The charm's exporter of the node's sys tables",
        "services": {METRICS_SERVICE: service},
    }
