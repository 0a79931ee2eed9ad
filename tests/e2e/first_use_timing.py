"""Issue 16's first-use targets, measured in a real browser (not a test: pytest does not collect this file):

    .venv/bin/python -c "from tests.e2e.first_use_timing import main; main()"

0. The floor: a one-title, one-button Streamlit app, measured the same way (Streamlit's own start and the
   browser's loading of its frontend on this machine at this moment).
1. Cold start -> interactive first page: from spawning `streamlit run app.py` (a new process, a new empty
   store, the committed results/ folder to import, as a fresh clone's first start) until the start page's
   script has finished and its first "Try:" button is enabled in Chromium (already running, as a user's
   browser is). Measured twice: the first start of a clone (empty store: the import runs in the background)
   and a second start on the same store.
2. First Arena token for a loaded bundled model: on that server, the Arena with the default pair (toy-mamba,
   toy-transformer) on the CPU, 8 new tokens; one generation loads the models, then for each of REPEATS new prompts: from the
   click on Generate until the first column shows generated text in the browser (polled every 20 ms). The
   model's own time to first token (the metrics table) is reported beside it.

Prints a summary and writes artifacts/first_use_timing.json (numbers, machine, load average).
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e.test_browser import ARGS, CHROMIUM, ROOT, _wait_idle
from tests.load.serve import free_port

REPEATS = 5
PROMPTS = ["Tell me about Lon Neakelairk.\n", "Tell me about Zutalainstead.\n", "Tell me about the Silver Bell Foundry.\n",
           "Question: Where does Teakelairk Taloukelea live?\nAnswer:", "Tell me about the Silver Bell Foundry.\n",
           "Tell me about Lon Neakelairk.\n"]
FIRST_TEXT = """([old]) => { const c = document.querySelector("[data-testid='stColumn'] [data-testid='stCode']");
                             const t = c ? c.innerText.trim() : ""; return t !== "" && t !== old; }"""


BASELINE = """import streamlit as st

