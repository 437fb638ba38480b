"""Pod defaults for notebooks: the PodDefault and Secret manifests, and how they are sent.

The builders are pure. ``ManifestRelations`` speaks Charmed Kubeflow's
``kubernetes_manifest`` protocol (resource-dispatcher 2.x): the JSON list of
manifests travels in a Juju secret (key ``manifests``) granted to the
relation; the app databag holds the secret id in ``kubernetes_manifests`` and
``is_secret: "true"``. No PyPI package implements it, so it is written here.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Mapping

import ops

from constants import CLIENT_CA_DIR, POD_DEFAULTS_RELATION, SECRETS_RELATION

logger = logging.getLogger(__name__)

MANIFESTS_FIELD = "kubernetes_manifests"
IS_SECRET_FIELD = "is_secret"  # noqa: S105 (a field name)
MANIFESTS_SECRET_KEY = "manifests"  # noqa: S105 (a key name)
# Variables that travel in the Secret, referenced by the PodDefault, never in clear.
SECRET_ENV_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
)


def access_label(app: str) -> str:
    """The pod label that selects the PodDefault (what a notebook "ticks")."""
    return f"access-{app}"


def secret_name(app: str) -> str:
    """The name of the Kubernetes Secret with the notebooks' credentials."""
    return f"{app}-credentials"


def client_secret(
    app: str, client_env: dict[str, str], ca_files: Mapping[str, str] | None = None
) -> dict | None:
    """The Secret with the credentials in ``client_env`` (MLflow login, S3 keys), or None.

    It also carries ``ca_files`` (file name -> PEM), the CAs the PodDefault
    mounts as files: the resource dispatcher sends Secrets and PodDefaults only.
    """
    data = {k: v for k, v in client_env.items() if k in SECRET_ENV_KEYS}
    data.update(ca_files or {})
    if not data:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(app), "labels": {"app.kubernetes.io/managed-by": app}},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def pod_default(
    app: str, client_env: dict[str, str], ca_files: Iterable[str] = (), ca_dir: str = CLIENT_CA_DIR
) -> dict:
    """The PodDefault injecting the MLflow client environment.

    Keys never appear in clear: they are ``secretKeyRef`` references to the
    Secret above; every other variable is a plain value. The CA files named in
    ``ca_files`` are mounted read-only from that Secret into ``ca_dir`` (only
    those keys: the credentials stay out of the file system).
    """
    env: list[dict] = []
    for name, value in sorted(client_env.items()):
        if name in SECRET_ENV_KEYS:
            env.append(
                {
                    "name": name,
                    "valueFrom": {"secretKeyRef": {"name": secret_name(app), "key": name}},
                }
            )
        else:
            env.append({"name": name, "value": value})
    spec: dict = {
        "desc": f"Allow access to MLflow ({app})",
        "selector": {"matchLabels": {access_label(app): "true"}},
        "env": env,
    }
    names = sorted(ca_files)
    if names:
        volume = f"{app}-ca"
        items = [{"key": name, "path": name} for name in names]
        spec["volumes"] = [
            {"name": volume, "secret": {"secretName": secret_name(app), "items": items}}
        ]
        spec["volumeMounts"] = [{"name": volume, "mountPath": ca_dir, "readOnly": True}]
    return {
        "apiVersion": "kubeflow.org/v1alpha1",
        "kind": "PodDefault",
        "metadata": {
            "name": f"{app}-access",
            "labels": {"app.kubernetes.io/managed-by": app},
        },
        "spec": spec,
    }


def manifests_for(
    relation_name: str,
    app: str,
    client_env: dict[str, str],
    ca_files: Mapping[str, str] | None = None,
) -> list[dict]:
    """What each kubernetes_manifest relation carries."""
    if relation_name == POD_DEFAULTS_RELATION:
        return [pod_default(app, client_env, ca_files or {})]
    secret = client_secret(app, client_env, ca_files)
    return [secret] if secret else []


class ManifestRelations:
    """Send manifests on ``pod-defaults`` and ``secrets`` through Juju secrets (leader only)."""

    def __init__(self, charm: ops.CharmBase):
        self._charm = charm

    @staticmethod
    def _label(relation: ops.Relation) -> str:
        return f"manifest.{relation.name}.{relation.id}"

    def send(self, relation: ops.Relation, manifests: list[dict]) -> None:
        """Put the manifests in this relation's secret and point the databag at it."""
        content = {MANIFESTS_SECRET_KEY: json.dumps(manifests, sort_keys=True)}
        label = self._label(relation)
        try:
            secret = self._charm.model.get_secret(label=label)
            if secret.get_content(refresh=True) != content:
                secret.set_content(content)
        except ops.SecretNotFoundError:
            secret = self._charm.app.add_secret(content, label=label)
        secret.grant(relation)
        data = relation.data[self._charm.app]
        wanted = {MANIFESTS_FIELD: str(secret.id), IS_SECRET_FIELD: "true"}
        if any(data.get(k) != v for k, v in wanted.items()):
            data.update(wanted)

    def relations(self) -> list[ops.Relation]:
        """Every related resource dispatcher, on both endpoints."""
        model = self._charm.model
        return [*model.relations[POD_DEFAULTS_RELATION], *model.relations[SECRETS_RELATION]]
