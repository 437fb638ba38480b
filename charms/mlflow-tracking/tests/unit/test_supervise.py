"""supervise.py, the service's command: real processes, no stubs (stdlib only, ~2 s)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from in_container.supervise import parse, pgid_from_stat, previous_group

SUPERVISE = Path(__file__).parents[2] / "src" / "in_container" / "supervise.py"


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_gone(pids: list[int], timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _supervise(state: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SUPERVISE), str(state), "--", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        process_group=0,  # as Pebble starts a service
    )


def test_reads_the_group_from_a_stat_line_whose_name_has_spaces_and_parens():
    assert pgid_from_stat("4242 (my (odd) name) S 1 4240 4240 0 -1") == 4240


def test_a_group_whose_id_is_a_live_process_is_never_taken_for_a_dead_run(tmp_path: Path):
    state = tmp_path / "pgid"
    state.write_text(f"{os.getpid()}\n")
    assert previous_group(state, own_pgid=-1) is None
    state.write_text("not a number")
    assert previous_group(state, own_pgid=-1) is None
    assert previous_group(tmp_path / "missing", own_pgid=-1) is None


def test_when_the_server_exits_the_rest_of_its_group_is_ended_and_the_exit_is_a_failure(
    tmp_path: Path,
):
    pids = tmp_path / "pids"
    # The "server" leaves two children behind, as mlflow's CLI leaves uvicorn.
    done = _supervise(tmp_path / "pgid", "sh", "-c", f"sleep 300 & echo $! >{pids}; exit 0")

    left = [int(p) for p in pids.read_text().split()]
    assert done.returncode == 1
    assert _wait_gone(left) == []
    assert "the server's main process exited (0); ended 1 process(es)" in done.stderr
    assert not (tmp_path / "pgid").exists()


def test_the_servers_output_reaches_the_supervisors_own_and_its_exit_code_is_kept(
    tmp_path: Path,
):
    done = _supervise(tmp_path / "pgid", "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7")

    assert done.returncode == 7
    assert done.stdout.splitlines() == ["to-stdout", "to-stderr"]


def test_a_group_left_by_a_supervisor_that_died_is_ended_before_the_server_starts(
    tmp_path: Path,
):
    # A dead supervisor's group: its leader gone, its children still running.
    leader = subprocess.Popen(
        ["sh", "-c", "sleep 300 >/dev/null & a=$!; sleep 300 >/dev/null & echo $a $!; exit 0"],
        stdout=subprocess.PIPE,
        text=True,
        process_group=0,
    )
    out, _ = leader.communicate(timeout=10)
    orphans = [int(pid) for pid in out.split()]
    state = tmp_path / "pgid"
    state.write_text(f"{leader.pid}\n")
    assert all(_alive(p) for p in orphans)

    done = _supervise(state, "true")

    assert "a previous run left its group: ended 2 process(es)" in done.stderr
    assert _wait_gone(orphans) == []


@pytest.mark.parametrize("argv", [[], ["state"], ["state", "true"]])
def test_a_command_line_without_state_file_and_separator_is_refused(argv: list[str]):
    done = subprocess.run(
        [sys.executable, str(SUPERVISE), *argv], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "usage: supervise.py STATE_FILE [--env-file FILE] [--ready-url URL" in done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["state", "--ready-url", "http://127.0.0.1:1/health", "--", "true"],  # no notice
        ["state", "--env-file", "a", "--env-file", "b", "--", "true"],  # twice
        ["state", "--unknown", "x", "--", "true"],
    ],
)
def test_ready_options_come_whole_and_once(argv: list[str]):
    assert parse(argv) is None


def _pebble_stand_in(tmp_path: Path) -> tuple[Path, Path]:
    """An executable named like Pebble's CLI that records its argv (the one stub here)."""
    record = tmp_path / "notified"
    pebble = tmp_path / "pebble"
    pebble.write_text(f'#!/bin/sh\necho "$@" >> {record}\n')
    pebble.chmod(0o755)
    return pebble, record


def _supervise_until_ready(
    tmp_path: Path, server: list[str], url: str, stop_after: float
) -> tuple[subprocess.CompletedProcess[str], Path]:
    pebble, record = _pebble_stand_in(tmp_path)
    argv = [
        sys.executable,
        str(SUPERVISE),
        str(tmp_path / "pgid"),
        "--ready-url",
        url,
        "--ready-notice",
        "mlflow-tracking.charm/server-ready",
        "--pebble",
        str(pebble),
        "--",
        "timeout",
        str(stop_after),
        *server,
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, check=False, process_group=0
    )
    return done, record


def test_once_the_server_answers_the_supervisor_records_the_ready_notice_once(tmp_path: Path):
    from stack.pebble import free_port

    port = free_port()
    # A server that takes a moment to listen, as MLflow does.
    server = ["sh", "-c", f"sleep 1; exec {sys.executable} -m http.server -b 127.0.0.1 {port}"]

    done, record = _supervise_until_ready(
        tmp_path, server, f"http://127.0.0.1:{port}/", stop_after=6
    )

    assert record.read_text().splitlines() == ["notify mlflow-tracking.charm/server-ready"]
    assert done.returncode != 2, done.stderr


def test_a_server_that_never_answers_records_no_notice(tmp_path: Path):
    from stack.pebble import free_port

    done, record = _supervise_until_ready(
        tmp_path, ["sleep", "10"], f"http://127.0.0.1:{free_port()}/health", stop_after=3
    )

    assert not record.exists()
    assert "usage" not in done.stderr