st.title("Baseline")
st.button("Try: nothing")
"""


def _spawn(tmp: Path, results: Path, port: int, script: str = "app.py") -> tuple[subprocess.Popen, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("SSM_ARENA_FAKE", "SSM_ARENA_FAKE_DELAY")}
    env.update(SSM_ARENA_DB=str(tmp / "arena.duckdb"), SSM_ARENA_DATA=str(tmp / "data"),
               SSM_ARENA_RESULTS=str(results), SSM_ARENA_DEVICE="cpu", HF_HUB_OFFLINE="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=open(tmp / f"streamlit-{port}.log", "wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    return proc, t0


def _stop(proc: subprocess.Popen) -> None:
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=15)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _health(url: str, t0: float, timeout_s: float = 120) -> float:
    """Seconds from t0 until the server answers /_stcore/health (Streamlit's own start)."""
    import urllib.request

    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.read().decode().strip() == "ok":
                    return time.perf_counter() - t0
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not start within {timeout_s} s")


def _interactive(browser, url: str, t0: float, timeout_s: float = 120, title: str = "SSM Arena",
                 button: str = "Try: Article about a training-world person") -> tuple[float, float, object]:
    """(seconds to the server's health answer, seconds until the page is drawn, its script idle and its first
    button enabled), both from t0."""
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    healthy = _health(url, t0, timeout_s)
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector(f"h1:has-text('{title}')", timeout=timeout_s * 1000)
    _wait_idle(page, timeout_s * 1000)
    page.get_by_role("button", name=button).wait_for(state="visible", timeout=timeout_s * 1000)
    assert page.get_by_role("button", name=button).is_enabled()
    return healthy, time.perf_counter() - t0, page


def _baseline(browser, tmp: Path) -> dict:
    """The floor on this machine right now: a one-title, one-button Streamlit app measured the same way."""
    folder = tmp / "baseline"
    folder.mkdir()
    (folder / "hello.py").write_text(BASELINE)
    port = free_port()
    proc, t0 = _spawn(tmp, tmp / "none", port, script=str(folder / "hello.py"))
    try:
        healthy, secs, _ = _interactive(browser, f"http://127.0.0.1:{port}", t0, title="Baseline",
                                        button="Try: nothing")
    finally:
        _stop(proc)
    print(f"baseline (a one-button Streamlit app): server healthy {healthy:.2f} s, interactive {secs:.2f} s",
          flush=True)
    return {"server_healthy_s": round(healthy, 2), "page_interactive_s": round(secs, 2)}


def _arena_first_tokens(browser, url: str) -> list[dict]:
    page = browser.new_page(viewport={"width": 1500, "height": 2300})
    page.goto(f"{url}/arena", wait_until="domcontentloaded")
    page.wait_for_selector("h1:has-text('Arena')", timeout=90_000)
    _wait_idle(page, 90_000)
    page.get_by_text("Settings", exact=True).click()  # 8 new tokens: the first one is what is measured
    new = page.get_by_label("Max new tokens", exact=True)
    new.fill("8")
    new.press("Enter")
    _wait_idle(page, 30_000)
    box = page.get_by_label("Prompt", exact=True)
    out = []
    for i, prompt in enumerate(PROMPTS[:REPEATS + 1]):
        box.fill(prompt)
        box.press("Control+Enter")
        _wait_idle(page, 30_000)
        code = page.locator("[data-testid='stColumn'] [data-testid='stCode']")
        old = code.first.inner_text().strip() if code.count() else ""
        t_click = time.perf_counter()
        page.get_by_role("button", name="Generate").click()
        page.wait_for_function(FIRST_TEXT, arg=[old], timeout=300_000, polling=20)
        seen = time.perf_counter() - t_click
        page.wait_for_function(
            """() => [...document.querySelectorAll("[data-testid='stCaptionContainer']")]
                      .filter(e => e.innerText.startsWith('finished (')).length === 2""", timeout=300_000)
        _wait_idle(page, 60_000)
        table = page.locator("[data-testid='stTable']").first.inner_text()
        found = re.search(r"time to first token\s+([\d,.]+) ms", table)
        ttft = float(found.group(1).replace(",", "")) if found else None
        out.append({"prompt": prompt, "loads_models": i == 0, "click_to_first_text_s": round(seen, 3),
                    "model_ttft_ms": ttft})
    return out


def main() -> dict:
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
              "load_average_before": load_before}
    with tempfile.TemporaryDirectory() as d, sync_playwright() as p:
        tmp = Path(d)
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            report["baseline (a one-button Streamlit app)"] = _baseline(browser, tmp)
            for label in ("first start (empty store, committed results imported in the background)",
                          "second start (same store)"):
                port = free_port()
                proc, t0 = _spawn(tmp, ROOT / "results", port)
                try:
                    healthy, secs, page = _interactive(browser, f"http://127.0.0.1:{port}", t0)
                    report[label] = {"server_healthy_s": round(healthy, 2), "start_page_interactive_s": round(secs, 2)}
                    print(f"{label}: server healthy {healthy:.2f} s, start page interactive {secs:.2f} s after the "
                          "process was spawned", flush=True)
                    if label.startswith("second"):
                        runs = _arena_first_tokens(browser, f"http://127.0.0.1:{port}")
                        report["arena_first_token"] = runs
                        warm = [r["click_to_first_text_s"] for r in runs if not r["loads_models"]]
                        report["arena_first_token_loaded_median_s"] = round(statistics.median(warm), 3)
                        report["arena_first_token_loaded_max_s"] = round(max(warm), 3)
                        for r in runs:
                            loads = " [loads the models]" if r["loads_models"] else ""
                            print(f"  arena: {r['click_to_first_text_s']:.3f} s click -> first text in the browser "
                                  f"(model TTFT {r['model_ttft_ms']} ms){loads}", flush=True)
                    else:  # let the background import finish (History waits for it) before the next start
                        page.goto(f"http://127.0.0.1:{port}/history", wait_until="domcontentloaded")
                        page.wait_for_selector("h1:has-text('History')", timeout=300_000)
                        _wait_idle(page, 300_000)
                finally:
                    _stop(proc)
        finally:
            browser.close()
    report["load_average_after"] = os.getloadavg()
    out = ROOT / "artifacts" / "first_use_timing.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return report
