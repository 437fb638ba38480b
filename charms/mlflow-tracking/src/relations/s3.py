"""The ``s3-credentials`` requirer: which bucket to ask for, and what came back."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ops
from object_storage import S3Requirer

import untrusted
from constants import S3_RELATION
from state import ArtifactStore, S3Credentials

logger = logging.getLogger(__name__)

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


# What object-storage-charmlib raises on a remote databag it cannot read:
# a stale or garbage secret id, a non-numeric version, a non-JSON list.
UNREADABLE = (ops.ModelError, ValueError, TypeError, KeyError)


class SafeS3Requirer(S3Requirer):
    """object-storage-charmlib's requirer, minus its hook errors on a malformed databag.

    The library's own relation-changed and secret-changed handlers parse the
    provider's databag and fetch its secrets; garbage there would fail the hook
    before this charm could report it. Here such input is logged and left to
    ``ArtifactRelation.read``, which turns it into a status.
    """

    def _on_relation_changed_event(self, event: ops.RelationChangedEvent) -> None:
        try:
            super()._on_relation_changed_event(event)
        except UNREADABLE as err:
            logger.warning(
                "unreadable s3 answer on relation %s: %s", event.relation.id, type(err).__name__
            )

    def _on_secret_changed_event(self, event: ops.SecretChangedEvent) -> None:
        try:
            super()._on_secret_changed_event(event)
        except UNREADABLE as err:
            logger.warning("unreadable s3 secret change: %s", type(err).__name__)


@dataclass(frozen=True)
class ArtifactReading:
    """What the S3 relation offers right now."""

    app: str
    artifacts: ArtifactStore | None = None
    waiting: str | None = None
    problem: str | None = None


class ArtifactRelation:
    """The one ``s3-credentials`` relation (object-storage-charmlib ``S3Requirer``)."""

    def __init__(self, charm: ops.CharmBase, bucket: str, path: str):
        self._charm = charm
        self.requirer = SafeS3Requirer(charm, S3_RELATION, bucket=bucket, path=path)
        self._bucket = bucket
        self._path = path

    def events(self) -> list[ops.BoundEvent]:
        """Library events that mean "the answer may have changed"."""
        return [
            self.requirer.on.storage_connection_info_changed,
            self.requirer.on.storage_connection_info_gone,
        ]

    def relation(self) -> ops.Relation | None:
        """The related S3 provider, if any."""
        return self._charm.model.get_relation(S3_RELATION)

    def update_requests(self) -> None:
        """Ask for the configured bucket and path (leader only; the library checks)."""
        if self.relation() is not None and self._charm.unit.is_leader():
            self.requirer.update_requests(bucket=self._bucket, path=self._path)

    def read(self) -> ArtifactReading | None:
        """The artifact store the relation offers; None when nothing is related."""
        relation = self.relation()
        if relation is None:
            return None
        app = relation.app.name if relation.app else "?"
        try:
            info = dict(self.requirer.get_storage_connection_info(relation))
        except ops.SecretNotFoundError:
            return ArtifactReading(app, waiting=f"waiting for {app}'s S3 keys secret")
        except UNREADABLE:
            return ArtifactReading(app, problem=f"{app} sent an S3 answer this charm cannot read")
        if error := info.get("error"):
            try:
                why = untrusted.text("error", error, 200)
            except untrusted.UntrustedValueError:
                why = "(an unreadable reason)"
            return ArtifactReading(app, problem=f"{app} refused the bucket request: {why}")
        bucket = str(info.get("bucket", ""))
        access_key = str(info.get("access-key", ""))
        secret_key = str(info.get("secret-key", ""))
        if not (bucket and access_key and secret_key):
            return ArtifactReading(app, waiting=f"waiting for {app} to provide a bucket and keys")
        if not _BUCKET.fullmatch(bucket):
            return ArtifactReading(app, problem=f"{app} sent an invalid bucket name")
        try:
            artifacts = checked_store(info, bucket)
        except untrusted.UntrustedValueError as err:
            return ArtifactReading(app, problem=f"{app} sent an unusable S3 answer: {err}")
        return ArtifactReading(app, artifacts=artifacts)


def checked_store(info: Mapping[str, Any], bucket: str) -> ArtifactStore:
    """The artifact store an S3 answer describes, every field checked (``untrusted``)."""
    endpoint = str(info.get("endpoint") or "")
    ca = info.get("tls-ca-chain") or []
    chain = [untrusted.pem("tls-ca-chain", c) for c in (ca if isinstance(ca, list) else [ca])]
    return ArtifactStore(
        bucket=bucket,
        path=untrusted.object_path("path", str(info.get("path") or "")),
        endpoint=untrusted.http_url("endpoint", endpoint) if endpoint else "",
        region=untrusted.region("region", str(info.get("region") or "")),
        credentials=S3Credentials(
            untrusted.s3_key("access-key", info.get("access-key")),
            untrusted.s3_key("secret-key", info.get("secret-key")),
        ),
        ca_chain="\n".join(chain),
    )
