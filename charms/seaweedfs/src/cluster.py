"""SeaweedFS as a cluster: who runs a master, how many copies, and how a unit leaves.

Pure functions over plain data: the charm feeds them what the peer relation
and SeaweedFS report, and applies what they return; the workload tests feed
the same functions to real ``weed`` processes.

Measured with ``weed`` 4.48 (the facts these rest on):

- Every unit runs a volume server, a filer and an S3 gateway; filers share
  their metadata by themselves, so an object put through any unit's S3 reads
  through every other's.
- A master started with ``-master.peers`` naming the running master and
  itself joins that master's raft group: growing from 1 to 3 masters needs no
  restart of the first one.
- Copying a volume between volume servers (repair, moves) is refused when the
  source resolves to a loopback or private address, as pod IPs do, unless the
  volume server runs with ``-volume.allowUntrustedRemoteEndpoints``.
- ``volumeServer.evacuate`` stops at the first volume it cannot move; moving
  each volume explicitly (``volume.move``) to a unit that lacks it works.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Masters run on an odd number of units: 1 below three units, 3 from three on.
# Two masters tolerate no failure (a majority of 2 is 2) and four or five cost
# more elections and heartbeats than they add safety for an artifact store.
# (Two masters remain only after 3 -> 2: see ``choose_masters``.)
MAX_MASTERS = 3
DEFAULT_REPLICATION = "001"  # one extra copy on another unit
SINGLE_COPY = "000"
_REPLICATION = re.compile(r"[0-9]{3}")


def unit_number(unit: str) -> int:
    """``seaweedfs/12`` -> 12."""
    return int(unit.rpartition("/")[2])


def master_count(units: int) -> int:
    """How many units run a master: 1 for one or two units, 3 from three on."""
    return MAX_MASTERS if units >= MAX_MASTERS else 1


def choose_masters(
    current: Sequence[str], units: Iterable[str], moving: Iterable[str] = ()
) -> tuple[str, ...]:
    """The units that run a master: the current ones while they live, topped up by number.

    A living master is never demoted: that would restart its unit and, until
    the raft group forgets it, leave the group short of a vote. So after 3 -> 2
    both remaining units keep their masters (a two-master group needs both:
    scale to 3 again, or to 1); masters leave only with their units. New
    masters are the lowest-numbered units without one.

    While units move a one-unit store to the cluster (``moving``), theirs are
    the only masters: until the new raft log records their volume ids, another
    master could hand those ids out again (``upgrades``).
    """
    alive = sorted(set(units), key=unit_number)
    if held := sorted(set(moving) & set(alive), key=unit_number):
        return tuple(held)
    wanted = master_count(len(alive))
    chosen = [u for u in current if u in alive]
    for unit in alive:
        if len(chosen) >= wanted:
            break
        if unit not in chosen:
            chosen.append(unit)
    return tuple(sorted(chosen, key=unit_number))


def replication_problem(value: str) -> str | None:
    """Why ``value`` is not a SeaweedFS replica placement (``xyz`` digits), if it is not."""
    if not _REPLICATION.fullmatch(value):
        return "must be three digits: other data centers, other racks, other servers (e.g. 001)"
    return None


def copies(replication: str) -> int:
    """How many copies of each volume a placement keeps (``001`` -> 2)."""
    return 1 + sum(int(digit) for digit in replication)


def effective_replication(configured: str, units: int) -> str:
    """The placement the cluster can honour: one copy on one unit, else the configured one.

    The charm's units are all in one data center and one rack, so only the
    last digit (other servers) can be met; it is capped at ``units - 1``.
    """
    if units <= 1:
        return SINGLE_COPY
    servers = min(int(configured[2]), units - 1)
    return f"00{servers}"


@dataclass(frozen=True)
class Volume:
    """One replica of one volume on one volume server, as ``volume.list`` shows it."""

    volume_id: int
    server: str
    collection: str
    replication: str
    size: int


_NODE = re.compile(r"^\s*DataNode (\S+) \S+\(volume:(\d+)/(\d+)")
_VOLUME = re.compile(r"volume Id:(\d+), Size:(\d+), ReplicaPlacement:(\d{3}), Collection:([^,]*),")


@dataclass(frozen=True)
class Topology:
    """What ``volume.list`` says: every replica, and each server's slots."""

    volumes: tuple[Volume, ...] = ()
    slots: dict[str, tuple[int, int]] = field(default_factory=dict)  # server -> (used, max)

    def servers(self) -> list[str]:
        """Every volume server that reports in."""
        return sorted(self.slots)

    def replicas(self, volume_id: int) -> list[Volume]:
        """Every replica of one volume."""
        return [v for v in self.volumes if v.volume_id == volume_id]

    def under_replicated(self) -> list[int]:
        """Volumes with fewer replicas than their placement asks for."""
        ids = sorted({v.volume_id for v in self.volumes})
        return [i for i in ids if len(self.replicas(i)) < copies(self.replicas(i)[0].replication)]

    def free_slots(self, server: str) -> int:
        """Volume slots still free on ``server``."""
        used, maximum = self.slots.get(server, (0, 0))
        return max(0, maximum - used)


