"""Where a ``log_metric`` on CrateDB spends its time: CrateDB's own record of each statement.

CrateDB logs every statement it ran in ``sys.jobs_log`` (statement, start, end,
user). Read as the superuser (loopback) around a run of ``log_metric`` calls
through the charm's server, it says how many statements one call costs, of
which kind, and how long CrateDB itself worked on them; the rest of the
client's latency is the server's Python and the round trips.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_KIND = re.compile(
    r"^\s*(?P<verb>SELECT|INSERT\s+INTO|UPDATE|DELETE\s+FROM|REFRESH\s+TABLE|SET|BEGIN|COMMIT"
    r"|ROLLBACK|SHOW)\b",
    re.IGNORECASE,
)
_TABLE = re.compile(r'\bFROM\s+"?(?:\w+"?\.)?"?(\w+)"?', re.IGNORECASE)
_TARGET = re.compile(r'\s*"?(?:\w+"?\.)?"?(\w+)"?')


def statement_kind(stmt: str) -> str:
    """``SELECT runs``, ``INSERT INTO metrics``, ``REFRESH TABLE latest_metrics``, ``SET``..."""
    match = _KIND.match(stmt)
    if match is None:
        return "other"
    verb = " ".join(match.group("verb").upper().split())
    if verb in ("SET", "BEGIN", "COMMIT", "ROLLBACK", "SHOW"):
        return verb
    if verb == "SELECT":
        table = _TABLE.search(stmt)
        return f"SELECT {table.group(1) if table else '?'}"
    target = _TARGET.match(stmt, match.end())
    return f"{verb} {target.group(1) if target else '?'}"


def profile(sql: Any, user: str, calls: int, run_calls: Callable[[], Any]) -> dict[str, Any]:
    """Run ``run_calls`` (``calls`` log_metric calls as ``user``); what CrateDB did for them.

    ``sql``: the charm's SQL door to the node as the superuser.
    """
    [(started,)] = sql.query("SELECT CURRENT_TIMESTAMP")
    client = run_calls()
    rows = sql.query(
        "SELECT stmt, started, ended FROM sys.jobs_log "
        "WHERE started >= ? AND username = ? ORDER BY started",
        [started, user],
    )
    by_kind: dict[str, dict[str, float]] = {}
    for stmt, begun, ended in rows:
        entry = by_kind.setdefault(statement_kind(str(stmt)), {"count": 0.0, "ms": 0.0})
        entry["count"] += 1
        entry["ms"] += float(ended) - float(begun)
    return {
        "calls": calls,
        "statements_per_call": len(rows) / calls,
        "server_ms_per_call": sum(e["ms"] for e in by_kind.values()) / calls,
        "by_kind": {
            kind: {"per_call": e["count"] / calls, "ms_per_call": e["ms"] / calls}
            for kind, e in sorted(by_kind.items(), key=lambda item: -item[1]["ms"])
        },
        "client": client,
    }
