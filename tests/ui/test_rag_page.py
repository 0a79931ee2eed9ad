"""RAG page (collections, upload, ask) through Streamlit's AppTest (fake generators, real embedder, tmp store and
data folder). The evaluation page is tested in test_rag_eval_page.py."""

from __future__ import annotations

import time
from pathlib import Path

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


def _wait_for_uploads(at: AppTest, timeout_s: float = 300) -> list[dict]:
    """Rerun the page until no upload job runs (the worker process loads the embedder first), then once more."""
    from retrieval import jobs

    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        statuses = jobs.list_jobs()
        seen.append([(s["state"], s["chunks_done"]) for s in statuses])
        if statuses and not [s for s in statuses if s["state"] in ("queued", "running")]:
            at.run()
            assert not at.exception, at.exception
            return statuses
        at.run()
        assert not at.exception, at.exception
        time.sleep(1)
    raise AssertionError(f"the upload job did not end in {timeout_s} s: {seen[-3:]}")


def test_empty_store_invites_creating_a_collection(arena_env):
    at = _page()
    assert at.selectbox(key="rag_collection").value is None
    assert not {"rag_exp_run", "rag_eval"} & {b.key for b in at.button}  # evaluation: pages/rag_eval.py
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
    at.file_uploader(key="rag_files_0").set_value([
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
    [status] = _wait_for_uploads(at)
    assert status["state"] == "done" and status["collection"] == "notes"
    assert not [p for p in Path(status["job"]).rglob("*") if p.parent.name == "files"]  # staged bytes removed
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
    answers = [c.value for c in at.code][-4:]  # after the passages (and the prompts, where the page shows them)
    assert len(at.code) >= 7 and all(a.strip() for a in answers)
    assert len(at.table) == 4  # the Arena's metrics table per column
    # nothing from the documents is rendered as markdown/HTML: the link's markup only appears in plain elements
    # (markdown elements may quote the text only escaped, e.g. a muted prompt caption)
    rendered = [m.value for m in [*at.markdown, *at.caption, *at.success, *at.warning, *at.info]]
    assert not any("](http" in v or "<b>" in v for v in rendered), [v for v in rendered if "attacker" in v]

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
    r.index_file("notes").path.write_bytes(b"garbage")
    at = _page()
    assert any("unreadable" in e.value and "Rebuild" in e.value for e in at.error)
    at.button(key="rag_rebuild_broken").click().run()
    assert not at.exception and not at.error
    assert list(at.dataframe[-1].value["filename"]) == ["a.md"]


def test_an_upload_over_the_limits_is_refused_with_one_sentence_and_nothing_staged(arena_env):
    from retrieval import jobs

    at = _page()
    at.text_input(key="rag_new_collection").set_value("notes")
    at.button(key="rag_create").click().run()
    at.file_uploader(key="rag_files_0").set_value([(f"n{i}.md", b"note %d" % i, "text/markdown") for i in range(21)])
    at.run()
    at.button(key="rag_add").click().run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == ["The files were not added: This upload has 21 files; at most 20 go in one "
                                           "upload. Add them in smaller groups."]
    assert jobs.list_jobs() == [] and not (arena_env / "data" / "jobs").exists() or not any(
        (arena_env / "data" / "jobs").iterdir())


def test_opening_a_collection_repairs_what_a_crash_left_and_says_so(arena_env):
    from retrieval import Retriever
    from store import open_store

    r = Retriever(open_store())
    r.add_files("notes", [("a.md", b"The mill at Kest grinds barley."), ("b.md", b"Velm rings copper bells.")])
    r.index_file("notes").delete()  # as if the process died after the commit, before the index was saved
    store = open_store()
    store.add_document("notes", "0123456789abcdef", "half.md", None, 10, "x")  # a document without chunks
    at = _page()
    notes = [i.value for i in at.info]
    assert any("left without text (half.md)" in n for n in notes), notes
    assert any("missing 2 chunk(s)" in n for n in notes), notes
    assert not at.warning  # consistent again: no "repair" offer
    assert sorted(at.dataframe[-1].value["filename"]) == ["a.md", "b.md"]
