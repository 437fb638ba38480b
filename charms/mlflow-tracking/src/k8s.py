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
    """Keeps the notebook manifests applied in every namespace a selector matches."""

    def __init__(self, app: str):
        self._app = app

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

    def apply(self, selector: str, manifests: list[dict]) -> list[str]:
        """Apply ``manifests`` in each selected namespace and prune stale copies."""
        from lightkube import ApiError, codecs
        from lightkube.generic_resource import create_namespaced_resource
        from lightkube.resources.core_v1 import Namespace, Secret

        pod_default = create_namespaced_resource(
            "kubeflow.org", "v1alpha1", "PodDefault", "poddefaults"
        )
        client = self._client()
        try:
            namespaces = sorted(
                str(ns.metadata.name)
                for ns in client.list(Namespace, labels=parse_selector(selector))
            )
            wanted = {(m["kind"], m["metadata"]["name"]) for m in manifests}
            for namespace in namespaces:
                for manifest in manifests:
                    # create_namespaced_resource registered PodDefault with the codecs.
                    client.apply(codecs.from_dict(manifest), namespace=namespace, force=True)
            for kind, resource in (("PodDefault", pod_default), ("Secret", Secret)):
                for obj in client.list(resource, namespace="*", labels={MANAGED_BY: self._app}):
                    name, namespace = obj.metadata.name, obj.metadata.namespace
                    if namespace not in namespaces or (kind, name) not in wanted:
                        client.delete(resource, name, namespace=namespace)
        except ApiError as err:
            raise self._explain(err, "apply pod defaults") from None
        logger.info("pod defaults applied in %d namespace(s)", len(namespaces))
        return namespaces

    def remove_all(self) -> None:
        """Delete every copy this application applied."""
        self.apply("app.kubernetes.io/managed-by=__none__", [])
