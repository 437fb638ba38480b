"""The ``s3-parameters`` requirer: where CrateDB's snapshot repository lives."""

from __future__ import annotations

import ops
from object_storage import S3Requirer

import untrusted
from constants import S3_RELATION
from exceptions import CharmError
from state import BackupTarget


class BackupRelation:
    """The one ``s3-parameters`` relation (object-storage-charmlib ``S3Requirer``)."""

    def __init__(self, charm: ops.CharmBase, bucket: str, path: str):
        self._charm = charm
        self.requirer = S3Requirer(charm, S3_RELATION, bucket=bucket, path=path)
        self._bucket = bucket
        self._path = path

    def events(self) -> list[ops.BoundEvent]:
        """Library events that mean "the target may have changed"."""
        return [
            self.requirer.on.storage_connection_info_changed,
            self.requirer.on.storage_connection_info_gone,
        ]

    def update_requests(self) -> None:
        """Ask for the configured bucket and path (leader only)."""
        if self._charm.model.get_relation(S3_RELATION) and self._charm.unit.is_leader():
            self.requirer.update_requests(bucket=self._bucket, path=self._path)

    def target(self) -> BackupTarget:
        """The bucket to back up into; CharmError saying what is missing otherwise."""
        relation = self._charm.model.get_relation(S3_RELATION)
        if relation is None:
            raise CharmError(
                "no S3 related for backups: "
                f"juju relate {self._charm.app.name}:s3-parameters seaweedfs"
            )
        app = relation.app.name if relation.app else "?"
        try:
            info = dict(self.requirer.get_storage_connection_info(relation))
        except (ops.SecretNotFoundError, ops.ModelError):
            raise CharmError(f"{app} has not shared its S3 keys yet; try again shortly") from None
        if error := info.get("error"):
            try:
                why = untrusted.text("error", error, 120)
            except untrusted.UntrustedValueError:
                why = "(an unreadable reason)"
            raise CharmError(f"{app} refused the backup bucket: {why}")
        if not (info.get("bucket") and info.get("access-key") and info.get("secret-key")):
            raise CharmError(f"{app} has not provided a bucket and keys yet; try again shortly")
        if info.get("tls-ca-chain"):
            # CrateDB's S3 client trusts only its JVM's CA bundle; a private CA
            # would fail every request with a handshake error (not supported yet).
            raise CharmError(
                f"{app} serves S3 with a private CA, which CrateDB's backups cannot trust yet: "
                f"back up to an S3 with a public certificate, or serve {app} without TLS"
            )
        try:
            endpoint = str(info.get("endpoint") or "")
            return BackupTarget(
                bucket=untrusted.bucket("bucket", info.get("bucket")),
                base_path=untrusted.object_path("path", str(info.get("path") or "")),
                endpoint=untrusted.http_url("endpoint", endpoint)
                if endpoint
                else "https://s3.amazonaws.com",
                access_key=untrusted.s3_key("access-key", info.get("access-key")),
                secret_key=untrusted.s3_key("secret-key", info.get("secret-key")),
                region=untrusted.region("region", str(info.get("region") or "")),
            )
        except untrusted.UntrustedValueError as err:
            raise CharmError(f"{app} sent an unusable S3 answer: {err}") from None
