"""A SeaweedFS store of several units: one real Pebble and one real ``weed`` per unit.

What the seaweedfs charm does on each unit, done here with the charm's own
code: ``cluster.choose_masters`` picks the masters, ``workload.pebble_layer``
with a ``Cluster`` builds each unit's layer, every unit gets the same
identities file (reloaded with SIGHUP), and ``container.WeedShell`` applies
replication and drains a departing unit. Units share one host here, so each
has its own ports and the address 127.0.0.1; in a pod the address is the
unit's stable DNS name and the ports are the same everywhere.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ops

from stack.charm_loader import charm_modules
from stack.pebble import PebbleDaemon, free_ports
from stack.seaweed import Credentials, push_security, s3_client

UnitFactory = Callable[[str], PebbleDaemon]
sc = charm_modules(
    "seaweedfs", "cluster", "workload", "container", "constants", "state", "security", "exceptions"
)


@dataclass
class Unit:
    """One unit: its Pebble, its member record, its settings."""

    daemon: PebbleDaemon
    member: Any
    settings: Any = None
    # What Juju gives as the unit's ingress-address: here a distinct loopback
    # address per unit, as in a pod (every connection still comes from 127.0.0.1,
    # which a white list always names).
    pod_ip: str = "127.0.0.1"

    @property
    def s3_endpoint(self) -> str:
        """The unit's S3 gateway on loopback."""
        return f"http://127.0.0.1:{self.member.ports.s3}"

    def weed_pid(self) -> int | None:
        """The running ``weed server`` of this unit, if any."""
        pids = self.daemon.service_pids()
        return min(pids) if pids else None


