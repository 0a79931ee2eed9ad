"""RAG evaluation page (the RAG experiment and the retriever alone) through Streamlit's AppTest (fake
generators, real embedder, tmp store and data folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sentence_transformers  # noqa: F401  (the embedder stack's slow first import stays out of the timed runs)
from streamlit.testing.v1 import AppTest

TIMEOUT = 180  # the retrieval measurement loads the embedding model on a busy 2-core box
PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "rag_eval.py")


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def test_retrieval_quality_measurement(arena_env):
    from store import open_store

    at = _page()
    at.number_input(key="rag_eval_n").set_value(20)
    at.button(key="rag_eval").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert "n = 20 questions" in at.text[-1].value
    runs = open_store().runs(kind="rag-retrieval")
    assert len(runs) == 1
    m = open_store().measurements(run_ids=[runs["run_id"].iloc[0]])
    assert set(m["metric"]) == {"recall@k", "mrr@k"} and (m["value"].between(0, 1)).all()


# ------------------------------------------------------------------------------ evaluation section
def _table(at: AppTest, column: str):
    """The dataframe that has `column` (AppTest does not expose dataframe keys)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _cli_command(at: AppTest) -> str:
    return next(c.value for c in at.code if c.value.startswith("python -m backend experiment rag"))


def test_evaluation_runs_the_rag_experiment_and_plots(arena_env):
    from backend.experiments.config import ExperimentConfig
    from store import open_store

    at = _page()
    assert any("No RAG experiment run is stored yet" in i.value for i in at.info)
    at.multiselect(key="rag_exp_models").set_value(["toy-mamba", "toy-transformer"])
    at.number_input(key="rag_exp_n").set_value(3)
    at.multiselect(key="rag_exp_ks").set_value([0, 2])
    at.run()
    command = _cli_command(at)
    assert "--ks 0,2" in command and "--task toy-rag" in command
    at.button(key="rag_exp_run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    runs = open_store().runs(kind="experiment-rag")
    assert len(runs) == 1 and runs["status"].iloc[0] == "completed"
    assert ExperimentConfig.from_dict(runs["config"].iloc[0]).to_cli() == command  # ran what it showed
    assert at.selectbox(key="rag_exp_pick").value == runs["run_id"].iloc[0]
    assert len(at.get("plotly_chart")) >= 5  # EM, F1, closed/open bars, retrieval, faithfulness
    book = _table(at, "condition")
    assert set(book["condition"]) == {"closed-book", "open-book k=2"} and (book["n"] == 3).all()
    stored = _table(at, "metric")
    assert {"recall@k", "MRR@k", "faithfulness", "token F1"} <= set(stored["metric"])
    assert not at.button(key="rag_exp_run").disabled and at.button(key="rag_exp_cancel").disabled


def test_evaluation_resumes_a_cancelled_run(arena_env):
    from backend.experiments.config import ExperimentConfig
    from backend.experiments.runner import run_experiment
    from backend.models.fake import FakeGenerator
    from store import open_store

    cfg = ExperimentConfig("rag", ["toy-mamba", "toy-transformer"], n=2, sweep={"k": [0, 1]}, task="toy-rag")
    gens = {"toy-mamba": FakeGenerator("toy-mamba", "mamba"), "toy-transformer": FakeGenerator("toy-transformer",
                                                                                            "transformer")}
    done = {"n": 0}

    def progress(n, total, msg):
        done["n"] = n

    first = run_experiment(cfg, gens, open_store(), progress=progress, should_stop=lambda: done["n"] >= 3)
    assert first.status == "cancelled" and first.done == 3
    at = _page()
    assert any("stored when a run completes" in c.value for c in at.caption)  # partial run: answers only
    at.button(key="rag_exp_resume_stored").click().run()
    assert not at.exception, at.exception
    run = open_store().runs(kind="experiment-rag").iloc[0]
    assert run["run_id"] == first.run_id and run["status"] == "completed"
    assert _table(at, "metric")["n"].eq(2).all()


def _committed_run(path: Path) -> dict:
    import gzip
    import json

    with (gzip.open(path, "rt") if path.suffix == ".gz" else path.open()) as f:
        return next(r for r in map(json.loads, f) if r.get("type") == "run")


@pytest.mark.parametrize("file", ["exp_rag_cpu.jsonl.gz", "exp_rag_h200.jsonl.gz"])
def test_committed_results_render(arena_env, file):
    from store import open_store

    path = Path(PAGE).parents[1] / "results" / file
    if not path.is_file():
        pytest.skip(f"results/{file} is not committed")
    record = _committed_run(path)
    n, device = record["config"]["n"], record["meta"]["device_name"]
    open_store().import_jsonl(path)
    at = _page()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    label = at.selectbox(key="rag_exp_pick").options[0]
    assert f"n={n}" in label and device in label, label
    assert ("toy-rag" in label) if record["config"]["task"] else ("saved plan" in label), label
    assert len(at.get("plotly_chart")) >= 5
    assert set(_table(at, "metric")["n"]) == {n}
    book = _table(at, "condition")
    assert not book.empty


def test_committed_results_default_to_the_newest_run(arena_env):
    """All committed RAG runs stored (as on first start): the page opens on the newest."""
    from store import open_store

    files = [Path(PAGE).parents[1] / "results" / f for f in ("exp_rag_cpu.jsonl.gz", "exp_rag_h200.jsonl.gz")]
    if not all(f.is_file() for f in files):
        pytest.skip("needs both committed RAG results")
    for f in files:
        open_store().import_jsonl(f)
    at = _page()
    runs = open_store().runs(kind="experiment-rag")
    assert at.selectbox(key="rag_exp_pick").value == runs.sort_values("created_at").iloc[-1]["run_id"]
