"""A real browser against `streamlit run app.py`, on the real default models (CPU), not the fake backend.

Starts the server in its own process group on a free port with a temporary store and data folder, waits for
/_stcore/health, drives Debian's /usr/bin/chromium with Playwright (no browser download), types a prompt in
the Arena, presses Generate, waits for two columns of generated text with their metrics, and saves a
screenshot to artifacts/e2e_arena.png. The process group is killed at the end.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import pytest

from tests.load.serve import serve

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def _serve(tmp_path: Path, **extra_env: str):
    """`streamlit run app.py` on the real models unless extra_env says SSM_ARENA_FAKE=1 (tests/load/serve.py: its
    own process group on loopback, a temporary store, the group killed at the end); yields (url, log)."""
    with serve(tmp_path, fake=False, timeout_s=120, **extra_env) as (url, _proc, log):
        yield url, log


@pytest.fixture
def chromium():
    if not CHROMIUM.exists():
        reason = "/usr/bin/chromium is missing (scripts/test.sh installs it with apt-get when run as root)"
        if os.environ.get("CI"):
            pytest.fail(reason + ": CI must run the browser test")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _open_arena(browser, url: str, prompt: str):
    page = browser.new_page(viewport={"width": 1500, "height": 2300})
    page.goto(f"{url}/arena", wait_until="domcontentloaded")  # "/" is the start page
    page.wait_for_selector("h1:has-text('Arena')", timeout=90_000)
    _wait_idle(page, 90_000)
    box = page.get_by_label("Prompt", exact=True)
    box.fill(prompt)
    box.press("Control+Enter")  # commit the text area's value (Streamlit sends it on blur / Ctrl+Enter)
    _wait_idle(page, 30_000)
    return page


def _wait_idle(page, timeout_ms: int) -> None:
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout_ms)


def generate_and_wait(page, timeout_ms: int) -> None:
    """Click Generate, then wait for two finished columns with their metrics tables (loading the real
    models on a shared CPU can take a while the first time) and the comparison chart (plotly draws it
    after the script ends)."""
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function(
        """() => document.querySelectorAll("[data-testid='stTable']").length === 2 &&
                [...document.querySelectorAll("[data-testid='stCaptionContainer']")]
                  .filter(e => e.innerText.startsWith('finished (')).length === 2""",
        timeout=timeout_ms)
    _wait_idle(page, 60_000)
    page.wait_for_selector("[data-testid='stPlotlyChart'] .main-svg", timeout=60_000)


def test_arena_generates_two_columns_with_metrics_in_a_real_browser(chromium, tmp_path):
    shot = ROOT / "artifacts" / "e2e_arena.png"
    shot.parent.mkdir(exist_ok=True)
    with _serve(tmp_path) as (url, log):  # the real default models (placeholders until trained), on CPU
        page = _open_arena(chromium, url, "Tell me about the river")
        try:
            generate_and_wait(page, 240_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(shot), full_page=True)
            codes = page.locator("[data-testid='stColumn'] [data-testid='stCode']")  # not the command below
            assert codes.count() == 2
            texts = [codes.nth(i).inner_text().strip() for i in range(2)]
            assert all(texts), texts
            tables = page.locator("[data-testid='stTable']")
            for i in range(2):
                t = tables.nth(i).inner_text()
                assert re.search(r"time to first token\s+[\d,.]+ ms", t), t
                assert re.search(r"decode tokens/s\s+[\d,.]+", t), t
                assert re.search(r"this model's memory \(weights \+ cache\)\s+[\d,.]+ MiB = ", t), t
                # the process's RSS, labelled as the whole process (GiB once it passes 1 GiB)
                assert re.search(r"peak RSS of the whole process \(app \+ every loaded model\)\s+[\d,.]+ [MG]iB", t), t
            body = page.locator("body").inner_text()
            assert "cache bytes (conv + SSM state)" in body and "cache bytes (KV cache)" in body
            assert "Saved as run" in body, body[-2000:]
            assert "Traceback" not in body
            # The saved run is on the History page, plotted and exportable.
            page.get_by_role("link", name="History").click()
            page.wait_for_selector("text=2 of 2 measurement rows match", timeout=60_000)
            _wait_idle(page, 60_000)
            page.wait_for_function("document.querySelectorAll(\"[data-testid='stPlotlyChart']\").length === 4",
                                   timeout=60_000)
            # widgets are lazily loaded by the frontend: on a busy machine they appear after the script ends
            page.get_by_role("button", name="Export Parquet").wait_for(timeout=60_000)
            page.get_by_role("button", name="Export CSV").wait_for(timeout=60_000)
            page.locator("[data-testid='stDataFrame']").first.scroll_into_view_if_needed()
            page.wait_for_timeout(1500)  # data frames paint on a canvas after they load
            page.screenshot(path=str(shot.with_name("e2e_history.png")), full_page=True)
        except Exception:
            page.screenshot(path=str(shot.with_name("e2e_arena_failure.png")), full_page=True)
            print(log.read_text()[-4000:])
            raise


def test_stop_in_a_real_browser_keeps_the_partial_text(chromium, tmp_path):
    """Stop's click reruns the script while the job streams; the run must find the job and stop it."""
    # Fake generators at 50 ms/token: the 64 tokens of each column would take > 3 s; Stop comes sooner.
    with _serve(tmp_path, SSM_ARENA_FAKE="1", SSM_ARENA_FAKE_DELAY="0.05") as (url, log):
        # First visit of the fresh server straight to a page URL (a bookmark) still gets app.py's menu and
        # frame, not Streamlit's legacy pages/ menu (file names, no sections): pages/components/legacy.py.
        first = chromium.new_page()
        first.goto(f"{url}/history", wait_until="domcontentloaded")
        first.wait_for_selector("h1:has-text('History')", timeout=90_000)
        _wait_idle(first, 60_000)
        nav = first.locator("[data-testid='stSidebarNav']").inner_text()
        assert "Arena" in nav and "Models" in nav and "RAG evaluation" in nav and "rag eval" not in nav, nav
        assert "Store: " in first.locator("[data-testid='stSidebar']").inner_text()
        first.close()
        page = _open_arena(chromium, url, "Tell me about the mill")
        try:
            page.get_by_role("button", name="Generate").click()
            page.wait_for_function(
                """() => { const c = document.querySelector("[data-testid='stCode']");
                           return c && c.innerText.trim().split(/\\s+/).length >= 3; }""", timeout=60_000)
            page.get_by_role("button", name="Stop").click()
            page.wait_for_selector("text=stopped: partial output kept", timeout=30_000)
            _wait_idle(page, 30_000)
            body = page.locator("body").inner_text()
            assert "Stopped before this model started." in body  # the second column never ran
            first = page.locator("[data-testid='stCode']").first.inner_text().split()
            assert 3 <= len(first) < 64, first
            assert "Saved as run" in body and "Traceback" not in body
        except Exception:
            page.screenshot(path=str(ROOT / "artifacts" / "e2e_stop_failure.png"), full_page=True)
            print(log.read_text()[-4000:])
            raise


