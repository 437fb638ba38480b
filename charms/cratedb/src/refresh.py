"""Rolling refresh of a CrateDB cluster, one node at a time. Pure: data in, decisions out.

What ``juju refresh cratedb`` does, in the order CrateDB documents for a
rolling upgrade:

1. Kubernetes replaces a pod only when its ordinal is at or above the
   StatefulSet's ``partition``. While no refresh runs the leader holds the
   partition at the unit count: a new image reaches no pod until the
   operator runs ``pre-refresh-check``, which checks the cluster (GREEN, no
   shard moving, every node on one version) and opens the highest unit.
2. A pod that is going away (its ``stop`` hook) first restricts shard
   allocation to new primaries, so the cluster does not start copying its
   shards elsewhere for the minute it is gone.
3. The replacement reads the version of the CrateDB in its new image
   (``crate -v``) before starting it: a version older than the one its data
   last ran (a downgrade), or a jump CrateDB does not support as a rolling
   upgrade, keeps it stopped and Blocked (``version_problem``).
4. Once every node has joined, allocation is restored; when the cluster is
   GREEN again the leader lowers the partition by one (``next_partition``)
   and the next pod goes. When every pod runs the new template, the leader
   closes the partition again.

Kubernetes, Juju and the SQL are the charm's; this module only decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from state import Health

_VERSION = re.compile(r"Version:\s*(\d+)\.(\d+)\.(\d+)")
_NUMBER = re.compile(r"(\d+)\.(\d+)\.(\d+)")

# Rolling upgrades into a new major version, as CrateDB's release notes allow
# them ("A rolling upgrade from >= 5.10.1 to 6.0.0 is supported"): the lowest
# version each major can be reached from without a full restart.
MAJOR_ENTRY = {6: (5, 10, 1)}


@dataclass(frozen=True, order=True)
class CrateVersion:
    """A CrateDB release number."""

    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        """``6.4.1``."""
        return f"{self.major}.{self.minor}.{self.patch}"

    @classmethod
    def parse(cls, text: str) -> CrateVersion:
        """From ``6.4.1`` or from what ``crate -v`` prints; ValueError otherwise."""
        match = _VERSION.search(text) or _NUMBER.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"no CrateDB version in {text.strip()[:80]!r}")
        return cls(*(int(part) for part in match.groups()))


def rolling_upgrade_problem(running: CrateVersion, image: CrateVersion) -> str | None:
    """Why CrateDB cannot move from ``running`` to ``image`` one node at a time, if it cannot.

    CrateDB's release notes allow a rolling upgrade within a feature release
    and from the one before it ("from >= 6.3.0 to 6.4.0"), and into a new
    major only from the entry version ``MAJOR_ENTRY`` names.
    """
    if image < running:
        return f"CrateDB {image} is older than {running}: downgrades are refused"
    if image.major == running.major:
        if image.minor - running.minor > 1:
            return (
                f"CrateDB {running} -> {image} skips a feature release: "
                f"refresh to {running.major}.{running.minor + 1}.x first"
            )
        return None
    entry = MAJOR_ENTRY.get(image.major)
    if image.major - running.major > 1 or entry is None or running < CrateVersion(*entry):
        return (
            f"CrateDB {running} -> {image} is not a rolling upgrade CrateDB supports: "
            "refresh through each major's latest feature release"
        )
    return None


def version_problem(
    image: CrateVersion, data_ran: CrateVersion | None, cluster: list[CrateVersion]
) -> str | None:
    """Why this node must not start the image's CrateDB, if it must not.

    ``data_ran``: the version this node's data last ran (None: a new node).
    ``cluster``: the versions the other nodes run now.
    """
    if data_ran is not None and image < data_ran:
        return (
            f"this node's data was last run by CrateDB {data_ran} and the image has "
            f"{image}: downgrades are refused; juju refresh with an image of "
            f"CrateDB {data_ran} or later"
        )
    oldest = min(cluster, default=None)
    if oldest is not None and (problem := rolling_upgrade_problem(oldest, image)):
        return f"{problem}; juju refresh with an image CrateDB {oldest} can roll to"
    return None


@dataclass(frozen=True)
class ClusterCheck:
    """What the cluster says of itself before and during a refresh."""

    health: Health
    nodes: int
    planned_units: int
    moving_shards: int = 0  # relocating or initializing
    versions: tuple[str, ...] = ()
    allocation_restricted: bool = False


def pre_refresh_problems(check: ClusterCheck) -> list[str]:
    """Why a refresh must not start now (empty: it may)."""
    problems = []
    if check.health is not Health.GREEN:
        problems.append(f"the cluster is {check.health.name}, not GREEN")
    if check.nodes < check.planned_units:
        problems.append(f"{check.nodes} of {check.planned_units} nodes have joined")
    if check.moving_shards:
        problems.append(f"{check.moving_shards} shard(s) are relocating or initializing")
    if len(set(check.versions)) > 1:
        problems.append(f"nodes run different versions ({', '.join(sorted(set(check.versions)))})")
    if check.allocation_restricted:
        problems.append("shard allocation is restricted (a node is restarting)")
    return problems


@dataclass(frozen=True)
class Rollout:
    """The StatefulSet as the refresh sees it."""

    partition: int
    update_revision: str
    # Pod ordinal -> the controller revision it runs.
    pod_revisions: dict[int, str] = field(default_factory=dict)

    def refreshed(self, ordinal: int) -> bool:
        """True when pod ``ordinal`` runs the newest template."""
        return self.pod_revisions.get(ordinal) == self.update_revision

    @property
    def in_progress(self) -> bool:
        """True while some pod runs an older template than the StatefulSet's."""
        return any(rev != self.update_revision for rev in self.pod_revisions.values())


@dataclass(frozen=True)
class PartitionMove:
    """What the leader does with the partition, and what to say."""

    partition: int
    message: str = ""


def next_partition(rollout: Rollout, check: ClusterCheck, units: int) -> PartitionMove:
    """Where the partition goes next.

    Idle (no pod on an older template): closed at ``units``. Refreshing: the
    pod at the partition must run the new template and the cluster must be
    whole and GREEN again, allocation restored, before the next pod may go.
    A partition at ``units`` with a refresh pending waits for the operator's
    ``pre-refresh-check``.
    """
    if not rollout.in_progress:
        return PartitionMove(units)
    current = min(rollout.partition, units)
    if current >= units:
        return PartitionMove(
            current, "refresh pending: run the pre-refresh-check action to start it"
        )
    if not rollout.refreshed(current):
        return PartitionMove(current, f"refreshing unit {current}: its pod is being replaced")
    problems = pre_refresh_problems(check)
    # While the refresh runs, versions differ by design.
    problems = [p for p in problems if not p.startswith("nodes run different versions")]
    if problems:
        return PartitionMove(current, f"refresh paused after unit {current}: {problems[0]}")
    if current == 0:
        return PartitionMove(0, "refresh finishing")
    return PartitionMove(current - 1, f"refreshing unit {current - 1}")
