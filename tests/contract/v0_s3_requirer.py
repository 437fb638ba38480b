"""A stand-in for the backups of postgresql-k8s and mysql-k8s: a v0 ``s3`` requirer.

Written from postgresql-k8s's published source (read with the search tool's
fetch, 2026-11): ``src/backups.py`` on top of data-platform-libs'
``charms.data_platform_libs.v0.s3`` ``S3Requirer`` (LIBPATCH 6); mysql-k8s
uses the same library. The facts carried over, not the code:

- On relation-joined the leader writes ``bucket`` into its application
  databag: ``relation-<relation id>`` (postgresql-k8s constructs the requirer
  without a bucket name). It writes no ``requested-secrets``: v0 has no secrets.
- It reads the provider's application databag as plain data, each value
  JSON-decoded when it parses (``tls-ca-chain`` and ``attributes`` are JSON
  lists). ``access-key`` and ``secret-key`` must be present before it calls the
  credentials usable; postgresql-k8s then also requires ``bucket``.
- postgresql-k8s's defaults for what is missing: ``endpoint``
  ``https://s3.amazonaws.com``, ``path`` empty, ``s3-uri-style`` ``host``
  (virtual-host addressing). The path it gives pgBackRest is
  ``/`` + path stripped of slashes.
- Its status when parameters are missing: ``Missing S3 parameters: [...]``.
"""

from __future__ import annotations

import json

import ops

META = {"name": "v0-s3-requirer", "requires": {"s3-parameters": {"interface": "s3"}}}
REQUIRED = ("bucket", "access-key", "secret-key")


def load_relation_data(raw: dict[str, str]) -> dict[str, object]:
    """The v0 library's reading: JSON where it parses, the raw string otherwise."""
    data: dict[str, object] = {}
    for key, value in raw.items():
        try:
            data[key] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            data[key] = value
    return data


def backup_parameters(raw: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """What postgresql-k8s would configure pgBackRest with, and what is missing."""
    params = {
        k: v if isinstance(v, str) else json.dumps(v) for k, v in load_relation_data(raw).items()
    }
    missing = [key for key in REQUIRED if key not in params]
    if missing:
        return {}, missing
    params.setdefault("endpoint", "https://s3.amazonaws.com")
    params.setdefault("path", "")
    params.setdefault("s3-uri-style", "host")
    params["endpoint"] = params["endpoint"].strip().rstrip("/")
    params["path"] = "/" + params["path"].strip().strip("/")
    params["bucket"] = params["bucket"].strip().strip("/")
    return params, []


class V0S3Requirer(ops.CharmBase):
    """Asks for a bucket the v0 way and reports whether it could back up."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.s3_parameters_relation_joined, self._on_joined)
        framework.observe(self.on.s3_parameters_relation_changed, self._on_changed)

    def _on_joined(self, event: ops.RelationJoinedEvent) -> None:
        if self.unit.is_leader():
            event.relation.data[self.app]["bucket"] = f"relation-{event.relation.id}"

    def _on_changed(self, event: ops.RelationChangedEvent) -> None:
        if event.app is None:
            return
        params, missing = backup_parameters(dict(event.relation.data[event.app]))
        if missing:
            self.unit.status = ops.BlockedStatus(f"Missing S3 parameters: {missing}")
            return
        self.unit.status = ops.ActiveStatus(
            f"backups to {params['bucket']}{params['path']} at {params['endpoint']} "
            f"({params['s3-uri-style']} style)"
        )
