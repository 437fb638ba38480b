"""Scenario fixtures for the seaweedfs charm: per relation, bare and ready.

The charm talks to the world through three narrow doors, stubbed here and
nowhere else: ``client.WorkloadClient`` (HTTP to weed on the pod's loopback),
``client.disk_capacity_bytes`` (statvfs of the data storage) and
``container.exec`` of ``weed shell``, ``weed version`` and ``mv`` (matched with
``testing.Exec``).
"""

from __future__ import annotations

import pytest
from ops import testing

import client
from charm import SeaweedfsCharm
from constants import (
    PEER_RELATION,
    S3_RELATION,
)
from helpers import (
    FakeWorkload,
    s3_request,
)


@pytest.fixture(autouse=True)
def workload(monkeypatch: pytest.MonkeyPatch) -> FakeWorkload:
    """Stub the charm's HTTP and statvfs doors; tests tune the answers."""
    fake = FakeWorkload()
    monkeypatch.setattr(client.WorkloadClient, "s3_ready", lambda self: fake.ready)
    monkeypatch.setattr(client.WorkloadClient, "volume_status", lambda self: fake.volumes)
    monkeypatch.setattr(client.WorkloadClient, "dir_status", lambda self: fake.dir_status)
    monkeypatch.setattr(client.WorkloadClient, "cluster_status", lambda self: fake.raft)
    monkeypatch.setattr(client, "disk_capacity_bytes", lambda path: fake.capacity_bytes)

    def grow_volume(self: client.WorkloadClient) -> bool:
        fake.grown += 1
        if fake.raft is not None:
            fake.raft["MaxVolumeId"] = int(fake.raft.get("MaxVolumeId", 0)) + 1
        return True

    monkeypatch.setattr(client.WorkloadClient, "grow_volume", grow_volume)
    return fake


@pytest.fixture
def ctx() -> testing.Context[SeaweedfsCharm]:
    return testing.Context(SeaweedfsCharm)


@pytest.fixture
def peer() -> testing.PeerRelation:
    return testing.PeerRelation(PEER_RELATION)


@pytest.fixture
def s3_bare() -> testing.Relation:
    """An s3-credentials relation just created: the requirer has written nothing yet."""
    return testing.Relation(S3_RELATION, remote_app_name="mlflow-tracking")


@pytest.fixture
def s3_ready() -> testing.Relation:
    """An s3-credentials relation whose requirer asked for bucket ``mlflow``."""
    return s3_request()
