"""Bad command-line input, the way users type it (real `python -m backend` processes): one sentence on stderr,
exit code 2, no traceback, nothing run. Also the long-prompt paths (--prompt-file, standard input) and the
position limits checked before the first model runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _cli(args, env, stdin: bytes | None = None, timeout: int = 300):
    cmd = [os.fsencode(sys.executable), b"-m", b"backend", *(a if isinstance(a, bytes) else a.encode() for a in args)]
    return subprocess.run(cmd, cwd=ROOT, env=env, input=stdin, capture_output=True, timeout=timeout)


@pytest.fixture
def env(tmp_path, monkeypatch):
    (tmp_path / "long.txt").write_text("word " * 3000)  # 3,000 fake tokens: over the fake transformer's 2,048
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9".encode("latin-1"))
    values = {"SSM_ARENA_DB": str(tmp_path / "a.duckdb"), "SSM_ARENA_DATA": str(tmp_path / "data"),
              "SSM_ARENA_FAKE": "1", "HF_HUB_OFFLINE": "1", "USE_HUB_KERNELS": "0"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return {**os.environ, **values, "ROOT": str(tmp_path)}


NOT_UTF8 = os.fsdecode(b"caf\xe9 au lait")  # what Python makes of non-UTF-8 argv bytes (lone surrogates)

CASES = [
    (["generate", "--prompt", NOT_UTF8], "contains bytes that are not UTF-8 text"),
    (["rag", "search", "notes", "-q", NOT_UTF8], "contains bytes that are not UTF-8 text"),
    (["generate", "--models", ",", "--prompt", "hi"], "names no model"),
    (["generate", "--models", " , ,", "--prompt", "hi"], "names no model"),
    (["generate", "--models", "toy-mamba,toy-mamba", "--prompt", "hi"], "more than once"),
    (["generate", "--models", "toy-mamba,toy-transformer", "--prompt-file", "{ROOT}/long.txt", "--no-record"],
     "too long for 1 of the models, so none was run: 'toy-transformer' is 3000 tokens"),
    (["generate", "--prompt-file", "{ROOT}/latin1.txt"], "is not UTF-8 text"),
    (["generate", "--prompt-file", "{ROOT}/missing.txt"], "cannot be read"),
    (["generate", "--prompt-file", "{ROOT}"], "is a folder"),
    (["import-results", "{ROOT}/missing.jsonl"], "There is no results file"),
    (["import-results", "{ROOT}/missing-folder"], "There is no results folder or file"),
    (["rag", "search", "notes", "-q", "x", "--k", "0"], "--k must be at least 1"),
    (["rag", "measure", "--ks", "1,x"], "--ks must be comma-separated whole numbers"),
    (["rag", "ingest", "notes", "{ROOT}/missing.md"], "is not a file; nothing was added"),
    (["rag", "jobs", "--cancel", "no-such-job"], "There is no upload job"),
]


def _check(rc: int, out: str, err: str, message: str) -> None:
    assert rc == 2, (rc, err[-2000:])
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], err[-2000:]
    assert errors[0].rstrip().endswith("."), errors[0]  # a sentence
    assert "===" not in out  # no model ran


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_gets_one_sentence_and_exit_2(env, capsys, args, message):
    """In this process through the CLI's own entry point (a process per case costs seconds of imports)."""
    from backend.cli import main

    rc = main([a.replace("{ROOT}", env["ROOT"]) for a in args])
    out, err = capsys.readouterr()
    _check(rc, out, err, message)


def test_non_utf8_bytes_on_a_real_command_line(env):
    out = _cli([b"generate", b"--models", b"toy-mamba", b"--prompt", b"caf\xe9"], env)
    _check(out.returncode, out.stdout.decode(), out.stderr.decode("utf-8", "backslashreplace"),
           "contains bytes that are not UTF-8 text")


def test_a_prompt_longer_than_the_argument_limit_comes_from_a_file_or_stdin(env, tmp_path):
    big = "Once upon a time " * 200_000  # 3.4 MB: over Linux's 128 KiB limit for one argument
    path = tmp_path / "big.txt"
    path.write_text(big)
    for args, stdin in ((["--prompt-file", str(path)], None), (["--prompt-file", "-"], big.encode())):
        out = _cli(["generate", "--models", "toy-mamba", *args, "--max-new-tokens", "3", "--quiet", "--no-record"],
                   env, stdin=stdin)
        assert out.returncode == 0, out.stderr.decode()[-2000:]
        summary = json.loads(out.stdout.decode().strip().splitlines()[-1])
        assert summary["new_tokens"] == {"toy-mamba": 3}
