"""A Kubernetes API as much as ``k8s.PodDefaultsApplier`` uses of it, behind ``lightkube.Client``.

The boundary stubbed is lightkube's ``Client`` (list, apply, delete); the
charm's own code, the label selectors and the codecs run for real. One
``FakeCluster`` may serve several applications (two charms in two models).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx2 as httpx
from lightkube import ApiError


@dataclass
class FakeCluster:
    """Namespaces with labels, and the objects in them as dicts."""

    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    # (kind, namespace, name) -> the object as applied
    objects: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    # An HTTP status every call answers with (403: not trusted), or None.
    refuse: int | None = None
    # Kinds whose CRD is not installed: calls about them answer 404.
    missing_kinds: set[str] = field(default_factory=set)

    def client(self, field_manager: str = "") -> FakeClient:
        return FakeClient(self)

    def of_kind(self, kind: str) -> dict[tuple[str, str], dict]:
        """(namespace, name) -> object, for one kind."""
        return {(ns, name): obj for (k, ns, name), obj in self.objects.items() if k == kind}


def _matches(labels: dict[str, str], wanted: dict[str, Any] | None) -> bool:
    for key, value in (wanted or {}).items():
        if isinstance(value, str):
            if labels.get(key) != value:
                return False
        elif key not in labels:  # lightkube's operators.exists()
            return False
    return True


class FakeClient:
    """``lightkube.Client`` over a ``FakeCluster``."""

    def __init__(self, cluster: FakeCluster):
        self._cluster = cluster

    def _check(self, kind: str = "") -> None:
        code = self._cluster.refuse or (404 if kind in self._cluster.missing_kinds else None)
        if code is not None:
            request = httpx.Request("GET", "https://kubernetes.default")
            body = {"kind": "Status", "code": code, "message": "refused"}
            response = httpx.Response(code, json=body, request=request)
            raise ApiError(request=request, response=response)

    def list(self, resource: Any, namespace: str | None = None, labels: Any = None) -> list:
        kind = resource.__name__
        self._check(kind)
        if kind == "Namespace":
            return [
                SimpleNamespace(metadata=SimpleNamespace(name=name, labels=ns_labels))
                for name, ns_labels in sorted(self._cluster.namespaces.items())
                if _matches(ns_labels, labels)
            ]
        return [
            SimpleNamespace(
                metadata=SimpleNamespace(
                    name=name, namespace=ns, labels=obj["metadata"].get("labels", {})
                )
            )
            for (k, ns, name), obj in sorted(self._cluster.objects.items())
            if k == kind
            and namespace in ("*", ns)
            and _matches(obj["metadata"].get("labels", {}), labels)
        ]

    def apply(self, obj: Any, namespace: str | None = None, force: bool = False) -> None:
        data = obj.to_dict()
        self._check(data["kind"])
        assert namespace in self._cluster.namespaces, namespace
        self._cluster.objects[(data["kind"], namespace, data["metadata"]["name"])] = data

    def delete(self, resource: Any, name: str, namespace: str | None = None) -> None:
        self._check(resource.__name__)
        self._cluster.objects.pop((resource.__name__, str(namespace), name), None)
