"""The env files: what the charm writes is what every reader gets, hostile values included.

The readers are ``envfile.parse`` (``mlflow_gc.py``, ``metrics.py``) and
``supervise.py --env-file``, which hands the server its environment; both run
here for real (stdlib only).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from in_container import envfile

SRC = Path(__file__).parents[2] / "src" / "in_container"

HOSTILE = {
    "QUOTES": "it's \"quoted\" 'twice'",
    "BACKSLASH": "C:\\path\\'\\\\",
    "DOLLAR": "${HOME} $HOME $(id) `id`",
    "HASH": "a # not a comment",
    "URLISH": "postgresql+psycopg2://u:p%40ss@db:5432/mlflow?sslmode=require&x=1",
    "UNICODE": "pässwörd ✓ 密码",
    "EQUALS": "a=b=c",
    "EMPTY": "",
    "SPACES": "  leading and trailing  ",
}

printable = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029"),
    max_size=80,
)
keys = st.from_regex(r"[A-Z_][A-Z0-9_]{0,20}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, printable, max_size=6))
def test_every_printable_value_reads_back_exactly(env: dict[str, str]):
    assert envfile.parse(envfile.render(env)) == env


@pytest.mark.parametrize(
    "bad", ["x\nHTTP_PROXY=http://attacker:3128", "x\r", "nul\x00", "\x1b[2J"]
)
def test_a_control_character_is_refused_naming_only_the_key(bad: str):
    with pytest.raises(
        ValueError, match="control character in the value of AWS_SECRET_ACCESS_KEY"
    ) as err:
        envfile.render({"AWS_SECRET_ACCESS_KEY": bad})
    assert bad not in str(err.value)


@pytest.mark.parametrize("key", ["lower", "1ST", "A-B", "A B", "A\nB", ""])
def test_a_key_that_is_not_a_shell_name_is_refused(key: str):
    with pytest.raises(ValueError, match="refusing env variable name"):
        envfile.render({key: "x"})


def test_a_line_the_writer_never_writes_is_refused():
    with pytest.raises(ValueError, match="line 2 is not"):
        envfile.parse("A='x'\nHTTP_PROXY=http://attacker:3128\n")


def test_supervise_gives_the_server_the_file_values_as_written(tmp_path: Path):
    (tmp_path / "server.env").write_text(envfile.render(HOSTILE))
    for script in ("supervise.py", "envfile.py"):
        (tmp_path / script).write_text((SRC / script).read_text())
    dump = "import json, os, sys; json.dump(dict(os.environ), sys.stdout)"

    done = subprocess.run(
        [
            sys.executable,
            str(tmp_path / "supervise.py"),
            str(tmp_path / "pgid"),
            "--env-file",
            str(tmp_path / "server.env"),
            "--",
            sys.executable,
            "-c",
            dump,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"HOME": "/nonexistent", "DOLLAR": "inherited", "PATH": "/usr/bin:/bin"},
    )

    # supervise exits 1 when the server ends by itself; the output is what matters.
    seen = json.loads(done.stdout)
    assert {k: seen[k] for k in HOSTILE} == HOSTILE
    assert "HTTP_PROXY" not in seen
