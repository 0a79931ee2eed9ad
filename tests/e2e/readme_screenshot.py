"""docs/arena.png, the README's screenshot: the Arena after one generation with the bundled default models.

    .venv/bin/python -c "from tests.e2e.readme_screenshot import main; main()"

Not a test (pytest does not collect this file), and no `__main__` (runnable jobs are `python -m backend ...`).
It reuses test_browser.py's server and browser helpers (`streamlit run app.py` on a free port with a temporary
store, Debian's /usr/bin/chromium through Playwright), runs the real default models on CPU (never the fake
backend), waits for both columns to finish with their metrics and the comparison chart, and saves the page
down to the end of the chart, at most MAX_BYTES (quantised to a palette if needed). The e2e tests' own
screenshots still go to artifacts/.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from tests.e2e.test_browser import ARGS, CHROMIUM, ROOT, _open_arena, _serve, generate_and_wait

PROMPT = "Tell me about the Silver Bell Foundry."
MAX_BYTES = 300_000
WIDTH = 1400


def _shrink(png: bytes) -> bytes:
    """The PNG as is when small enough, else quantised to 256 colours (flat UI colours survive that)."""
    if len(png) <= MAX_BYTES:
        return png
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


def take(out: Path, prompt: str = PROMPT) -> int:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="ssm-arena-") as tmp, _serve(Path(tmp)) as (url, _log), \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = _open_arena(browser, url, prompt)
            page.set_viewport_size({"width": WIDTH, "height": 2400})  # tall: Streamlit scrolls an inner div
            generate_and_wait(page, 300_000)
            page.wait_for_timeout(1000)
            chart = page.locator("[data-testid='stPlotlyChart']").first.bounding_box()
            height = int(chart["y"] + chart["height"] + 24) if chart else None
            png = page.screenshot(clip={"x": 0, "y": 0, "width": WIDTH, "height": min(height or 2400, 2400)})
        finally:
            browser.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    data = _shrink(png)
    out.write_bytes(data)
    return len(data)


def main(out: Path = ROOT / "docs" / "arena.png", prompt: str = PROMPT) -> None:
    size = take(Path(out), prompt)
    print(f"wrote {out} ({size:,} bytes)")
