"""The Models page's bundled-model section: the held-out evaluation as a compact leaderboard (95% intervals)
and each bundled model's card (its README.md), read from the committed records (backend.arena.evaluation)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from backend.arena.evaluation import evaluation_rows, leaderboard, model_card
from pages.components.resources import REPO, results_dir


@st.cache_data(show_spinner=False)
def _rows(models_dir: str, results: str):
    return evaluation_rows(Path(models_dir), Path(results))


def bundled_models_section(specs) -> None:
    bundled = [s for s in specs if s.source == "bundled"]
    if not bundled:
        return
    st.subheader("Bundled models: held-out evaluation")
    rows = _rows(str(REPO / "assets" / "models"), str(results_dir()))
    if rows.empty:
        st.caption("No committed evaluation records (results/train_*.jsonl) match the checkpoints on disk: "
                   "`python -m backend evaluate` on the checkpoints writes them.")
    else:
        st.caption("Entities never seen in training; each cell is the value with its 95% interval (Wilson; "
                   f"perplexity: bootstrap over documents). Records: {', '.join(sorted(set(rows['source'])))}, "
                   f"measured on {', '.join(sorted(set(rows['device'].dropna())))}.")
        st.dataframe(leaderboard(rows), hide_index=True, key="models_leaderboard")
        with st.expander("Every task and setting"):
            st.dataframe(leaderboard(rows, headline=False), hide_index=True, key="models_leaderboard_all")
    for s in bundled:
        card = model_card(s.location)
        if card:
            with st.expander(f"Model card: {s.name}"):
                st.markdown(card)  # our own file (written by `python -m backend model-card`), not model output
