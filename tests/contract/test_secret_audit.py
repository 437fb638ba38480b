"""The secret audit itself: it must catch a leak, or it proves nothing."""

from __future__ import annotations

import ops
import pytest
from ops import testing

from stack.secret_audit import audit, original_run


class LeakyCharm(ops.CharmBase):
    """Puts a secret's password where it does not belong."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.config_changed, self._leak)

    def _leak(self, _event: ops.EventBase) -> None:
        password = self.model.get_secret(label="db").get_content()["password"]
        where = self.config.get("where")
        if where == "status":
            self.unit.status = ops.ActiveStatus(f"connected with {password}")
        elif where == "databag":
            relation = self.model.get_relation("db")
            assert relation is not None
            relation.data[self.app]["password"] = password


META = {"name": "leaky", "requires": {"db": {"interface": "x"}}}
CONFIG = {"options": {"where": {"type": "string", "default": ""}}}


@pytest.mark.parametrize("where", ["status", "databag"])
def test_audit_catches_a_password_outside_its_secret(where: str):
    ctx = testing.Context(LeakyCharm, meta=META, config=CONFIG)
    secret = testing.Secret({"password": "hunter2-hunter2"}, label="db", owner="app")
    state = testing.State(
        leader=True,
        config={"where": where},
        secrets={secret},
        relations={testing.Relation("db")},
    )

    with pytest.raises(AssertionError, match="leaked into"):
        audit(
            ctx,
            ctx.on.config_changed(),
            state,
            original_run()(ctx, ctx.on.config_changed(), state),
        )


def test_audit_passes_a_clean_run():
    ctx = testing.Context(LeakyCharm, meta=META, config=CONFIG)
    secret = testing.Secret({"password": "hunter2-hunter2"}, label="db", owner="app")
    state = testing.State(leader=True, secrets={secret}, relations={testing.Relation("db")})

    out = ctx.run(ctx.on.config_changed(), state)

    assert out.unit_status == testing.UnknownStatus()
