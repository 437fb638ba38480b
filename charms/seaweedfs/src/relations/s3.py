"""The ``s3-credentials`` provider side: bucket requests in, keys and endpoint out.

Requests are read from each relation and checked here; the keys live in
app-owned Juju secrets (``IdentityStore``) whose ids are recorded in the peer
relation, so every unit can read them and nothing secret sits in a databag.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable
from typing import Any

import ops
from object_storage import PrematureDataAccessError, S3Provider

from constants import ADMIN_SECRET_LABEL, IDENTITY_SECRET_PREFIX
from state import BucketRequest, Credentials
from workload import bucket_name_problem, default_bucket_for

logger = logging.getLogger(__name__)

# Keys the requirer writes (object-storage-charmlib, schema v1).
REQUESTED_SECRETS = "requested-secrets"
SCHEMA_VERSION = "version"
ERROR_FIELD = "error"
MAX_PATH_LENGTH = 512

# The config option that lets legacy (v0) requirers be served, keys in plain data.
LEGACY_OPTION = "legacy-s3-requirers"
# What a v0 requirer reads from plain data: removed when it is no longer served.
PLAIN_KEY_FIELDS = ("access-key", "secret-key")

PEER_SECRETS_KEY = "secret-ids"
PEER_GENERATION_KEY = "generation"
PEER_REVOKED_KEY = "revoked"


def _path_problem(path: str) -> str | None:
    if len(path) > MAX_PATH_LENGTH:
        return f"path must be at most {MAX_PATH_LENGTH} characters"
    if any(ord(ch) < 32 or ch == "\x7f" for ch in path):
        return "path must not contain control characters"
    if ".." in path.split("/"):
        return "path must not contain '..' segments"
    return None


def _json_list(raw: str | None) -> list | None:
    """A JSON list from a databag value, or None when it is not one."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return None
    return value if isinstance(value, list) else None


# What object-storage-charmlib raises on a databag it cannot read (a stale or
# garbage secret id, a non-JSON list).
UNREADABLE = (ops.ModelError, ValueError, TypeError, KeyError)
# Fields only the provider writes; a requirer that writes them confuses the library.
PROVIDER_FIELDS = ("secret-extra", "secret-user", "secret-tls", "provided-secrets")


def remote_databag_is_sane(relation: ops.Relation) -> bool:
    """False when the requirer's list fields are not JSON lists (the library would crash)."""
    if relation.app is None:
        return True
    data = relation.data[relation.app]
    return not any(key in data for key in PROVIDER_FIELDS) and (
        REQUESTED_SECRETS not in data or _json_list(data.get(REQUESTED_SECRETS)) is not None
    )


class SafeS3Provider(S3Provider):
    """object-storage-charmlib's provider, minus its hook error on a malformed databag.

    The library json-decodes ``requested-secrets`` in its own relation-changed
    handler; garbage there would fail the hook before this charm can report
    it. Such a relation is skipped here and reported by ``read_request``.
    """

    def _on_relation_changed_event(self, event: ops.RelationChangedEvent) -> None:
        if not remote_databag_is_sane(event.relation):
            logger.warning("relation %s: malformed s3 request ignored", event.relation.id)
            return
        try:
            super()._on_relation_changed_event(event)
        except UNREADABLE as err:
            logger.warning(
                "relation %s: unreadable s3 request: %s", event.relation.id, type(err).__name__
            )


