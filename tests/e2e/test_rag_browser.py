"""A real browser on the RAG page of `streamlit run app.py`: upload a file, ask a question (issue 6).

Reuses test_browser.py's helpers (server in its own process group on a free port with a temporary store, data
and results folder, /_stcore/health polling, Debian's /usr/bin/chromium through Playwright, waits on the
script state, process-group kill at the end, skip / CI-fail when chromium is missing). Runs the real bundled
models on CPU (tiny, so an answer takes seconds) and the real embedder (retrieval needs it either way).

In the browser: create a collection, upload a Markdown file written here (a made-up fact, plus a link and
markup that must stay plain text) together with an empty .pdf, see the good file go in and the empty one
named with its own sentence, ask about the fact, and check the retrieved passage (file name and score) as
plain text, two answer columns with their metrics, "Saved as run" and no traceback. Screenshot:
artifacts/e2e_rag.png. After the server stops, the store holds the run (kind rag) with the retrieved chunk.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.test_browser import ROOT, _serve, _wait_idle, chromium  # noqa: F401  (chromium: a fixture)

pytestmark = pytest.mark.e2e

FACT = "The lighthouse of Quarrel Point was painted teal in 1931 by Ondine Varr."
DOC = f"""# Quarrel Point

{FACT} Its lamp burns whale-free oil and can be seen from the harbour of Selm.

