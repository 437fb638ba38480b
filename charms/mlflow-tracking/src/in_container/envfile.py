"""The one format of the env files the charm writes, and the one reader of them.

This file runs in the charm and in the workload container (the charm pushes
it next to ``supervise.py``, ``mlflow_gc.py`` and ``metrics.py``, which
import it); it needs only the standard library.

A file is ``KEY='value'`` lines. Inside the quotes a backslash and a quote
are escaped with a backslash; nothing else is special: no ``$`` expansion
(python-dotenv, which ``mlflow --env-file`` uses, expands ``${...}`` even in
single quotes, so the server no longer reads these files with it), no
comments, no multi-line values. ``render`` refuses what ``parse`` could not
give back: a key that is not a shell name, a value with a control character
(a newline in a value from a relation would otherwise add a variable of the
sender's choosing, such as ``HTTP_PROXY``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_KEY = re.compile(r"[A-Z_][A-Z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LINE = re.compile(r"([A-Z_][A-Z0-9_]*)='((?:\\[\\']|[^\\'])*)'")


def render(env: Mapping[str, str]) -> str:
    """The file for ``env``; ValueError naming the key when a key or value cannot be written."""
    lines = []
    for key, value in sorted(env.items()):
        if not _KEY.fullmatch(key):
            raise ValueError(f"refusing env variable name {key[:40]!r}")
        if _CONTROL.search(value):
            raise ValueError(f"refusing a control character in the value of {key}")
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        lines.append(f"{key}='{escaped}'\n")
    return "".join(lines)


def parse(text: str) -> dict[str, str]:
    """The variables of a file ``render`` wrote; ValueError on any other line."""
    env: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line:
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise ValueError(f"line {number} is not KEY='value'")
        env[match.group(1)] = re.sub(r"\\([\\'])", r"\1", match.group(2))
    return env


def read(path: str) -> dict[str, str]:
    """``parse`` of the file at ``path``."""
    with open(path, encoding="utf-8") as file:
        return parse(file.read())
