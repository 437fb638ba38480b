"""Scenario fixtures for the cratedb charm.

The SQL boundary is ``sql.CrateSQL``: tests replace it with ``FakeCrate``,
which records every statement and answers the charm's reads. The container's
commands (memory limit, max_map_count, chown) are ``testing.Exec``.
"""

from __future__ import annotations

import pytest
from ops import testing

import charm
import scale
from charm import CrateDBCharm
from helpers import (
    FakeCrate,
)


@pytest.fixture(autouse=True)
def crate(monkeypatch: pytest.MonkeyPatch) -> FakeCrate:
    fake = FakeCrate()

    def connect(https: bool = False) -> FakeCrate:
        fake.https = https
        return fake

    monkeypatch.setattr(charm, "CrateSQL", connect)
    monkeypatch.setattr(charm, "DRAIN_TIMEOUT", 2.0)
    monkeypatch.setattr(scale.time, "sleep", lambda seconds: None)
    return fake


@pytest.fixture
def ctx() -> testing.Context[CrateDBCharm]:
    return testing.Context(CrateDBCharm)