See [the harbour notes](http://attacker.example/notes) and <b>keep</b> this as **plain** text.
"""
QUESTION = "Who painted the lighthouse of Quarrel Point?"


def _wait_upload_done(page, timeout_ms: int) -> None:
    """Both files listed in the uploader and the add button enabled (the bytes reached the server)."""
    from playwright.sync_api import expect

    zone = page.locator("[data-testid='stFileUploader']")
    for name in ("quarrel.md", "empty.pdf"):
        expect(zone.get_by_text(name, exact=True)).to_be_visible(timeout=timeout_ms)
    expect(page.get_by_role("button", name="Add to collection")).to_be_enabled(timeout=timeout_ms)


def test_rag_upload_and_ask_in_a_real_browser(chromium, tmp_path):  # noqa: F811
    shot = ROOT / "artifacts" / "e2e_rag.png"
    shot.parent.mkdir(exist_ok=True)
    good, empty = tmp_path / "quarrel.md", tmp_path / "empty.pdf"
    good.write_text(DOC)
    empty.write_bytes(b"")
    with _serve(tmp_path) as (url, log):  # real bundled models and the real embedder, on CPU
        page = chromium.new_page(viewport={"width": 1500, "height": 3200})
        try:
            page.goto(f"{url}/rag", wait_until="domcontentloaded")
            page.wait_for_selector("h1:has-text('RAG')", timeout=90_000)
            _wait_idle(page, 90_000)

            # a collection
            box = page.get_by_label("New collection", exact=True)
            box.fill("harbour")
            box.press("Enter")  # commit the value before the button's callback reads it
            _wait_idle(page, 30_000)
            page.get_by_role("button", name="Create collection").click()
            page.wait_for_selector("text=This collection has no documents yet.", timeout=30_000)
            _wait_idle(page, 30_000)
            assert page.get_by_role("combobox", name="Collection").input_value() == "harbour"

            # upload: the good file goes in, the empty PDF is named with its own sentence
            page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files([str(good), str(empty)])
            _wait_upload_done(page, 30_000)
            _wait_idle(page, 30_000)
            page.get_by_role("button", name="Add to collection").click()
            # the first upload loads the embedder (sentence-transformers) in the server process
            page.wait_for_selector("text=Added 1 file(s) to the collection.", timeout=120_000)
            _wait_idle(page, 60_000)
            body = page.locator("body").inner_text()
            assert "1 file(s) were not added; the reasons are below." in body, body[-2000:]
            failed = page.locator("[data-testid='stDataFrame']").first
            failed.scroll_into_view_if_needed()
            # data frames are drawn on a canvas; glide-data-grid keeps an accessible copy of the cells
            page.wait_for_function(
                """() => { const d = document.querySelector("[data-testid='stDataFrame']");
                           return d && d.textContent.includes('empty.pdf is empty.'); }""", timeout=30_000)
            assert "empty.pdf is empty. Upload a file with some text in it." in failed.text_content()
            docs = page.locator("[data-testid='stDataFrame']").nth(1)
            page.wait_for_function(
                """() => { const d = document.querySelectorAll("[data-testid='stDataFrame']")[1];
                           return d && d.textContent.includes('quarrel.md'); }""", timeout=30_000)
            assert "empty.pdf" not in docs.text_content()

            # ask (the default pair: toy-mamba and toy-transformer)
            q = page.get_by_label("Question", exact=True)
            q.fill(QUESTION)
            q.press("Enter")
            _wait_idle(page, 30_000)
            page.get_by_role("button", name="Ask", exact=True).click()
            page.wait_for_function(
                """() => document.querySelectorAll("[data-testid='stTable']").length === 2 &&
                        [...document.querySelectorAll("[data-testid='stCaptionContainer']")]
                          .filter(e => e.innerText.startsWith('finished (')).length === 2""",
                timeout=120_000)
            page.wait_for_selector("text=Saved as run", timeout=30_000)
            _wait_idle(page, 60_000)
            page.wait_for_selector("[data-testid='stPlotlyChart'] .main-svg", timeout=60_000)
            page.wait_for_timeout(500)
            assert page.locator("h3:has-text('Retrieved passages')").count() == 1
            page.screenshot(path=str(shot), full_page=True)

            body = page.locator("body").inner_text()
            assert f"Question: {QUESTION}" in body
            # the passage: rank, score, file name and span as plain text, then its text verbatim in a code block
            texts = [t.inner_text() for t in page.locator("[data-testid='stText']").all()]
            hit = [t for t in texts if t.startswith("[1] score ")]
            assert len(hit) == 1, texts
            m = re.fullmatch(r"\[1\] score (-?\d\.\d{3}) · quarrel\.md · characters \d+-\d+", hit[0].strip())
            assert m and 0.3 < float(m.group(1)) <= 1.0, hit
            codes = page.evaluate("""() => [...document.querySelectorAll("[data-testid='stCode']")]
                .filter(c => !c.closest("[data-testid='stExpander']")).map(c => c.innerText)""")  # not the prompts
            assert len(codes) == 3, codes  # one passage (the only chunk) + two answers (the evaluation: its own page)
            assert FACT in codes[0] and "[the harbour notes](http://attacker.example/notes)" in codes[0]
            assert "<b>keep</b>" in codes[0] and "**plain**" in codes[0]
            assert page.locator("a[href*='attacker.example']").count() == 0  # markup never rendered
            assert all(c.strip() for c in codes[1:]), codes
            # two answer columns, each with its metrics
            for label in ("toy-mamba", "toy-transformer"):
                assert page.locator(f"h3:has-text('{label}')").count() >= 1, label
            tables = page.locator("[data-testid='stTable']")
            for i in range(2):
                t = tables.nth(i).inner_text()
                assert re.search(r"prompt tokens\s+[\d,]+", t), t
                assert re.search(r"time to first token\s+[\d,.]+ ms", t), t
                assert re.search(r"decode tokens/s\s+[\d,.]+", t), t
                # the whole process's RSS, labelled as such (GiB once RSS passes 1 GiB)
                assert re.search(r"peak RSS of the whole process \(app \+ every loaded model\)\s+[\d,.]+ [MG]iB", t), t
            assert "cache bytes (conv + SSM state)" in body and "cache bytes (KV cache)" in body
            assert re.search(r"Saved as run \S+ \(kind rag; see the History page\)\.", body), body[-2000:]
            assert "Traceback" not in body
            assert page.locator("[data-testid='stException'], [data-testid='stAlertContentError']").count() == 0
            # the exact prompt each model saw: template + passage + the question, once per model, as text
            page.get_by_text("The exact prompt each model saw").click()
            expander = page.locator("[data-testid='stExpander']").filter(has_text="The exact prompt each model saw")
            expander.locator("[data-testid='stCode']").first.wait_for(timeout=30_000)
            prompts = expander.locator("[data-testid='stCode']").all_inner_texts()
            assert len(prompts) == 2, prompts
            for p in prompts:
                assert FACT in p and p.rstrip().endswith(f"Question: {QUESTION}\nAnswer:"), p
            assert "toy-mamba (1 passages)" in expander.inner_text()
            expander.scroll_into_view_if_needed()
            page.screenshot(path=str(shot.with_name("e2e_rag_prompts.png")), full_page=True)
            # the RAG experiment is its own page, under Experiments in the sidebar
            page.get_by_role("link", name="RAG evaluation").click()
            page.wait_for_selector("h1:has-text('RAG evaluation')", timeout=60_000)
            _wait_idle(page, 60_000)
            assert page.get_by_role("button", name="Run").count() == 1
            assert "No RAG experiment run is stored yet" in page.locator("body").inner_text()
        except Exception:
            page.screenshot(path=str(shot.with_name("e2e_rag_failure.png")), full_page=True)
            print(log.read_text()[-4000:])
            raise

    # the saved run, read back after the server stopped (the store is the only code that opens DuckDB)
    from store import open_store

    st = open_store(tmp_path / "arena.duckdb")
    runs = st.runs(kind="rag")
    assert len(runs) == 1 and runs.iloc[0]["status"] == "completed", runs
    run = runs.iloc[0]
    assert run["config"]["question"] == QUESTION and run["config"]["collection"] == "harbour"
    assert [r["source"] for r in run["summary"]["retrieved"]] == ["quarrel.md"]
    assert sorted(st.predictions(run_id=run["run_id"])["model"]) == ["toy-mamba", "toy-transformer"]
