"""Errors the cratedb charm turns into statuses; CharmError is the root."""

from __future__ import annotations

import ops


class CharmError(Exception):
    """A known condition that stops the reconcile and shows as a status."""

    status_class: type[ops.StatusBase] = ops.BlockedStatus

    @property
    def status(self) -> ops.StatusBase:
        """The status a user sees for this condition."""
        return self.status_class(str(self))


class InvalidConfigError(CharmError):
    """A config option has a value the charm cannot use: a person must fix it."""


class WaitingError(CharmError):
    """Something that resolves by itself: the next event reconciles again."""

    status_class = ops.WaitingStatus


class WorkloadError(CharmError):
    """The workload did not do what it was asked; transient, retried on the next event."""

    status_class = ops.WaitingStatus
