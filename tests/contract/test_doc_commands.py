"""Every command the documents give is run by a test, or checked against what it names.

- ``juju`` commands cannot run here (no controller): each is parsed and what it
  names is checked against the charms' ``charmcraft.yaml`` (endpoints, options
  and their values through the typed config, actions and their parameters,
  resources, storage) and the repository (a bundle or charm path).
- Every other command line of a ``bash`` block is listed in ``RUN_BY`` with the
  test or step that runs it; the lint commands a contributor copies are run
  here, literally.

A command added to a document without a place that runs it fails
``test_every_other_command_is_run_by_a_named_test_or_step``.
"""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stack.charm_loader import charm_modules
from tests.contract.test_bundle_and_docs import CHARMS, FENCE, REPO, _documents, charmcraft

# Juju's own subcommands the documents may use.
JUJU_SUBCOMMANDS = {
    "add-model",
    "add-unit",
    "config",
    "consume",
    "debug-log",
    "deploy",
    "integrate",
    "offer",
    "refresh",
    "relate",
    "remove-relation",
    "resolve",
    "run",
    "scale-application",
    "show-unit",
    "status",
    "trust",
}

# Non-juju command lines of the documents' bash blocks -> what runs them.
# "here" means test_the_lint_commands_the_documents_give_pass runs it literally.
RUN_BY: dict[str, str] = {
    "make pack": "not run here: charmcraft refuses Ubuntu bases on Debian (docs/testing.md)",
    "make test": "Makefile: `bash scripts/test.sh`, which .ci/run calls",
    "bash scripts/test.sh": ".ci/run (the test command itself)",
    "bash scripts/try.sh": "tests/workload/test_examples.py::test_try_it_command_runs_an_example_"
    "and_stops_cleanly (with --run)",
    "source scripts/setup.sh": "scripts/test.sh (its first step)",
    "cd charms/seaweedfs && ../../.venv/bin/python -m pytest tests/unit": "scripts/test.sh "
    "(each charm's unit tests, the same pytest in the same folder)",
    ".venv/bin/python -m pytest tests/contract": "scripts/test.sh (the contract step)",
    ".venv/bin/python -m pytest tests/workload/test_seaweedfs.py": "scripts/test.sh "
    "(the workload step runs this file among the others)",
    ".venv/bin/ruff format": "here (with --check: the test command never rewrites files)",
    ".venv/bin/ruff check": "here",
    ".venv/bin/codespell": "here",
    ".venv/bin/mypy tests stack bench scripts": "scripts/test.sh (lint: mypy)",
    "cd charms/seaweedfs && ../../.venv/bin/mypy src tests": "scripts/test.sh (lint: mypy, "
    "in each charm)",
    "cd charms/cratedb && ../../.venv/bin/mypy src tests": "scripts/test.sh (lint: mypy, "
    "in each charm)",
    ".venv/bin/python -m bench": "not run by the test command (44 min); "
    "tests/contract/test_bench_profile.py runs its report code",
    # docs/cratedb-for-tests.md: the test command with both CrateDB builds (the
    # reader's own; no recipe for them is kept here).
    "CRATEDB_HOME=/path/to/crate-6.4.0 CRATEDB_HOME_NEXT=/path/to/crate-6.4.1 bash "
    "scripts/test.sh": ".ci/run without CRATEDB_HOME; the CrateDB suites skip naming it",
    # A shell loop around juju commands (docs/observability.md): its body is checked below.
    "for app in mlflow-tracking seaweedfs cratedb; do": "the juju commands it holds are checked",
    "done": "the juju commands it holds are checked",
}
LINT_HERE = (".venv/bin/ruff format", ".venv/bin/ruff check", ".venv/bin/codespell")


def _bash_lines(document: Path) -> list[str]:
    """The command lines of the document's bash blocks (continuations joined)."""
    lines: list[str] = []
    for block in FENCE.findall(document.read_text()):
        head, _, body = block.partition("\n")
        if head.strip("`").strip() not in {"bash", "sh", "shell", "console"}:
            continue
        for line in body.replace("\\\n", " ").splitlines():
            command = line.split(" #", 1)[0].strip()
            if command and not command.startswith(("#", "```")):
                lines.append(command)
    return lines


def _juju_commands(document: Path) -> list[str]:
    """Every ``juju ...`` command: in bash blocks and in inline code spans."""
    text = document.read_text()
    found = [line for line in _bash_lines(document) if "juju " in line]
    prose = FENCE.sub("", text)
    found += [span for span in re.findall(r"`([^`\n]*\bjuju [^`\n]*)`", prose)]
    commands = []
    for line in found:
        for part in re.split(r"&&|;", line):
            part = part.strip()
            if part.startswith("juju "):
                commands.append(part)
    return commands


@dataclass
class JujuCommand:
    """One juju command, its placeholders (``<x>``, ``...``, ``[...]``) left out."""

    subcommand: str
    args: list[str]

    @classmethod
    def parse(cls, command: str) -> JujuCommand:
        # Optional parts in brackets and "..." are the reader's to fill in.
        command = re.sub(r"\[[^\]]*\]", " ", command)
        words = [w for w in shlex.split(command.replace("$app", "APP"))[1:]]
        return cls(words[0], [w for w in words[1:] if w != "..."])


def _apps(name: str) -> list[str]:
    """The charms of this repository a name in a command stands for."""
    if name == "APP":
        return list(CHARMS)
    return [name] if name in CHARMS else []


