"""The one door to SeaweedFS's HTTP APIs, reached on the pod's loopback.

The charm container shares the pod's network namespace with the workload, so
the unit's own S3 gateway and master answer on loopback; a unit without a
master asks one of the masters at its stable DNS name. Explicit timeouts; unit
tests stub ``WorkloadClient``, not the HTTP library.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from workload import Ports

logger = logging.getLogger(__name__)

HTTP_TIMEOUT = 5.0


@dataclass(frozen=True)
class VolumeStatus:
    """What the master says about volume capacity."""

    max_volumes: int
    free_volumes: int
    # Buckets that exist as collections but have no writable volume left.
    starved_buckets: tuple[str, ...]


def parse_dir_status(payload: dict[str, Any]) -> VolumeStatus:
    """Read the master's ``/dir/status`` document."""
    topology = payload.get("Topology") or {}
    starved = sorted(
        str(layout.get("collection", ""))
        for layout in topology.get("Layouts") or []
        if not layout.get("writables")
    )
    return VolumeStatus(
        max_volumes=int(topology.get("Max", 0)),
        free_volumes=int(topology.get("Free", 0)),
        starved_buckets=tuple(starved),
    )


class WorkloadClient:
    """Queries to SeaweedFS's HTTP APIs on the pod's loopback."""

    def __init__(self, ports: Ports, master: str = "", ca: str | None = None):
        self._s3 = f"{'https' if ca else 'http'}://127.0.0.1:{ports.s3}"
        # With TLS, the gateway's certificate must chain to ``ca``; its names
        # are the service's and the pod's, not loopback's, so they are not checked.
        self._s3_context: ssl.SSLContext | None = None
        if ca:
            self._s3_context = ssl.create_default_context(cadata=ca)
            self._s3_context.check_hostname = False
        # A unit without a master of its own asks one of the masters.
        self._master = f"http://{master}" if master else f"http://127.0.0.1:{ports.master}"

    @staticmethod
    def _get(url: str, context: ssl.SSLContext | None = None) -> bytes:
        # Only ever the fixed loopback / master URLs built above.
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT, context=context) as resp:  # noqa: S310
            return resp.read()

    def s3_ready(self) -> bool:
        """True when the S3 gateway answers its status endpoint."""
        try:
            self._get(f"{self._s3}/status", self._s3_context)
        except (OSError, urllib.error.URLError) as err:
            logger.debug("S3 gateway not ready: %s", err)
            return False
        return True

    def dir_status(self) -> dict[str, Any] | None:
        """The master's ``/dir/status`` document, or None when it does not answer."""
        try:
            return dict(json.loads(self._get(f"{self._master}/dir/status")))
        except (OSError, urllib.error.URLError, ValueError) as err:
            logger.info("master /dir/status unavailable: %s", err)
            return None

    def cluster_status(self) -> dict[str, Any] | None:
        """The unit's master's ``/cluster/status`` (leader, peers), None without an answer."""
        try:
            return dict(json.loads(self._get(f"{self._master}/cluster/status")))
        except (OSError, urllib.error.URLError, ValueError) as err:
            logger.info("master /cluster/status unavailable: %s", err)
            return None

    def max_volume_id(self) -> int | None:
        """The highest volume id the master knows, None when it does not answer."""
        status = self.cluster_status()
        return None if status is None else int(status.get("MaxVolumeId") or 0)

    def grow_volume(self) -> bool:
        """Grow one empty volume, one copy, in the default collection; False if refused.

        The master records the new id in its raft log (``upgrades``: the seal).
        """
        try:
            self._get(f"{self._master}/vol/grow?count=1&replication=000")
        except (OSError, urllib.error.URLError) as err:
            logger.warning("master /vol/grow refused: %s", err)
            return False
        return True

    def volume_status(self) -> VolumeStatus | None:
        """Volume capacity, or None when the master does not answer."""
        try:
            return parse_dir_status(json.loads(self._get(f"{self._master}/dir/status")))
        except (OSError, urllib.error.URLError, ValueError) as err:
            logger.info("master /dir/status unavailable: %s", err)
            return None


def disk_capacity_bytes(path: str) -> int:
    """Total size of the filesystem holding ``path`` (the mounted ``data`` storage)."""
    stats = os.statvfs(path)
    return stats.f_blocks * stats.f_frsize
