"""A SeaweedFS store run by a real Pebble from the seaweedfs charm's own builders.

What the charm does on a hook, done here against a real daemon with the
charm's code: ``volume_layout`` + ``pebble_layer`` for the service,
``identities_config`` for the S3 identities (pushed through the container,
reloaded with SIGHUP), ``container.WeedShell`` for buckets.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.client import Config
from botocore.exceptions import ClientError

from stack.charm_loader import charm_modules
from stack.pebble import PebbleDaemon, free_ports

sw = charm_modules(
    "seaweedfs", "workload", "state", "container", "constants", "client", "cluster", "security"
)


def push_security(
    container: Any, config_dir: Path, material: Any, addresses: list[str], units: int = 1
) -> str:
    """What the charm pushes for weed's locks (``security``): the files; the toml's digest."""
    files = sw.security.SecurityFiles(str(config_dir))
    allowed = sw.security.white_list(addresses, units=units)
    toml = sw.security.security_toml(files, material, allowed)
    for path, content in (
        (files.ca, material.ca),
        (files.certificate, material.certificate),
        (files.private_key, material.private_key),
        (files.toml, toml),
    ):
        container.push(path, content, make_dirs=True, permissions=0o600)
    return hashlib.sha256(toml.encode()).hexdigest()[:16]


Credentials = sw.state.Credentials
WEED_CHECKS = (sw.constants.CHECK_S3, sw.constants.CHECK_MASTER)


def s3_client(
    endpoint: str, creds: Any, region: str = "us-east-1", verify: str | None = None
) -> Any:
    """A boto3 S3 client, path-style, without retries (a refusal must show at once).

    ``verify``: the CA file an HTTPS endpoint's certificate must chain to.
    """
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        verify=verify,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        region_name=region,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        ),
    )


def error_code(err: ClientError) -> tuple[int, str]:
    """HTTP status and S3 error code of a refused request."""
    return (
        int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)),
        str(err.response.get("Error", {}).get("Code", "")),
    )


@dataclass
class SeaweedStore:
    """One ``weed server`` under Pebble, configured the way the charm configures it."""

    daemon: PebbleDaemon
    settings: Any
    admin: Any
    clients: dict[int, tuple[str, Any]] = field(default_factory=dict)
    revoked: set[int] = field(default_factory=set)
    # With HTTPS: the CA file clients trust (what tls-ca-chain hands them).
    ca_file: str | None = None
    # The keys and certificate of weed's own locks (the charm's weed-security secret).
    security: Any = None

    @classmethod
    def start(
        cls,
        daemon: PebbleDaemon,
        weed_bin: str,
        data_dir: Path | None = None,
        capacity_bytes: int | None = None,
        planned_buckets: int = 0,
        tls: Any = None,
    ) -> SeaweedStore:
        """Render the charm's layer for this daemon, replan, and wait for the checks.

        ``tls``: a certificate for ``localhost`` (``stack.tls.Issued``), pushed
        and served as the charm does with what the certificates relation gives.
        """
        data = data_dir or daemon.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        capacity = capacity_bytes or sw.client.disk_capacity_bytes(str(data))
        s3, master, volume, filer, metrics = free_ports(5, spacing=sw.constants.GRPC_OFFSET)
        ports = sw.workload.Ports(
            s3=s3, master=master, volume=volume, filer=filer, metrics=metrics
        )
        # One unit, as the charm runs it: the cluster form, with itself as the only master.
        me = sw.workload.Member(unit="seaweedfs/0", address="127.0.0.1", ports=ports)
        # Locked as the charm locks it: the pod's own address is loopback here.
        material = sw.security.generate_material()
        security_dir = daemon.directory / "etc" / "security"
        digest = push_security(daemon.container, security_dir, material, ["127.0.0.1"])
        settings = sw.workload.WeedSettings(
            volumes=sw.workload.volume_layout(
                capacity, planned_buckets, replica_copies=sw.cluster.copies("001")
            ),
            data_dir=str(data),
            identities_file=str(daemon.directory / "etc" / "identities.json"),
            public_address="127.0.0.1",
            ports=ports,
            weed=weed_bin,
            pebble_bin=daemon.binary,
            cluster=sw.workload.Cluster(
                me=me, masters=(me,), replication="000", bind_address="127.0.0.1"
            ),
            tls=tls is not None,
            tls_cert_file=str(daemon.directory / "etc" / "tls" / "s3.crt"),
            tls_key_file=str(daemon.directory / "etc" / "tls" / "s3.key"),
            security_dir=str(security_dir),
            security_digest=digest,
        )
        store = cls(
            daemon=daemon, settings=settings, admin=Credentials.generate(), security=material
        )
        if tls is not None:
            store.push_certificate(tls)
            ca_file = daemon.directory / "clients-ca.pem"
            ca_file.write_text(tls.ca)
            store.ca_file = str(ca_file)
        store.write_identities()
        daemon.apply(sw.workload.pebble_layer(settings))
        return store

    # -- what the charm does ---------------------------------------------

    @property
    def endpoint(self) -> str:
        """The S3 endpoint on loopback (``localhost``, the name test certificates carry)."""
        if self.settings.tls:
            return f"https://localhost:{self.settings.ports.s3}"
        return f"http://127.0.0.1:{self.settings.ports.s3}"

    def push_certificate(self, issued: Any) -> None:
        """Push a (new) certificate and key, as the charm does; weed re-reads them itself."""
        container = self.daemon.container
        leaf_then_ca = issued.certificate.strip() + "\n" + issued.ca.strip() + "\n"
        container.push(
            self.settings.tls_key_file, issued.private_key, make_dirs=True, permissions=0o600
        )
        container.push(
            self.settings.tls_cert_file, leaf_then_ca, make_dirs=True, permissions=0o600
        )

    def served_certificate(self) -> str:
        """The leaf the gateway presents now (PEM), '' when it does not answer."""
        try:
            return ssl.get_server_certificate(
                ("127.0.0.1", self.settings.ports.s3), timeout=3
            ).strip()
        except OSError:
            return ""

    def write_identities(self) -> None:
        """Push the identities file the charm renders."""
        content = sw.workload.identities_config(
            self.admin,
            sw.workload.client_identities(
                [(rel_id, bucket, creds) for rel_id, (bucket, creds) in self.clients.items()]
            ),
            [sw.workload.identity_name(rel_id) for rel_id in self.revoked],
        )
        self.daemon.container.push(
            self.settings.identities_file, content, make_dirs=True, permissions=0o600
        )

    def reload_identities(self) -> None:
        """Push identities and SIGHUP the service, as the charm does on a change."""
        self.write_identities()
        self.daemon.client.send_signal("SIGHUP", [sw.constants.SERVICE])

    def shell(self) -> Any:
        """The charm's ``weed shell`` wrapper, on this daemon's container."""
        return sw.container.WeedShell(self.daemon.container, self.settings)

    def relate(self, relation_id: int, bucket: str) -> Any:
        """A new relation: keys, identity scoped to its bucket, bucket created."""
        creds = Credentials.generate()
        self.clients[relation_id] = (bucket, creds)
        self.reload_identities()
        self.shell().ensure_buckets({bucket})
        self.wait_until_accepted(creds, bucket)
        return creds

    def rotate(self, relation_id: int) -> Any:
        """New keys for a relation; the old ones are dropped."""
        bucket, _ = self.clients[relation_id]
        creds = Credentials.generate()
        self.clients[relation_id] = (bucket, creds)
        self.reload_identities()
        self.wait_until_accepted(creds, bucket)
        return creds

    def unrelate(self, relation_id: int) -> None:
        """Relation broken: the identity is revoked, the bucket stays."""
        del self.clients[relation_id]
        self.revoked.add(relation_id)
        self.reload_identities()

    # -- observing it ------------------------------------------------------

    def s3(self, creds: Any) -> Any:
        """A boto3 client with the given keys (trusting the CA with HTTPS)."""
        return s3_client(self.endpoint, creds, verify=self.ca_file)

    def wait_serving(self, timeout: float = 90.0) -> float:
        """Seconds until S3 and the master's leader health answer 200 (polled, not checks)."""

        def answers() -> bool:
            context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
            for url in (
                f"{self.endpoint}/status",
                f"http://127.0.0.1:{self.settings.ports.master}/cluster/healthz",
            ):
                try:
                    with urllib.request.urlopen(url, timeout=2, context=context):
                        pass
                except OSError:
                    return False
            return True

        return self.daemon.wait_for(answers, timeout=timeout, what="S3 and master health")

    def wait_ready(self, timeout: float = 90.0) -> float:
        """Seconds until both Pebble checks have succeeded."""
        return self.daemon.wait_for_checks(WEED_CHECKS, timeout=timeout)

    def wait_until_accepted(self, creds: Any, bucket: str, timeout: float = 15.0) -> float:
        """Seconds until the gateway accepts these keys on this bucket (after SIGHUP)."""
        client = self.s3(creds)
        deadline = time.monotonic() + timeout
        start = time.monotonic()
        while True:
            try:
                client.list_objects_v2(Bucket=bucket, MaxKeys=1)
                return time.monotonic() - start
            except ClientError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def wait_until_refused(
        self, creds: Any, bucket: str, timeout: float = 15.0
    ) -> tuple[int, str]:
        """The refusal the gateway gives these keys once they are revoked."""
        client = self.s3(creds)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.list_objects_v2(Bucket=bucket, MaxKeys=1)
            except ClientError as err:
                return error_code(err)
            if time.monotonic() > deadline:
                raise AssertionError("revoked keys still accepted")
            time.sleep(0.2)

    def wait_until_readable(
        self, creds: Any, bucket: str, key: str, timeout: float = 30.0
    ) -> float:
        """Seconds until ``key`` can be read.

        Right after a restart the gateway answers before the volume server has
        re-registered its volumes with the master: reads fail with a 500 for
        a second or two (measured), which clients' retries cover.
        """
        client = self.s3(creds)
        start = time.monotonic()
        while True:
            try:
                client.get_object(Bucket=bucket, Key=key)["Body"].read()
                return time.monotonic() - start
            except ClientError as err:
                if error_code(err)[0] != 500 or time.monotonic() - start > timeout:
                    raise
                time.sleep(0.2)

    def weed_pid(self) -> int:
        """PID of the running ``weed server`` (a child of our Pebble)."""
        for pid in self.daemon.service_pids():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if (
                len(cmdline) > 1
                and os.path.basename(cmdline[0]) == b"weed"
                and b"server" in cmdline[1:3]  # after weed's global -config_dir
            ):
                return pid
        raise LookupError("weed server is not running")