def node_slots(dir_status: dict) -> dict[str, tuple[int, int]]:
    """Every volume server the master knows, with (volumes, max): from ``/dir/status``.

    ``volume.list`` leaves out servers that hold no volume yet; the master's
    own topology has them all.
    """
    slots: dict[str, tuple[int, int]] = {}
    topology = dir_status.get("Topology") or {}
    for center in topology.get("DataCenters") or []:
        for rack in center.get("Racks") or []:
            for node in rack.get("DataNodes") or []:
                slots[str(node.get("Url", ""))] = (
                    int(node.get("Volumes", 0)),
                    int(node.get("Max", 0)),
                )
    return slots


def volume_ids(listed: str) -> set[int] | None:
    """The ids in a ``/dir/status`` ``VolumeIds`` field; None when weed cut the list short.

    weed writes them as ranges, one list per disk (``" 1-6 9 12-14"``), and
    stops after 100 ids with ``...`` (measured on weed 4.48; its
    ``util.HumanReadableIntsMax``).
    """
    ids: set[int] = set()
    for part in listed.split():
        if part == "...":
            return None
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            return None
        ids.update(range(int(first), int(last or first) + 1))
    return ids


def under_replicated(dir_status: dict, replication: str) -> list[int]:
    """Volumes with fewer copies than they should have, from the master's ``/dir/status``.

    Each server lists its volume ids; a volume's placement comes from its
    collection's layout, or ``replication`` (the store's) for one no layout
    lists any more. No ``weed shell`` needed: cheap enough for every status.
    A list weed cut short (over 100 volumes on a disk) says nothing: [].
    """
    topology = dir_status.get("Topology") or {}
    placement: dict[int, str] = {}
    for layout in topology.get("Layouts") or []:
        for volume_id in layout.get("writables") or []:
            placement[int(volume_id)] = str(layout.get("replication") or replication)
    held: dict[int, int] = {}
    for center in topology.get("DataCenters") or []:
        for rack in center.get("Racks") or []:
            for node in rack.get("DataNodes") or []:
                ids = volume_ids(str(node.get("VolumeIds") or ""))
                if ids is None:
                    return []
                for volume_id in ids:
                    held[volume_id] = held.get(volume_id, 0) + 1
    return sorted(
        volume_id
        for volume_id, count in held.items()
        if count < copies(placement.get(volume_id, replication))
    )


def with_slots(topology: Topology, slots: dict[str, tuple[int, int]]) -> Topology:
    """The topology with every server's slots as the master reports them."""
    return Topology(topology.volumes, {**topology.slots, **slots})


