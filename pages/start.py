"""Start here (the default page): what the tool compares and why, what the bundled models are and can do,
the prompt formats they were trained on (one click fills the Arena), headline results with the pages that
show them, and where to plug in real checkpoints. Everything it quotes is read from the repository's
committed records (assets/models, results/), not typed in."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from backend.arena.evaluation import evaluation_rows, leaderboard
from backend.arena.examples import examples
from backend.arena.headlines import headlines
from backend.models import registry
from pages.components.resources import REPO, results_dir
from pages.components.settings import apply_example

FORMATS = "backend/toyworld/tasks.py (TEMPLATES)"


@st.cache_data(show_spinner=False)
def _evaluation(models_dir: str, results: str):
    return evaluation_rows(Path(models_dir), Path(results))


@st.cache_data(show_spinner=False)
def _headlines(results: str, rows):
    return headlines(Path(results), rows)


def try_example(index: int) -> None:
    apply_example(examples()[index], "arena")
    st.session_state["start_go_arena"] = True


st.title("SSM Arena")
st.markdown(
    "Compare **state space models** (Mamba, Mamba-2) with **transformers** on your own hardware. A "
    "transformer attends over every earlier token, so its key / value cache and its time per token grow with "
    "the context; an SSM reads each token once into a fixed-size state. Whether that makes it faster, "
    "smaller or worse at recalling what it read is what the pages here measure: side-by-side generation with "
    "live metrics (Arena), a blind vote (Blind A/B), few-shot, long-context, chain-of-thought and RAG "
    "experiments, a fair speed and memory benchmark (Performance), and a history of every stored run.")

bundled = [s for s in registry.list_specs() if s.source == "bundled"]
rows = _evaluation(str(REPO / "assets" / "models"), str(results_dir()))

st.header("The bundled models")
st.markdown(
    "Three models of about 8M parameters, trained by this repository on the same token stream of a "
    "**fictional toy world** (people, towns, organisations and events written up as articles, questions, "
    "few-shot episodes, word problems and pass-key documents), with one 4,096-token tokenizer and "
    "**1,024-token contexts**. They work offline and on a CPU.")
# static tables (st.table): a few rows, printed whole, lighter for the browser than interactive grids
st.table(pd.DataFrame([{"model": s.name, "family": s.family, "architecture": s.description,
                        "training context (tokens)": s.train_context or "",
                        "weights": "untrained placeholder" if s.placeholder else "trained (bundled)"} for s in bundled]
                      ).set_index("model"))
c1, c2 = st.columns(2)
with c1:
    st.markdown("**They can** continue the formats they were trained on: write a short article about a "
                "toy-world entity, answer a question from a passage or from what they learnt, label "
                "remarks after a few examples, do small sums step by step, find a pass key in a document.")
with c2:
    st.markdown("**They cannot** handle anything outside that world: *Tell me about the river* or *The "
                "capital of France is* produce fluent-looking noise. They know no real facts and follow no "
                "instructions; long prompts beyond 1,024 tokens degrade (see the pass key numbers).")
if rows.empty:
    st.caption("No committed evaluation records match the checkpoints on disk (results/train_*.jsonl), so no "
               "held-out scores are shown.")
else:
    st.subheader("Held-out scores (entities never seen in training; 95% intervals)")
    st.table(leaderboard(rows).set_index("task"))
    st.caption(f"From {', '.join(sorted(set(rows['source'])))}; every task and setting is on the Models page.")

st.header("Try a trained prompt format")
st.caption(f"Each button fills the Arena with a prompt in one of the formats from {FORMATS}, with its "
           "reference answer where there is one (answers are then marked right or wrong), and opens the Arena.")
for i, ex in enumerate(examples()):
    with st.container(border=True):
        a, b = st.columns([1, 3])
        a.button(f"Try: {ex.title}", key=f"start_try_{i}", on_click=try_example, args=(i,), width="stretch")
        a.caption(ex.note)
        b.code(ex.prompt if len(ex.prompt) < 400 else "…" + ex.prompt[-400:], language=None, wrap_lines=True)
if st.session_state.pop("start_go_arena", False):
    st.switch_page("pages/arena.py")

st.header("Headline results")
for h in _headlines(str(results_dir()), rows):
    with st.container(border=True):
        st.markdown(f"**{h.title}**")
        st.text(h.text)
        st.page_link(h.page, label=f"See it on the {h.page.split('/')[-1].removesuffix('.py').replace('_', ' ')} page",
                     icon=":material/arrow_forward:")
        st.caption(f"Source: results/{h.source}")

st.header("Plug in real checkpoints")
st.markdown(
    "- **A folder** that `save_pretrained()` wrote (config.json, weights, tokenizer): add it on the Models page; "
    "it then appears in every model list.\n"
    "- **Hugging Face ids** (Mamba / Pythia pairs, Mamba-2): listed once they are in the local Hugging Face "
    "cache. Without network they are not offered (the Models page says why for each).\n"
    "- **A GPU**: install the CUDA or ROCm build of torch (README, \"GPU install\"); the SSMs then run on the "
    "Triton kernels and the numbers mean much more than on a CPU.")
st.page_link("pages/models.py", label="Models page", icon=":material/inventory_2:")
st.caption("Equivalent commands:")
st.code("python -m backend models                     # every model and whether it can load here\n"
        "python -m backend models --add /path/to/folder\n"
        "python -m backend generate --prompt \"Tell me about Lon Neakelairk.\"", language="bash")
