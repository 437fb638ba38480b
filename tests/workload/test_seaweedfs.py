"""The seaweedfs charm's workload, for real: its layer under Pebble, its identities, real S3.

One store is shared by the module (start-up is the slow part); tests that need
a store of their own (a small disk) start one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from ops import pebble

from stack.pebble import PebbleDaemon, rss_bytes
from stack.seaweed import Credentials, SeaweedStore, error_code, sw
from tests.workload.conftest import PebbleFactory, bin_dir_on_path, record

MIB = 1024 * 1024


def _http_status(method: str, url: str, data: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def _s3_answers(store: SeaweedStore) -> bool:
    try:
        with urllib.request.urlopen(f"{store.endpoint}/status", timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def store(module_pebble_factory: PebbleFactory, weed_bin: str) -> SeaweedStore:
    """A store started from the charm's layer, ready (both Pebble checks succeeded)."""
    daemon = module_pebble_factory("seaweedfs", env=bin_dir_on_path(weed_bin))
    started = time.monotonic()
    store = SeaweedStore.start(daemon, weed_bin)
    answered = daemon.wait_for(lambda: _s3_answers(store), timeout=60, what="S3 /status")
    checks = store.wait_ready()
    record("seaweedfs fresh start: replan -> S3 answers", f"{answered:.1f} s")
    record(
        "seaweedfs fresh start: replan -> Pebble checks succeeded",
        f"{time.monotonic() - started:.1f} s (check period 10 s; waited {checks:.1f} s)",
    )
    return store


class TestService:
    def test_service_becomes_ready_through_pebble_checks(self, store: SeaweedStore):
        checks = {c.name: c for c in store.daemon.client.get_checks()}
        assert set(checks) == {"s3-ready", "master-ready"}
        for check in checks.values():
            assert check.status == pebble.CheckStatus.UP
            assert (check.successes or 0) > 0
        service = store.daemon.client.get_services(["seaweedfs"])[0]
        assert service.is_running()
        record("seaweedfs RSS idle", f"{rss_bytes([store.weed_pid()]) / MIB:.0f} MiB")

    def test_the_ready_service_wakes_the_charm_with_a_pebble_notice_once_s3_answers(
        self, store: SeaweedStore
    ):
        # No hook waits for S3: the one-shot service waits in the container and
        # records the notice Juju turns into pebble-custom-notice.
        def occurrences() -> int:
            notices = store.daemon.client.get_notices(
                types=[pebble.NoticeType.CUSTOM], keys=[sw.constants.READY_NOTICE]
            )
            return notices[0].occurrences if notices else 0

        store.daemon.wait_for(occurrences, timeout=30, what="the ready notice")
        assert _s3_answers(store)
        ready = store.daemon.client.get_services([sw.constants.READY_SERVICE])[0]
        assert ready.current == pebble.ServiceStatus.INACTIVE  # done, not restarted

    def test_only_s3_and_metrics_listen_beyond_what_the_charm_exposes(self, store: SeaweedStore):
        ports = store.settings.ports
        listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
        local = {
            int(line.split()[1].split(":")[1], 16): line.split()[1].split(":")[0]
            for line in listening
            if line.split()[3] == "0A"
        }
        loopback = "0100007F"
        for port in (ports.s3, ports.master, ports.volume, ports.filer, ports.metrics):
            assert local.get(port) == loopback, f"port {port} is not bound to 127.0.0.1 only"

    def test_metrics_endpoint_serves_prometheus_text(self, store: SeaweedStore):
        url = f"http://127.0.0.1:{store.settings.ports.metrics}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
            assert "SeaweedFS_" in response.read().decode()


