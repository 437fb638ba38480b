"""Direct mode's Kubernetes objects: applied where the selector says, and only ours ever removed.

The cluster is ``fake_kubernetes.FakeCluster`` behind lightkube's Client; the
charm's applier, its labels and its pruning run for real.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ops import testing

from charm import MlflowTrackingCharm
from constants import PEER_RELATION
from fake_kubernetes import FakeCluster
from helpers import APP, make_state

Ctx = testing.Context[Any]
TEAMS = "team=true"
USERS = "user.kubeflow.org/enabled=true"


def _where(cluster: FakeCluster) -> set[tuple[str, str]]:
    """(kind, namespace) of every object in the cluster."""
    return {(kind, ns) for kind, ns, _ in cluster.objects}


def _configure(ctx: Ctx, state: testing.State, selector: str) -> testing.State:
    changed = dataclasses.replace(
        state, config={**state.config, "pod-defaults-namespace-selector": selector}
    )
    return ctx.run(ctx.on.config_changed(), changed)


def _state() -> testing.State:
    return make_state(testing.PeerRelation(PEER_RELATION))


class TestEveryNamespaceEverWrittenTo:
    def test_a_namespace_the_selector_no_longer_matches_loses_its_copies(
        self, ctx: Ctx, kubernetes: FakeCluster
    ):
        kubernetes.namespaces["team-ns"] = {"team": "true", "user.kubeflow.org/enabled": "true"}
        state = _configure(ctx, _state(), USERS)
        assert {ns for _, ns in _where(kubernetes)} == {"user-ns", "team-ns"}

        _configure(ctx, state, TEAMS)

        assert {ns for _, ns in _where(kubernetes)} == {"team-ns"}

    def test_unsetting_the_selector_removes_every_copy(self, ctx: Ctx, kubernetes: FakeCluster):
        state = _configure(ctx, _state(), USERS)
        assert ("Secret", "user-ns") in _where(kubernetes)

        out = _configure(ctx, state, "")

        assert kubernetes.objects == {}
        assert out.unit_status.name == "active"

    def test_removing_the_application_after_unsetting_the_selector_leaves_no_secret(
        self, ctx: Ctx, kubernetes: FakeCluster
    ):
        state = _configure(ctx, _state(), USERS)
        # The copies stay while the API refuses (not trusted any more, say) ...
        kubernetes.refuse = 403
        state = _configure(ctx, state, "")
        assert ("Secret", "user-ns") in _where(kubernetes)
        assert "juju trust" in state.unit_status.message
        kubernetes.refuse = None

        # ... and are found when the application goes, although no selector is set.
        ctx.run(ctx.on.remove(), dataclasses.replace(state, planned_units=0))

        assert kubernetes.objects == {}

    def test_a_leader_removed_by_scaling_down_leaves_them_to_the_next_leader(
        self, ctx: Ctx, kubernetes: FakeCluster
    ):
        state = _configure(ctx, _state(), USERS)

        ctx.run(ctx.on.remove(), dataclasses.replace(state, planned_units=2))

        assert ("Secret", "user-ns") in _where(kubernetes)

    def test_without_the_poddefault_crd_the_secrets_still_go(
        self, ctx: Ctx, kubernetes: FakeCluster
    ):
        kubernetes.missing_kinds.add("PodDefault")
        state = _configure(ctx, _state(), USERS)
        # The Secret was applied before the PodDefault failed.
        assert ("Secret", "user-ns") in _where(kubernetes)
        assert "PodDefault CRD missing" in state.unit_status.message

        out = _configure(ctx, state, "")

        assert kubernetes.objects == {}
        assert out.unit_status.name == "active"

    def test_a_selector_refused_before_anything_was_made_leaves_nothing_to_clean(
        self, ctx: Ctx, kubernetes: FakeCluster
    ):
        kubernetes.refuse = 403
        state = _configure(ctx, _state(), USERS)
        assert "juju trust" in state.unit_status.message

        out = _configure(ctx, state, "")

        assert out.unit_status.name == "active"

    def test_a_charm_that_never_used_direct_mode_never_calls_the_api(
        self, ctx: Ctx, kubernetes: FakeCluster
    ):
        kubernetes.refuse = 403

        out = ctx.run(ctx.on.config_changed(), _state())

        assert out.unit_status.name == "active"


class TestTwoModelsOneApplicationName:
    def test_each_prunes_only_its_own(self, kubernetes: FakeCluster):
        kubernetes.namespaces["team-ns"] = {"team": "true"}
        first = testing.Context(MlflowTrackingCharm, app_name=APP)
        second = testing.Context(MlflowTrackingCharm, app_name=APP)
        in_model_a = dataclasses.replace(_state(), model=testing.Model(name="a"))
        in_model_b = dataclasses.replace(_state(), model=testing.Model(name="b"))
        assert in_model_a.model.uuid != in_model_b.model.uuid

        a = _configure(first, in_model_a, USERS)
        b = _configure(second, in_model_b, TEAMS)
        # a applies again (every hook does): b's copies in team-ns stay.
        _configure(first, a, USERS)

        assert _where(kubernetes) == {
            ("Secret", "user-ns"),
            ("PodDefault", "user-ns"),
            ("Secret", "team-ns"),
            ("PodDefault", "team-ns"),
        }

        first.run(first.on.remove(), dataclasses.replace(a, planned_units=0))

        assert _where(kubernetes) == {("Secret", "team-ns"), ("PodDefault", "team-ns")}
        assert b.unit_status.name == "active"

    def test_objects_carry_the_model_and_the_application(self, ctx: Ctx, kubernetes: FakeCluster):
        state = _configure(ctx, _state(), USERS)

        labels = kubernetes.objects[("Secret", "user-ns", f"{APP}-credentials")]["metadata"][
            "labels"
        ]
        assert labels["juju-model-uuid"] == state.model.uuid
        assert labels["juju-application"] == APP
