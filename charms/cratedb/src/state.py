"""Typed snapshot of the cluster, the client requests and the backup target. No ops."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Health(IntEnum):
    """CrateDB's ``sys.health`` severities."""

    GREEN = 1
    YELLOW = 2
    RED = 3


@dataclass(frozen=True)
class ClusterStatus:
    """What the cluster says about itself."""

    health: Health
    nodes: int
    version: str = ""


@dataclass(frozen=True)
class Peer:
    """One unit of the cluster as the peer relation knows it."""

    node_name: str
    address: str
    # Every pod listens on 4300; nodes sharing one host (tests) need their own.
    transport_port: int = 4300


@dataclass(frozen=True)
class Discovery:
    """The membership flags one node starts with."""

    cluster_name: str
    node_name: str
    publish_host: str
    seed_hosts: tuple[str, ...]
    # Only on the node that bootstraps a brand-new cluster, only until it has.
    initial_master_nodes: tuple[str, ...] = ()
    expected_data_nodes: int = 1
    recover_after_data_nodes: int = 1


@dataclass(frozen=True)
class DatabaseRequest:
    """One client relation's request, checked."""

    relation_id: int
    app: str
    schema: str
    request_id: str | None = None
    salt: str = ""
    problem: str | None = None

    @property
    def username(self) -> str:
        """The CrateDB user this relation gets."""
        return f"relation_{self.relation_id}"


@dataclass(frozen=True)
class BackupTarget:
    """Where snapshots go: an S3 bucket handed over on ``s3-parameters``."""

    bucket: str
    base_path: str
    endpoint: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    region: str = ""
