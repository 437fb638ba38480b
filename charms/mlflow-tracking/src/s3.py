"""The ``s3-credentials`` requirer: which bucket to ask for, and what came back."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import ops
from object_storage import S3Requirer

from constants import S3_RELATION
from state import ArtifactStore, S3Credentials

logger = logging.getLogger(__name__)

_ENDPOINT = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(/[^\s]*)?")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


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
        self.requirer = S3Requirer(charm, S3_RELATION, bucket=bucket, path=path)
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
        except (ops.SecretNotFoundError, ops.ModelError):
            return ArtifactReading(app, waiting=f"waiting for {app}'s S3 keys secret")
        if error := str(info.get("error", "")):
            return ArtifactReading(app, problem=f"{app} refused the bucket request: {error[:120]}")
        bucket = str(info.get("bucket", ""))
        access_key = str(info.get("access-key", ""))
        secret_key = str(info.get("secret-key", ""))
        if not (bucket and access_key and secret_key):
            return ArtifactReading(app, waiting=f"waiting for {app} to provide a bucket and keys")
        endpoint = str(info.get("endpoint", ""))
        if endpoint and not _ENDPOINT.fullmatch(endpoint):
            return ArtifactReading(app, problem=f"{app} sent an invalid S3 endpoint")
        if not _BUCKET.fullmatch(bucket):
            return ArtifactReading(app, problem=f"{app} sent an invalid bucket name")
        ca = info.get("tls-ca-chain") or []
        ca_chain = "\n".join(ca) if isinstance(ca, list) else str(ca)
        artifacts = ArtifactStore(
            bucket=bucket,
            path=str(info.get("path", "")).strip("/"),
            endpoint=endpoint,
            region=str(info.get("region", "")),
            credentials=S3Credentials(access_key, secret_key),
            ca_chain=ca_chain,
        )
        return ArtifactReading(app, artifacts=artifacts)
