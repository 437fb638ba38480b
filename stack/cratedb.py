"""A real CrateDB node under a real Pebble, from the cratedb charm's own builders.

No package registry reachable from this project ships CrateDB, and nothing
built from its source may be committed, so these helpers take the path of an
unpacked CrateDB (``CRATEDB_HOME``: the tarball a CrateDB build leaves under
``app/target/``, unpacked) and nothing else.

``CrateNode.start`` does what the charm does on a unit: it builds the cluster
plan (``workload.discovery_settings``), the settings and the Pebble layer
(``workload.pebble_layer``) and applies it through the charm's workload door
(``container.Workload.apply_layer``). Differences from a pod, and why:

- every node binds 127.0.0.1 only, with its own HTTP, transport and PG ports
  (nodes share one host here); the seed hosts carry each peer's port;
- CrateDB enforces its bootstrap checks only when it binds a non-loopback
  address, as it does in a pod: here they are enforced explicitly
  (``-Des.enforce.bootstrap.checks=true``), so the checks a pod meets are met;
- CrateDB refuses to run as root; the charm's layer runs it as ``crate``
  (the image's user). Here, as root, it runs as ``nobody:nogroup``; as another
  user, as that user. Pebble's open-file limit is raised to what a pod has
  (CrateDB's check wants 65536);
- logs, GC log included, go to the node's own directory (``-Cpath.logs``,
  ``CRATE_GC_LOG_DIR``), not the home the service user cannot write.

A CrateDB built from source leaves a tarball without a JDK; the unpacked
``CRATEDB_HOME`` needs ``jdk`` linked to a JDK 25 (see README).
"""

from __future__ import annotations

import os
import pwd
import shutil
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stack.charm_loader import charm_modules
from stack.pebble import PebbleDaemon, free_ports

cr = charm_modules("cratedb", "workload", "state", "sql", "container", "constants", "scale", "tls")

HOW_TO_GET_ONE = (
    "needs a CrateDB: set CRATEDB_HOME to an unpacked CrateDB 6.4.0, built from the public "
    "crate/crate source at tag 6.4.0 (see README, 'CrateDB in the tests'); no package "
    "registry reachable from here ships CrateDB"
)
NOFILE = 65536
SERVICE_USER = ("nobody", "nogroup")


def nofile_allows_bootstrap_checks() -> bool:
    """True when this host lets Pebble give CrateDB the 65536 open files its check wants."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return hard == resource.RLIM_INFINITY or hard >= NOFILE


def bootstrap_failures(log: str) -> list[str]:
    """The bootstrap checks CrateDB reported as failed, from its log (newest report)."""
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if "bootstrap checks failed" in line]
    if not starts:
        return []
    failed = []
    for line in lines[starts[-1] + 1 :]:
        if not line.startswith("["):
            break
        head, _, text = line.partition("]: ")
        if not text or not head[1:].isdigit():
            break
        failed.append(text)
    return failed


def cratedb_home() -> Path | None:
    """The unpacked CrateDB named by ``CRATEDB_HOME``, if it has ``bin/crate``."""
    home = os.environ.get("CRATEDB_HOME")
    if home and (Path(home) / "bin" / "crate").exists():
        return Path(home)
    return None


def service_user() -> tuple[str, str] | None:
    """Who runs ``crate``: ``nobody`` when the tests run as root (CrateDB refuses root)."""
    return SERVICE_USER if os.geteuid() == 0 else None


def _give_to_service_user(path: Path) -> None:
    user = service_user()
    path.mkdir(parents=True, exist_ok=True)
    if user is not None:
        account = pwd.getpwnam(user[0])
        for item in [path, *path.rglob("*")]:
            os.chown(item, account.pw_uid, account.pw_gid)
        # nobody must reach the directory through the test's temporary tree.
        for parent in path.parents:
            if str(parent) in ("/", "/tmp"):
                break
            parent.chmod(parent.stat().st_mode | 0o711)


@dataclass(frozen=True)
class NodePorts:
    """One node's listeners on loopback."""

    http: int
    transport: int
    pg: int

    @classmethod
    def free(cls) -> NodePorts:
        """Three free ports."""
        http, transport, pg = free_ports(3)
        return cls(http, transport, pg)


def peer(index: int, ports: NodePorts, app: str = "cratedb") -> Any:
    """Unit ``<app>/<index>`` as the peer relation would know it, on loopback."""
    return cr.state.Peer(f"{app}-{index}", "127.0.0.1", ports.transport)