def read_request(relation: ops.Relation, legacy_allowed: bool = False) -> BucketRequest | None:
    """What one relation asks for; None while the requirer has not spoken yet.

    A requirer without ``requested-secrets`` speaks the legacy s3 protocol
    (v0: data-platform-libs' ``charms.data_platform_libs.v0.s3``, as the
    backups of postgresql-k8s and mysql-k8s use it). It writes only
    ``bucket`` (``relation-<id>`` unless its charm names one) and reads
    ``access-key``, ``secret-key``, ``bucket``, ``path``, ``endpoint``,
    ``region``, ``s3-uri-style`` and ``tls-ca-chain`` from our plain
    application databag. It is served only when ``legacy_allowed``.
    """
    if relation.app is None:
        return None
    data = relation.data[relation.app]
    app = relation.app.name
    if SCHEMA_VERSION not in data and "bucket" not in data:
        return None
    bucket = data.get("bucket") or default_bucket_for(app)
    path = data.get("path", "").strip("/")
    problem = None
    requested = _json_list(data.get(REQUESTED_SECRETS))
    if REQUESTED_SECRETS in data and (
        requested is None
        or not {"access-key", "secret-key"} <= set(map(str, requested))
        or not remote_databag_is_sane(relation)
    ):
        problem = (
            "malformed request: requested-secrets must be a JSON list naming "
            "access-key and secret-key, and provider fields must be left alone"
        )
    elif REQUESTED_SECRETS not in data and not legacy_allowed:
        problem = (
            "speaks the legacy s3 protocol (v0), whose keys sit in plain relation data "
            "that anyone who can read the model can read; to accept that, set "
            f"{LEGACY_OPTION}=true"
        )
    elif bucket_problem := bucket_name_problem(bucket):
        problem = f"bucket name {bucket[:70]!r} {bucket_problem}"
    elif path_problem := _path_problem(path):
        problem = path_problem
    legacy = REQUESTED_SECRETS not in data
    return BucketRequest(relation.id, app, bucket, path, problem, legacy=legacy)


def read_requests(
    relations: Iterable[ops.Relation], legacy_allowed: bool = False
) -> list[BucketRequest]:
    """Every relation's request, each checked on its own (who owns a bucket: ``ownership``)."""
    return sorted(
        (req for rel in relations if (req := read_request(rel, legacy_allowed)) is not None),
        key=lambda r: r.relation_id,
    )