def _committed_results(tmp_path: Path, names=("train_h200.jsonl", "bench_h200.jsonl", "bench_cpu_toy.jsonl")):
    """A results folder with some of the committed files (the start page quotes them; the first start imports
    them into the temporary store, as a fresh clone's first start does with all of results/)."""
    (tmp_path / "results").mkdir(exist_ok=True)
    for name in names:
        (tmp_path / "results" / name).symlink_to(ROOT / "results" / name)


def test_start_page_then_a_trained_format_in_the_arena_in_a_real_browser(chromium, tmp_path):
    """A first visit: the start page explains the models (held-out scores, headlines), one click fills the
    Arena with a closed-book question and its reference, and the real bundled models answer it, marked."""
    from backend.arena.examples import examples

    qa = next(e for e in examples() if e.key == "qa_closed")
    shot = ROOT / "artifacts" / "e2e_start.png"
    shot.parent.mkdir(exist_ok=True)
    _committed_results(tmp_path)
    with _serve(tmp_path) as (url, log):  # the real bundled models, on CPU
        page = chromium.new_page(viewport={"width": 1500, "height": 2300})
        try:
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_selector("h1:has-text('SSM Arena')", timeout=90_000)
            _wait_idle(page, 90_000)
            body = page.locator("body").inner_text()
            for text in ("The bundled models", "fictional toy world", "Held-out scores", "Try a trained prompt format",
                         "Headline results", "Plug in real checkpoints", "mamba-1.4b's decode (time per output token)"):
                assert text in body, text
            page.wait_for_function(  # the held-out scores table
                """() => [...document.querySelectorAll("[data-testid='stTable']")]
                          .some(d => d.textContent.includes('0.810 [0.750, 0.858]'))""", timeout=30_000)
            for ex in examples():  # widgets and code blocks are drawn lazily by the frontend: wait for them all
                page.get_by_role("button", name=f"Try: {ex.title}").wait_for(timeout=60_000)
            page.wait_for_function(f"document.querySelectorAll(\"[data-testid='stCode']\").length >= {len(examples()) + 1}",
                                   timeout=60_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(shot), full_page=True)

            page.get_by_role("button", name=f"Try: {qa.title}").click()
            page.wait_for_selector("h1:has-text('Arena')", timeout=60_000)
            _wait_idle(page, 60_000)
            from playwright.sync_api import expect

            expect(page.get_by_label("Prompt", exact=True)).to_have_value(qa.prompt, timeout=30_000)
            expect(page.get_by_label("Reference answer (optional)", exact=True)).to_have_value(qa.reference,
                                                                                              timeout=30_000)
            generate_and_wait(page, 240_000)
            body = page.locator("body").inner_text()
            assert body.count("what the model saw") == 2 and body.count(f"reference: {qa.reference!r}") == 2, body[-3000:]
            assert body.count("finished (newline: end of line)") + body.count("finished (eos") >= 1, body[-3000:]
            marks = page.locator("[data-testid='stColumn'] [data-testid='stMarkdownContainer']").all_inner_texts()
            badges = [m.strip() for m in marks if m.strip().endswith(("right", "wrong")) and len(m.strip()) < 20]
            assert len(badges) == 2, marks  # one right / wrong badge per column (an icon may precede the word)
            page.screenshot(path=str(shot.with_name("e2e_start_try.png")), full_page=True)
            assert "Traceback" not in body
        except Exception:
            page.screenshot(path=str(shot.with_name("e2e_start_failure.png")), full_page=True)
            print(log.read_text()[-4000:])
            raise


