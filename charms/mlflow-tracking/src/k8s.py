"""Apply the notebook Secret + PodDefault straight to labelled namespaces (lightkube).

For clusters without Charmed Kubeflow's resource-dispatcher. Needs the
application trusted (``juju trust <app> --scope=cluster``) and the PodDefault
CRD (Kubeflow's admission webhook). lightkube is imported only when this mode
is on: it costs every hook ~0.2 s otherwise.
"""

from __future__ import annotations

import logging
from typing import Any

from exceptions import CharmError

logger = logging.getLogger(__name__)

MANAGED_BY = "app.kubernetes.io/managed-by"
# What makes an object this application's, in this model: an application of
# the same name in another model has another model UUID.
MODEL_LABEL = "juju-model-uuid"
APP_LABEL = "juju-application"


class KubernetesAccessError(CharmError):
    """The cluster refused or lacks what direct mode needs: a person must act."""


def parse_selector(selector: str) -> dict[str, Any]:
    """``a=b,c`` as lightkube label filters (``c`` means: the label exists)."""
    from lightkube import operators

    labels: dict[str, Any] = {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, sep, value = term.partition("=")
        labels[key] = value if sep else operators.exists()
    return labels


class PodDefaultsApplier:
    """Keeps the notebook manifests applied in every namespace a selector matches.

    Every object it applies carries the model's UUID and the application's
    name as labels, and only objects with both are ever pruned: two
    applications of the same name in two models leave each other alone, and
    copies in namespaces the selector no longer matches (or when there is no
    selector any more) are found wherever they are.
    """

    def __init__(self, app: str, model_uuid: str):
        self._app = app
        self._labels = {MANAGED_BY: app, MODEL_LABEL: model_uuid, APP_LABEL: app}
        # How many objects this applier created or updated (0: the cluster holds none of them).
        self.applied = 0

    def _client(self) -> Any:
        from lightkube import Client, ConfigError

        try:
            return Client(field_manager=self._app)
        except ConfigError as err:
            raise KubernetesAccessError(
                f"no Kubernetes API access for pod defaults: {err}"
            ) from None

    def _explain(self, err: Any, action: str) -> KubernetesAccessError:
        code = getattr(getattr(err, "status", None), "code", None)
        if code == 403:
            return KubernetesAccessError(
                f"not allowed to {action}: run 'juju trust {self._app} --scope=cluster'"
            )
        if code == 404:
            return KubernetesAccessError(
                "PodDefault CRD missing: install Kubeflow's admission-webhook, "
                "or unset pod-defaults-namespace-selector"
            )
        return KubernetesAccessError(f"Kubernetes API refused to {action} ({code}); retrying")

    def _labelled(self, manifest: dict) -> dict:
        metadata = dict(manifest.get("metadata") or {})
        metadata["labels"] = {**(metadata.get("labels") or {}), **self._labels}
        return {**manifest, "metadata": metadata}

    def apply(self, selector: str, manifests: list[dict]) -> list[str]:
        """Apply ``manifests`` in each selected namespace and prune every other copy."""
        from lightkube import ApiError, codecs
        from lightkube.resources.core_v1 import Namespace

        _register_pod_default()
        client = self._client()
        try:
            namespaces = sorted(
                str(ns.metadata.name)
                for ns in client.list(Namespace, labels=parse_selector(selector))
            )
            for namespace in namespaces:
                for manifest in manifests:
                    obj = codecs.from_dict(self._labelled(manifest))
                    client.apply(obj, namespace=namespace, force=True)
                    self.applied += 1
            wanted = {
                (m["kind"], m["metadata"]["name"], ns) for m in manifests for ns in namespaces
            }
            removed = self._prune(client, wanted)
        except ApiError as err:
            raise self._explain(err, "apply pod defaults") from None
        logger.info(
            "pod defaults applied in %d namespace(s), %d stale copies removed",
            len(namespaces),
            removed,
        )
        return namespaces

    def remove_all(self) -> int:
        """Delete every copy this application applied in this model; how many."""
        from lightkube import ApiError

        _register_pod_default()
        try:
            removed = self._prune(self._client(), set())
        except ApiError as err:
            raise self._explain(err, "remove pod defaults") from None
        logger.info("pod defaults removed: %d object(s)", removed)
        return removed

    def _prune(self, client: Any, wanted: set[tuple[str, str, str]]) -> int:
        from lightkube import ApiError
        from lightkube.resources.core_v1 import Secret

        removed = 0
        for kind, resource in (("PodDefault", _register_pod_default()), ("Secret", Secret)):
            try:
                found = list(client.list(resource, namespace="*", labels=self._labels))
            except ApiError as err:
                if kind == "PodDefault" and getattr(err.status, "code", None) == 404:
                    continue  # no PodDefault CRD: none of them to remove; the Secrets still go
                raise
            for obj in found:
                name, namespace = obj.metadata.name, obj.metadata.namespace
                if (kind, name, namespace) not in wanted:
                    client.delete(resource, name, namespace=namespace)
                    logger.info("removed %s %s/%s", kind, namespace, name)
                    removed += 1
        return removed


def _register_pod_default() -> Any:
    """The PodDefault resource (registered with lightkube's codecs on first use)."""
    from lightkube.generic_resource import create_namespaced_resource

    return create_namespaced_resource("kubeflow.org", "v1alpha1", "PodDefault", "poddefaults")