class TestAccess:
    def test_related_client_can_put_get_and_list_in_its_bucket(self, store: SeaweedStore):
        creds = store.relate(11, "mlflow-artifacts")
        client = store.s3(creds)

        client.put_object(Bucket="mlflow-artifacts", Key="runs/1/model.pkl", Body=b"weights")

        got = client.get_object(Bucket="mlflow-artifacts", Key="runs/1/model.pkl")
        assert got["Body"].read() == b"weights"
        listed = client.list_objects_v2(Bucket="mlflow-artifacts", Prefix="runs/")
        assert [o["Key"] for o in listed["Contents"]] == ["runs/1/model.pkl"]

    def test_client_cannot_read_or_write_another_relations_bucket(self, store: SeaweedStore):
        mine = store.relate(12, "team-a")
        theirs = store.relate(13, "team-b")
        store.s3(theirs).put_object(Bucket="team-b", Key="secret.txt", Body=b"b only")
        client = store.s3(mine)

        for attempt in (
            lambda: client.get_object(Bucket="team-b", Key="secret.txt"),
            lambda: client.put_object(Bucket="team-b", Key="x", Body=b"intruder"),
            lambda: client.list_objects_v2(Bucket="team-b"),
            lambda: client.delete_object(Bucket="team-b", Key="secret.txt"),
        ):
            with pytest.raises(ClientError) as refused:
                attempt()
            assert error_code(refused.value) == (403, "AccessDenied")
        body = store.s3(theirs).get_object(Bucket="team-b", Key="secret.txt")["Body"].read()
        assert body == b"b only"

    def test_client_cannot_create_buckets_or_list_all_buckets(self, store: SeaweedStore):
        creds = store.relate(14, "team-c")
        client = store.s3(creds)

        with pytest.raises(ClientError) as refused:
            client.create_bucket(Bucket="sneaky-new-bucket")
        assert error_code(refused.value)[0] == 403
        names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        assert names <= {"team-c"}

    def test_unsigned_requests_are_refused(self, store: SeaweedStore):
        store.relate(15, "signed-only")
        for method, path in (("GET", "/"), ("GET", "/signed-only"), ("PUT", "/signed-only/x")):
            status = _http_status(
                method, f"{store.endpoint}{path}", b"x" if method == "PUT" else None
            )
            assert status == 403, (method, path, status)

    def test_wrongly_signed_requests_are_refused(self, store: SeaweedStore):
        creds = store.relate(16, "wrong-sig")
        forged = Credentials(access_key=creds.access_key, secret_key="not-the-secret-key-at-all")
        unknown = Credentials.generate()

        for bad in (forged, unknown):
            with pytest.raises(ClientError) as refused:
                store.s3(bad).put_object(Bucket="wrong-sig", Key="x", Body=b"x")
            assert error_code(refused.value)[0] == 403

    def test_charm_admin_identity_reaches_every_bucket(self, store: SeaweedStore):
        store.relate(17, "admin-visible")
        names = {b["Name"] for b in store.s3(store.admin).list_buckets()["Buckets"]}
        assert "admin-visible" in names


class TestCredentials:
    def test_rotated_keys_work_and_old_keys_stop_without_a_restart(self, store: SeaweedStore):
        old = store.relate(21, "rotating")
        store.s3(old).put_object(Bucket="rotating", Key="before", Body=b"1")
        pid_before = store.weed_pid()

        new = store.rotate(21)

        assert store.wait_until_refused(old, "rotating") == (403, "InvalidAccessKeyId")
        assert store.s3(new).get_object(Bucket="rotating", Key="before")["Body"].read() == b"1"
        assert store.weed_pid() == pid_before, "identity change restarted weed"

    def test_broken_relation_revokes_identity_and_keeps_the_data(self, store: SeaweedStore):
        creds = store.relate(22, "leaving")
        store.s3(creds).put_object(Bucket="leaving", Key="keep-me", Body=b"data")

        store.unrelate(22)

        assert store.wait_until_refused(creds, "leaving") == (403, "InvalidAccessKeyId")
        kept = store.s3(store.admin).get_object(Bucket="leaving", Key="keep-me")["Body"].read()
        assert kept == b"data"
        assert "leaving" in store.shell().buckets()

    def test_identities_file_is_readable_by_its_owner_only(self, store: SeaweedStore):
        mode = os.stat(store.settings.identities_file).st_mode & 0o777
        assert mode == 0o600


