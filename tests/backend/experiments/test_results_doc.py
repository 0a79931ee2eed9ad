"""docs/results.md is generated from results/ and must stay equal to what the committed files give."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from backend.bench import analysis, numbers
from backend.experiments import results_doc

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "results"


def test_committed_results_doc_matches_results_folder():
    committed = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert results_doc.render(RESULTS) == committed, (
        "docs/results.md differs from what results/ gives. Regenerate it with "
        "`.venv/bin/python -m backend results-doc` and commit it with the results.")


def test_write_renders_a_small_results_folder(tmp_path):
    src = tmp_path / "results"
    src.mkdir()
    for name in ("bench_cpu_toy.jsonl", "qa_open_errors_cpu.jsonl"):
        shutil.copy(RESULTS / name, src / name)
    out = results_doc.write(tmp_path / "docs" / "results.md", src)
    text = out.read_text(encoding="utf-8")
    assert text == results_doc.render(src)
    assert "`bench_cpu_toy.jsonl`" in text and "`qa_open_errors_cpu.jsonl`" in text
    assert str(tmp_path) not in text  # no temporary paths leak into the document


def test_empty_results_folder_gives_the_prose_only(tmp_path):
    text = results_doc.render(tmp_path)
    assert text.startswith("# Results") and "## Experiments" in text and "**`" not in text


def test_bench_numbers_quote_the_rows():
    path = RESULTS / "bench_h200_1.4b.jsonl"
    text = numbers.bench_markdown(path)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    points = [r["data"] for r in rows if r["type"] == "measurement" and r["data"].get("metric") == "point"]
    ok = sum(p["status"] == "ok" for p in points)
    assert f"{len(points)} points (counted from the rows): {ok} ok" in text
    _, m = numbers.load(path, "bench")
    r = analysis.paper_ratio(m, "mamba-1.4b", "pythia-1.4b")
    assert (f"| mamba-1.4b vs pythia-1.4b | **{analysis.fmt_ratio(r['ratio'])}** (batch {r['ssm']['batch']:,} vs "
            f"{r['tf']['batch']:,}) | {analysis.fmt_ratio(r['decode_ratio'])} |") in text
