"""COS: the server's output to Loki through Pebble's log forwarding (``logging``).

The provider's side as loki-k8s's library writes it: each Loki unit puts
``endpoint`` = JSON ``{"url": ...}`` in its unit databag.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ops import testing

from constants import CONTAINER
from helpers import make_state

Ctx = testing.Context[Any]
PUSH = "http://loki-0.loki-endpoints.cos.svc.cluster.local:3100/loki/api/v1/push"


def loki(*urls: str) -> testing.Relation:
    units = {i: {"endpoint": json.dumps({"url": url})} for i, url in enumerate(urls)}
    return testing.Relation("logging", remote_app_name="loki", remote_units_data=units)


def targets(state: testing.State) -> dict[str, dict]:
    plan = state.get_container(CONTAINER).plan
    return {name: dict(target.to_dict()) for name, target in plan.log_targets.items()}


def test_every_service_is_forwarded_to_each_loki_unit_with_the_topology(ctx: Ctx):
    relation = loki(PUSH)
    out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))
    [(name, target)] = targets(out).items()
    assert name == "loki-loki-0"
    assert (target["type"], target["location"], target["services"]) == ("loki", PUSH, ["all"])
    assert target["labels"]["juju_application"] == "mlflow-tracking"
    assert target["labels"]["juju_model"] == out.model.name
    assert target["labels"]["juju_unit"] == "mlflow-tracking/0"


def test_removing_the_relation_switches_forwarding_off(ctx: Ctx):
    relation = loki(PUSH)
    first = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))
    out = ctx.run(ctx.on.relation_broken(first.get_relation(relation.id)), first)
    [target] = targets(out).values()
    assert target["services"] == ["-all"]


def test_an_unreadable_endpoint_is_skipped_not_fatal(ctx: Ctx):
    relation = dataclasses.replace(loki(PUSH), remote_units_data={0: {"endpoint": "{nope"}})
    out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))
    assert targets(out) == {}
    assert isinstance(out.unit_status, testing.ActiveStatus)
