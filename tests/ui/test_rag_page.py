"""RAG page through Streamlit's AppTest (fake generators, real embedder, tmp store and data folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sentence_transformers  # noqa: F401  (see below)
from streamlit.testing.v1 import AppTest

from tests.retrieval.docs import make_docx, make_pdf

# Imported above on purpose: on first import transformers probes for an optional package called "kernels"
# (the Hub kernels package), and AppTest.from_file puts pages/ first on sys.path. The Kernels page is now
# pages/kernel_results.py so it can no longer answer that probe, but importing the embedder stack before
# AppTest starts keeps the first (slow) import out of the page's timed run.

TIMEOUT = 180  # the first upload loads the embedding model on a busy 2-core box
PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "rag.py")


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def test_empty_store_invites_creating_a_collection(arena_env):
    at = _page()
    assert at.selectbox(key="rag_collection").value is None
    at.text_input(key="rag_new_collection").set_value("../bad name")
    at.button(key="rag_create").click().run()
    assert "not allowed" in at.error[0].value
    at.text_input(key="rag_new_collection").set_value("notes")
    at.button(key="rag_create").click().run()
    assert not at.exception and at.selectbox(key="rag_collection").value == "notes"
    assert any("no documents yet" in i.value for i in at.info)


def test_upload_ask_and_record(arena_env):
    from store import open_store

    at = _page()
    at.text_input(key="rag_new_collection").set_value("notes")
    at.button(key="rag_create").click().run()
    at.file_uploader(key="rag_files").set_value([
        ("orra.pdf", make_pdf(["The lighthouse of Orra was built in 1822 by Mira Kest."]), "application/pdf"),
        ("velm.docx", make_docx(["Velm is a river town famous for its copper bells."]),
         "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("evil.md", b"[click](http://attacker.example) <b>bold</b> The Orra lighthouse is white.", "text/markdown"),
        ("broken.pdf", b"%PDF-1.7\n garbage", "application/pdf"),
    ])
    at.run()
    at.button(key="rag_add").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert "Added 3 file(s)" in at.success[0].value
    failed = at.dataframe[0].value
    assert list(failed["file"]) == ["broken.pdf"] and "could not be read as a PDF" in failed["problem"][0]
    docs = at.dataframe[-1].value
    assert sorted(docs["filename"]) == ["evil.md", "orra.pdf", "velm.docx"] and (docs["chunks"] >= 1).all()

    at.text_input(key="rag_question").set_value("When was the lighthouse of Orra built?")
    at.multiselect(key="rag_models").set_value(["toy-mamba", "toy-transformer"])
    at.slider(key="rag_k").set_value(3)  # every document, the hostile one too
    at.checkbox(key="rag_closed_book").check()
    at.number_input(key="rag_max_new").set_value(8)
    at.button(key="rag_ask").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    texts = [t.value for t in at.text]
    assert texts[0] == "Question: When was the lighthouse of Orra built?"
    assert texts[1].startswith("[1] score ") and "orra.pdf · page 1" in texts[1]
    passages = [c.value for c in at.code][:3]
    assert "1822" in passages[0]
    assert any("[click](http://attacker.example) <b>bold</b>" in p for p in passages)  # shown verbatim
    heads = [h.value for h in at.subheader]
    assert heads[heads.index("Answers") + 1 : heads.index("Answers") + 5] == [
        "toy-mamba", "toy-transformer", "toy-mamba (closed-book)", "toy-transformer (closed-book)"]
    answers = [c.value for c in at.code][3:]
    answers = [a for a in answers if not a.startswith("python -m backend experiment")]  # the Evaluation command
    assert len(answers) == 4 and all(a.strip() for a in answers)
    assert len(at.table) == 4  # the Arena's metrics table per column
    # nothing from the documents is rendered as markdown/HTML: the link only appears in plain elements
    assert not any("attacker" in m.value for m in [*at.markdown, *at.caption, *at.success, *at.warning, *at.info])

    runs = open_store().runs(kind="rag")
    assert len(runs) == 1 and runs["status"].iloc[0] == "completed"
    preds = open_store().predictions(run_id=runs["run_id"].iloc[0])
    assert len(preds) == 4 and set(preds["output"]) == set(answers)

    # delete a document: it leaves the table and the answers' sources
    at.selectbox(key="rag_delete_choice").set_value(
        next(d for d, f in zip(docs["doc_id"], docs["filename"], strict=True) if f == "orra.pdf"))
    at.button(key="rag_delete").click().run()
    assert not at.exception, at.exception
    assert sorted(at.dataframe[-1].value["filename"]) == ["evil.md", "velm.docx"]


def test_unreadable_index_offers_a_rebuild(arena_env):
    from retrieval import Retriever
    from store import open_store

    r = Retriever(open_store())
    r.add_files("notes", [("a.md", b"The mill at Kest grinds barley.")])
    r._index("notes").path.write_bytes(b"garbage")
    at = _page()
    assert any("unreadable" in e.value and "Rebuild" in e.value for e in at.error)
    at.button(key="rag_rebuild_broken").click().run()
    assert not at.exception and not at.error
    assert list(at.dataframe[-1].value["filename"]) == ["a.md"]


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
    from backend.fake import FakeGenerator
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
    import json

    with path.open() as f:
        return next(r for r in map(json.loads, f) if r.get("type") == "run")


@pytest.mark.parametrize("file", ["exp_rag_cpu.jsonl", "exp_rag_h200.jsonl"])
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

    files = [Path(PAGE).parents[1] / "results" / f for f in ("exp_rag_cpu.jsonl", "exp_rag_h200.jsonl")]
    if not all(f.is_file() for f in files):
        pytest.skip("needs both committed RAG results")
    for f in files:
        open_store().import_jsonl(f)
    at = _page()
    runs = open_store().runs(kind="experiment-rag")
    assert at.selectbox(key="rag_exp_pick").value == runs.sort_values("created_at").iloc[-1]["run_id"]