@dataclass
class CrateNode:
    """One CrateDB node under one Pebble, configured by the charm's builders."""

    daemon: PebbleDaemon
    home: Path
    ports: NodePorts
    name: str
    settings: Any = None
    enforce_bootstrap_checks: bool = True
    # With TLS: the keystore's password, as the charm keeps it in the unit's secret.
    keystore_password: str = ""

    @property
    def keystore_file(self) -> Path:
        """Where the charm's keystore goes (the service user's, mode 0600)."""
        return self.daemon.directory / "etc" / "keystore.p12"

    def push_keystore(self, issued: Any, password: str) -> None:
        """What the charm does with a (renewed) certificate: a PKCS#12 keystore, pushed."""
        node_tls = cr.tls.NodeTls(
            chain=(issued.certificate.strip(), issued.ca.strip()),
            private_key=issued.private_key,
            ca=issued.ca,
        )
        self.keystore_password = password
        self.daemon.container.push(
            str(self.keystore_file),
            cr.tls.keystore(node_tls, password),
            make_dirs=True,
            permissions=0o600,
        )
        _give_to_service_user(self.keystore_file.parent)

    @property
    def data_dir(self) -> Path:
        """``path.data``, owned by the service user."""
        return self.daemon.directory / "data"

    @property
    def logs_dir(self) -> Path:
        """``path.logs``, owned by the service user."""
        return self.daemon.directory / "logs"

    @property
    def workload(self) -> Any:
        """The charm's door to this node's container."""
        return cr.container.Workload(self.daemon.container)

    def sql(self, timeout: float = 30.0) -> Any:
        """The charm's SQL client (superuser over loopback), aimed at this node."""
        return cr.sql.CrateSQL(port=self.ports.http, timeout=timeout, https=self.https)

    @property
    def https(self) -> bool:
        """True once the node serves TLS (its keystore is pushed)."""
        return bool(self.keystore_password)

    def layer(self, discovery: Any, heap: str = "512m", allow_mmap: bool = False) -> dict:
        """The charm's layer for this node, with the test-host differences above."""
        user = service_user()
        self.settings = cr.workload.CrateSettings(
            discovery=discovery,
            heap=heap,
            allow_mmap=allow_mmap,
            data_dir=str(self.data_dir),
            bind_host="127.0.0.1",
            http_port=self.ports.http,
            transport_port=self.ports.transport,
            pg_port=self.ports.pg,
            crate_bin=str(self.home / "bin" / "crate"),
            user=user[0] if user else None,
            group=user[1] if user else None,
            extra_flags=(f"-Cpath.logs={self.logs_dir}",),
            keystore_file=str(self.keystore_file) if self.https else None,
            keystore_password=self.keystore_password,
        )
        layer = cr.workload.pebble_layer(self.settings)
        environment = layer["services"][cr.constants.SERVICE]["environment"]
        # The GC log goes beside the node's own logs (the image's /crate/logs is the crate user's).
        environment["CRATE_GC_LOG_DIR"] = str(self.logs_dir)
        if self.enforce_bootstrap_checks:
            environment["CRATE_JAVA_OPTS"] = "-Des.enforce.bootstrap.checks=true"
        return layer

    def apply(self, discovery: Any, **kwargs: Any) -> str:
        """Apply the charm's layer through the charm's door: unchanged, deferred or replanned."""
        _give_to_service_user(self.data_dir)
        _give_to_service_user(self.logs_dir)
        return str(self.workload.apply_layer(self.layer(discovery, **kwargs)))

    def wait_ready(self, timeout: float = 180.0) -> float:
        """Seconds until the charm's ready check (CrateDB's root answering 200) is up."""
        return self.daemon.wait_for_checks([cr.constants.CHECK_HTTP], timeout=timeout)

    def wait_sql(self, timeout: float = 180.0) -> float:
        """Seconds until the superuser's SQL answers (before the check's first period)."""

        def answers() -> bool:
            # A plain request first: the crate client retries a refused connection ten times.
            scheme = "https" if self.https else "http"
            # The certificate is checked by the tests themselves; this only waits.
            context = ssl._create_unverified_context() if self.https else None  # noqa: S323
            try:
                with urllib.request.urlopen(
                    f"{scheme}://127.0.0.1:{self.ports.http}/", timeout=3, context=context
                ):
                    pass
            except urllib.error.HTTPError:
                pass  # 503 before a master is elected: the listener is up
            except OSError:
                return False
            try:
                self.sql(timeout=5).query("SELECT 1")
                return True
            except cr.sql.WorkloadError:
                return False

        return self.daemon.wait_for(
            answers, timeout=timeout, interval=0.5, what=f"{self.name} SQL"
        )

    def pid(self) -> int | None:
        """The JVM's PID (the service's process tree), None when it is not running."""
        pids = self.daemon.service_pids()
        return max(pids) if pids else None

    def log_text(self) -> str:
        """Everything the node logged (its own log file and Pebble's)."""
        parts = [p.read_text(errors="replace") for p in sorted(self.logs_dir.glob("*.log"))]
        parts.append(self.daemon.log_path.read_text(errors="replace"))
        return "\n".join(parts)

    def stop(self, timeout: float = 120.0) -> float:
        """Stop the service through Pebble; seconds it took."""
        started = time.monotonic()
        self.daemon.client.stop_services([cr.constants.SERVICE], timeout=timeout)
        return time.monotonic() - started

    def remove_files(self) -> None:
        """Delete the node's data and logs (after it stopped)."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self.logs_dir, ignore_errors=True)


def start_single_node(
    pebble_bin: str, home: Path, directory: Path
) -> tuple[PebbleDaemon, CrateNode]:
    """A one-node cluster from the charm's plan, under its own Pebble, answering SQL."""
    daemon = PebbleDaemon(pebble_bin, directory, nofile=NOFILE)
    daemon.start()
    try:
        ports = NodePorts.free()
        node = CrateNode(
            daemon,
            home,
            ports,
            name="cratedb-0",
            enforce_bootstrap_checks=nofile_allows_bootstrap_checks(),
        )
        me = peer(0, ports)
        node.apply(cr.workload.discovery_settings("cratedb", me, [me], 1, False, me.node_name))
        node.wait_sql()
    except BaseException:
        daemon.stop()
        raise
    return daemon, node