class TestDurability:
    def test_objects_survive_a_service_restart(self, store: SeaweedStore):
        creds = store.relate(31, "durable")
        store.s3(creds).put_object(Bucket="durable", Key="a", Body=b"A" * 1000)

        started = time.monotonic()
        store.daemon.client.stop_services(["seaweedfs"], timeout=120)
        stopped = time.monotonic()
        store.daemon.client.start_services(["seaweedfs"], timeout=120)
        store.daemon.wait_for(lambda: _s3_answers(store), timeout=90, what="S3 after restart")
        answered = time.monotonic()
        gap = store.wait_until_readable(creds, "durable", "a")
        record(
            "seaweedfs restart: stop / start -> S3 answers / -> first read",
            f"{stopped - started:.1f} s / {answered - stopped:.1f} s / +{gap:.1f} s",
        )

        body = store.s3(creds).get_object(Bucket="durable", Key="a")["Body"].read()
        assert body == b"A" * 1000

    def test_pebble_restarts_weed_after_kill_9_and_objects_survive(self, store: SeaweedStore):
        creds = store.relate(32, "crashy")
        client = store.s3(creds)
        keys = [f"obj-{i}" for i in range(20)]
        for key in keys:
            client.put_object(Bucket="crashy", Key=key, Body=key.encode())
        victim = store.weed_pid()

        os.kill(victim, signal.SIGKILL)
        started = time.monotonic()
        store.daemon.wait_for(
            lambda: _pid_or_none(store) not in (None, victim), timeout=60, what="weed respawn"
        )
        store.daemon.wait_for(lambda: _s3_answers(store), timeout=90, what="S3 after kill -9")
        answered = time.monotonic()
        gap = store.wait_until_readable(creds, "crashy", keys[0])
        record(
            "seaweedfs kill -9: Pebble restart -> S3 answers / -> first read",
            f"{answered - started:.1f} s / +{gap:.1f} s",
        )

        listed = client.list_objects_v2(Bucket="crashy")
        assert sorted(o["Key"] for o in listed["Contents"]) == sorted(keys)
        for key in keys:
            assert client.get_object(Bucket="crashy", Key=key)["Body"].read() == key.encode()


def _pid_or_none(store: SeaweedStore) -> int | None:
    try:
        return store.weed_pid()
    except LookupError:
        return None


@contextlib.contextmanager
def _small_filesystem(path: Path, size_mb: int, daemon: PebbleDaemon) -> Iterator[bool]:
    """A tmpfs of ``size_mb`` at ``path`` when this machine lets us mount one.

    The daemon (and weed) stop before the unmount, whatever the test did.
    """
    path.mkdir(parents=True, exist_ok=True)
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        daemon.stop()
        if mounted:
            subprocess.run(["umount", str(path)], capture_output=True, check=False)


