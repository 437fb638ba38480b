"""When scheduled backups are due and which ones retention lets go. Pure; standard library only.

The charm reads ``backup-schedule`` and ``backup-retention`` with these
parsers (a bad value is refused at config time), and the runner pushed into
the container (``backup_runner.py``) decides with the same functions, so the
two never disagree.

``backup-schedule``:
  - ``""``: no scheduled backups;
  - an interval, ``30m``, ``6h``, ``1d`` (at least one minute): a snapshot when
    none was started within the interval;
  - a cron expression of five fields, ``minute hour day-of-month month
    day-of-week`` in UTC (``*``, ``a``, ``a-b``, ``*/n``, ``a-b/n`` and lists;
    day-of-week 0-7, 0 and 7 are Sunday; when both day fields are restricted a
    day matching either runs, as in cron): a snapshot at each matching minute,
    one catch-up when the last one was missed.

``backup-retention``:
  - ``""``: keep every snapshot;
  - a count, ``7``: keep the newest seven successful scheduled snapshots;
  - an age, ``36h``, ``30d``: drop scheduled snapshots older than that.
  Only snapshots the schedule made (named ``scheduled-...``) are ever pruned,
  never the newest successful one, and never one still in progress.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PREFIX = "scheduled-"
NAME_FORMAT = PREFIX + "%Y%m%d-%H%M%S"
# After a failed attempt, how long before the next one (a broken S3 is not hammered).
RETRY_AFTER = timedelta(minutes=5)

_INTERVAL = re.compile(r"([1-9][0-9]{0,4})([mhd])")
_COUNT = re.compile(r"[1-9][0-9]{0,3}")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
# (name, low, high) of the five cron fields.
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12))
_DOW = ("day-of-week", 0, 7)


@dataclass(frozen=True)
class Cron:
    """A five-field cron expression, expanded to the values each field allows."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 Monday .. 6 Sunday (Python's weekday())
    any_day: bool  # day-of-month is "*"
    any_weekday: bool  # day-of-week is "*"

    def day_matches(self, day: datetime) -> bool:
        """True when cron would run on ``day`` (either day field, when both are set)."""
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = day.weekday() in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week


@dataclass(frozen=True)
class Schedule:
    """A parsed ``backup-schedule``: an interval or a cron expression."""

    text: str
    interval: timedelta | None = None
    cron: Cron | None = None


@dataclass(frozen=True)
class Retention:
    """A parsed ``backup-retention``: a count, an age, or neither (keep every snapshot)."""

    text: str = ""
    count: int | None = None
    age: timedelta | None = None


@dataclass(frozen=True)
class Snapshot:
    """One snapshot as ``sys.snapshots`` lists it."""

    name: str
    state: str  # SUCCESS, IN_PROGRESS, PARTIAL, FAILED
    started: datetime

    @property
    def scheduled(self) -> bool:
        """True for the schedule's own snapshots (the only ones retention prunes)."""
        return self.name.startswith(PREFIX)


def parse_schedule(text: str) -> Schedule | None:
    """``backup-schedule`` parsed; None when empty; ValueError saying what is wrong."""
    text = text.strip()
    if not text:
        return None
    if match := _INTERVAL.fullmatch(text):
        return Schedule(text, interval=int(match.group(1)) * _UNITS[match.group(2)])
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            "must be empty, an interval such as 6h, 30m or 1d, "
            "or five cron fields such as '0 3 * * *' (UTC)"
        )
    minutes, hours, days, months = (
        _cron_field(value, *spec) for value, spec in zip(fields, _FIELDS, strict=False)
    )
    weekdays = {(d - 1) % 7 for d in _cron_field(fields[4], *_DOW)}  # cron 0/7 Sun -> 6
    return Schedule(
        text,
        cron=Cron(
            minutes=frozenset(minutes),
            hours=frozenset(hours),
            days=frozenset(days),
            months=frozenset(months),
            weekdays=frozenset(weekdays),
            any_day=fields[2] == "*",
            any_weekday=fields[4] == "*",
        ),
    )