@dataclass
class SeaweedCluster:
    """Several units forming one S3 store, configured as the charm configures them."""

    weed_bin: str
    factory: UnitFactory
    replication: str = sc.cluster.DEFAULT_REPLICATION
    capacity_bytes: int = 8 * 1024**3
    units: dict[str, Unit] = field(default_factory=dict)
    masters: tuple[str, ...] = ()
    admin: Any = field(default_factory=Credentials.generate)
    clients: dict[int, tuple[str, Any]] = field(default_factory=dict)
    revoked: set[int] = field(default_factory=set)
    next_number: int = 0
    outcomes: dict[str, str] = field(default_factory=dict)
    # The leader's weed-security secret: one for every unit.
    security: Any = field(default_factory=lambda: sc.security.generate_material())
    # The name new units have in the store (in a pod: its DNS name). weed 4.48
    # lets only the first master in sorted order start a new raft group.
    address: str = "127.0.0.1"

    # -- membership, as the leader decides it ------------------------------

    def _member(self, unit: str) -> Any:
        s3, master, volume, filer, metrics = free_ports(5, spacing=sc.constants.GRPC_OFFSET)
        ports = sc.workload.Ports(
            s3=s3, master=master, volume=volume, filer=filer, metrics=metrics
        )
        return sc.workload.Member(unit=unit, address=self.address, ports=ports)

    def _settings(self, unit: Unit) -> Any:
        members = {name: u.member for name, u in self.units.items()}
        replication = sc.cluster.effective_replication(self.replication, len(self.units))
        # Planned for the configured copies whatever the unit count: scaling never
        # changes the volume flags, so it never restarts a serving unit.
        volumes = sc.workload.volume_layout(
            self.capacity_bytes,
            max(1, len(self.clients)),
            replica_copies=sc.cluster.copies(self.replication),
        )
        security_dir = unit.daemon.directory / "etc" / "security"
        digest = push_security(
            unit.daemon.container,
            security_dir,
            self.security,
            [u.pod_ip for u in self.units.values()],
            units=len(self.units),
        )
        return sc.workload.WeedSettings(
            security_dir=str(security_dir),
            security_digest=digest,
            volumes=volumes,
            data_dir=str(unit.daemon.directory / "data"),
            identities_file=str(unit.daemon.directory / "etc" / "identities.json"),
            public_address="127.0.0.1",
            ports=unit.member.ports,
            weed=self.weed_bin,
            pebble_bin=unit.daemon.binary,
            cluster=sc.workload.Cluster(
                me=unit.member,
                masters=tuple(members[m] for m in self.masters),
                replication=replication,
                bind_address="127.0.0.1",
            ),
        )

    def scale_to(self, count: int) -> list[str]:
        """Add units until there are ``count``; returns the new units' names."""
        added = []
        while len(self.units) < count:
            name = f"seaweedfs/{self.next_number}"
            self.next_number += 1
            daemon = self.factory(name.replace("/", "-"))
            (daemon.directory / "data").mkdir(parents=True, exist_ok=True)
            self.units[name] = Unit(
                daemon=daemon,
                member=self._member(name),
                pod_ip=f"127.0.0.{2 + sc.cluster.unit_number(name)}",
            )
            added.append(name)
        self.masters = sc.cluster.choose_masters(self.masters, self.units)
        self.outcomes = {name: self.apply(name) for name in self.units}
        return added

    def adopt(self, name: str, daemon: PebbleDaemon, member: Any) -> Unit:
        """A unit whose pod exists already, its data in ``daemon.directory / "data"``.

        ``member`` keeps the ports and names the address the unit has in the store
        (a store moved from the one-unit charm, say). Its layer comes with the
        next ``scale_to`` or ``apply``.
        """
        self.units[name] = Unit(
            daemon=daemon, member=member, pod_ip=f"127.0.0.{2 + sc.cluster.unit_number(name)}"
        )
        self.next_number = max(self.next_number, sc.cluster.unit_number(name) + 1)
        return self.units[name]

    def apply_all(self) -> dict[str, str]:
        """Every unit's hook after a membership change; then the replication, applied live.

        Right after the masters change (a unit restarted into three masters), the
        new raft leader may not have heard from any volume server yet ("no data
        nodes at all", seen in CI): the charm's leader says "retrying" and
        applies it on a later hook; here, a later attempt stands for that hook.
        """
        outcomes = {name: self.apply(name) for name in self.units}
        replication = sc.cluster.effective_replication(self.replication, len(self.units))

        def applied() -> bool:
            try:
                self.shell().apply_replication(replication)
            except sc.exceptions.WorkloadError:
                return False
            return True

        self.wait_until(applied, 120, "the leader's replication, applied on a later hook")
        return outcomes

    def remove_unit(self, name: str) -> Any:
        """What the departing unit's charm does: drain, leave the raft group, go.

        Returns the drain; with a problem nothing moved and the unit stays.
        """
        unit = self.units[name]
        leader = self.leader()
        assert leader is not None
        port = self.units[leader].member.ports.master
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/dir/status", timeout=5) as r:
            slots = sc.cluster.node_slots(json.loads(r.read()))
        remaining = [n for n in self.units if n != name]
        drain = self.shell(remaining[0]).drain(unit.member.volume, slots)
        if drain.problem is not None:
            return drain
        if name in self.masters:
            self.shell(remaining[0]).leave_raft(unit.member.raft_id)
        self.stop_unit(name)
        self.masters = sc.cluster.choose_masters(self.masters, self.units)
        # Repairs run once the store has settled: a leader, every unit reporting.
        self.wait_formed(timeout=180)
        self.apply_all()
        return drain

    def apply(self, name: str) -> str:
        """What the unit's charm does on a hook: identities, then the layer through the door.

        Returns what happened to the service: unchanged, deferred (start-only
        flags changed) or replanned.
        """
        unit = self.units[name]
        unit.settings = self._settings(unit)
        self._write_identities(unit)
        layer = sc.workload.pebble_layer(unit.settings)
        # The comparison the charm's _apply_layer makes.
        plan = unit.daemon.client.get_plan().services.get(sc.constants.SERVICE)
        wanted = ops.pebble.Layer(layer).services[sc.constants.SERVICE]
        if plan is not None and plan.to_dict() == wanted.to_dict():
            return "unchanged"
        if (
            plan is not None
            and sc.workload.restart_relevant(plan.command)
            == sc.workload.restart_relevant(wanted.command)
            and {**plan.to_dict(), "command": ""} == {**wanted.to_dict(), "command": ""}
        ):
            unit.daemon.client.add_layer("charm", layer, combine=True)
            return "deferred"
        unit.daemon.apply(layer)
        return "replanned"

    # -- identities on every unit --------------------------------------------

    def _write_identities(self, unit: Unit) -> None:
        content = sc.workload.identities_config(
            self.admin,
            sc.workload.client_identities(
                [(rel_id, bucket, creds) for rel_id, (bucket, creds) in self.clients.items()]
            ),
            [sc.workload.identity_name(rel_id) for rel_id in self.revoked],
        )
        unit.daemon.container.push(
            unit.settings.identities_file, content, make_dirs=True, permissions=0o600
        )

    def reload_identities(self) -> None:
        """Every unit rewrites its identities file and SIGHUPs its own weed."""
        for unit in self.units.values():
            self._write_identities(unit)
            if unit.weed_pid() is not None:
                unit.daemon.client.send_signal("SIGHUP", [sc.constants.SERVICE])

    def relate(self, relation_id: int, bucket: str) -> Any:
        """A client relation: keys, an identity on every unit, its bucket."""
        creds = Credentials.generate()
        self.clients[relation_id] = (bucket, creds)
        self.reload_identities()
        self.shell().ensure_buckets({bucket})
        return creds

    def rotate(self, relation_id: int) -> Any:
        """New keys for a relation, on every unit."""
        bucket, _ = self.clients[relation_id]
        creds = Credentials.generate()
        self.clients[relation_id] = (bucket, creds)
        self.reload_identities()
        return creds

    # -- the store -------------------------------------------------------------

    def any_unit(self) -> Unit:
        """A unit whose weed runs."""
        return next(u for u in self.units.values() if u.weed_pid() is not None)

    def shell(self, through: str | None = None) -> Any:
        """The charm's ``weed shell`` door, run in one unit's container."""
        unit = self.units[through] if through else self.any_unit()
        return sc.container.WeedShell(unit.daemon.container, unit.settings)

    def s3(self, name: str, creds: Any) -> Any:
        """A boto3 client on one unit's gateway."""
        return s3_client(self.units[name].s3_endpoint, creds)

    def cluster_status(self, name: str) -> dict:
        """One master's ``/cluster/status`` ({} when it does not answer)."""
        port = self.units[name].member.ports.master
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/cluster/status", timeout=2) as r:
                return dict(json.loads(r.read()))
        except (OSError, ValueError):
            return {}

    def topology(self) -> Any:
        """Every replica (``volume.list``) and every server's slots (the leader's status)."""
        leader = self.leader()
        if leader is None:
            return sc.cluster.Topology()
        port = self.units[leader].member.ports.master
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/dir/status", timeout=5) as r:
                slots = sc.cluster.node_slots(json.loads(r.read()))
            return sc.cluster.with_slots(self.shell().topology(), slots)
        except (OSError, ValueError, sc.container.WorkloadError):
            return sc.cluster.Topology()

    def leader(self) -> str | None:
        """The unit whose master leads, as the masters say."""
        for name in self.masters:
            if name not in self.units:
                continue
            status = self.cluster_status(name)
            if status.get("IsLeader"):
                return name
        return None

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        """Seconds until ``predicate`` holds."""
        started = time.monotonic()
        while not predicate():
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.5)
        return time.monotonic() - started

    def serving(self, name: str) -> bool:
        """True when the unit's S3 gateway answers its status endpoint."""
        try:
            with urllib.request.urlopen(f"{self.units[name].s3_endpoint}/status", timeout=2):
                return True
        except OSError:
            return False

    def wait_formed(self, timeout: float = 120.0) -> float:
        """Seconds until there is a leader, every S3 gateway answers and every volume reports."""

        def formed() -> bool:
            if self.leader() is None or not all(self.serving(n) for n in self.units):
                return False
            return len(self.topology().servers()) == len(self.units)

        return self.wait_until(formed, timeout, "the store to form")

    def stop_unit(self, name: str) -> None:
        """The unit's pod goes: its Pebble and weed stop."""
        self.units.pop(name).daemon.stop()

    def data_dirs(self) -> list[Path]:
        """Every unit's data directory."""
        return [u.daemon.directory / "data" for u in self.units.values()]

    def stop(self, kill: bool = False) -> None:
        """Stop every unit at once (weed takes 20 s and more to stop; one by one adds up).

        ``kill``: SIGKILL weed first, when nothing is read from the store afterwards.
        """
        import threading

        if kill:
            for unit in self.units.values():
                with contextlib.suppress(ops.pebble.Error, OSError):
                    unit.daemon.client.send_signal("SIGKILL", [sc.constants.SERVICE])
        threads = [threading.Thread(target=u.daemon.stop) for u in self.units.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
