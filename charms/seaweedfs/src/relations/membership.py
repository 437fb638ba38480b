"""The store's members as the peer relation knows them: addresses, masters, replication.

Every unit publishes its stable DNS name in its peer databag; the leader
records which units run a master and which replication the volumes were last
given in the application databag. Every unit builds the same ``Cluster`` from
that, so all of them agree on the master peers.
"""

from __future__ import annotations

import json
import logging

import ops

from cluster import choose_masters, unit_number
from constants import ADDRESS_KEY, MASTERS_KEY, MOVING_KEY, REPLICATION_KEY
from workload import Cluster, Member, Ports

logger = logging.getLogger(__name__)


def unit_address(unit: str, app: str, model: str, cluster_domain: str) -> str:
    """A unit's stable DNS name: its pod behind the application's headless service."""
    return f"{unit.replace('/', '-')}.{app}-endpoints.{model}.svc.{cluster_domain}"


class Membership:
    """Members, masters and applied replication, read from and written to the peer relation."""

    def __init__(self, charm: ops.CharmBase, peer: ops.Relation, cluster_domain: str):
        self._charm = charm
        self._peer = peer
        self._cluster_domain = cluster_domain

    @property
    def me(self) -> Member:
        """The unit this charm runs on."""
        charm = self._charm
        address = unit_address(
            charm.unit.name, charm.app.name, charm.model.name, self._cluster_domain
        )
        return Member(unit=charm.unit.name, address=address, ports=Ports())

    def publish_me(self) -> None:
        """Tell the other units how to reach this one."""
        data = self._peer.data[self._charm.unit]
        if data.get(ADDRESS_KEY) != self.me.address:
            data[ADDRESS_KEY] = self.me.address

    def members(self) -> dict[str, Member]:
        """Every unit that has said where it is, this one included, by unit name."""
        found = {self.me.unit: self.me}
        for unit in self._peer.units:
            address = self._peer.data[unit].get(ADDRESS_KEY)
            if address:
                found[unit.name] = Member(unit=unit.name, address=address, ports=Ports())
        return dict(sorted(found.items(), key=lambda item: unit_number(item[0])))

    def ip_addresses(self) -> list[str]:
        """Every unit's pod address, this one's included (Juju's ``ingress-address``)."""
        found = []
        binding = self._charm.model.get_binding(self._peer)
        if binding is not None and binding.network.ingress_address is not None:
            found.append(str(binding.network.ingress_address))
        for unit in self._peer.units:
            if address := self._peer.data[unit].get("ingress-address"):
                found.append(address)
        return found

    def masters(self) -> tuple[str, ...]:
        """The units the leader chose to run a master."""
        try:
            names = json.loads(self._peer.data[self._charm.app].get(MASTERS_KEY, "[]"))
        except json.JSONDecodeError:
            return ()
        return tuple(str(n) for n in names) if isinstance(names, list) else ()

    def choose_masters(self) -> tuple[str, ...]:
        """Leader only: keep the masters current with the living units."""
        chosen = choose_masters(self.masters(), self.members(), self.moving())
        if chosen != self.masters():
            self._peer.data[self._charm.app][MASTERS_KEY] = json.dumps(list(chosen))
            logger.info("masters: %s", ", ".join(chosen))
        return chosen

    def cluster(self, replication: str, bind_address: str = "0.0.0.0") -> Cluster | None:  # noqa: S104
        """The unit's place in the store; None until every master's address is known."""
        members = self.members()
        names = self.masters()
        if not names or any(name not in members for name in names):
            return None
        return Cluster(
            me=self.me,
            masters=tuple(members[name] for name in names),
            replication=replication,
            bind_address=bind_address,
        )

    def moving(self) -> dict[str, str]:
        """Units moving a one-unit store to the cluster, with where its old master state is."""
        found = {}
        for unit in (self._charm.unit, *self._peer.units):
            if path := self._peer.data[unit].get(MOVING_KEY):
                found[unit.name] = path
        return dict(sorted(found.items(), key=lambda item: unit_number(item[0])))

    def set_moving(self, moved_to: str | None) -> None:
        """Say (or stop saying) that this unit moves a one-unit store to the cluster."""
        data = self._peer.data[self._charm.unit]
        if moved_to and data.get(MOVING_KEY) != moved_to:
            data[MOVING_KEY] = moved_to
        elif not moved_to and MOVING_KEY in data:
            del data[MOVING_KEY]

    def applied_replication(self) -> str:
        """The replication every volume was last given ("" before the first time)."""
        return self._peer.data[self._charm.app].get(REPLICATION_KEY, "")

    def record_replication(self, replication: str) -> None:
        """Leader only: the replication is now applied to every volume."""
        self._peer.data[self._charm.app][REPLICATION_KEY] = replication
