"""Chain two charms in ops.testing: one side's output becomes the other side's input.

``handover`` takes what a charm wrote on a relation (its app and unit
databags) and the secrets it owns that were granted to that relation, and
returns them as the remote side of the same relation for the other charm:
databags become ``remote_app_data`` / ``remote_units_data``, secrets become
``testing.Secret``s owned by somebody else, with the same id and content.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml
from ops import testing

from stack.charm_loader import REPO, charm_modules


def charm_class(charm: str) -> Any:
    """The charm class of ``charms/<charm>`` (loaded without module-name clashes)."""
    module = charm_modules(charm, "charm").charm
    return next(
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and obj.__module__ == module.__name__
        and obj.__name__.endswith("Charm")
    )


def context(charm: str, **kwargs: Any) -> testing.Context[Any]:
    """A Scenario context for ``charms/<charm>``, metadata read from its charmcraft.yaml.

    The charm's modules are loaded outside ``sys.modules`` (see
    ``stack.charm_loader``), so Scenario cannot find its files by itself.
    """
    spec = yaml.safe_load((REPO / "charms" / charm / "charmcraft.yaml").read_text())
    meta = {k: v for k, v in spec.items() if k not in ("config", "actions")}
    return testing.Context(
        charm_class(charm),
        meta=meta,
        config=spec.get("config") or {},
        actions=spec.get("actions") or {},
        **kwargs,
    )


def granted_secrets(state: testing.State, relation_id: int) -> list[testing.Secret]:
    """The provider's own secrets granted on ``relation_id``, as the other side sees them."""
    seen = []
    for secret in state.secrets:
        if relation_id in (secret.remote_grants or {}):
            seen.append(
                testing.Secret(
                    dict(secret.latest_content or secret.tracked_content),
                    id=secret.id,
                    owner=None,
                )
            )
    return seen


def handover(
    out: testing.State,
    relation_id: int,
    *,
    endpoint: str,
    app_name: str,
    local_app_data: dict[str, str] | None = None,
    local_unit_data: dict[str, str] | None = None,
    remote_model_uuid: str | None = None,
    relation_cls: type[testing.Relation] = testing.Relation,
) -> tuple[testing.Relation, list[testing.Secret]]:
    """The relation as the other charm sees it, with the secrets granted on it."""
    mine = out.get_relation(relation_id)
    unit_data = dict(getattr(mine, "local_unit_data", {}) or {})
    for juju_key in ("egress-subnets", "ingress-address", "private-address"):
        unit_data.pop(juju_key, None)
    kwargs: dict[str, Any] = {
        "endpoint": endpoint,
        "remote_app_name": app_name,
        "remote_app_data": dict(mine.local_app_data),
        "remote_units_data": {0: unit_data},
    }
    if local_app_data is not None:
        kwargs["local_app_data"] = local_app_data
    if local_unit_data is not None:
        kwargs["local_unit_data"] = local_unit_data
    if remote_model_uuid is not None:
        kwargs["remote_model_uuid"] = remote_model_uuid
    return relation_cls(**kwargs), granted_secrets(out, relation_id)


def with_changes(state: testing.State, **changes: Any) -> testing.State:
    """A copy of ``state`` with some fields replaced."""
    return dataclasses.replace(state, **changes)


def bag(data: Any) -> dict[str, str]:
    """A databag or secret content as a plain dict."""
    return {str(k): str(v) for k, v in dict(data or {}).items()}