def _cron_field(value: str, name: str, low: int, high: int) -> set[int]:
    allowed: set[int] = set()
    for part in value.split(","):
        spec, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if spec == "*":
                start, end = low, high
            elif "-" in spec:
                first, last = spec.split("-", 1)
                start, end = int(first), int(last)
            else:
                start = end = int(spec)
                if step_text:
                    end = high
        except ValueError:
            raise ValueError(f"cron {name} field {value!r} is not understood") from None
        if step < 1 or not low <= start <= end <= high:
            raise ValueError(f"cron {name} field {value!r} must stay within {low}-{high}")
        allowed.update(range(start, end + 1, step))
    return allowed


def parse_retention(text: str) -> Retention:
    """``backup-retention`` parsed; ValueError saying what is wrong."""
    text = text.strip()
    if not text:
        return Retention()
    if _COUNT.fullmatch(text):
        return Retention(text, count=int(text))
    match = _INTERVAL.fullmatch(text)
    if match and match.group(2) != "m":
        return Retention(text, age=int(match.group(1)) * _UNITS[match.group(2)])
    raise ValueError(
        "must be empty (keep every snapshot), a count such as 7, or an age such as 36h or 30d"
    )


def last_slot(schedule: Schedule, now: datetime) -> datetime | None:
    """For cron: the latest matching minute at or before ``now`` (None: none in a year)."""
    cron = schedule.cron
    if cron is None:
        return None
    now = now.astimezone(UTC).replace(second=0, microsecond=0)
    for back in range(0, 367):
        day = now - timedelta(days=back)
        if not cron.day_matches(day):
            continue
        for hour in sorted(cron.hours, reverse=True):
            for minute in sorted(cron.minutes, reverse=True):
                slot = day.replace(hour=hour, minute=minute)
                if slot <= now:
                    return slot
    return None


def is_due(
    schedule: Schedule,
    now: datetime,
    snapshots: Iterable[Snapshot],
    last_failure: datetime | None = None,
) -> bool:
    """True when the schedule wants a snapshot now.

    Decided from what the cluster holds (``sys.snapshots``), not from memory:
    a runner that restarts, or a new leader's, takes up where the last one
    left off, and two runners do not snapshot twice. A snapshot in progress,
    or a failed attempt less than ``RETRY_AFTER`` ago, means not yet; a failed
    attempt is otherwise retried until one succeeds.
    """
    # A failed or partial snapshot is an attempt, not a backup.
    mine = [s for s in snapshots if s.scheduled and s.state in ("SUCCESS", "IN_PROGRESS")]
    if any(s.state == "IN_PROGRESS" for s in mine):
        return False
    if last_failure is not None and now - last_failure < RETRY_AFTER:
        return False
    latest = max((s.started for s in mine), default=None)
    if schedule.interval is not None:
        return latest is None or now - latest >= schedule.interval
    slot = last_slot(schedule, now)
    return slot is not None and (latest is None or latest < slot)


def to_prune(retention: Retention, now: datetime, snapshots: Iterable[Snapshot]) -> list[str]:
    """The scheduled snapshots retention lets go, oldest first."""
    if retention.count is None and retention.age is None:
        return []
    mine = sorted((s for s in snapshots if s.scheduled), key=lambda s: s.started)
    done = [s for s in mine if s.state != "IN_PROGRESS"]
    successes = [s for s in done if s.state == "SUCCESS"]
    if not successes:
        return []  # nothing good to keep yet: keep what there is
    newest = successes[-1]
    if retention.count is not None:
        kept = {s.name for s in successes[-retention.count :]}
        # Failed or partial attempts older than the newest success have no use.
        return [s.name for s in done if s.name not in kept and s.started < newest.started]
    assert retention.age is not None
    cutoff = now - retention.age
    return [s.name for s in done if s.started < cutoff and s.name != newest.name]


def snapshot_name(now: datetime) -> str:
    """The name of a scheduled snapshot started at ``now``."""
    return now.astimezone(UTC).strftime(NAME_FORMAT)
