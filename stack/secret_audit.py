"""A pytest plugin that audits every ops.testing run for leaked credentials.

Loaded with ``-p stack.secret_audit`` by the unit and contract suites. After
each ``Context.run`` it collects every credential value held in a Juju secret
(the run's input and output states: passwords, access and secret keys) and
fails the test if one appears in a relation databag (outside secrets), a
status message, a log record or an action's output, except the outputs of the
actions whose purpose is to reveal credentials, and except the plain keys
seaweedfs gives a legacy (v0) s3 requirer after the operator set
``legacy-s3-requirers=true`` (that protocol has no secrets; counted apart).
"""

from __future__ import annotations

from typing import Any

import pytest
from ops import testing

SENSITIVE_KEYS = {
    "password",
    "secret-key",
    "access-key",
    "entity-password",
    # mlflow-tracking's auth secret
    "admin-password",
    "notebook-password",
    "flask-secret-key",
    # the units' TLS private keys (charmlibs-interfaces-tls-certificates' secret)
    "private-key",
    # cratedb's keystore password (a unit secret)
    "keystore-password",
    # seaweedfs's internal JWT keys (its weed-security secret; private-key above)
    "jwt-write",
    "jwt-read",
    "jwt-filer-write",
    "jwt-filer-read",
}
REVEALING_ACTIONS = {"get-admin-credentials", "get-client-env", "get-admin-password"}
MIN_LENGTH = 8
AUDITED = {"runs": 0, "values": 0, "opted_in": 0}


def _credentials(*states: testing.State) -> set[str]:
    found = set()
    for state in states:
        for secret in state.secrets:
            for content in (secret.tracked_content, secret.latest_content):
                items: dict[str, str] = dict(content or {})
                for key, value in items.items():
                    if key in SENSITIVE_KEYS and len(str(value)) >= MIN_LENGTH:
                        found.add(str(value))
    return found


# The one documented exception: seaweedfs serving a legacy (v0) s3 requirer,
# whose protocol has no secrets, after the operator opted in with this option.
LEGACY_S3_OPTION = "legacy-s3-requirers"
LEGACY_S3_PLAIN_KEYS = {"access-key", "secret-key"}


def _opted_in_plain_key(out: testing.State, relation: Any, attr: str, key: str) -> bool:
    """True for keys seaweedfs hands a v0 requirer in plain data, by the operator's choice."""
    return (
        out.config.get(LEGACY_S3_OPTION) is True
        and attr == "local_app_data"
        and key in LEGACY_S3_PLAIN_KEYS
        and "requested-secrets" not in dict(getattr(relation, "remote_app_data", {}) or {})
    )


def _visible(ctx: testing.Context[Any], event: Any, out: testing.State) -> list[tuple[str, str]]:
    """(where, text) pairs a user or a related charm can read."""
    seen = [("unit status", out.unit_status.message), ("app status", out.app_status.message)]
    for relation in out.relations:
        for attr in ("local_app_data", "local_unit_data"):
            for key, value in dict(getattr(relation, attr, {}) or {}).items():
                if _opted_in_plain_key(out, relation, attr, key):
                    AUDITED["opted_in"] += 1
                    continue
                seen.append((f"{relation.endpoint} {attr}[{key}]", str(value)))
    seen += [("log", record.message) for record in ctx.juju_log]
    action = getattr(getattr(event, "action", None), "name", None)
    if action not in REVEALING_ACTIONS:
        seen += [("action result", str(v)) for v in (ctx.action_results or {}).values()]
        seen += [("action log", line) for line in ctx.action_logs]
    return seen


def original_run() -> Any:
    """Context.run as ops.testing defines it (without this plugin's audit)."""
    return getattr(testing.Context.run, "__wrapped__", testing.Context.run)


def audit(ctx: testing.Context[Any], event: Any, state: testing.State, out: testing.State) -> None:
    """Fail when a credential is readable outside its secret."""
    values = _credentials(state, out)
    AUDITED["runs"] += 1
    AUDITED["values"] += len(values)
    for where, text in _visible(ctx, event, out):
        for value in values:
            if value in text:
                raise AssertionError(f"a credential from a Juju secret leaked into {where}")


def pytest_configure(config: pytest.Config) -> None:
    """Wrap Context.run for the whole session."""
    original = testing.Context.run

    def run(self: testing.Context[Any], event: Any, state: testing.State) -> testing.State:
        try:
            out = original(self, event, state)
        except testing.ActionFailed:
            audit(self, event, state, state)
            raise
        audit(self, event, state, out)
        return out

    run.__wrapped__ = original  # type: ignore[attr-defined]
    testing.Context.run = run  # type: ignore[method-assign]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how much was audited (nothing to say in a session without ops.testing runs)."""
    if not AUDITED["runs"]:
        return
    opted_in = (
        f"; {AUDITED['opted_in']} plain keys handed to legacy s3 requirers by opt-in not counted"
        if AUDITED["opted_in"]
        else ""
    )
    terminalreporter.write_line(
        f"secret audit: {AUDITED['runs']} ops.testing runs checked, "
        f"{AUDITED['values']} credential values looked for, no leak{opted_in}"
    )