def parse_volume_list(output: str) -> Topology:
    """A ``volume.list`` listing, parsed."""
    volumes: list[Volume] = []
    slots: dict[str, tuple[int, int]] = {}
    server = ""
    for line in output.splitlines():
        if node := _NODE.match(line):
            server = node.group(1)
            used, maximum = int(node.group(2)), int(node.group(3))
            prev_used, prev_max = slots.get(server, (0, 0))
            slots[server] = (prev_used + used, prev_max + maximum)
            continue
        if (volume := _VOLUME.search(line)) and server:
            volumes.append(
                Volume(
                    volume_id=int(volume.group(1)),
                    server=server,
                    collection=volume.group(4),
                    replication=volume.group(3),
                    size=int(volume.group(2)),
                )
            )
    return Topology(tuple(volumes), slots)


@dataclass(frozen=True)
class Move:
    """Move one volume's replica from the departing server to another."""

    volume_id: int
    source: str
    target: str


@dataclass(frozen=True)
class Drain:
    """How a departing unit hands its volumes over, or why it cannot yet."""

    moves: tuple[Move, ...] = ()
    problem: str | None = None


def drain_moves(topology: Topology, leaving: str) -> Drain:
    """Where each volume on ``leaving`` goes: a remaining server without it, with room.

    A replica whose volume already has all its copies elsewhere needs no move
    (it is dropped with the server); every other one must land on a server
    that lacks that volume. When the remaining servers have no room, nothing
    moves and the problem says how much is missing: nothing is lost.
    """
    remaining = [s for s in topology.servers() if s != leaving]
    free = {s: topology.free_slots(s) for s in remaining}
    moves: list[Move] = []
    stuck: list[int] = []
    for volume in sorted(
        (v for v in topology.volumes if v.server == leaving), key=lambda v: v.volume_id
    ):
        elsewhere = {r.server for r in topology.replicas(volume.volume_id)} - {leaving}
        wanted = copies(volume.replication)
        if len(elsewhere) >= min(wanted, len(remaining)) and elsewhere:
            continue
        targets = sorted(
            (s for s in remaining if s not in elsewhere and free[s] > 0),
            key=lambda s: (-free[s], s),
        )
        if not targets:
            stuck.append(volume.volume_id)
            continue
        free[targets[0]] -= 1
        moves.append(Move(volume.volume_id, leaving, targets[0]))
    if stuck:
        return Drain(
            problem=(
                f"the remaining units have no room for {len(stuck)} volume(s) of this unit; "
                "grow their data storage or add a unit before removing this one"
            )
        )
    return Drain(tuple(moves))


def drain_script(drain: Drain, leaving: str) -> str:
    """The ``weed shell`` input that carries out a drain drain, then lets the server go."""
    lines = ["lock"]
    for move in drain.moves:
        lines.append(
            f"volume.move -source {move.source} -target {move.target} -volumeId {move.volume_id}"
        )
    lines += [f"volumeServer.leave -node {leaving} -apply", "unlock"]
    return "\n".join(lines) + "\n"


def replication_script(replication: str) -> str:
    """``weed shell`` input that makes every volume, and every new write, keep ``replication``."""
    if replication_problem(replication):
        raise ValueError("refusing an invalid replication")
    return (
        "lock\n"
        f"fs.configure -locationPrefix=/buckets/ -replication={replication} -apply\n"
        f"volume.configure.replication -replication {replication}\n"
        "volume.fix.replication -apply\n"
        "unlock\n"
    )


def repair_script() -> str:
    """``weed shell`` input that copies every volume short of its replication.

    weed repairs nothing by itself (no maintenance scripts without a
    master.toml): a unit back with an empty disk stays a copy short until this
    runs. Over-replicated copies, e.g. from a repair while a unit restarted,
    are removed by the same command.
    """
    return "lock\nvolume.fix.replication -apply\nunlock\n"


def raft_remove_script(raft_id: str) -> str:
    """``weed shell`` input that takes a departing master out of the raft group."""
    return f"cluster.raft.remove -id {raft_id}\n"