class IdentityStore:
    """App-owned Juju secrets with the S3 keys: the charm's admin and one per relation.

    The leader creates and rotates them; the secret ids are kept in the peer
    app databag so every unit can read the keys.
    """

    def __init__(self, model: ops.Model, peer: ops.Relation):
        self._model = model
        self._peer = peer
        self._known: dict[str, Credentials] = {}

    def _ids(self) -> dict[str, str]:
        raw = self._peer.data[self._model.app].get(PEER_SECRETS_KEY, "{}")
        try:
            ids = json.loads(raw)
        except json.JSONDecodeError:
            return {}
        return {str(k): str(v) for k, v in ids.items()} if isinstance(ids, dict) else {}

    def _save_ids(self, ids: dict[str, str]) -> None:
        self._peer.data[self._model.app][PEER_SECRETS_KEY] = json.dumps(ids, sort_keys=True)

    def _bump_generation(self) -> None:
        # Non-leader units get no secret-changed for their own app's secrets;
        # a new generation in the peer databag tells them to re-read the keys.
        data = self._peer.data[self._model.app]
        data[PEER_GENERATION_KEY] = str(int(data.get(PEER_GENERATION_KEY, "0") or 0) + 1)

    @staticmethod
    def _label(key: str) -> str:
        return ADMIN_SECRET_LABEL if key == "admin" else f"{IDENTITY_SECRET_PREFIX}{key}"

    def _get(self, key: str, create: bool) -> Credentials | None:
        if key in self._known:
            return self._known[key]
        secret_id = self._ids().get(key)
        if secret_id:
            try:
                secret = self._model.get_secret(id=secret_id)
                # Since Juju 3.3.1 owners track revisions too: ask for the latest.
                creds = Credentials.from_secret_content(secret.get_content(refresh=True))
            except (ops.SecretNotFoundError, KeyError):
                logger.warning("secret for %s is gone or malformed", self._label(key))
            else:
                self._known[key] = creds
                return creds
        if not create:
            return None
        creds = Credentials.generate()
        secret = self._model.app.add_secret(
            creds.as_secret_content(),
            label=self._label(key),
            description=f"SeaweedFS S3 keys ({self._label(key)})",
        )
        ids = self._ids()
        ids[key] = str(secret.id)
        self._save_ids(ids)
        self._known[key] = creds
        return creds

    def admin(self, create: bool = False) -> Credentials | None:
        """The charm's own admin keys (created by the leader on first use)."""
        return self._get("admin", create)

    def client(self, relation_id: int, create: bool = False) -> Credentials | None:
        """The keys of one relation's identity."""
        return self._get(str(relation_id), create)

    def client_relation_ids(self) -> set[int]:
        """Relation ids that have keys."""
        return {int(k) for k in self._ids() if k.isdigit()}

    def revoked_relation_ids(self) -> set[int]:
        """Relation ids whose identity was revoked (kept as tombstones)."""
        raw = self._peer.data[self._model.app].get(PEER_REVOKED_KEY, "[]")
        try:
            ids = json.loads(raw)
        except json.JSONDecodeError:
            return set()
        return {int(i) for i in ids if isinstance(i, int)} if isinstance(ids, list) else set()

    def rotate(self, relation_id: int | None) -> Credentials:
        """New keys for a relation (None: the admin identity); the old ones stop working."""
        key = "admin" if relation_id is None else str(relation_id)
        secret_id = self._ids().get(key)
        if not secret_id:
            raise KeyError(key)
        creds = Credentials.generate()
        self._model.get_secret(id=secret_id).set_content(creds.as_secret_content())
        self._known[key] = creds
        self._bump_generation()
        return creds

    def forget(self, relation_ids: Iterable[int]) -> None:
        """Remove the keys of relations that are gone: their identities are revoked."""
        ids = self._ids()
        gone = [rel_id for rel_id in relation_ids if str(rel_id) in ids]
        if not gone:
            return
        for rel_id in gone:
            secret_id = ids.pop(str(rel_id), None)
            self._known.pop(str(rel_id), None)
            if secret_id:
                with contextlib.suppress(ops.SecretNotFoundError):
                    self._model.get_secret(id=secret_id).remove_all_revisions()
                logger.info("revoked the S3 identity of relation %s", rel_id)
        self._save_ids(ids)
        revoked = sorted(self.revoked_relation_ids() | set(gone))
        self._peer.data[self._model.app][PEER_REVOKED_KEY] = json.dumps(revoked)
        self._bump_generation()


def publish(
    provider: S3Provider,
    request: BucketRequest,
    creds: Credentials,
    endpoint: str,
    region: str,
    ca: str = "",
) -> bool:
    """Answer one relation; False when the requirer's side is not initialised yet.

    ``ca``: the CA of the gateway's certificate, sent as ``tls-ca-chain``.
    """
    info: dict[str, Any] = {
        "bucket": request.bucket,
        "path": request.path,
        "endpoint": endpoint,
        "region": region,
        "s3-uri-style": "path",
        "s3-api-version": "4",
        "access-key": creds.access_key,
        "secret-key": creds.secret_key,
    }
    if ca:
        info["tls-ca-chain"] = [ca]
    try:
        provider.set_storage_connection_info(request.relation_id, info)  # type: ignore[arg-type]
    except PrematureDataAccessError:
        logger.info("relation %s not initialised by the requirer yet", request.relation_id)
        return False
    except UNREADABLE as err:
        logger.warning(
            "relation %s: could not answer: %s", request.relation_id, type(err).__name__
        )
        return False
    return True


def publish_problem(relation: ops.Relation, app: ops.Application, request: BucketRequest) -> None:
    """Tell the requirer why its request is refused, on the relation itself.

    Written straight to this application's databag (a plain, non-secret
    field), so that even a malformed request the library cannot parse gets it.
    A legacy requirer that is refused (the option was turned off) also loses
    the plain keys it was given; its identity is revoked by the caller.
    """
    if request.problem is None:
        return
    data = relation.data[app]
    data[ERROR_FIELD] = request.problem
    if request.legacy:
        for key in PLAIN_KEY_FIELDS:
            data.pop(key, None)