def test_blind_ab_vote_reveal_and_leaderboard_in_a_real_browser(chromium, tmp_path):
    """Vote -> reveal -> the vote is a leaderboard row and a row of the store (fake models: the page, not the
    models, is under test here)."""
    shot = ROOT / "artifacts" / "e2e_ab.png"
    shot.parent.mkdir(exist_ok=True)
    with _serve(tmp_path, SSM_ARENA_FAKE="1") as (url, log):
        page = chromium.new_page(viewport={"width": 1500, "height": 2300})
        try:
            page.goto(f"{url}/ab", wait_until="domcontentloaded")
            page.wait_for_selector("h1:has-text('Blind A/B')", timeout=90_000)
            _wait_idle(page, 60_000)
            assert "No votes yet" in page.locator("body").inner_text()
            box = page.get_by_label("Prompt", exact=True)
            box.fill("Tell me about Lon Neakelairk.\n")
            box.press("Control+Enter")
            _wait_idle(page, 30_000)
            page.get_by_role("button", name="New blind pair").click()
            page.get_by_role("button", name="A is better").wait_for(timeout=60_000)
            _wait_idle(page, 30_000)
            before = page.locator("body").inner_text()
            assert "toy-" not in before.split("Which answer is better?")[0].split("Blind A/B", 1)[1], before
            page.get_by_role("button", name="A is better").click()
            page.wait_for_selector("text=Your vote: A is better.", timeout=30_000)
            _wait_idle(page, 60_000)
            page.wait_for_selector("[data-testid='stPlotlyChart'] .main-svg", timeout=60_000)
            body = page.locator("body").inner_text()
            reveal = re.search(r"A was (\S+) \((\w+)\), B was (\S+) \((\w+)\)", body)
            assert reveal, body[-2000:]
            assert "1 vote. Bradley-Terry scores" in body and "Export votes (CSV)" in body
            page.wait_for_timeout(1000)
            page.screenshot(path=str(shot), full_page=True)
        except Exception:
            page.screenshot(path=str(shot.with_name("e2e_ab_failure.png")), full_page=True)
            print(log.read_text()[-4000:])
            raise

    from backend.arena.ratings import bt_scores
    from store import open_store

    votes = open_store(tmp_path / "arena.duckdb").votes()
    assert len(votes) == 1
    v = votes.iloc[0]
    assert (v["vote"], v["model_a"], v["family_a"], v["model_b"]) == ("a", reveal[1], reveal[2], reveal[3])
    assert v["prompt"] == "Tell me about Lon Neakelairk.\n" and v["output_a"].strip() and v["output_b"].strip()
    board = bt_scores(votes)
    assert list(board["player"]) == [reveal[1], reveal[3]] and list(board["wins"]) == [1, 0]


def test_inside_view_opens_from_an_arena_column_in_a_real_browser(chromium, tmp_path):
    """"Inside view" under a finished Arena column opens pages/inside_view.py on that column's model, prompt and
    output, next to the other column's model; the real default models are read through hooks on CPU."""
    shot = ROOT / "artifacts" / "e2e_inside_view.png"
    shot.parent.mkdir(exist_ok=True)
    prompt = "The pass key is 4721. Remember it. 4721 is the pass key.\nQuestion: What is the pass key?\nAnswer:"
    with _serve(tmp_path) as (url, log):
        page = _open_arena(chromium, url, prompt)
        try:
            generate_and_wait(page, 240_000)
            page.get_by_role("button", name="Inside view").first.click()
            page.wait_for_selector("h1:has-text('Inside view')", timeout=90_000)
            page.wait_for_function("document.querySelectorAll(\"[data-testid='stPlotlyChart'] .main-svg\").length >= 2",
                                   timeout=240_000)
            _wait_idle(page, 60_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(shot), full_page=True)
            body = page.locator("body").inner_text()
            assert "Traceback" not in body and "fake backend" not in body
            assert "Opened from Arena column toy-mamba." in body, body[-3000:]
            assert page.get_by_label("Prompt", exact=True).input_value() == prompt
            assert page.get_by_role("tab", name="toy-mamba").count() == 1
            assert page.get_by_role("tab", name="toy-transformer").count() == 1
            assert "read by hooks" in body and "Recurrence re-run from the hooked tensors" in body
            kept = page.locator("[data-testid='stPlotlyChart']").first.inner_text()
            assert "toy-mamba: retained in the state" in kept and "toy-transformer: attention" in kept, kept
        except Exception:
            page.screenshot(path=str(shot.with_name("e2e_inside_view_failure.png")), full_page=True)
            print(log.read_text()[-4000:])
            raise
