"""Upgrades: what a unit settles before weed starts on data an older charm or weed wrote.

Pure decisions; the container steps are ``container.Workload.settle_data`` (before
weed starts) and ``container.Workload.seal_volume_ids`` (once it serves).

Measured with weed 4.48 (``tests/workload/test_seaweedfs_upgrade.py``; the rest by
hand on loopback, see docs/operations.md):

- The one-unit charm (up to f33afc2) ran ``weed server -ip=127.0.0.1``: its
  master's raft state (``<data>/m<master port>``: ``conf``, ``log``,
  ``snapshot/``) names that member, ``127.0.0.1:9333.19333``. Started on that
  state under the unit's DNS name, the master keeps the old member in its log:
  every master that joins later counts it as a fourth member of a group of three,
  at an address that is each pod's own loopback.
- Moved aside, a fresh state elects at once; the volume server registers its
  volumes again by heartbeat and new file ids go on above the old ones (the
  heartbeat carries the highest key). But the fresh raft log records no volume
  id until a volume is grown: a master elected later without this unit's
  heartbeat handed out volume ids this unit already holds. One volume grown
  while this unit's volumes are registered records the highest id: the seal.
- ``weed version`` prints ``version 8000GB 4.48 pypi linux amd64`` (the image's
  own build: ``version 30GB 4.48 <commit> linux amd64``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from workload import Member

# What the one-unit charm called its master, whatever its ports.
ONE_UNIT_ADDRESS = "127.0.0.1"

_RAFT_NAME = re.compile(r'"name":"([^"]+)"')
_VOLUME_FILE = re.compile(r"^(?:.*_)?(\d+)\.(?:dat|idx|vif|ecx)$")
_VERSION = re.compile(r"\d+(?:\.\d+)+")


def master_state_dir(data_dir: str, me: Member) -> str:
    """Where weed keeps the master's raft state: ``<data>/m<master port>``."""
    return f"{data_dir}/m{me.ports.master}"


def raft_names(texts: Iterable[str]) -> set[str]:
    """Every member a master's raft files name (``conf``, ``log``, snapshots)."""
    return {name for text in texts for name in _RAFT_NAME.findall(text)}


def one_unit_raft_id(me: Member) -> str:
    """The raft id the one-unit charm's master had on this unit's ports."""
    return Member(unit=me.unit, address=ONE_UNIT_ADDRESS, ports=me.ports).raft_id


def written_by_one_unit_charm(names: set[str], me: Member) -> bool:
    """True when the master state is the one-unit charm's: its loopback member and no other.

    This unit's own name may be there too (a charm without this step started
    weed on it once); any other member means the state has served a cluster
    and is left alone.
    """
    old = one_unit_raft_id(me)
    return old != me.raft_id and old in names and names <= {old, me.raft_id}


def aside_path(state_dir: str, when: datetime) -> str:
    """Where the one-unit master state goes: beside it, named for the move and its time."""
    return f"{state_dir}.one-unit-{when:%Y%m%dT%H%M%SZ}"


@dataclass(frozen=True)
class Migration:
    """A one-unit store moved to its cluster identity, as recorded in its data storage."""

    # Where the old master state now is (never deleted).
    moved_to: str
    # The volume id the new raft log records once sealed; 0 until then.
    sealed_at: int = 0

    def dump(self) -> str:
        """The record's text."""
        return json.dumps({"moved_to": self.moved_to, "sealed_at": self.sealed_at}) + "\n"

    @classmethod
    def load(cls, text: str | None) -> Migration | None:
        """The record, or None for no (or an unreadable) record."""
        try:
            data = json.loads(text or "")
            return cls(moved_to=str(data["moved_to"]), sealed_at=int(data.get("sealed_at", 0)))
        except (ValueError, TypeError, KeyError):
            return None


def highest_volume_id(file_names: Iterable[str]) -> int:
    """The highest volume id among a data folder's files (``<collection>_<id>.dat``...)."""
    ids = [int(m.group(1)) for name in file_names if (m := _VOLUME_FILE.match(name))]
    return max(ids, default=0)


def weed_version(output: str | None) -> str | None:
    """``4.48`` from what ``weed version`` prints; None when it says no version."""
    words = (output or "").split()
    if words[:1] != ["version"]:
        return None
    return next((word for word in words[1:] if _VERSION.fullmatch(word)), None)


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def downgrade_problem(image: str | None, served: str | None, app: str) -> str | None:
    """Why weed from the image must not start on data a newer weed served; None if it may.

    An unknown version on either side (no record yet: data of a charm that kept
    none, or a new store) refuses nothing.
    """
    if image is None or served is None or _key(image) >= _key(served):
        return None
    return (
        f"weed {image} is older than weed {served}, which last served this unit's data; "
        f"run: juju refresh {app} --resource seaweedfs-image=<weed {served} or later>"
    )