def _problems(command: str) -> list[str]:
    """What the command names that the charms do not have."""
    cmd = JujuCommand.parse(command)
    problems: list[str] = []
    if cmd.subcommand not in JUJU_SUBCOMMANDS:
        return [f"`{command}`: juju has no subcommand {cmd.subcommand!r} here"]
    if cmd.subcommand in {"relate", "integrate", "remove-relation"}:
        for side in cmd.args[:2]:
            app, _, endpoint = side.partition(":")
            for charm in _apps(app):
                if endpoint and endpoint not in _endpoints(charm):
                    problems.append(f"`{command}`: {charm} has no endpoint {endpoint!r}")
    elif cmd.subcommand == "config" and cmd.args:
        for charm in _apps(cmd.args[0]):
            problems += _config_problems(command, charm, cmd.args[1:])
    elif cmd.subcommand == "run" and cmd.args:
        unit, *rest = cmd.args
        for charm in _apps(unit.split("/")[0]):
            problems += _action_problems(command, charm, rest)
    elif cmd.subcommand in {"deploy", "refresh"}:
        problems += _deploy_problems(command, cmd.args)
    return problems


def _endpoints(charm: str) -> set[str]:
    spec = charmcraft(charm)
    return {name for role in ("provides", "requires", "peers") for name in spec.get(role) or {}}


def _config_problems(command: str, charm: str, args: list[str]) -> list[str]:
    options = charmcraft(charm)["config"]["options"]
    given = dict(arg.split("=", 1) for arg in args if "=" in arg)
    unknown = [key for key in given if key not in options]
    if unknown:
        return [f"`{command}`: {charm} has no option {unknown}"]
    typed = charm_modules(charm, "config").config.CharmConfig
    values = {key: _juju_value(options[key]["type"], value) for key, value in given.items()}
    try:
        typed.from_mapping(values)
    except Exception as err:  # the typed config's refusal, whatever its class
        return [f"`{command}`: {charm} refuses it: {err}"]
    return []


def _juju_value(kind: str, value: str) -> Any:
    """The value Juju would hand the charm for ``key=value`` of an option of this type."""
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "boolean":
        return value == "true"
    return value


def _action_problems(command: str, charm: str, args: list[str]) -> list[str]:
    actions = charmcraft(charm).get("actions") or {}
    if not args:
        return [f"`{command}`: no action named"]
    action, *params = args
    if action not in actions:
        return [f"`{command}`: {charm} has no action {action!r}"]
    known = set((actions[action] or {}).get("params") or {})
    unknown = [p.split("=", 1)[0] for p in params if "=" in p and p.split("=", 1)[0] not in known]
    return [f"`{command}`: {charm}'s {action} has no parameter {unknown}"] if unknown else []


def _deploy_problems(command: str, args: list[str]) -> list[str]:
    problems = []
    paths = [a for a in args if a.startswith("./")]
    for path in paths:
        if path.endswith(".yaml") and not (REPO / path).is_file():
            problems.append(f"`{command}`: no {path} in the repository")
    charm = next((Path(p).parent.name for p in paths if p.endswith(".charm")), None)
    if charm is None and args and args[0] in CHARMS:
        charm = args[0]  # juju refresh <app> ...
    if charm is None or charm not in CHARMS:
        return problems
    if any(p.endswith(".charm") for p in paths):
        wanted = f"./charms/{charm}/{charm}_amd64.charm"
        problems += [f"`{command}`: `make pack` builds {wanted}" for p in paths if p != wanted]
    spec = charmcraft(charm)
    flags = list(itertools.pairwise(args))
    for flag, value in flags:
        name = value.split("=", 1)[0]
        if flag == "--resource" and name not in (spec.get("resources") or {}):
            problems.append(f"`{command}`: {charm} has no resource {name!r}")
        if flag == "--storage" and name not in (spec.get("storage") or {}):
            problems.append(f"`{command}`: {charm} has no storage {name!r}")
    return problems


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_juju_command_names_what_the_charms_have(document: Path):
    problems = [p for command in _juju_commands(document) for p in _problems(command)]
    assert not problems, "\n".join(problems)


def test_the_juju_command_check_finds_what_a_charm_lacks():
    # The check can fail: each of these names something no charm has.
    wrong = [
        "juju relate mlflow-tracking:crate cratedb",
        "juju config mlflow-tracking serve-artifact=false",
        "juju config mlflow-tracking gc-interval=soon",
        "juju run cratedb/leader create-backups",
        "juju run cratedb/leader restore-backup table=x",
        "juju deploy ./charms/cratedb/cratedb.charm --resource crate-image=x",
        "juju relation a b",
    ]
    assert [bool(_problems(command)) for command in wrong] == [True] * len(wrong)
    assert _problems("juju config mlflow-tracking gc-interval=0") == []


def test_the_documents_give_juju_commands_to_check():
    counted = sum(len(_juju_commands(document)) for document in _documents())
    assert counted >= 30


def _uncovered(line: str) -> bool:
    return not line.startswith("juju ") and not any(line.startswith(k) for k in RUN_BY)


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_other_command_is_run_by_a_named_test_or_step(document: Path):
    uncovered = [line for line in _bash_lines(document) if _uncovered(line)]
    assert not uncovered, (
        f"{document.relative_to(REPO)}: add each to RUN_BY with what runs it: {uncovered}"
    )


def test_the_lint_commands_the_documents_give_pass():
    # Literally as written (ruff format with --check: a test never rewrites files).
    lines = {
        part.strip()
        for document in _documents()
        for line in _bash_lines(document)
        if line.startswith(LINT_HERE)
        for part in line.split("&&")
    }
    assert len(lines) >= 3
    for line in sorted(lines):
        argv = shlex.split(line)
        if argv[:2] == [".venv/bin/ruff", "format"] and "--check" not in argv:
            argv.insert(2, "--check")
        done = subprocess.run(
            argv, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, f"{line}: {done.stdout}{done.stderr}"
