"""The ``object-storage`` requirer: MinIO of Charmed Kubeflow as the artifact store.

An alternative to ``s3-credentials`` for models that already run Charmed
Kubeflow's ``minio`` charm, which provides only this interface. The wire
format is serialized-data-interface's (the maintained PyPI package is used,
imported only while the relation exists); the schema below is the minio
charm's own (``metadata.yaml`` of canonical/minio-operator, ``object-storage``
v1, whose source is canonical/operator-schemas ``object-storage.yaml``).

Fields, their direction and their source (minio-operator ``src/charm.py``,
``SdiRelationBroadcasterComponent`` data; Charmed MLflow's reader in
canonical/mlflow-operator ``src/charm.py``):

requirer -> provider (this application's databag, written by the leader):
    ``_supported_versions``  YAML list of schema versions: ``- v1``.
provider -> requirer (the minio application's databag):
    ``_supported_versions``  the versions it speaks.
    ``data``                 one YAML mapping, validated against the schema:
        ``access-key``, ``secret-key``  the MinIO root keys, **in plain relation
                                        data**: anyone who can read the model's
                                        relation data can read them;
        ``service``, ``namespace``      the MinIO service and its namespace
                                        (``namespace`` may be null);
        ``port``                        its S3 port (minio's ``port`` config);
        ``secure``                      true when MinIO serves HTTPS.

The endpoint is ``http(s)://<service>.<namespace>:<port>`` as Charmed MLflow
builds it. MinIO creates no bucket for its clients: the charm creates the
configured one (``bucket``, or one named after this application) if missing.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from typing import Any

import ops

import untrusted
from constants import OBJECT_STORAGE_RELATION
from relations.s3 import ArtifactReading
from state import ArtifactStore, S3Credentials

logger = logging.getLogger(__name__)

VERSIONS = {"v1"}
SCHEMAS: dict[str, dict[str, Any]] = {
    "v1": {
        "provides": {
            "type": "object",
            "properties": {
                "access-key": {"type": "string"},
                "namespace": {"type": ["string", "null"]},
                "port": {"type": "number"},
                "secret-key": {"type": "string"},
                "secure": {"type": "boolean"},
                "service": {"type": "string"},
            },
            "required": ["access-key", "port", "secret-key", "secure", "service"],
        }
    }
}
_HOST_PART = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


@functools.cache
def _sdi() -> Any:
    """serialized-data-interface, imported on first use (jsonschema costs every hook otherwise)."""
    import serialized_data_interface as sdi

    return sdi


@dataclass(frozen=True)
class MinioAnswer:
    """What the minio charm sent, parsed. ``repr`` hides the secret key."""

    credentials: S3Credentials
    service: str
    namespace: str | None
    port: int
    secure: bool

    @property
    def endpoint(self) -> str:
        """The S3 endpoint, built as Charmed MLflow builds it."""
        scheme = "https" if self.secure else "http"
        host = f"{self.service}.{self.namespace}" if self.namespace else self.service
        return f"{scheme}://{host}:{self.port}"


def parse_answer(data: dict[str, Any]) -> MinioAnswer:
    """The typed answer, every field checked (``untrusted``); ValueError naming the field."""
    missing = [
        k for k in ("access-key", "secret-key", "service", "port", "secure") if k not in data
    ]
    if missing:
        raise ValueError(f"{', '.join(missing)} missing")
    service = str(data["service"])
    namespace = data.get("namespace")
    if not _HOST_PART.fullmatch(service):
        raise ValueError("service is not a host name")
    if namespace is not None and not _HOST_PART.fullmatch(str(namespace)):
        raise ValueError("namespace is not a host name")
    return MinioAnswer(
        credentials=S3Credentials(
            untrusted.s3_key("access-key", data["access-key"]),
            untrusted.s3_key("secret-key", data["secret-key"]),
        ),
        service=service,
        namespace=None if namespace is None else str(namespace),
        port=untrusted.port("port", data["port"]),
        secure=bool(data["secure"]),
    )


class ObjectStorageRelation:
    """The one ``object-storage`` relation (serialized-data-interface, schema v1)."""

    def __init__(self, charm: ops.CharmBase, bucket: str, path: str):
        self._charm = charm
        self._bucket = bucket or charm.app.name
        self._path = path

    def relation(self) -> ops.Relation | None:
        """The related minio, if any."""
        return self._charm.model.get_relation(OBJECT_STORAGE_RELATION)

    def _interface(self) -> Any:
        return _sdi().SerializedDataInterface(
            self._charm, OBJECT_STORAGE_RELATION, SCHEMAS, VERSIONS, "requires"
        )

    def send_versions(self) -> None:
        """Tell minio which schema versions this side speaks (leader only)."""
        relation = self.relation()
        if relation is not None and relation.app is not None and self._charm.unit.is_leader():
            self._interface().send_versions(relation)

    def read(self) -> ArtifactReading | None:
        """The artifact store minio offers; None when nothing is related."""
        relation = self.relation()
        if relation is None:
            return None
        app = relation.app.name if relation.app else "?"
        if relation.app is None or not relation.data[relation.app]:
            return ArtifactReading(app, waiting=f"waiting for {app} to answer")
        sdi = _sdi()
        try:
            data = self._interface().unwrap(relation)[relation.app]
        except sdi.errors.UnversionedRelation:
            return ArtifactReading(app, waiting=f"waiting for {app} to answer")
        except (sdi.errors.IncompatibleVersionsError, sdi.errors.InvalidSchemaVersionError):
            return ArtifactReading(
                app,
                problem=f"{app} speaks no object-storage schema version this charm knows (v1); "
                f"remove the relation or upgrade {app}",
            )
        except (sdi.errors.RelationDataError, sdi.errors.RelationParseError):
            return ArtifactReading(
                app,
                problem=f"{app} sent object-storage data that does not match its schema; "
                f"check {app}'s config, then remove and re-add the relation",
            )
        if not data:
            return ArtifactReading(app, waiting=f"waiting for {app} to send its keys")
        try:
            answer = parse_answer(data)
        except ValueError as err:
            return ArtifactReading(
                app,
                problem=f"{app} sent an unusable object-storage answer: {err}",
            )
        artifacts = ArtifactStore(
            bucket=self._bucket,
            path=self._path,
            endpoint=answer.endpoint,
            region="us-east-1",
            credentials=answer.credentials,
        )
        return ArtifactReading(app, artifacts=artifacts)
