"""`python -m backend rag ...` end to end (in-process through backend.cli.main; fake generators)."""

from __future__ import annotations

from backend.cli import main


def test_rag_cli_ingest_list_search_ask_delete(tmp_path, monkeypatch, capsys, embedder):
    monkeypatch.setenv("SSM_ARENA_DB", str(tmp_path / "a.duckdb"))
    monkeypatch.setenv("SSM_ARENA_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SSM_ARENA_FAKE", "1")
    monkeypatch.setenv("SSM_ARENA_DEVICE", "cpu")
    (tmp_path / "orra.md").write_text("# Orra\n\nThe lighthouse of Orra was built in 1822 by Mira Kest.\n")
    (tmp_path / "junk.txt").write_bytes(b"\x00\x01\x02 binary")
    assert main(["rag", "ingest", "notes", str(tmp_path / "orra.md"), str(tmp_path / "junk.txt")]) == 0
    out = capsys.readouterr().out
    assert "added  orra.md: 1 chunks" in out and "FAILED junk.txt: junk.txt contains binary data" in out

    assert main(["rag", "list"]) == 0 and capsys.readouterr().out.split() == ["notes"]
    assert main(["rag", "list", "notes"]) == 0
    doc_id = capsys.readouterr().out.split()[0]

    assert main(["rag", "search", "notes", "-q", "When was the lighthouse built?", "--k", "2"]) == 0
    assert "[1] " in (hit := capsys.readouterr().out) and "orra.md" in hit and "1822" in hit

    assert main(["rag", "ask", "notes", "-q", "Who built it?", "--models", "toy-mamba,toy-transformer",
                 "--k", "1", "--closed-book", "--max-new-tokens", "5"]) == 0
    out = capsys.readouterr().out
    for label in ("toy-mamba [1 chunks", "toy-transformer [1 chunks", "toy-mamba (closed-book) [0 chunks"):
        assert label in out
    assert "saved as run" in out

    assert main(["rag", "ask", "missing", "-q", "x"]) == 2
    assert "no collection named 'missing'" in capsys.readouterr().err
    assert main(["rag", "delete", "notes", doc_id]) == 0
    assert main(["rag", "search", "notes", "-q", "lighthouse"]) == 0 and "orra.md" not in capsys.readouterr().out


def test_rag_cli_measure(tmp_path, monkeypatch, capsys, embedder):
    monkeypatch.setenv("SSM_ARENA_DB", str(tmp_path / "a.duckdb"))
    monkeypatch.setenv("SSM_ARENA_DEVICE", "cpu")
    assert main(["rag", "measure", "--entities", "20", "--ks", "1,3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [ln.split()[:2] for ln in out[:4]] == [["recall@k", "k=1"], ["mrr@k", "k=1"], ["recall@k", "k=3"],
                                                   ["mrr@k", "k=3"]]
    assert out[-1].startswith("saved as run ")
