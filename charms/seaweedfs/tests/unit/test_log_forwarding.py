"""COS: the workload's output to Loki through Pebble's log forwarding (``logging``).

The provider's side as loki-k8s's library writes it: each Loki unit puts
``endpoint`` = JSON ``{"url": ...}`` in its unit databag.
"""

from __future__ import annotations

import json
from typing import Any

from ops import testing

from constants import CONTAINER
from helpers import make_state

Ctx = testing.Context[Any]
PUSH = "http://loki-0.loki-endpoints.cos.svc.cluster.local:3100/loki/api/v1/push"


def loki() -> testing.Relation:
    units = {0: {"endpoint": json.dumps({"url": PUSH})}}
    return testing.Relation("logging", remote_app_name="loki", remote_units_data=units)


def targets(state: testing.State) -> dict[str, dict]:
    plan = state.get_container(CONTAINER).plan
    return {name: dict(target.to_dict()) for name, target in plan.log_targets.items()}


def test_the_workloads_output_goes_to_loki_with_the_topology_and_stops_with_the_relation(
    ctx: Ctx,
):
    relation = loki()
    out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))
    [(name, target)] = targets(out).items()
    assert name == "loki-loki-0"
    assert (target["location"], target["services"]) == (PUSH, ["all"])
    assert target["labels"]["juju_application"] == "seaweedfs"
    gone = ctx.run(ctx.on.relation_broken(out.get_relation(relation.id)), out)
    assert targets(gone)["loki-loki-0"]["services"] == ["-all"]
