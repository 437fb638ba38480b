"""Keeps every process of the MLflow server inside its Pebble service.

This file runs in the workload container (the charm pushes it there), not in
the charm, and needs only the standard library.

Why: ``mlflow server`` does not exec the web server. It forks uvicorn (which
forks its workers, and with job execution huey consumers) and waits. Pebble
watches only the process it started and signals its process group on stop,
but when that process dies alone (``kill -9``, the OOM killer) Pebble restarts
the service without ending the rest of the group: the old uvicorn keeps the
port, serving outside Pebble's control, and every restart fails on "address
already in use" (measured with a real Pebble).

So the service's command is ``python3 supervise.py STATE_FILE [--env-file FILE] -- mlflow ...``:

1. Whatever is left of a previous run whose supervisor died (its process
   group, recorded in ``STATE_FILE``) is ended first.
2. The supervisor records its own process group and runs the server.
3. When the server's main process exits, for whatever reason, the rest of the
   group is ended and the supervisor exits: Pebble restarts all of it.
4. The server's output goes through the supervisor to Pebble's log. Pebble
   notices a dead service only once nothing holds the service's output pipe
   (or after 0.9 x kill-delay: measured 27 s with 30 s); if the server's
   processes held that pipe themselves, a ``kill -9`` of the supervisor would
   leave them serving that long.

With ``--env-file`` the server gets the variables of FILE (``envfile``'s
format, pushed next to this file), over the ones it inherits: the store's and
the bucket's credentials reach it without being in its command line or in
Pebble's plan.

With ``--ready-url URL --ready-notice KEY --pebble PEBBLE``, once the server
answers ``URL`` with 200 (polled every second while it runs) the supervisor
records the Pebble custom notice ``KEY`` (``PEBBLE notify KEY``): Juju wakes
the charm with a ``pebble-custom-notice`` event, so no hook has to wait for
the server to come up. The poll checks liveness on loopback only and does not
verify the server's certificate.

``STATE_FILE`` belongs in the container's own filesystem (``/tmp``), which a
new container starts without: a recorded group never outlives its container.
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO

GRACE_SECONDS = 10.0
READY_POLL_SECONDS = 1.0
OPTIONS = ("--env-file", "--ready-url", "--ready-notice", "--pebble")
USAGE = (
    "usage: supervise.py STATE_FILE [--env-file FILE] "
    "[--ready-url URL --ready-notice KEY --pebble PEBBLE] -- COMMAND..."
)


def pgid_from_stat(stat: str) -> int:
    """The process group in a ``/proc/PID/stat`` line (the name may hold spaces)."""
    return int(stat.rsplit(")", 1)[1].split()[2])


def group_members(pgid: int, proc: Path = Path("/proc")) -> list[int]:
    """Live processes of group ``pgid``, the caller excluded."""
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if pgid_from_stat((entry / "stat").read_text()) == pgid:
                members.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return members


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def end_group(pgid: int, grace: float = GRACE_SECONDS) -> str:
    """SIGTERM every member of ``pgid`` but the caller, SIGKILL what is left after ``grace``.

    Returns what it did, for the service's log.
    """
    started = time.monotonic()
    members = group_members(pgid)
    _signal_all(members, signal.SIGTERM)
    deadline = started + grace
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    stubborn = group_members(pgid)
    _signal_all(stubborn, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return f"ended {len(members)} process(es) in {time.monotonic() - started:.1f} s" + (
        f", {len(stubborn)} of them with SIGKILL" if stubborn else ""
    )


def previous_group(state_file: Path, own_pgid: int) -> int | None:
    """The group a dead supervisor left behind, if any of it may still run.

    None when nothing was recorded, when it is the caller's own group, or when
    a live process has that id (then the id was reused: not ours to end).
    """
    try:
        pgid = int(state_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if pgid == own_pgid or Path(f"/proc/{pgid}").exists():
        return None
    return pgid


def relay(source: IO[bytes]) -> None:
    """Copy the server's output to the supervisor's own (Pebble's log) until it ends."""
    out = sys.stdout.buffer
    try:
        while chunk := os.read(source.fileno(), 65536):
            out.write(chunk)
            out.flush()
    except (OSError, ValueError):
        return


def parse(argv: list[str]) -> tuple[Path, dict[str, str], list[str]] | None:
    """``STATE_FILE [OPTION VALUE]... -- COMMAND...``: (state file, options, command), or None."""
    if not argv:
        return None
    state, rest = argv[0], argv[1:]
    options: dict[str, str] = {}
    while rest and rest[0] != "--":
        if rest[0] not in OPTIONS or len(rest) < 2 or rest[0] in options:
            return None
        options[rest[0]] = rest[1]
        rest = rest[2:]
    ready = [name for name in OPTIONS[1:] if name in options]
    if len(rest) < 2 or ready not in ([], list(OPTIONS[1:])):
        return None
    return Path(state), options, rest[1:]


def _answers(url: str) -> bool:
    # Liveness on loopback: the certificate is the server's own, not checked here.
    context = ssl._create_unverified_context()  # noqa: S323
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:  # noqa: S310
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def notify_when_ready(server: subprocess.Popen[bytes], url: str, notice: str, pebble: str) -> bool:
    """Once ``url`` answers 200 while ``server`` runs: record ``notice``; True if recorded."""
    while not _answers(url):
        if server.poll() is not None:
            return False
        time.sleep(READY_POLL_SECONDS)
    try:
        done = subprocess.run(  # noqa: S603 (the service's own options)
            [pebble, "notify", notice], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        print(f"supervise: could not record {notice}: {err}", file=sys.stderr)
        return False
    if done.returncode != 0:
        print(f"supervise: could not record {notice}: {done.stderr.strip()}", file=sys.stderr)
        return False
    return True


def main(argv: list[str]) -> int:
    """Run ``argv`` (``STATE_FILE [OPTION VALUE]... -- COMMAND...``) as above; the exit code."""
    parsed = parse(argv)
    if parsed is None:
        print(USAGE, file=sys.stderr)
        return 2
    state_file, options, command = parsed
    env = dict(os.environ)
    if "--env-file" in options:
        from envfile import read

        env.update(read(options["--env-file"]))
    # Pebble already made this process its group's leader; this is for a run by
    # hand. A session leader cannot (PermissionError) and leads its group anyway.
    with contextlib.suppress(PermissionError):
        os.setpgid(0, 0)
    own = os.getpgid(0)

    left = previous_group(state_file, own)
    if left is not None:
        print(f"supervise: a previous run left its group: {end_group(left)}", file=sys.stderr)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(f"{own}\n")

    stopping = False
    server = subprocess.Popen(  # noqa: S603 (the service's own command line)
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    assert server.stdout is not None
    relaying = threading.Thread(target=relay, args=(server.stdout,), daemon=True)
    relaying.start()
    if "--ready-url" in options:
        threading.Thread(
            target=notify_when_ready,
            args=(server, options["--ready-url"], options["--ready-notice"], options["--pebble"]),
            daemon=True,
        ).start()

    def on_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        # Pebble signals the whole group; a signal sent to this process alone
        # (by hand) reaches the server this way.
        if server.poll() is None:
            server.send_signal(signum)

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    code = server.wait()
    ended = end_group(own)
    relaying.join(timeout=2)  # the rest of the output, now that every writer is gone
    if not stopping:
        print(f"supervise: the server's main process exited ({code}); {ended}", file=sys.stderr)
    state_file.unlink(missing_ok=True)
    # An unexpected exit is a failure even when the CLI said 0 (it does, when
    # its uvicorn dies): Pebble's on-failure policy restarts it.
    return 0 if stopping else (code if code > 0 else 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