class TestSmallStore:
    SIZE_MB = 512
    BUCKETS = 6

    def test_fresh_small_store_accepts_uploads_into_one_bucket_per_relation(
        self, pebble_factory: PebbleFactory, weed_bin: str
    ):
        daemon = pebble_factory("small", env=bin_dir_on_path(weed_bin))
        data = daemon.directory / "data"
        with _small_filesystem(data, self.SIZE_MB, daemon) as mounted:
            # Without a mount, tell the planner the size a real volume would have.
            capacity = None if mounted else self.SIZE_MB * MIB
            record(
                "small store data dir",
                f"{'tmpfs' if mounted else 'plain directory, declared'} {self.SIZE_MB} MiB",
            )
            store = SeaweedStore.start(daemon, weed_bin, data_dir=data, capacity_bytes=capacity)
            store.wait_ready()
            plan = store.settings.volumes
            record(
                f"volume layout for {self.SIZE_MB} MiB",
                f"{plan.size_limit_mb} MB x {plan.max_volumes} volumes "
                f"(room for {plan.bucket_capacity} buckets)",
            )
            assert plan.bucket_capacity >= self.BUCKETS

            payload = os.urandom(2 * MIB)
            for n in range(self.BUCKETS):
                bucket = f"relation-bucket-{n}"
                creds = store.relate(100 + n, bucket)
                store.s3(creds).put_object(Bucket=bucket, Key="first-upload", Body=payload)
            for bucket, creds in store.clients.values():
                body = store.s3(creds).get_object(Bucket=bucket, Key="first-upload")["Body"].read()
                assert body == payload, bucket
            status = sw.client.WorkloadClient(store.settings.ports).volume_status()
            assert status is not None
            assert status.starved_buckets == ()

    LARGE_GB = 100

    def test_upstream_volume_defaults_strand_the_second_bucket_where_the_plan_serves_many(
        self, pebble_factory: PebbleFactory, weed_bin: str
    ):
        # A 100 GB tmpfs costs nothing until written. SeaweedFS's defaults
        # (30 GB volumes, count = free disk / size, 7 volumes per new bucket)
        # leave it 3 volume slots: the first bucket takes them all.
        daemon = pebble_factory("upstream", env=bin_dir_on_path(weed_bin))
        data = daemon.directory / "data"
        with _small_filesystem(data, self.LARGE_GB * 1024, daemon) as mounted:
            if not mounted:
                pytest.skip("needs a tmpfs mount (root) to give weed a 100 GB filesystem")
            store = SeaweedStore.start(daemon, weed_bin, data_dir=data)
            store.wait_ready()
            layer = sw.workload.pebble_layer(store.settings)
            service = layer["services"]["seaweedfs"]
            service["command"] = (
                " ".join(
                    arg
                    for arg in service["command"].split()
                    if not arg.startswith(("-volume.max=", "-master.volumeSizeLimitMB="))
                )
                + " -volume.max=0"
            )
            service["environment"] = {}
            daemon.apply(layer)
            store.wait_serving()
            first = store.relate(200, "upstream-first")
            second = store.relate(201, "upstream-second")
            store.s3(first).put_object(Bucket="upstream-first", Key="first", Body=b"x")

            with pytest.raises(ClientError) as refused:
                store.s3(second).put_object(Bucket="upstream-second", Key="first", Body=b"x")
            assert error_code(refused.value)[0] == 500
            status = sw.client.WorkloadClient(store.settings.ports).volume_status()
            assert status is not None
            assert (status.free_volumes, status.starved_buckets) == (0, ("upstream-second",))

            # The charm's own plan on the very same filesystem.
            daemon.apply(sw.workload.pebble_layer(store.settings))
            store.wait_serving()
            plan = store.settings.volumes
            record(
                f"volume layout for {self.LARGE_GB} GB",
                f"{plan.size_limit_mb} MB x {plan.max_volumes} volumes "
                f"(room for {plan.bucket_capacity} buckets); "
                "upstream defaults: the 2nd bucket's first upload gets a 500",
            )
            for n in range(self.BUCKETS):
                creds = store.relate(300 + n, f"planned-{n}")
                store.s3(creds).put_object(Bucket=f"planned-{n}", Key="first", Body=b"x")


def test_example_s3_roundtrip_runs_against_the_store(store: SeaweedStore):
    creds = store.relate(40, "examples")
    env = {
        **os.environ,
        "S3_ENDPOINT": store.endpoint,
        "AWS_ACCESS_KEY_ID": creds.access_key,
        "AWS_SECRET_ACCESS_KEY": creds.secret_key,
    }
    example = Path(__file__).resolve().parents[2] / "examples" / "s3_roundtrip.py"

    result = subprocess.run(
        [sys.executable, str(example), "examples"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip() == "bucket examples: 1 object(s); hello.txt says: hello from boto3"
    )
