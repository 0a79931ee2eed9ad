"""The parts the pages share (none of these modules is a page):

    resources.py   cached model manager and results store, committed results imported on first start
                   (in the background: pages that read results wait for it)
    fmt.py         numbers and byte counts as text; tables made exportable (CSV, Parquet); text as inert
                   Markdown (muted prompts)
    settings.py    decoding-settings widgets (Arena, A/B, RAG), warm-up / repeats, filling a page from an example
    streaming.py   side-by-side streaming columns with the prompt, live metrics and right / wrong marks
                   (`render_job`; anonymous for blind A/B)
    model_cards.py the Models page's bundled-model leaderboard and model cards
    experiment.py  experiment widgets: config, Run / Cancel / Resume, stored runs, run comparison
    charts.py      the plotly figures of every page but Training (plotly is imported only here and in training.py)
    training.py    the Training page's tables and figures: emergence curves, seeds, the size ladder
    legacy.py      keeps Streamlit from running pages/ as a legacy pages directory (called below, once)

Nothing here imports torch, transformers, faiss or duckdb at module level.
"""

from pages.components.legacy import leave_legacy_pages_mode

leave_legacy_pages_mode()  # every page imports this package: a first visit straight to a page URL reruns via app.py
