"""Pure builders for the SeaweedFS workload: command line, Pebble layer, files.

Nothing here touches ops or the network: plain data in, plain data out. The
charm applies what these functions return, and the workload tests feed the
very same output to a real Pebble running the real ``weed``.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from constants import (
    CHECK_MASTER,
    CHECK_S3,
    DATA_DIR,
    FILER_PORT,
    GRPC_OFFSET,
    IDENTITIES_FILE,
    MASTER_PORT,
    METRICS_PORT,
    PEBBLE_BIN,
    READY_NOTICE,
    READY_SERVICE,
    RECORDS_DIR,
    S3_PORT,
    SERVICE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    TLS_REFRESH_INTERVAL,
    VERSION_RECORD,
    VOLUME_PORT,
    VOLUMES_PER_GROWTH,
)
from state import ClientIdentity, Credentials

MIB = 1024 * 1024
# Space kept out of the volume budget: the filer's metadata store, the
# master's raft log and SeaweedFS's own minimum-free-space guard live there.
RESERVED_FRACTION = 0.10
MIN_VOLUME_SIZE_MB = 32
MAX_VOLUME_SIZE_MB = 30_000
# Every planned bucket gets room for this many volumes: its first growth plus
# three more as its volumes fill up.
VOLUMES_PER_BUCKET_SLOT = 4 * VOLUMES_PER_GROWTH
MIN_BUCKET_SLOTS = 16

ACTIONS_PER_BUCKET = ("Read", "Write", "List", "Tagging")
ADMIN_ACTIONS = ("Admin", "Read", "Write", "List", "Tagging")
ADMIN_IDENTITY = "charm-admin"


@dataclass(frozen=True)
class Ports:
    """The listeners of one ``weed server``."""

    s3: int = S3_PORT
    master: int = MASTER_PORT
    volume: int = VOLUME_PORT
    filer: int = FILER_PORT
    metrics: int = METRICS_PORT


@dataclass(frozen=True)
class Member:
    """One unit of the store: how the others reach it."""

    unit: str
    # The unit's stable DNS name (its pod behind the headless service); loopback in tests.
    address: str
    ports: Ports = field(default_factory=Ports)

    @property
    def master(self) -> str:
        """``host:port`` of its master (SeaweedFS adds 10000 for gRPC)."""
        return f"{self.address}:{self.ports.master}"

    @property
    def volume(self) -> str:
        """``host:port`` of its volume server, as ``volume.list`` names it."""
        return f"{self.address}:{self.ports.volume}"

    @property
    def raft_id(self) -> str:
        """The id its master has in the raft group (``host:port.grpcPort``)."""
        return f"{self.address}:{self.ports.master}.{self.ports.master + GRPC_OFFSET}"


@dataclass(frozen=True)
class Cluster:
    """Where this unit stands in the store: itself, the masters, the copies kept."""

    me: Member
    masters: tuple[Member, ...]
    replication: str = "000"
    # What master, volume server and filer bind: every address of the pod.
    bind_address: str = "0.0.0.0"  # noqa: S104 (the other units reach them)

    @property
    def is_master(self) -> bool:
        """True when this unit runs one of the masters."""
        return any(m.unit == self.me.unit for m in self.masters)


@dataclass(frozen=True)
class VolumeLayout:
    """How the data storage is cut into SeaweedFS volumes."""

    size_limit_mb: int
    max_volumes: int
    bucket_slots: int

    @property
    def bucket_capacity(self) -> int:
        """How many buckets can get their first volumes at all."""
        return self.max_volumes // VOLUMES_PER_GROWTH


@dataclass(frozen=True)
class WeedSettings:
    """Everything the ``weed server`` command line depends on."""

    volumes: VolumeLayout
    data_dir: str = DATA_DIR
    identities_file: str = IDENTITIES_FILE
    # Where S3 and metrics listen; master, volume and filer stay on loopback.
    public_address: str = "0.0.0.0"  # noqa: S104 (the pod's S3 service needs it)
    ports: Ports = field(default_factory=Ports)
    weed: str = "weed"
    # HTTPS only on the S3 port, with the pair the certificates relation gave.
    tls: bool = False
    tls_cert_file: str = TLS_CERT_FILE
    tls_key_file: str = TLS_KEY_FILE
    # None: one unit with master, volume and filer on loopback only (tests of old).
    cluster: Cluster | None = None
    # SeaweedFS's own locks (``security.toml`` in this folder), and a digest of
    # the file: weed reads it only at start, so a change restarts it.
    security_dir: str | None = None
    security_digest: str = ""
    # The Pebble that records READY_NOTICE (the tests' own Pebble elsewhere).
    pebble_bin: str = PEBBLE_BIN

    @property
    def version_record(self) -> str:
        """Where the ``weed version`` that last served this data is recorded."""
        return f"{self.data_dir}/{RECORDS_DIR}/{VERSION_RECORD}"

    @property
    def weed_argv(self) -> list[str]:
        """``weed`` and its global flags (where ``security.toml`` is)."""
        if self.security_dir is None:
            return [self.weed]
        return [self.weed, f"-config_dir={self.security_dir}"]


def _next_power_of_two(n: int) -> int:
    power = 1
    while power < n:
        power *= 2
    return power


def volume_layout(
    capacity_bytes: int,
    buckets: int,
    size_limit_override_mb: int = 0,
    units: int = 1,
    replica_copies: int = 1,
) -> VolumeLayout:
    """Size SeaweedFS volumes so that every bucket served, and more, can grow.

    SeaweedFS preallocates nothing but counts volumes: a bucket's first upload
    needs free volume slots, and with the default 30 GB volume limit a small
    disk has almost none. The layout reserves ``VOLUMES_PER_BUCKET_SLOT`` slots
    for each of ``bucket_slots`` buckets. Slots double (16, 32, 64...) only
    when the buckets served pass half of them, so the layout - and a restart of
    the server to apply it - changes rarely.

    In a cluster every volume has ``replica_copies`` copies spread over
    ``units`` units: each unit needs room for its share of every copy, and
    ``capacity_bytes`` is the smallest unit's ``data`` storage (the size limit
    must be the same everywhere: it is a master flag).
    """
    usable_mb = int(capacity_bytes * (1 - RESERVED_FRACTION)) // MIB
    bucket_slots = max(MIN_BUCKET_SLOTS, _next_power_of_two(2 * buckets))
    if size_limit_override_mb:
        size_limit = size_limit_override_mb
    else:
        slots_per_unit = -(-bucket_slots * VOLUMES_PER_BUCKET_SLOT * replica_copies // units)
        size_limit = usable_mb // max(1, slots_per_unit)
        size_limit = max(MIN_VOLUME_SIZE_MB, min(MAX_VOLUME_SIZE_MB, size_limit))
    max_volumes = max(1, usable_mb // size_limit)
    return VolumeLayout(
        size_limit_mb=size_limit, max_volumes=max_volumes, bucket_slots=bucket_slots
    )


def weed_command(settings: WeedSettings) -> list[str]:
    """The ``weed server`` argv: master, volume, filer and S3 in one process."""
    if settings.cluster is not None:
        return _cluster_command(settings, settings.cluster)
    ports = settings.ports
    return [
        *settings.weed_argv,
        "server",
        f"-dir={settings.data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports.master}",
        f"-master.port.grpc={ports.master + GRPC_OFFSET}",
        f"-master.volumeSizeLimitMB={settings.volumes.size_limit_mb}",
        "-master.telemetry=false",
        f"-volume.port={ports.volume}",
        f"-volume.port.grpc={ports.volume + GRPC_OFFSET}",
        f"-volume.max={settings.volumes.max_volumes}",
        # One node: nobody needs the default 10 s to learn it is leaving.
        "-volume.preStopSeconds=1",
        "-filer",
        f"-filer.port={ports.filer}",
        f"-filer.port.grpc={ports.filer + GRPC_OFFSET}",
        "-s3",
        f"-s3.port={ports.s3}",
        f"-s3.port.grpc={ports.s3 + GRPC_OFFSET}",
        f"-s3.ip.bind={settings.public_address}",
        f"-s3.config={settings.identities_file}",
        "-s3.iam=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # A client deleting its bucket must not silently take every object along.
        "-s3.allowDeleteBucketNotEmpty=false",
        f"-metricsPort={ports.metrics}",
        f"-metricsIp={settings.public_address}",
        *_tls_flags(settings),
    ]


def _tls_flags(settings: WeedSettings) -> list[str]:
    # With a pair and no -s3.port.https, the S3 port serves HTTPS only.
    if not settings.tls:
        return []
    return [f"-s3.cert.file={settings.tls_cert_file}", f"-s3.key.file={settings.tls_key_file}"]


def _cluster_command(settings: WeedSettings, cluster: Cluster) -> list[str]:
    """One unit of a store: its volume server, filer and S3, and a master if it is one."""
    ports = settings.ports
    return [
        *settings.weed_argv,
        "server",
        f"-dir={settings.data_dir}",
        # Its stable name: what the others, and the raft group, know it by.
        f"-ip={cluster.me.address}",
        f"-ip.bind={cluster.bind_address}",
        f"-master={'true' if cluster.is_master else 'false'}",
        f"-master.port={ports.master}",
        f"-master.port.grpc={ports.master + GRPC_OFFSET}",
        f"-master.peers={','.join(m.master for m in cluster.masters)}",
        f"-master.volumeSizeLimitMB={settings.volumes.size_limit_mb}",
        f"-master.defaultReplication={cluster.replication}",
        "-master.telemetry=false",
        f"-volume.port={ports.volume}",
        f"-volume.port.grpc={ports.volume + GRPC_OFFSET}",
        f"-volume.max={settings.volumes.max_volumes}",
        # Units copy volumes from each other (repair, moves): their addresses are
        # the pods' private ones, which SeaweedFS refuses as remote ends otherwise.
        "-volume.allowUntrustedRemoteEndpoints",
        "-filer",
        f"-filer.port={ports.filer}",
        f"-filer.port.grpc={ports.filer + GRPC_OFFSET}",
        "-s3",
        f"-s3.port={ports.s3}",
        f"-s3.port.grpc={ports.s3 + GRPC_OFFSET}",
        f"-s3.ip.bind={settings.public_address}",
        f"-s3.config={settings.identities_file}",
        "-s3.iam=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.allowDeleteBucketNotEmpty=false",
        f"-metricsPort={ports.metrics}",
        f"-metricsIp={settings.public_address}",
        *_tls_flags(settings),
    ]


# Flags that matter only when weed starts: a change to them alone is written to
# the plan for the next start and never restarts a serving unit. New masters
# join the running ones' raft group by themselves (measured), and a changed
# default replication is applied live (``cluster.replication_script``).
START_ONLY_FLAGS = ("-master.peers=", "-master.defaultReplication=")


def restart_relevant(command: str) -> str:
    """The command without the start-only flags (for change detection)."""
    return shlex.join(a for a in shlex.split(command) if not a.startswith(START_ONLY_FLAGS))


def pebble_layer(settings: WeedSettings, serve: bool = True) -> dict:
    """The Pebble layer that runs and watches ``weed server``.

    With ``serve=False`` (a standby unit) the service is defined but never
    started, and the failing checks keep the pod out of the S3 service.
    """
    ports = settings.ports
    # Only a master answers /cluster/healthz; units without one are watched through S3.
    master_check = settings.cluster is None or settings.cluster.is_master
    # Pebble's HTTP checks trust only the system's CAs, and the image has no
    # client to trust another: with TLS the S3 check is a TCP connect (the
    # charm's own readiness wait still calls /status over HTTPS).
    s3_probe = (
        {"tcp": {"host": "127.0.0.1", "port": ports.s3}}
        if settings.tls
        else {"http": {"url": f"http://127.0.0.1:{ports.s3}/status"}}
    )
    checks: dict = {
        CHECK_S3: {
            "override": "replace",
            "level": "ready",
            "period": "10s",
            "timeout": "3s",
            "threshold": 3,
            **s3_probe,
        },
    }
    if master_check:
        checks[CHECK_MASTER] = {
            "override": "replace",
            "level": "ready",
            "period": "10s",
            "timeout": "3s",
            "threshold": 3,
            # 200 once the raft group has a leader.
            "http": {"url": f"http://127.0.0.1:{ports.master}/cluster/healthz"},
        }
    # In a store of several units a master waiting for the others to form a quorum
    # fails its checks for as long as they take to come; restarting it then only
    # makes it wait again (measured: units started a minute apart never formed).
    # So the charm's checks report readiness only; a crashed weed is restarted by
    # Pebble regardless. (Unchanged with the unit count: growing never restarts.)
    on_failure = {name: "restart" for name in checks} if serve and settings.cluster is None else {}
    services = {SERVICE: _weed_service(settings, serve, on_failure)}
    if serve:
        services[READY_SERVICE] = ready_service(settings)
    return {
        "summary": "SeaweedFS object store",
        "description": "weed server with master, volume, filer and S3 gateway",
        "services": services,
        "checks": checks,
    }


def _weed_service(settings: WeedSettings, serve: bool, on_failure: dict[str, str]) -> dict:
    """The ``weed server`` service."""
    return {
        "override": "replace",
        "summary": "weed server (master + volume + filer + S3)",
        "command": shlex.join(weed_command(settings)),
        "startup": "enabled" if serve else "disabled",
        "environment": {
            "WEED_MASTER_VOLUME_GROWTH_COPY_1": str(VOLUMES_PER_GROWTH),
            **(
                {"CHARM_SECURITY_SHA256": settings.security_digest}
                if settings.security_digest
                else {}
            ),
            # How soon a renewed certificate is served (weed's default: 5 h).
            **({"WEED_TLS_CERT_REFRESH_INTERVAL": TLS_REFRESH_INTERVAL} if settings.tls else {}),
        },
        # weed flushes volumes and the filer store on SIGTERM; a restart
        # measured 13-16 s, a stop up to 27 s with default pre-stop.
        "kill-delay": "45s",
        "on-check-failure": on_failure,
    }


def ready_service(settings: WeedSettings) -> dict:
    """A one-shot service: once S3 answers ``/status``, record ``READY_NOTICE`` and exit.

    The waiting happens in the container, not in a hook. Replan starts it again
    whenever it starts weed (it is startup-enabled and has exited by then). It
    needs a POSIX ``sh`` and ``wget`` (the image's busybox has both); it never
    restarts itself, and a failure to record the notice leaves update-status and
    the checks' events to wake the charm.

    Before the notice it writes what ``weed version`` prints to the data storage
    (``version_record``): the weed that has served this data, which an older one
    must not follow (``upgrades.downgrade_problem``).
    """
    scheme = "https" if settings.tls else "http"
    # Certificates are the check's concern, not this wait's: S3 answering is all it asks.
    insecure = " --no-check-certificate" if settings.tls else ""
    url = f"{scheme}://127.0.0.1:{settings.ports.s3}/status"
    # Pebble fails the start of a service that exits within its first second
    # (its documented start window), so the wait begins with a pause.
    probe = f"wget -q -T 3{insecure} -O /dev/null {shlex.quote(url)}"
    record = shlex.quote(settings.version_record)
    served = (
        f"mkdir -p {shlex.quote(settings.version_record.rpartition('/')[0])} && "
        f"{shlex.quote(settings.weed)} version > {record}.new && mv {record}.new {record}"
    )
    script = (
        f"sleep 2; until {probe}; do sleep 1; done; {served}; "
        f"exec {shlex.quote(settings.pebble_bin)} notify {READY_NOTICE}"
    )
    return {
        "override": "replace",
        "summary": "records a Pebble notice once the S3 gateway answers",
        "command": shlex.join(["sh", "-c", script]),
        "startup": "enabled",
        "after": [SERVICE],
        "on-success": "ignore",
        "on-failure": "ignore",
    }


def identities_config(
    admin: Credentials,
    clients: Iterable[ClientIdentity],
    revoked: Iterable[str] = (),
) -> str:
    """The S3 identities file: the charm's admin plus one identity per bucket client.

    Each client's actions are scoped to its own bucket. The admin identity is
    always present: with no identity at all, SeaweedFS serves S3 anonymously.

    ``revoked`` names identities of relations that are gone. They stay in the
    file as tombstones, without keys or rights: SeaweedFS 4.48 merges the file
    into its identities on SIGHUP, so an identity merely left out would keep
    working until the next restart (measured); one replaced by a tombstone
    stops at once.
    """
    identities = [
        {
            "name": ADMIN_IDENTITY,
            "credentials": [{"accessKey": admin.access_key, "secretKey": admin.secret_key}],
            "actions": list(ADMIN_ACTIONS),
        }
    ]
    for client in sorted(clients, key=lambda c: c.name):
        identities.append(
            {
                "name": client.name,
                "credentials": [
                    {
                        "accessKey": client.credentials.access_key,
                        "secretKey": client.credentials.secret_key,
                    }
                ],
                "actions": [f"{action}:{client.bucket}" for action in ACTIONS_PER_BUCKET],
            }
        )
    live = {identity["name"] for identity in identities}
    for name in sorted(set(revoked) - live):
        identities.append({"name": name, "credentials": [], "actions": []})
    return json.dumps({"identities": identities}, indent=2, sort_keys=True) + "\n"


def weed_shell_argv(settings: WeedSettings) -> list[str]:
    """The ``weed shell`` argv for administrative commands (fed on stdin)."""
    if settings.cluster is not None:
        masters = ",".join(m.master for m in settings.cluster.masters)
        # Its own filer: one the masters still list may have just left.
        me = settings.cluster.me
        return [
            *settings.weed_argv,
            "shell",
            f"-master={masters}",
            f"-filer={me.address}:{settings.ports.filer}",
        ]
    return [*settings.weed_argv, "shell", f"-master=127.0.0.1:{settings.ports.master}"]


def bucket_list_script() -> str:
    """The ``weed shell`` input that lists buckets."""
    return "s3.bucket.list\n"


def bucket_create_script(bucket: str) -> str:
    """The ``weed shell`` input that creates one (already validated) bucket."""
    if not BUCKET_NAME.fullmatch(bucket):
        raise ValueError("refusing to pass an invalid bucket name to weed shell")
    return f"s3.bucket.create -name {bucket}\n"


def bucket_delete_script(bucket: str) -> str:
    """The ``weed shell`` input that deletes one bucket and every object in it."""
    if not BUCKET_NAME.fullmatch(bucket):
        raise ValueError("refusing to pass an invalid bucket name to weed shell")
    return f"s3.bucket.delete -name {bucket}\n"


_BUCKET_LINE = re.compile(r"^\s+(\S+)\s+size:", re.MULTILINE)


def parse_bucket_list(output: str) -> set[str]:
    """Bucket names from ``s3.bucket.list`` output (indented ``name  size:...`` lines)."""
    return set(_BUCKET_LINE.findall(output))


# S3 bucket naming rules, minus dots: dotted names break TLS with
# virtual-host addressing and gain nothing here.
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` is not a usable bucket name, or None when it is."""
    if not 3 <= len(name) <= 63:
        return "must be 3 to 63 characters long"
    if not BUCKET_NAME.fullmatch(name):
        return (
            "may hold only lowercase letters, digits and hyphens, "
            "and must start and end with a letter or digit"
        )
    if name.startswith("xn--") or name.endswith("-s3alias"):
        return "uses a prefix or suffix that S3 reserves"
    return None


def default_bucket_for(app_name: str) -> str:
    """A valid bucket name derived from a requiring application's name."""
    name = re.sub(r"[^a-z0-9-]+", "-", app_name.lower()).strip("-")[:63].strip("-")
    if len(name) < 3:
        name = f"{name}-bucket".strip("-")
    return name


def s3_endpoint(
    app: str, model: str, cluster_domain: str, port: int = S3_PORT, tls: bool = False
) -> str:
    """The in-cluster URL of the application's Kubernetes service."""
    return f"{'https' if tls else 'http'}://{app}.{model}.svc.{cluster_domain}:{port}"


def identity_name(relation_id: int) -> str:
    """The SeaweedFS identity name of one relation's client."""
    return f"relation-{relation_id}"


def client_identities(entries: Sequence[tuple[int, str, Credentials]]) -> list[ClientIdentity]:
    """Client identities from (relation id, bucket, credentials) triples."""
    return [
        ClientIdentity(name=identity_name(rel_id), bucket=bucket, credentials=creds)
        for rel_id, bucket, creds in entries
    ]
